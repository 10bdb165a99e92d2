package backoff

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/internal/testenv"
)

// justBelowOne is the largest random number rand.Float64 returns.
var justBelowOne = math.Nextafter(1, 0)

func TestDelayDoublesFromBaseUpToMax(t *testing.T) {
	t.Parallel()
	p := Policy{Base: time.Second, Max: time.Minute}
	for attempt, want := range map[int]time.Duration{
		math.MinInt: time.Second, -1: time.Second, 0: time.Second, 1: time.Second,
		2: 2 * time.Second, 3: 4 * time.Second, 6: 32 * time.Second,
		7: time.Minute, 8: time.Minute, 100: time.Minute,
	} {
		assert.Equal(t, want, p.Delay(attempt), "attempt %d", attempt)
	}
	assert.Equal(t, time.Second, Policy{Base: time.Minute, Max: time.Second}.Delay(1), "Max below Base caps every delay")
	assert.Equal(t, time.Duration(0), Policy{Base: -time.Second, Max: time.Second}.Delay(5), "a negative Base is 0")
	assert.Equal(t, time.Duration(0), Policy{Base: time.Second, Max: -time.Second}.Delay(5), "a negative Max is 0")
	assert.Equal(t, time.Duration(0), Policy{}.Delay(3))
}

// TestDelayJitterRange: the factor spans [1-Jitter, 1+Jitter), and the
// cap holds after it.
func TestDelayJitterRange(t *testing.T) {
	t.Parallel()
	p := Policy{Base: time.Second, Max: time.Minute, Jitter: 0.25}
	assert.Equal(t, 750*time.Millisecond, p.delay(1, 0), "lowest factor")
	assert.Equal(t, time.Second, p.delay(1, 0.5), "middle")
	assert.InDelta(t, float64(1250*time.Millisecond), float64(p.delay(1, justBelowOne)), 1, "highest factor")
	assert.Equal(t, 45*time.Second, p.delay(100, 0), "the cap, jittered down")
	assert.Equal(t, time.Minute, p.delay(100, justBelowOne), "never above Max, even jittered up")
	assert.InDelta(t, float64(40*time.Second), float64(p.delay(6, justBelowOne)), 1, "32s, jittered up")
	assert.Equal(t, time.Minute, p.delay(7, justBelowOne), "64s, capped, jittered up, capped")

	for attempt := 1; attempt <= 10; attempt++ {
		plain := Policy{Base: p.Base, Max: p.Max}.Delay(attempt)
		lo, hi := time.Duration(float64(plain)*0.75), min(time.Duration(float64(plain)*1.25), p.Max)
		seen := map[bool]bool{}
		for range 200 {
			d := p.Delay(attempt)
			require.GreaterOrEqual(t, d, lo, "attempt %d", attempt)
			require.LessOrEqual(t, d, hi, "attempt %d", attempt)
			seen[d < plain] = true
		}
		if plain < p.Max {
			assert.Len(t, seen, 2, "attempt %d: jitter both ways", attempt)
		}
	}

	wild := Policy{Base: time.Second, Max: time.Minute, Jitter: 3}
	assert.Equal(t, time.Duration(0), wild.delay(1, 0), "a factor below 0 is a delay of 0")
	for range 100 {
		d := wild.Delay(1)
		require.GreaterOrEqual(t, d, time.Duration(0))
		require.LessOrEqual(t, d, 4*time.Second)
	}
}

// TestDelayHugeAttempts: no overflow, whatever the attempt number, Base
// and Max, and no loop over the attempt number (a test with attempt
// MaxInt would not finish).
func TestDelayHugeAttempts(t *testing.T) {
	t.Parallel()
	for _, p := range []Policy{
		{Base: time.Nanosecond, Max: 10 * time.Minute},
		{Base: time.Second, Max: math.MaxInt64},
		{Base: math.MaxInt64 / 3, Max: math.MaxInt64},
		{Base: math.MaxInt64, Max: math.MaxInt64},
		{Base: 1 << 62, Max: math.MaxInt64 - 1},
	} {
		for _, attempt := range []int{62, 63, 64, 65, 1000, 1 << 40, math.MaxInt} {
			assert.Equal(t, p.Max, p.Delay(attempt), "%+v attempt %d", p, attempt)
			j := p
			j.Jitter = 0.5
			assert.Equal(t, p.Max, j.delay(attempt, justBelowOne), "%+v attempt %d, jittered up", p, attempt)
			low := j.delay(attempt, 0)
			assert.InDelta(t, float64(p.Max)/2, float64(low), float64(p.Max)*1e-9, "%+v attempt %d, jittered down", p, attempt)
			d := j.Delay(attempt)
			assert.True(t, d >= low && d <= p.Max, "%+v attempt %d: %d", p, attempt, d)
		}
	}
	p := Policy{Base: 3, Max: math.MaxInt64}
	assert.Equal(t, time.Duration(3<<61), p.Delay(62), "the last doubling that fits")
	assert.Equal(t, time.Duration(math.MaxInt64), p.Delay(63), "the first that does not")
}

