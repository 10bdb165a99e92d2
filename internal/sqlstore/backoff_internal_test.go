package sqlstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/backoff"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// The store's deadlock retries and the migration lease wait take their
// delays from internal/backoff: these tests give them a schedule of
// microseconds, or of an hour that only cancellation ends.

var (
	microPolicy = backoff.Policy{Base: time.Microsecond, Max: 4 * time.Microsecond}
	hourPolicy  = backoff.Policy{Base: time.Hour, Max: time.Hour}
)

var errVictim = errors.New("deadlock victim")

func victimStore(p backoff.Policy) *Store {
	return &Store{d: &Dialect{Name: "test", Retryable: func(err error) bool { return errors.Is(err, errVictim) }}, retry: p}
}

func TestRetrying(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := victimStore(microPolicy)

	calls := 0
	require.NoError(t, s.retrying(ctx, func() error {
		calls++
		if calls < deadlockTries {
			return errVictim
		}
		return nil
	}))
	assert.Equal(t, deadlockTries, calls, "victims run again until the statement goes through")

	calls = 0
	err := s.retrying(ctx, func() error { calls++; return errVictim })
	assert.Same(t, errVictim, err)
	assert.Equal(t, deadlockTries, calls, "at most five tries")

	other := errors.New("syntax error")
	calls = 0
	assert.Same(t, other, s.retrying(ctx, func() error { calls++; return other }))
	assert.Equal(t, 1, calls, "only what the dialect calls retryable")

	s.d.Retryable = nil
	calls = 0
	assert.Same(t, errVictim, s.retrying(ctx, func() error { calls++; return errVictim }))
	assert.Equal(t, 1, calls, "a dialect without Retryable retries nothing")

	for k := 1; k < deadlockTries; k++ {
		lo, hi := time.Millisecond<<k, 2*time.Millisecond<<k
		for range 100 {
			d := deadlockRetry.Delay(k)
			require.True(t, d >= lo && d <= hi, "wait %d: %s not in [%s, %s], the ranges of the loop it replaced", k, d, lo, hi)
		}
	}
}

func TestRetryingCancelled(t *testing.T) {
	t.Parallel()
	s := victimStore(hourPolicy)
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan error, 1)
	go func() { done <- s.retrying(ctx, func() error { calls++; cancel(); return errVictim }) }()
	err := testenv.Receive(t, done, "cancellation ends the backoff")
	assert.ErrorIs(t, err, errVictim)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, calls)
}

// heldLocker answers ErrLeaseHeld until its free-th try, and then gives
// the lease; onTry runs at each try.
type heldLocker struct {
	free  int
	tries int
	err   error // instead of ErrLeaseHeld
	onTry func()
}

type fakeLease struct{ name string }

func (l fakeLease) Name() string                  { return l.name }
func (l fakeLease) Lost() <-chan struct{}         { return nil }
func (l fakeLease) Release(context.Context) error { return nil }

func (l *heldLocker) TryAcquire(_ context.Context, name string, _ time.Duration) (core.Lease, error) {
	l.tries++
	if l.onTry != nil {
		l.onTry()
	}
	switch {
	case l.err != nil:
		return nil, l.err
	case l.tries < l.free:
		return nil, core.ErrLeaseHeld
	}
	return fakeLease{name}, nil
}

func TestAcquireWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := &heldLocker{free: 20}
	lease, err := acquireWait(ctx, l, "m", time.Minute, microPolicy)
	require.NoError(t, err)
	assert.Equal(t, "m", lease.Name())
	assert.Equal(t, 20, l.tries, "it waits as long as another holds the lease")

	down := errors.New("connection refused")
	l = &heldLocker{err: down}
	_, err = acquireWait(ctx, l, "m", time.Minute, microPolicy)
	assert.Same(t, down, err, "another error ends the wait")
	assert.Equal(t, 1, l.tries)

	assert.Equal(t, backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second}, leaseWait)
}

func TestAcquireWaitCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	l := &heldLocker{free: 2, onTry: cancel}
	done := make(chan error, 1)
	go func() {
		_, err := acquireWait(ctx, l, "m", time.Minute, hourPolicy)
		done <- err
	}()
	err := testenv.Receive(t, done, "cancellation ends the backoff")
	assert.EqualError(t, err, `waiting for lease "m": context canceled`)
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, core.ErrLeaseHeld, "as before: the context's error")
	assert.Equal(t, 1, l.tries)
}
