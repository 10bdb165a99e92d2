package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/kafka"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
)

func fastEngine() core.EngineConfig {
	return core.EngineConfig{BatchSize: 50, Lease: 5 * time.Second, PublishTimeout: 2 * time.Second,
		PollInterval: 20 * time.Millisecond, RetryPoll: 50 * time.Millisecond, BackoffBase: 20 * time.Millisecond,
		BackoffMax: 500 * time.Millisecond, MaxAttempts: 5}
}

func record(t *testing.T, s core.Store, ops []*core.Operation) {
	t.Helper()
	c, err := core.NewClient(s, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	require.NoError(t, c.Record(context.Background(), ops...))
}

func ops(n int, from int) []*core.Operation {
	out := make([]*core.Operation, n)
	for i := range out {
		out[i] = conformance.NewOp("fault-"+string(rune('a'+(from+i)%20)), from+i)
	}
	return out
}

// TestBrokerRestart stops the broker in the middle of a relay and starts it
// again on the same port: every operation arrives, none goes dead.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := kafkatest.Topic()
	cluster := kafkatest.Start(t, kfake.SeedTopics(3, topic))
	sink, err := kafka.Open(cluster.URL(topic, "write_timeout=1s"))
	require.NoError(t, err)
	defer sink.Close()
	store := sqlitetest.Open(t, sqlitetest.URL(t))
	first := ops(300, 0)
	record(t, store, first)
	e, err := core.NewEngine(store, sink, fastEngine())
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	defer e.Stop(ctx)
	require.Eventually(t, func() bool { return e.Stats().Published > 50 }, testenv.Patience(t), 10*time.Millisecond)

	cluster.Stop()
	second := ops(300, 300)
	record(t, store, second)
	require.Eventually(t, func() bool { return e.Stats().Outages > 0 }, testenv.Patience(t), 10*time.Millisecond,
		"the engine notices the broker is gone")
	time.Sleep(time.Second)
	cluster.Restart()

	reader, err := kafka.Open(cluster.URL(topic))
	require.NoError(t, err)
	defer reader.Close()
	got, err := conformance.ReadFrom(reader)(ctx, len(first)+len(second))
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.ID] = true
	}
	for _, op := range append(first, second...) {
		assert.True(t, seen[op.OpID], "%s survived the broker restart", op.OpID)
	}
	require.Eventually(t, func() bool {
		st, err := store.Stats(ctx)
		return err == nil && st.Counts[core.StatePublished] == int64(len(first)+len(second))
	}, testenv.Patience(t), 20*time.Millisecond)
	st, err := store.Stats(ctx)
	require.NoError(t, err)
	assert.Zero(t, st.Counts[core.StateDead], "an outage sends nothing to dead")
}

// TestOversizedMessage: the broker refuses one operation as too large
// (message.max.bytes); it goes dead at once with a clear error while the
// rest of its batch is published.
func TestOversizedMessage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct{ name, param string }{
		{"broker refuses", "max_message_bytes=8000"}, // the client lets it through, the broker says MessageTooLarge
		{"client refuses", "max_message_bytes=1500"}, // the sink refuses it before sending
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := kafkatest.Topic()
			cluster := kafkatest.Start(t, kfake.SeedTopics(1, topic), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2500"}))
			sink, err := kafka.Open(cluster.URL(topic, tc.param))
			require.NoError(t, err)
			defer sink.Close()
			store := sqlitetest.Open(t, sqlitetest.URL(t))
			batch := ops(20, 0)
			big := batch[7]
			big.Actor = strings.Repeat("a", core.MaxActorLen)
			big.DOID = big.DOPrefix + "/" + strings.Repeat("d", core.MaxDOIDLen-len(big.DOPrefix)-1)
			big.DORepository = strings.Repeat("r", core.MaxRepositoryLen)
			big.ProducerID = strings.Repeat("p", core.MaxProducerIDLen)
			big.Type = strings.Repeat("t", core.MaxTypeLen)
			big.HashAlg = core.HashSHA512
			big.RequestBodyHash, big.ResponseBodyHash = strings.Repeat("1", 128), strings.Repeat("2", 128)
			record(t, store, batch)
			r, err := store.Get(ctx, big.OpID)
			require.NoError(t, err)
			m, err := core.NewMessage(&r.Op, r.Seq)
			require.NoError(t, err)
			require.Greater(t, len(m.Payload), 1500, "the big operation's payload")

			cfg := fastEngine()
			e, err := core.NewEngine(store, sink, cfg)
			require.NoError(t, err)
			require.NoError(t, e.Start(ctx))
			defer e.Stop(ctx)
			require.Eventually(t, func() bool {
				st, err := store.Stats(ctx)
				return err == nil && st.Counts[core.StatePublished] == 19 && st.Counts[core.StateDead] == 1
			}, testenv.Patience(t), 20*time.Millisecond)
			dead, err := store.Get(ctx, big.OpID)
			require.NoError(t, err)
			assert.Equal(t, core.StateDead, dead.State)
			assert.Equal(t, 1, dead.Attempts, "dead at once, not after MaxAttempts")
			assert.Regexp(t, "(?i)too large|exceeds max_message_bytes", dead.LastError)
		})
	}
}