func TestSeries(t *testing.T) {
	t.Parallel()
	s := Series{Policy: Policy{Base: time.Millisecond, Max: 4 * time.Millisecond}}
	var got []time.Duration
	for range 4 {
		got = append(got, s.Next())
	}
	s.Reset()
	got = append(got, s.Next(), s.Next())
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{ms, 2 * ms, 4 * ms, 4 * ms, ms, 2 * ms}, got)

	s = Series{Policy: Policy{Base: time.Second, Max: time.Hour}, n: math.MaxInt}
	assert.Equal(t, time.Hour, s.Next(), "the count stops at MaxInt")
	assert.Equal(t, math.MaxInt, s.n)
}

// sleeping runs Sleep(ctx, d) and returns its result's channel.
func sleeping(ctx context.Context, d time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() { done <- Sleep(ctx, d) }()
	return done
}

func TestSleep(t *testing.T) {
	t.Parallel()
	assert.NoError(t, Sleep(context.Background(), 0))
	assert.NoError(t, Sleep(context.Background(), -time.Hour))
	assert.NoError(t, Sleep(context.Background(), time.Microsecond))

	ctx, cancel := context.WithCancel(context.Background())
	done := sleeping(ctx, time.Hour)
	cancel()
	assert.ErrorIs(t, testenv.Receive(t, done, "cancellation ends the wait"), context.Canceled, "an hour's wait ends with its context")

	assert.ErrorIs(t, Sleep(ctx, 0), context.Canceled, "an ended context ends even a wait of 0")
	assert.ErrorIs(t, Sleep(ctx, time.Nanosecond), context.Canceled)

	why := errors.New("shutting down")
	cctx, ccancel := context.WithCancelCause(context.Background())
	done = sleeping(cctx, time.Hour)
	ccancel(why)
	assert.ErrorIs(t, testenv.Receive(t, done, "cancellation ends the wait"), why, "the context's cause")
}

// tiny is a policy whose waits take no time to speak of.
var tiny = Policy{Base: time.Nanosecond, Max: 4 * time.Nanosecond}

func TestRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fail := errors.New("fail")

	var calls []int
	err := Retry(ctx, tiny, 0, func(attempt int) error {
		calls = append(calls, attempt)
		if attempt < 20 {
			return fail
		}
		return nil
	})
	require.NoError(t, err)
	assert.Len(t, calls, 20, "no limit: until it succeeds")
	assert.Equal(t, 20, calls[19], "attempts count from 1")

	n := 0
	err = Retry(ctx, tiny, 5, func(int) error { n++; return fail })
	assert.Same(t, fail, err, "the last error, as it is")
	assert.Equal(t, 5, n, "tries bounds the calls")

	n = 0
	err = Retry(ctx, tiny, 5, func(attempt int) error {
		n++
		if attempt == 2 {
			return Stop(fail)
		}
		return fail
	})
	assert.Same(t, fail, err, "Stop's error, unmarked")
	assert.Equal(t, 2, n, "Stop ends the retries")
	assert.NoError(t, Stop(nil))
	assert.Equal(t, "fail", Stop(fail).Error())
	assert.ErrorIs(t, Stop(fail), fail)
}

// TestRetryCancelled: an hour's backoff ends with the context, and the
// error says both what failed and why the retries stopped.
func TestRetryCancelled(t *testing.T) {
	t.Parallel()
	fail := errors.New("fail")
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan error, 1)
	go func() {
		done <- Retry(ctx, Policy{Base: time.Hour, Max: time.Hour}, 0, func(int) error {
			calls++
			cancel()
			return fail
		})
	}()
	err := testenv.Receive(t, done, "cancellation ends the wait")
	assert.ErrorIs(t, err, fail)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "fail (stopped retrying: context canceled)", err.Error())
	assert.Equal(t, 1, calls)

	calls = 0
	err = Retry(ctx, tiny, 3, func(int) error { calls++; return nil })
	assert.NoError(t, err, "op runs at least once, even under an ended context")
	assert.Equal(t, 1, calls)
}
