package kafka_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	kgo "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/testenv"
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

// TestRealKeyAndPosition: on a real broker, each message is keyed by its
// DOID, carries its position and op_id headers, and each key's messages
// are in position order; retries and stream-less messages go through the
// same producer.
func TestRealKeyAndPosition(t *testing.T) {
	t.Parallel()
	r := kafkatest.NeedReal(t)
	topic := kafkatest.Topic()
	r.CreateTopic(t, topic, 3)
	s, err := kafka.Open(r.URL(topic))
	require.NoError(t, err)
	defer s.Close()
	msgs := streamMessages(t, 0, 60)
	for i := 0; i < len(msgs); i += 20 {
		for j, err := range s.Publish(testenv.Context(t), msgs[i:i+20]) {
			require.NoError(t, err, "message %d", i+j)
		}
	}
	readBack(t, s) // checks the order per key
	retry := msgs[5]
	retry.Retry = true
	checkpoint := core.Message{Kind: core.KindCheckpoint, Key: "checkpoint", ID: "checkpoint-1", Payload: []byte("cp"), Position: -1}
	for _, err := range s.Publish(testenv.Context(t), []core.Message{retry, checkpoint}) {
		require.NoError(t, err)
	}
	var cp []core.Delivered
	got := map[string][]core.Delivered{}
	require.NoError(t, s.Replay(testenv.Context(t), time.Time{}, func(d core.Delivered) error {
		if d.ID == checkpoint.ID {
			cp = append(cp, d)
		} else {
			got[d.ID] = append(got[d.ID], d)
		}
		return nil
	}))
	for i, m := range msgs {
		want := 1
		if i == 5 {
			want = 2 // and its retry
		}
		require.Len(t, got[m.ID], want, "position %d", m.Position)
		d := got[m.ID][0]
		assert.Equal(t, m.Key, d.Key, "keyed by the DOID")
		assert.Equal(t, strconv.FormatInt(m.Position, 10), d.Headers[core.HeaderPosition])
	}
	require.Len(t, cp, 1)
	assert.NotContains(t, cp[0].Headers, core.HeaderPosition, "a checkpoint has no position")
}
