// Package backoff is trustlog's one retry schedule. Every retry delay in
// the module comes from Policy.Delay: an operation's next attempt
// (core.Backoff, stored as next_attempt_at), the engine's pauses after a
// sink outage, a failed claim or a failed settle, PublishOnly's in-process
// retries, the SQL stores' deadlock retries and migration lease wait, and
// the PostgreSQL listener's reconnects. Every in-process wait ends as soon
// as its context does (Sleep, Retry; the engine's loops wait on its stop
// channel instead).
//
// Why not github.com/cenkalti/backoff/v5: its ExponentialBackOff does not
// fit the schedule that matters most, and using it for the in-process
// loops only would leave two formulas side by side (the library's, and
// ours for the stored schedule), with different caps.
//
//   - An operation's delay is computed from the attempt number stored in
//     its row, by whichever relay claims it next, after restarts. It must be
//     a pure function of that number. ExponentialBackOff keeps its current
//     interval as state: the n-th delay means replaying n-1 NextBackOff
//     calls (O(n) in a number read from the database).
//   - Its MaxInterval caps the interval before jitter, so a delay can reach
//     MaxInterval*(1+RandomizationFactor). core.Backoff has always promised
//     never to exceed its max, and users set BackoffMax (--backoff-max,
//     "longest retry delay") as exactly that.
//   - Its Retry gives up after 15 minutes unless told otherwise, returns
//     the context's error instead of the operation's, cannot wait on
//     anything but a context (the engine waits on its stop and wake
//     channels), and its timer cannot be replaced in tests.
//
// What is left to write is small: Delay (a shift, a cap, a jitter factor,
// overflow-safe at any attempt number), Series (a counter over Delay),
// Sleep and Retry.
package backoff

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff schedule: Base before the first retry,
// doubling per retry, capped at Max, times a random factor in
// [1-Jitter, 1+Jitter], and never above Max (nor below 0). The zero Jitter
// means none. Max below Base caps every delay at Max.
type Policy struct {
	Base   time.Duration
	Max    time.Duration
	Jitter float64
}

// Delay returns the delay before retry number attempt, counting from 1:
// Base * 2^(attempt-1) capped at Max, then jittered, and never above Max.
// An attempt below 1 counts as 1. It depends on nothing but its arguments
// and the jitter's randomness, takes the same time for any attempt, and
// cannot overflow (attempt math.MaxInt gives Max, jittered).
func (p Policy) Delay(attempt int) time.Duration {
	if p.Jitter <= 0 {
		return p.delay(attempt, 0.5)
	}
	return p.delay(attempt, rand.Float64())
}

// delay is Delay with the jitter's random number u in [0, 1) given: the
// factor is 1 + Jitter*(2u-1), so u = 0.5 is no jitter.
func (p Policy) delay(attempt int, u float64) time.Duration {
	base, ceil := max(p.Base, 0), max(p.Max, 0)
	d := base
	if attempt > 1 && base > 0 {
		// base<<n > ceil exactly when base > ceil>>n; below that the shift
		// cannot overflow, since the result is at most ceil.
		n := attempt - 1
		if n >= 63 || base > ceil>>n {
			d = ceil
		} else {
			d = base << n
		}
	}
	d = min(d, ceil)
	if p.Jitter > 0 && d > 0 {
		f := float64(d) * (1 + p.Jitter*(2*u-1))
		switch {
		case f <= 0:
			return 0
		case f >= float64(ceil): // also keeps the conversion below in range
			return ceil
		}
		d = time.Duration(f)
	}
	return min(d, ceil)
}

// Series walks a Policy through one run of failures: Next returns
// Delay(1), Delay(2) and so on, until Reset after a success. A Series with
// its Policy set is ready to use; it is not safe for concurrent use.
type Series struct {
	Policy Policy
	n      int
}

// Next counts one more failure and returns the delay before trying again.
func (s *Series) Next() time.Duration {
	if s.n < math.MaxInt {
		s.n++
	}
	return s.Policy.Delay(s.n)
}

// Reset starts the series over: the next delay is Base again.
func (s *Series) Reset() { s.n = 0 }

// Sleep waits d, or until ctx ends. It returns nil after the full wait,
// and ctx's cause when ctx ended first (at once when it already had).
func Sleep(ctx context.Context, d time.Duration) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// stopError marks an error Retry must not retry (see Stop).
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }
func (e *stopError) Unwrap() error { return e.err }

// Stop marks err as final: when op returns Stop(err), Retry returns err
// without calling op again. Stop(nil) is nil.
func Stop(err error) error {
	if err == nil {
		return nil
	}
	return &stopError{err}
}

// Retry calls op(1) and, while it fails, op(2), op(3) and so on, waiting
// p.Delay(n) between op(n) and op(n+1). It returns nil as soon as op does;
// op's error when op returned it through Stop (unmarked) or when tries
// calls have failed (tries < 1: no limit); and, when ctx ends during a
// wait, an error wrapping both op's last error and ctx's cause, so
// errors.Is finds either. op is called at least once, whatever ctx; it
// should pass ctx on to what it calls.
func Retry(ctx context.Context, p Policy, tries int, op func(attempt int) error) error {
	s := Series{Policy: p}
	for attempt := 1; ; attempt++ {
		err := op(attempt)
		if err == nil {
			return nil
		}
		if st, ok := err.(*stopError); ok {
			return st.err
		}
		if tries > 0 && attempt >= tries {
			return err
		}
		if cerr := Sleep(ctx, s.Next()); cerr != nil {
			return fmt.Errorf("%w (stopped retrying: %w)", err, cerr)
		}
	}
}
