package core_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

func quietLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
}

func recordN(t *testing.T, s core.Store, n, objects int) []*core.Operation {
	t.Helper()
	c, err := core.NewClient(s, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	ops := make([]*core.Operation, n)
	for i := range ops {
		ops[i] = conformance.NewOp(fmt.Sprintf("obj-%d", i%objects), i)
	}
	for i := 0; i < n; i += 1000 {
		require.NoError(t, c.Record(context.Background(), ops[i:min(i+1000, n)]...))
	}
	return ops
}

// TestPoisonAmongTenThousand: one operation the sink always rejects goes
// dead after MaxAttempts while 10,000 others flow past it.
func TestPoisonAmongTenThousand(t *testing.T) {
	testenv.Long(t)
	t.Parallel()
	ctx := context.Background()
	store := sqlitetest.Open(t, sqlitetest.URL(t))
	ops := recordN(t, store, 10_001, 500)
	poison := ops[17]
	sink := memory.New(memory.Faults{FailOpIDs: []string{poison.OpID}})
	e, err := core.NewEngine(store, sink, core.EngineConfig{
		Workers: 2, BatchSize: 500, MaxAttempts: 5, PollInterval: 10 * time.Millisecond, RetryPoll: 10 * time.Millisecond,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond, Logger: quietLogger(t),
	})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	defer e.Stop(ctx)
	require.Eventually(t, func() bool {
		st, err := store.Stats(ctx)
		return err == nil && st.Counts[core.StatePublished] == 10_000 && st.Counts[core.StateDead] == 1
	}, testenv.Patience(t), 20*time.Millisecond)
	dead, err := store.Get(ctx, poison.OpID)
	require.NoError(t, err)
	assert.Equal(t, core.StateDead, dead.State)
	assert.Equal(t, 5, dead.Attempts, "dead after MaxAttempts, not before")
	assert.Equal(t, 10_000, sink.Len(), "everything else reached the sink")
}

// countingSink counts the messages inside Publish calls at once.
type countingSink struct {
	core.Sink
	now, peak atomic.Int64
}

func (c *countingSink) Publish(ctx context.Context, msgs []core.Message) []error {
	n := c.now.Add(int64(len(msgs)))
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
	defer c.now.Add(-int64(len(msgs)))
	return c.Sink.Publish(ctx, msgs)
}

// TestSlowSinkIsBackpressure: with a sink that takes 200 ms per batch and a
// large backlog, the engine reads no faster than it publishes: the rows in
// the sink at once stay within one batch per partition, and the heap does
// not grow with the backlog.
func TestSlowSinkIsBackpressure(t *testing.T) {
	testenv.Long(t)
	t.Parallel()
	ctx := context.Background()
	store := sqlitetest.Open(t, sqlitetest.URL(t))
	recordN(t, store, 20_000, 1000)
	const workers, batch = 2, 100
	sink := &countingSink{Sink: memory.New(memory.Faults{Latency: 200 * time.Millisecond})}
	e, err := core.NewEngine(store, sink, core.EngineConfig{
		Workers: workers, BatchSize: batch, PollInterval: 10 * time.Millisecond, Logger: quietLogger(t),
	})
	require.NoError(t, err)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	require.NoError(t, e.Start(ctx))
	defer e.Stop(ctx)
	require.Eventually(t, func() bool { return e.Stats().Batches >= 20 }, testenv.Patience(t), 10*time.Millisecond, "it makes progress")
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	st, err := store.Stats(ctx)
	require.NoError(t, err)
	parts := int64(len(st.Partitions))
	assert.Greater(t, st.Counts[core.StatePending], int64(15_000), "the backlog drains at the sink's pace")
	assert.LessOrEqual(t, sink.peak.Load(), parts*batch, "rows in the sink at once are bounded by one batch per partition")
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	assert.Less(t, growth, int64(64<<20), "heap growth while the sink is slow: %d bytes", growth)
	t.Logf("slow sink: peak %d rows in the sink (bound %d), %d batches, heap growth %d KiB",
		sink.peak.Load(), parts*batch, e.Stats().Batches, growth>>10)
}
