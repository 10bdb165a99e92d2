package chaos

import (
	"context"
	"testing"
	"time"

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

func (p *pulsarBroker) sinkURL(node string) string {
	return p.r.SinkURL(p.topic, "producer_name="+node)
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

// maxDuplicates is 0: every operation goes through a relay's ordered
// stream (one worker per relay), whose claims say under which producer
// name and sequence id it went, and what the broker holds is recorded as
// published rather than sent again, by the relay's next run or by a relay
// taking its claims over (RELIABILITY.md, items 8-28). A copy fails the
// run, and the test prints the store rows and relay log lines of the
// first copied operations.
func (p *pulsarBroker) maxDuplicates(batch, kills, relays int) int { return 0 }
