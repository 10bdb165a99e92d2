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
// (plus a little), gives back the batches it had not started to
// publish, and says what it left behind. It used to wait for the sink
// however long that took.
func TestStopHonoursShutdownTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := sqlitetest.Open(t, sqlitetest.URL(t))
	recordN(t, store, 3, 3)
	sink := newStuckSink()
	released := false
	t.Cleanup(func() {
		if !released {
			close(sink.release)
		}
	})
	const timeout = 500 * time.Millisecond
	e, err := core.NewEngine(store, sink, core.EngineConfig{
		BatchSize: 1, PollInterval: 10 * time.Millisecond, ShutdownTimeout: timeout,
		// The goroutine left behind may log after the test ends.
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- e.Run(rctx) }()
	select {
	case <-sink.entered:
	case <-time.After(time.Minute):
		t.Fatal("the engine never published")
	}
	// One batch stuck in Publish; wait for the next two to be claimed
	// (one waiting for the publisher, one waiting to be handed on).
	require.Eventually(t, func() bool {
		st, err := store.Stats(ctx)
		return err == nil && st.Counts[core.StateInFlight] == 3
	}, testenv.Patience(t), 5*time.Millisecond)

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
	require.Eventually(t, func() bool {
		st, err := store.Stats(ctx)
		return err == nil && st.Counts[core.StatePending] == 2 && st.Counts[core.StateInFlight] == 1
	}, testenv.Patience(t), 5*time.Millisecond, "the batches not yet published are given back; only the one stuck in the sink stays claimed")

	// Once the sink lets go, the engine left behind records what it
	// published.
	released = true
	close(sink.release)
	require.Eventually(t, func() bool {
		st, err := store.Stats(ctx)
		return err == nil && st.Counts[core.StatePublished] == 1 && st.Counts[core.StateInFlight] == 0
	}, testenv.Patience(t), 5*time.Millisecond)
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
