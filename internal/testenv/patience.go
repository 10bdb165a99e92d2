package testenv

import (
	"context"
	"os"
	"testing"
	"time"
)

// Full reports whether TRUSTLOG_FULL=1: the whole driver × sink matrix and
// the long scenarios run (CI sets it). Without it the suite keeps to what
// a laptop runs in a minute or two.
func Full() bool { return os.Getenv("TRUSTLOG_FULL") == "1" }

// Long skips t unless TRUSTLOG_FULL=1, with one line saying so: a long
// scenario (thousands of operations, the whole matrix, a server restart)
// that CI runs and a quick local run leaves out.
func Long(t testing.TB) {
	t.Helper()
	if !Full() {
		t.Skip("long scenario: TRUSTLOG_FULL=1 runs it (CI does)")
	}
}

// deadliner is *testing.T's Deadline, which testing.TB lacks.
type deadliner interface {
	Deadline() (time.Time, bool)
}

// fallback is how long a wait lasts when the test binary has no deadline
// (go test -timeout 0).
const fallback = 10 * time.Minute

// Patience is how long a test may wait for a condition: until shortly
// before the test binary's deadline (go test -timeout, 10 minutes unless
// set), so a wait lasts as long as a busy machine needs and still fails
// with its own message, not the binary's timeout panic. Waits scale with
// the machine this way rather than with a guess of how fast it is.
func Patience(t testing.TB) time.Duration {
	d, ok := t.(deadliner)
	if !ok {
		return fallback
	}
	end, ok := d.Deadline()
	if !ok {
		return fallback
	}
	left := time.Until(end)
	// Leave room for cleanups and the failure report: a tenth of what
	// is left, at most 30 s.
	margin := min(left/10, 30*time.Second)
	if left-margin < time.Second {
		return time.Second
	}
	return left - margin
}

// Context returns a context that ends after Patience(t), cancelled at t's
// cleanup.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Patience(t))
	t.Cleanup(cancel)
	return ctx
}

// Receive waits for a value on ch for as long as Patience(t) and fails t,
// naming what it waited for, if none comes: for "this ends" assertions
// whose alternative is a wait far longer than any test (an hour's backoff
// that cancellation must cut short).
func Receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(Patience(t))
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("still waiting until %s", what)
		var zero T
		return zero
	}
}
