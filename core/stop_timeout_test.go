package core_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
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

// stuckSink accepts every message, but only once released: its Publish
// ignores its context, as a client library stuck in a write might.
type stuckSink struct {
	entered chan struct{} // closed when the first Publish starts
	once    sync.Once
	release chan struct{}
}

func newStuckSink() *stuckSink {
	return &stuckSink{entered: make(chan struct{}), release: make(chan struct{})}
}

func (s *stuckSink) Publish(_ context.Context, msgs []core.Message) []error {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	return make([]error, len(msgs))
}

func (s *stuckSink) Close() error { return nil }

// TestStopHonoursShutdownTimeout: an engine whose sink is stuck in a
// Publish that ignores its context still stops within ShutdownTimeout
// (plus a little) and says what it left behind; nothing is recorded as
// published that the sink did not acknowledge, and once the stopped
// engine's partition lease ends another engine publishes everything.
func TestStopHonoursShutdownTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := sqlitetest.Open(t, sqlitetest.URL(t))
	recordN(t, store, 3, 1) // one DOID: one partition, one publisher
	sink := newStuckSink()
	released := false
	t.Cleanup(func() {
		if !released {
			close(sink.release)
		}
	})
	const timeout = 500 * time.Millisecond
	e, err := core.NewEngine(store, sink, core.EngineConfig{
		BatchSize: 1, PollInterval: 10 * time.Millisecond, ShutdownTimeout: timeout, Lease: 3 * time.Second,
		// The goroutine left behind may log after the test ends.
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- e.Run(rctx) }()
	testenv.Receive(t, sink.entered, "the engine's first publish")

	cancel() // SIGTERM
	stopped := time.Now()
	select {
	case err = <-ran:
	case <-time.After(10 * timeout):
		t.Fatalf("Run did not return within %s of the stop (ShutdownTimeout %s): it waits for a sink that ignores its context", 10*timeout, timeout)
	}
	t.Logf("Run returned %s after the stop: %v", time.Since(stopped).Round(time.Millisecond), err)
	require.Error(t, err, "a stop that ran out of time says so")
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	assert.Contains(t, err.Error(), "left behind")
	st, err := store.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(3), st.Counts[core.StatePending], "nothing unacknowledged is recorded as published")

	// The sink lets go; the stopped engine's advance was aborted. Another
	// engine takes the partition when its lease ends and publishes all.
	released = true
	close(sink.release)
	next := memory.New(memory.Faults{})
	e2, err := core.NewEngine(store, next, core.EngineConfig{PollInterval: 10 * time.Millisecond, Lease: 3 * time.Second, Logger: quietLogger(t)})
	require.NoError(t, err)
	require.NoError(t, e2.Start(ctx))
	defer e2.Stop(ctx)
	require.Eventually(t, func() bool {
		st, err := store.Stats(ctx)
		return err == nil && st.Counts[core.StatePublished] == 3
	}, testenv.Patience(t), 10*time.Millisecond)
	assert.Equal(t, 3, next.Len())
}

// TestMaxWorkers: Workers above MaxWorkers is a configuration error that
// names the field.
func TestMaxWorkers(t *testing.T) {
	t.Parallel()
	require.NoError(t, core.EngineConfig{Workers: core.MaxWorkers}.Validate())
	err := core.EngineConfig{Workers: core.MaxWorkers + 1}.Validate()
	var ce *core.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "Workers", ce.Field)
	assert.ErrorIs(t, err, core.ErrInvalidConfig)
}
