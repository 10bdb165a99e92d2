package chaos

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/kafka"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
)

func init() {
	brokers = append(brokers, struct {
		name  string
		start func(t *testing.T) broker
	}{"kafka", startKafka})
}

type kafkaBroker struct {
	c     *kafkatest.Cluster
	topic string
}

func startKafka(t *testing.T) broker {
	topic := kafkatest.Topic()
	return &kafkaBroker{c: kafkatest.Start(t, kfake.SeedTopics(8, topic)), topic: topic}
}

func (k *kafkaBroker) sinkURL(string) string { return k.c.URL(k.topic, "write_timeout=1500ms") }
func (k *kafkaBroker) stop()                 { k.c.Stop() }
func (k *kafkaBroker) restart()              { k.c.Restart() }

func (k *kafkaBroker) read(ctx context.Context) ([]core.Delivered, error) {
	s, err := kafka.Open(k.c.URL(k.topic))
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
