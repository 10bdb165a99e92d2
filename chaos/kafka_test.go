package chaos

import (
	"context"
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/brokerserver"
	"github.com/go-trustlog/trustlog/sinks/kafka"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
)

func init() {
	brokers = append(brokers, struct {
		name  string
		start func(t *testing.T) broker
	}{"kafka", startKafka})
}

// kafkaBroker is a private, real Apache Kafka broker (KRaft, one node)
// with a topic of 8 partitions.
type kafkaBroker struct {
	s     *brokerserver.Server
	topic string
}

func startKafka(t *testing.T) broker {
	topic := kafkatest.Topic()
	s := brokerserver.Start(t, "kafka", func(ctx context.Context, s *brokerserver.Server) error {
		return kafkatest.Server.Ping(ctx, s.Addr)
	})
	(&kafkatest.Real{Addr: s.Addr}).CreateTopic(t, topic, 8)
	return &kafkaBroker{s: s, topic: topic}
}

func (k *kafkaBroker) url() string {
	return (&kafkatest.Real{Addr: k.s.Addr}).URL(k.topic, "write_timeout=1500ms")
}
func (k *kafkaBroker) sinkURL(string) string { return k.url() }
func (k *kafkaBroker) stop()                 { k.s.Stop() }
func (k *kafkaBroker) restart() {
	if err := k.s.Start(); err != nil {
		panic(err)
	}
}

func (k *kafkaBroker) read(ctx context.Context) ([]core.Delivered, error) {
	s, err := kafka.Open(k.url())
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return replayAll(ctx, s)
}

// maxDuplicates: Kafka has no broker-side deduplication, so every batch a
// killed relay had published but not settled (and every batch in flight
// when the database restarted) may arrive twice.
func (k *kafkaBroker) maxDuplicates(batch, kills, relays int) int { return batch * (kills + relays) }
