package kafka_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/kafka"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
)

// streamMessages returns the messages of positions from … to-1 of a
// relay's stream, on objects obj-0 … obj-19 in turn.
func streamMessages(t testing.TB, from, to int64) []core.Message {
	t.Helper()
	var out []core.Message
	for pos := from; pos < to; pos++ {
		op := &core.Operation{
			Source: core.SourceDOIP, Type: core.OpUpdate,
			DOID: fmt.Sprintf("10.1000/obj-%d", pos%20), DOPrefix: "10.1000",
			Actor: "user", ProducerID: "kafka-sink-test", RequestBodyHash: fmt.Sprintf("%064x", pos),
		}
		require.NoError(t, op.Seal(nil))
		m, err := core.NewMessage(op, pos+1, pos)
		require.NoError(t, err)
		m.Stream = "log-p0"
		out = append(out, m)
	}
	return out
}

// readBack returns what s's topic holds, by op_id, and checks that each
// key's positions are in order.
func readBack(t testing.TB, s *kafka.Sink) map[string][]core.Delivered {
	t.Helper()
	byID := map[string][]core.Delivered{}
	byKey := map[string]int64{}
	require.NoError(t, s.Replay(testenv.Context(t), time.Time{}, func(d core.Delivered) error {
		byID[d.ID] = append(byID[d.ID], d)
		var pos int64
		_, err := fmt.Sscan(d.Headers[core.HeaderPosition], &pos)
		require.NoError(t, err, "position header of %s", d.ID)
		if last, ok := byKey[d.Key]; ok {
			require.GreaterOrEqual(t, pos, last, "key %s in position order", d.Key)
		}
		byKey[d.Key] = pos
		return nil
	}))
	return byID
}

// TestBrokerRestart stops the broker while batches are being published
// and starts it again on the same port: while it is down the sink
// answers core.Unavailable (the relay pauses the partition and sends
// again from its cursor), and afterwards every message arrives.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	topic := kafkatest.Topic()
	cluster := kafkatest.Start(t, kfake.SeedTopics(3, topic))
	sink, err := kafka.Open(cluster.URL(topic, "write_timeout=1s"))
	require.NoError(t, err)
	defer sink.Close()
	msgs := streamMessages(t, 0, 300)
	ctx := testenv.Context(t)
	// send publishes msgs[from:to] in batches of 50 as a relay does: a
	// batch is sent again until the sink accepts all of it.
	send := func(from, to int) {
		for i := from; i < to; i += 50 {
			for {
				errs := sink.Publish(ctx, msgs[i:min(i+50, to)])
				failed := 0
				for _, err := range errs {
					if err != nil {
						require.True(t, core.IsUnavailable(err), "a broker outage is unavailable, not the message's fault: %v", err)
						failed++
					}
				}
				if failed == 0 {
					break
				}
				require.NoError(t, ctx.Err())
			}
		}
	}
	send(0, 100)
	cluster.Stop()
	for _, err := range sink.Publish(ctx, msgs[100:150]) {
		require.True(t, core.IsUnavailable(err), "broker down: %v", err)
	}
	cluster.Restart()
	send(100, 300)

	reader, err := kafka.Open(cluster.URL(topic))
	require.NoError(t, err)
	defer reader.Close()
	got := readBack(t, reader)
	for _, m := range msgs {
		assert.NotEmpty(t, got[m.ID], "position %d survived the broker restart", m.Position)
	}
}

// TestOversizedMessage: the broker refuses one operation as too large
// (message.max.bytes), or the sink does before sending it
// (max_message_bytes): that message is core.Permanent with a clear
// error, and the rest of its batch is published.
func TestOversizedMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, param string }{
		{"broker refuses", "max_message_bytes=8000"}, // the client lets it through, the broker says MessageTooLarge
		{"client refuses", "max_message_bytes=1500"}, // the sink refuses it before sending
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := kafkatest.Topic()
			cluster := kafkatest.Start(t, kfake.SeedTopics(1, topic), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2500"}))
			sink, err := kafka.Open(cluster.URL(topic, tc.param))
			require.NoError(t, err)
			defer sink.Close()
			batch := streamMessages(t, 0, 20)
			batch[7].Payload = []byte(strings.Repeat("x", 4000))
			errs := sink.Publish(testenv.Context(t), batch)
			for i, err := range errs {
				if i != 7 {
					require.NoError(t, err, "message %d", i)
				}
			}
			require.True(t, core.IsPermanent(errs[7]), "%v", errs[7])
			assert.Regexp(t, "(?i)too large|exceeds max_message_bytes", errs[7].Error())
			got := readBack(t, sink)
			assert.Len(t, got, 19)
			assert.Empty(t, got[batch[7].ID])
		})
	}
}
