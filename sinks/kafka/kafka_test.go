package kafka_test

import (
	"context"
	"testing"
	"time"

	kgo "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/kafka"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	conformance.RunSink(t, kafkatest.Harness)
}

// TestConformanceReal runs the same suite against a real Apache Kafka
// broker (kafkatest.Server).
func TestConformanceReal(t *testing.T) {
	t.Parallel()
	conformance.RunSink(t, kafkatest.RealHarness)
}

// TestReplayNewTopic: on a real broker a partition's leader answers
// metadata before it answers offset lookups (NOT_LEADER_OR_FOLLOWER for a
// moment after the topic is created; kfake answers at once), and Replay,
// which verify-sink runs, waits for it instead of failing.
func TestReplayNewTopic(t *testing.T) {
	t.Parallel()
	r := kafkatest.NeedReal(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 5 {
		topic := kafkatest.Topic()
		conn, err := kgo.DialContext(ctx, "tcp", r.Addr)
		require.NoError(t, err)
		require.NoError(t, conn.CreateTopics(kgo.TopicConfig{Topic: topic, NumPartitions: 3, ReplicationFactor: 1}))
		conn.Close()
		t.Cleanup(func() { kafkatest.DeleteTopic(context.Background(), r.Addr, topic) })
		s, err := kafka.Open(r.URL(topic))
		require.NoError(t, err)
		n := 0
		err = s.Replay(ctx, time.Time{}, func(core.Delivered) error { n++; return nil })
		s.Close()
		require.NoError(t, err, "round %d", i)
		require.Zero(t, n)
	}
}
