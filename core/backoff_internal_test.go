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
	"go.opentelemetry.io/otel/metric/noop"

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

// claimStore is a store whose claims fail as fail says (by source and
// call, counted from 1) and otherwise find nothing. The engine calls
// nothing else of it in these tests (the embedded nil Store would panic).
type claimStore struct {
	Store
	fail  func(src ClaimSource, call int) bool
	mu    sync.Mutex
	calls map[ClaimSource]int
}

func (s *claimStore) Capabilities() Capabilities { return Capabilities{} }
func (s *claimStore) Locker() Locker             { return nil }

func (s *claimStore) Claim(_ context.Context, p ClaimParams) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[ClaimSource]int{}
	}
	s.calls[p.Source]++
	if s.fail(p.Source, s.calls[p.Source]) {
		return nil, errors.New("database away")
	}
	return nil, nil
}

func (s *claimStore) count(src ClaimSource) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[src]
}

// retryLog collects the retry_in of the pending loop's "claim failed"
// warnings.
type retryLog struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (l *retryLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *retryLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *retryLog) WithGroup(string) slog.Handler            { return l }

func (l *retryLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "trustlog: claim failed" {
		return nil
	}
	pending, delay := false, time.Duration(-1)
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "source":
			pending = a.Value.Any() == ClaimPending
		case "retry_in":
			delay = a.Value.Duration()
		}
		return true
	})
	if pending {
		l.mu.Lock()
		l.delays = append(l.delays, delay)
		l.mu.Unlock()
	}
	return nil
}

func (l *retryLog) get() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.delays...)
}

func claimEngine(t *testing.T, store *claimStore, log *retryLog, p backoff.Policy) *Engine {
	t.Helper()
	e, err := NewEngine(store, &scriptedSink{fail: func(int) error { return nil }}, EngineConfig{
		Workers: 1, PollInterval: time.Hour, RetryPoll: time.Hour,
		Logger: slog.New(log), Telemetry: Telemetry{MeterProvider: noop.NewMeterProvider()},
	})
	require.NoError(t, err)
	assert.Equal(t, claimRetry, e.claimRetry, "by default, the package's schedule")
	e.claimRetry = p
	return e
}

// TestClaimLoopBacksOff: a claim loop's tries after failed claims follow
// its schedule, from Base again after a claim that worked.
func TestClaimLoopBacksOff(t *testing.T) {
	t.Parallel()
	store := &claimStore{fail: func(src ClaimSource, call int) bool {
		return src == ClaimPending && call != 5 && call < 8 // 4 failures, 1 success, 2 failures, then successes
	}}
	log := &retryLog{}
	e := claimEngine(t, store, log, microPolicy)
	require.NoError(t, e.Start(context.Background()))
	require.Eventually(t, func() bool { return store.count(ClaimPending) == 5 }, testenv.Patience(t), time.Millisecond,
		"the loop idles (PollInterval, an hour) after its fifth claim")
	e.Wake()
	require.Eventually(t, func() bool { return store.count(ClaimPending) == 8 }, testenv.Patience(t), time.Millisecond)
	require.NoError(t, e.Stop(context.Background()))
	us := time.Microsecond
	assert.Equal(t, []time.Duration{us, 2 * us, 4 * us, 4 * us, us, 2 * us}, log.get())
}

// TestClaimBackoffEndsWithStop: Stop does not wait out a claim loop's
// backoff.
func TestClaimBackoffEndsWithStop(t *testing.T) {
	t.Parallel()
	store := &claimStore{fail: func(src ClaimSource, _ int) bool { return src == ClaimPending }}
	log := &retryLog{}
	e := claimEngine(t, store, log, hourPolicy)
	require.NoError(t, e.Start(context.Background()))
	require.Eventually(t, func() bool { return len(log.get()) == 1 }, testenv.Patience(t), time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- e.Stop(context.Background()) }()
	assert.NoError(t, testenv.Receive(t, done, "stopping ends the backoff"))
	assert.Equal(t, []time.Duration{time.Hour}, log.get())
	assert.Equal(t, 1, store.count(ClaimPending))
}
