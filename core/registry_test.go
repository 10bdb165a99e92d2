package core_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

func TestRegistry(t *testing.T) {
	opened := ""
	core.RegisterDriver("regtest", core.StoreDriverFunc(func(ctx context.Context, url string) (core.Store, error) {
		opened = url
		return nil, errors.New("regtest store")
	}))
	assert.Contains(t, core.Drivers(), "regtest")
	_, err := core.OpenStore(context.Background(), "RegTest://x")
	assert.EqualError(t, err, "regtest store", "schemes are case-insensitive")
	assert.Equal(t, "RegTest://x", opened)

	assert.Panics(t, func() { core.RegisterDriver("regtest", core.StoreDriverFunc(nil)) }, "nil driver")
	assert.PanicsWithValue(t, "trustlog: Registerdriver called twice for regtest", func() {
		core.RegisterDriver("regtest", core.StoreDriverFunc(func(context.Context, string) (core.Store, error) { return nil, nil }))
	})
	assert.Panics(t, func() { core.RegisterSink("x", nil) })

	_, err = core.OpenStore(context.Background(), "nosuch://db?password=hunter2")
	require.ErrorIs(t, err, core.ErrUnknownScheme)
	assert.Contains(t, err.Error(), `"nosuch"`)
	assert.Contains(t, err.Error(), "regtest", "lists the registered schemes")
	_, err = core.OpenSink(context.Background(), "no scheme at all")
	require.ErrorIs(t, err, core.ErrInvalidURL)
	_, err = core.OpenStore(context.Background(), "user:hunter2@tcp(db)/app")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2", "errors never carry passwords")
}

func TestScheme(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u@h/db": "postgres", "sqlite:x.db": "sqlite", "file:/tmp/x": "file",
		"pulsar+ssl://h": "pulsar+ssl", "/abs/path": "", "C:\\x": "c", "": "", ":x": "", "a b:": "",
	} {
		assert.Equal(t, want, core.Scheme(in), in)
	}
}

func TestEngineConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, core.EngineConfig{}.Validate(), "the zero value is usable")
	for field, cfg := range map[string]core.EngineConfig{
		"BatchSize":      {BatchSize: core.MaxBatch + 1},
		"Lease":          {Lease: time.Millisecond},
		"PublishTimeout": {Lease: 10 * time.Second, PublishTimeout: 6 * time.Second},
		"MaxAttempts":    {MaxAttempts: -1},
		"BackoffMax":     {BackoffBase: time.Minute, BackoffMax: time.Second},
		"BackoffJitter":  {BackoffJitter: 1.5},
		"Workers":        {Workers: -2},
	} {
		var ce *core.ConfigError
		require.ErrorAs(t, cfg.Validate(), &ce, field)
		assert.Equal(t, field, ce.Field)
		assert.ErrorIs(t, cfg.Validate(), core.ErrInvalidConfig)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for attempt, want := range []time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 10: time.Minute} {
		if want == 0 {
			continue
		}
		assert.Equal(t, want, core.Backoff(attempt, time.Second, time.Minute, 0), "attempt %d", attempt)
		for i := 0; i < 50; i++ {
			d := core.Backoff(attempt, time.Second, time.Minute, 0.2)
			assert.GreaterOrEqual(t, d, time.Duration(float64(want)*0.8))
			assert.LessOrEqual(t, d, min(time.Duration(float64(want)*1.2), time.Minute))
		}
	}
	// An attempt number read from the database, however large: the cap,
	// at once, never an overflow.
	for _, attempt := range []int{64, 1 << 40, math.MaxInt} {
		assert.Equal(t, time.Minute, core.Backoff(attempt, time.Second, time.Minute, 0), "attempt %d", attempt)
		d := core.Backoff(attempt, time.Second, math.MaxInt64, 0.2)
		assert.GreaterOrEqual(t, d, time.Duration(float64(math.MaxInt64)*0.8), "attempt %d: jittered down at most 20%%, not overflowed", attempt)
	}
}

func TestStateStatus(t *testing.T) {
	t.Parallel()
	for s, want := range map[core.State]core.Status{
		core.StatePending:  core.StatusNotTrustlogged,
		core.StateRetrying: core.StatusNotTrustlogged, core.StatePublished: core.StatusTrustlogged, core.StateDead: core.StatusDead,
	} {
		assert.Equal(t, want, s.Status(), s.String())
	}
}

// writeOnly is a sink that cannot be read back.
type writeOnly struct{}

func (writeOnly) Publish(_ context.Context, msgs []core.Message) []error {
	return make([]error, len(msgs))
}
func (writeOnly) Close() error { return nil }

func TestOpenReplayer(t *testing.T) {
	ctx := context.Background()
	closed := false
	core.RegisterSink("replaytest-wo", core.SinkDriverFunc(func(context.Context, string) (core.Sink, error) {
		return writeOnly{}, nil
	}))
	_, err := core.OpenReplayer(ctx, "replaytest-wo://x")
	require.ErrorIs(t, err, core.ErrNoReplay)

	// A sink that is a Replayer serves, opened as a sink.
	core.RegisterSink("replaytest-rp", core.SinkDriverFunc(func(context.Context, string) (core.Sink, error) {
		return &replayable{closed: &closed}, nil
	}))
	rs, err := core.OpenReplayer(ctx, "replaytest-rp://x")
	require.NoError(t, err)
	require.NoError(t, rs.Replay(ctx, time.Time{}, func(core.Delivered) error { return nil }))
	require.NoError(t, rs.Close())
	assert.True(t, closed)

	_, err = core.OpenReplayer(ctx, "nosuch://x")
	require.ErrorIs(t, err, core.ErrUnknownScheme)
}

type replayable struct {
	writeOnly
	closed *bool
}

func (r *replayable) Replay(context.Context, time.Time, func(core.Delivered) error) error { return nil }
func (r *replayable) Close() error                                                        { *r.closed = true; return nil }

// TestLoggerFromContext: what OpenSink and OpenStore see of the logger
// their caller opened them with.
func TestLoggerFromContext(t *testing.T) {
	ctx := context.Background()
	assert.Same(t, slog.Default(), core.LoggerFrom(ctx), "none: slog.Default()")
	assert.Same(t, slog.Default(), core.LoggerFrom(core.ContextWithLogger(ctx, nil)), "nil changes nothing")
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	assert.Same(t, l, core.LoggerFrom(core.ContextWithLogger(ctx, l)))
}
