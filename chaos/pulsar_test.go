package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/brokerserver"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

func init() {
	brokers = append(brokers, struct {
		name  string
		start func(t *testing.T) broker
	}{"pulsar", startPulsar})
}

// pulsarBroker is a private, real Apache Pulsar standalone broker with
// deduplication on (brokerDeduplicationEnabled) and a topic of 4
// partitions. Each relay node is its own producer name, so a node
// restarted after SIGKILL resumes its sequence and the broker drops what
// it re-sends.
type pulsarBroker struct {
	s     *brokerserver.Server
	r     *pulsartest.Real
	topic string
}

func startPulsar(t *testing.T) broker {
	s := brokerserver.Start(t, "pulsar", func(ctx context.Context, s *brokerserver.Server) error {
		return (&pulsartest.Real{ServiceURL: s.Addr, Admin: s.Admin}).Ready(ctx)
	})
	p := &pulsarBroker{s: s, r: &pulsartest.Real{ServiceURL: s.Addr, Admin: s.Admin}, topic: pulsartest.Topic()}
	p.r.CreatePartitionedTopic(t, p.topic, 4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if on, err := p.r.Deduplication(ctx, p.topic); err != nil || !on {
		t.Fatalf("the chaos broker must deduplicate: enabled=%v, %v", on, err)
	}
	return p
}

func (p *pulsarBroker) sinkURL(string) string {
	return p.r.SinkURL(p.topic)
}
func (p *pulsarBroker) stop() { p.s.Stop() }
func (p *pulsarBroker) restart() {
	if err := p.s.Start(); err != nil {
		panic(err)
	}
}

func (p *pulsarBroker) read(ctx context.Context) ([]core.Delivered, error) {
	s, err := pulsar.Open(p.r.SinkURL(p.topic))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return replayAll(ctx, s)
}

// explain logs where the duplicates came from: which producers sent each
// copy (the broker keeps the producer name of every message), and a
// summary by producer kind.
func (p *pulsarBroker) explain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := pc.NewClient(pc.ClientOptions{URL: p.s.Addr})
	if err != nil {
		t.Logf("explain: %v", err)
		return
	}
	defer client.Close()
	copies := map[string][]string{} // op_id → producer names, in partition order
	var order []string
	for i := range 4 {
		r, err := client.CreateReader(pc.ReaderOptions{Topic: fmt.Sprintf("%s-partition-%d", p.topic, i), StartMessageID: pc.EarliestMessageID()})
		if err != nil {
			t.Logf("explain: %v", err)
			return
		}
		for r.HasNext() {
			m, err := r.Next(ctx)
			if err != nil {
				break
			}
			id := m.Properties()[core.HeaderOpID]
			if id == "" || m.Properties()[core.HeaderKind] == string(core.KindCheckpoint) {
				continue
			}
			if copies[id] == nil {
				order = append(order, id)
			}
			copies[id] = append(copies[id], m.ProducerName()+"@"+m.ID().String())
		}
		r.Close()
	}
	kinds, shown := map[string]int{}, 0
	for _, id := range order {
		c := copies[id]
		if len(c) < 2 {
			continue
		}
		for _, m := range c[1:] {
			kinds[copyKind(strings.Split(c[0], "@")[0], strings.Split(m, "@")[0])]++
		}
		if shown < 10 {
			shown++
			t.Logf("duplicate %s: %v", id, c)
		}
	}
	t.Logf("duplicates by producers (first → copy): %v", kinds)
}

// producerKind names which kind of producer sent a message: a
// partition's (named "<log id>-p<partition>", sequence id = position, the
// broker deduplicates it) or the plain one (retries, broker-named).
func producerKind(p string) string {
	if i := strings.LastIndex(p, "-p"); i >= 0 && i+2 < len(p) && strings.Trim(p[i+2:], "0123456789") == "" {
		return "partition"
	}
	return "plain"
}

// copyKind names how a copy relates to the first delivery: through which
// kind of producer each went, and whether one producer (name) sent both.
func copyKind(first, copy string) string {
	who := "same producer"
	if first != copy {
		who = "other producer"
	}
	return producerKind(first) + "→" + producerKind(copy) + " (" + who + ")"
}

// maxDuplicates is 0: every operation goes out through its partition's
// producer, named after the log and the partition, with its position as
// sequence id, and a new owner of the partition starts after the last
// id the broker stored for that name; the broker drops a re-send. That
// holds only because the producer does not batch: batched, the broker
// judges a batch by its first id alone (RELIABILITY.md, "Real brokers").
// A copy fails the run, and the test prints the producers of the first
// copied operations.
func (p *pulsarBroker) maxDuplicates(batch, kills, relays int) int { return 0 }
