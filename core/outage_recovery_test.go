package core_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/internal/testenv"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// logRecords is a slog.Handler that keeps every record, for tests that
// check what an engine logged.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecords) WithGroup(string) slog.Handler            { return h }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

// find returns the records whose message contains msg.
func (h *logRecords) find(msg string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.recs {
		if strings.Contains(r.Message, msg) {
			out = append(out, r)
		}
	}
	return out
}

func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.Resolve()
			return false
		}
		return true
	})
	return v
}

// TestOutageRecoveryWithinProbeInterval: after a long outage the relay
// resumes within about a probe interval of the sink's return, however
// many batches the sink refused meanwhile, and one outage is one streak
// however many partitions saw it. (The pause used to double per refused batch,
// across all loops, up to BackoffMax: after ten refused batches the
// relay slept 51 s whatever the sink did.)
func TestOutageRecoveryWithinProbeInterval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := sqlitetest.Open(t, sqlitetest.URL(t))
	ops := recordN(t, store, 40, 40)
	sink := memory.New(memory.Faults{FailUntil: time.Now().Add(time.Hour)})
	logs := &logRecords{}
	const probe = 500 * time.Millisecond
	e, err := core.NewEngine(store, sink, core.EngineConfig{
		Workers: 2, BatchSize: 1, PollInterval: 10 * time.Millisecond, RetryPoll: 10 * time.Millisecond,
		ProbeInterval: probe, Logger: slog.New(logs),
	})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	defer e.Stop(ctx)

	// Enough refused batches that a pause doubling per batch from 100 ms
	// would be 100ms * 2^9 = 51 s, far beyond the probe interval and the
	// generous bound below (which leaves room for a busy machine).
	const refused = 10
	require.Eventually(t, func() bool { return e.Stats().Outages >= refused }, time.Minute, 5*time.Millisecond,
		"the engine keeps trying the sink during the outage")
	assert.Zero(t, sink.Len())
	sink.SetFaults(memory.Faults{}) // the broker is back
	back := time.Now()
	require.Eventually(t, func() bool { return sink.Len() > 0 }, 20*probe, 5*time.Millisecond,
		"the first publish after the sink's return comes within about a probe interval (%s), not after a pause grown per refused batch", probe)
	t.Logf("first publish %s after the sink's return, %d batches refused", time.Since(back).Round(time.Millisecond), e.Stats().Outages)
	require.Eventually(t, func() bool {
		st, err := store.Stats(ctx)
		return err == nil && st.Counts[core.StatePublished] == int64(len(ops))
	}, testenv.Patience(t), 10*time.Millisecond)

	// One outage, one streak: a single warning, and each further failed
	// probe grows the streak by one with a pause never above the probe
	// interval, whichever partition's batch the sink refused.
	st := e.Stats()
	assert.Equal(t, int64(1), st.SinkOutages, "one outage, however many batches (%d) the sink refused", st.Outages)
	warned := logs.find("sink unavailable")
	require.Equal(t, 1, len(warned), "one warning per outage, not per refused batch (%d refused)", st.Outages)
	assert.Equal(t, slog.LevelWarn, warned[0].Level)
	var streaks []int64
	for _, r := range append(warned, logs.find("sink still unavailable")...) {
		streaks = append(streaks, attr(r, "streak").Int64())
		pause := attr(r, "pause").Duration()
		assert.LessOrEqual(t, pause, probe, "pause at streak %d", streaks[len(streaks)-1])
	}
	require.NotEmpty(t, streaks)
	slices.Sort(streaks)
	for i, s := range streaks {
		require.Equal(t, int64(i+1), s, "streaks %v grow by one per failed probe", streaks)
	}
	assert.LessOrEqual(t, int64(len(streaks)), st.Outages)
	resumed := logs.find("sink available again")
	require.Len(t, resumed, 1)
	assert.Equal(t, int64(len(streaks)), attr(resumed[0], "streak").Int64(), "the recovery line says how long the streak was")
	for _, op := range ops {
		r, err := store.Get(ctx, op.OpID)
		require.NoError(t, err)
		require.Zero(t, r.Attempts, "an outage does not use up %s's attempts", op.OpID)
		require.Equal(t, core.StatePublished, r.State)
	}
}
