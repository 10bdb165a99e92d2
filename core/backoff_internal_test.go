package core

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/internal/testenv"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/internal/backoff"
)

// The engine's and the client's retry loops take their delays from
// internal/backoff: these tests give them a schedule of their own (of
// microseconds, or of an hour) and watch them follow it, or leave it as
// soon as they are stopped.

var (
	microPolicy = backoff.Policy{Base: time.Microsecond, Max: 4 * time.Microsecond}
	hourPolicy  = backoff.Policy{Base: time.Hour, Max: time.Hour}
)

// scriptedSink fails the calls fail says to fail.
type scriptedSink struct {
	mu    sync.Mutex
	calls int
	fail  func(call int) error
}

func (s *scriptedSink) Publish(_ context.Context, msgs []Message) []error {
	s.mu.Lock()
	s.calls++
	err := s.fail(s.calls)
	s.mu.Unlock()
	return FailAll(len(msgs), err)
}

func (s *scriptedSink) Close() error { return nil }

func (s *scriptedSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func testOp() *Operation {
	return &Operation{Source: SourceIRP, Type: IRPType(IRPCreateHandle),
		DOID: "10.1000/backoff", DOPrefix: "10.1000", Actor: "alice", ProducerID: "backoff-test"}
}

func publishOnly(t *testing.T, sink Sink, attempts int) *Client {
	t.Helper()
	c, err := NewClient(nil, sink, Config{Strategy: PublishOnly, PublishAttempts: attempts,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	assert.Equal(t, publishRetry, c.retry, "by default, the package's schedule")
	c.retry = microPolicy
	return c
}

func TestPublishOnlyRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	down := errors.New("broker away")

	sink := &scriptedSink{fail: func(call int) error {
		if call < 4 {
			return down
		}
		return nil
	}}
	require.NoError(t, publishOnly(t, sink, 4).Record(ctx, testOp()))
	assert.Equal(t, 4, sink.count(), "three failures, then accepted")

	sink = &scriptedSink{fail: func(int) error { return down }}
	err := publishOnly(t, sink, 4).Record(ctx, testOp())
	assert.ErrorIs(t, err, down)
	assert.ErrorContains(t, err, "after 4 attempts")
	assert.Equal(t, 4, sink.count(), "PublishAttempts bounds the tries")

	sink = &scriptedSink{fail: func(int) error { return Permanent(down) }}
	err = publishOnly(t, sink, 4).Record(ctx, testOp())
	assert.True(t, IsPermanent(err))
	assert.ErrorContains(t, err, "after 1 attempts")
	assert.Equal(t, 1, sink.count(), "a permanent failure is not retried")
}

// TestPublishOnlyRetryCancelled: an hour's backoff ends with Record's
// context.
func TestPublishOnlyRetryCancelled(t *testing.T) {
	t.Parallel()
	down := errors.New("broker away")
	ctx, cancel := context.WithCancel(context.Background())
	sink := &scriptedSink{fail: func(int) error { cancel(); return down }}
	c := publishOnly(t, sink, 3)
	c.retry = hourPolicy
	done := make(chan error, 1)
	go func() { done <- c.Record(ctx, testOp()) }()
	err := testenv.Receive(t, done, "stopping ends the backoff")
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, down, "and what failed")
	assert.Equal(t, 1, sink.count())
}
