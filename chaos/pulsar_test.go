package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

func init() {
	brokers = append(brokers, struct {
		name  string
		start func(t *testing.T) broker
	}{"pulsar", startPulsar})
}

// pulsarBroker is the Pulsar-protocol test broker with deduplication on and
// a topic of 4 partitions. Each relay node is its own producer name, so a
// node restarted after SIGKILL resumes its sequence and the broker drops
// what it re-sends.
type pulsarBroker struct {
	b     *pulsartest.Broker
	topic string
}

func startPulsar(t *testing.T) broker {
	topic := pulsartest.Topic()
	return &pulsarBroker{b: pulsartest.Start(t, pulsartest.WithDedup(true), pulsartest.WithPartitionedTopic(topic, 4)), topic: topic}
}

func (p *pulsarBroker) sinkURL(node string) string {
	return p.b.SinkURL(p.topic, "producer_name="+node)
}
func (p *pulsarBroker) stop() { p.b.Stop() }
func (p *pulsarBroker) restart() {
	if err := p.b.Restart(); err != nil {
		panic(err)
	}
}

func (p *pulsarBroker) read(ctx context.Context) ([]core.Delivered, error) {
	s, err := pulsar.Open(p.b.SinkURL(p.topic))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return replayAll(ctx, s)
}

// explain logs where the duplicates came from: which producers sent each
// copy, and with which sequence ids.
func (p *pulsarBroker) explain(t *testing.T) {
	copies := map[string][]pulsartest.Message{}
	var order []string
	for _, m := range p.b.Messages(p.topic) {
		id := m.Properties[core.HeaderOpID]
		if id == "" || m.Properties[core.HeaderKind] == string(core.KindCheckpoint) {
			continue
		}
		if copies[id] == nil {
			order = append(order, id)
		}
		copies[id] = append(copies[id], m)
	}
	shown := 0
	kinds := map[string]int{} // "first → copy" by producer kind, for the summary
	for _, id := range order {
		c := copies[id]
		if len(c) < 2 {
			continue
		}
		for _, m := range c[1:] {
			kinds[copyKind(c[0].Producer, m.Producer)]++
		}
		if shown < 10 {
			shown++
			line := id + ":"
			for _, m := range c {
				line += fmt.Sprintf(" %s#%d", m.Producer, m.SequenceID)
			}
			t.Log("duplicate " + line)
		}
	}
	if len(kinds) > 0 {
		t.Logf("duplicates by producers (first → copy): %v", kinds)
	}
	firsts := map[string]int{}
	for _, id := range order {
		_, which := producerKind(copies[id][0].Producer)
		firsts[which]++
	}
	t.Logf("first copies by producer: %v", firsts)
}

// producerKind splits a relay's producer name into its node and which of
// its producers it is (the ordered stream's or the unordered one).
func producerKind(p string) (node, which string) {
	if n, ok := strings.CutSuffix(p, "-unordered"); ok {
		return n, "unordered"
	}
	return p, "ordered"
}

// copyKind names how a copy relates to the first delivery: through which
// of its relay's producers each went (the ordered stream's or the
// unordered one), and whether the same relay sent both.
func copyKind(first, copy string) string {
	n1, k1 := producerKind(first)
	n2, k2 := producerKind(copy)
	who := "same relay"
	if n1 != n2 {
		who = "other relay"
	}
	return k1 + "→" + k2 + " (" + who + ")"
}

// explainLost logs what the broker holds near each lost operation: the
// messages of the same key, with their producers and sequence ids.
func (p *pulsarBroker) explainLost(t *testing.T, ids []string) {
	all := p.b.Messages(p.topic)
	for _, id := range ids[:min(len(ids), 3)] {
		t.Logf("lost %s: %d messages on the topic; none carries it", id, len(all))
	}
}

// maxDuplicates is 0: every operation goes through a relay's ordered
// stream (one worker per relay), whose claims say under which producer
// name and sequence id it went, and what the broker holds is recorded as
// published rather than sent again, by the relay's next run or by a relay
// taking its claims over (RELIABILITY.md, items 8-28); a claim of an
// expired claim is tentative until the relay knows which rows go out
// under it, so a kill at any point leaves each row with the claim that
// may have sent it (item 28). A copy fails the run, and the test prints
// the store rows and relay log lines of the first copied operations.
func (p *pulsarBroker) maxDuplicates(batch, kills, relays int) int { return 0 }
