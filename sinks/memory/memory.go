// Package memory is an in-process sink that keeps what it is sent, for
// tests, demos and examples. It is a first-class sink: the conformance
// suite runs against it like against Kafka or Pulsar, and its fault
// injection (fail the Nth or every Nth message, fail chosen op_ids, add
// latency, acknowledge twice, fail for a time window) is how the suite
// proves retries, dead-lettering and duplicate handling.
//
// What it keeps lives exactly as long as the Sink value, so at most as long
// as the process: every Open (every "memory://" URL opened) is a new, empty
// sink, and no other process can read it. In the trustlog CLI, `relay
// --sink memory://` therefore warns at start that nothing outlives it, and
// `verify-sink --sink memory://` (a new process, which could only see an
// empty sink) is refused; check what a memory sink received in the process
// that published to it (Replay, Messages), as `trustlog demo` does.
//
// It keeps every message it accepts whole, Position, Stream and Retry
// included, so tests assert on what a relay sent: Messages, and
// Positions for one stream's first sends in the order they came.
// Optionally (Dedup, or dedup=true) it drops a stream's re-sent
// positions the way a Pulsar broker with deduplication does, so a test
// can check that a hand-over of partitions between relays leaves each
// operation once.
//
// Import it for its side effect to register the "memory" URL scheme:
//
//	import _ "github.com/go-trustlog/trustlog/sinks/memory"
//
//	memory://                          a new, fault-free sink
//	memory://?latency=5ms&fail_every=10
//	memory://?dedup=true               drop re-sent stream positions
package memory

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/redact"
)

func init() {
	core.RegisterSink("memory", core.SinkDriverFunc(func(ctx context.Context, url string) (core.Sink, error) {
		return Open(url)
	}))
}

// ErrInjected is wrapped by every failure the sink injects.
var ErrInjected = errors.New("memory sink: injected failure")

// Faults says which publishes fail and how. Message counters start at 1
// and count every message offered to Publish, accepted or not.
type Faults struct {
	// FailNth fails the Nth message offered (0: never).
	FailNth int
	// FailEvery fails every Nth message offered (0: never).
	FailEvery int
	// FailOpIDs fails these operations every time they are offered.
	FailOpIDs []string
	// Permanent makes injected failures permanent (core.Permanent), so the
	// engine sends the operation to dead at once.
	Permanent bool
	// Latency is added to every Publish call.
	Latency time.Duration
	// AckTwice stores every accepted message twice, as a broker that
	// delivered a re-send would.
	AckTwice bool
	// FailUntil fails every message offered before this time as
	// core.Unavailable (an outage).
	FailUntil time.Time
}

// Sink is the in-memory sink. It is safe for concurrent use.
type Sink struct {
	mu      sync.Mutex
	faults  Faults
	failIDs map[string]bool
	kept    kept
	offered int
	calls   int
	closed  bool
	changed chan struct{} // closed and replaced whenever msgs grows
	// dedup drops a stream message at or below its stream's last stored
	// position; last is that position per stream, dropped counts what
	// it dropped.
	dedup   bool
	last    map[string]int64
	dropped int
}

// New returns an empty sink with the given faults.
func New(f Faults) *Sink {
	s := &Sink{changed: make(chan struct{}), last: map[string]int64{}}
	s.SetFaults(f)
	return s
}

// Open parses a memory URL: "memory://" with optional parameters latency
// (a Go duration), fail_nth, fail_every, fail_for (a duration from now),
// ack_twice and dedup (booleans; see SetDedup). Unknown parameters are an
// error.
func Open(rawURL string) (*Sink, error) {
	bad := func(format string, args ...any) (*Sink, error) {
		return nil, fmt.Errorf("%w: memory URL %q: %s", core.ErrInvalidURL, redact.URL(rawURL), fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(rawURL)
	if err != nil || redact.AmbiguousUserInfo(rawURL) {
		// Neither the URL nor the parser's error is quoted: both may
		// hold a password.
		return nil, fmt.Errorf("%w: memory URL: %s", core.ErrInvalidURL, redact.Unparseable)
	}
	if u.Scheme != "memory" {
		return bad("want memory://[?options]")
	}
	var f Faults
	dedup := false
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "latency", "fail_for":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return bad("%s=%q is not a duration like 5ms", k, v)
			}
			if k == "latency" {
				f.Latency = d
			} else {
				f.FailUntil = time.Now().Add(d)
			}
		case "fail_nth", "fail_every":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return bad("%s must be a non-negative integer", k)
			}
			if k == "fail_nth" {
				f.FailNth = n
			} else {
				f.FailEvery = n
			}
		case "ack_twice", "dedup":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("%s must be true or false", k)
			}
			if k == "dedup" {
				dedup = b
			} else {
				f.AckTwice = b
			}
		default:
			return bad("unknown parameter %q (known: latency, fail_nth, fail_every, fail_for, ack_twice, dedup)", k)
		}
	}
	s := New(f)
	s.SetDedup(dedup)
	return s, nil
}

// SetDedup turns on or off what a Pulsar broker with deduplication does
// to a stream's messages (see the pulsar sink): a message of a stream
// (core.Message.Stream set, not a Retry, with a position) whose position
// is at or below the highest this sink stored for the stream is accepted
// and dropped, not stored. Retries and messages outside streams are
// always stored. Off by default: every accepted message is stored.
func (s *Sink) SetDedup(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dedup = on
}

// streamed reports whether m is a first send of a stream: what
// deduplication and Positions look at.
func streamed(m *core.Message) bool {
	return m.Stream != "" && !m.Retry && m.Position >= 0 && m.Kind == core.KindOperation
}

// SetFaults replaces the sink's faults; counters keep running.
func (s *Sink) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	s.failIDs = make(map[string]bool, len(f.FailOpIDs))
	for _, id := range f.FailOpIDs {
		s.failIDs[id] = true
	}
}

// Publish implements core.Sink.
func (s *Sink) Publish(ctx context.Context, msgs []core.Message) []error {
	s.mu.Lock()
	latency := s.faults.Latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return core.FailAll(len(msgs), ctx.Err())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return core.FailAll(len(msgs), core.Unavailable(core.ErrClosed))
	}
	s.calls++
	errs := make([]error, len(msgs))
	grew := false
	for i := range msgs {
		s.offered++
		if err := s.fault(&msgs[i]); err != nil {
			errs[i] = err
			continue
		}
		m := msgs[i]
		if streamed(&m) {
			last, seen := s.last[m.Stream]
			if s.dedup && seen && m.Position <= last {
				s.dropped++
				continue // accepted, as a broker acknowledges a copy it drops
			}
			if !seen || m.Position > last {
				s.last[m.Stream] = m.Position
			}
		}
		m.Payload, m.Sign = clone2(m.Payload, m.Sign)
		now := time.Now()
		s.kept.add(m, now)
		if s.faults.AckTwice {
			s.kept.add(m, now)
		}
		grew = true
	}
	if grew {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	return errs
}

func (s *Sink) fault(m *core.Message) error {
	f := &s.faults
	var why string
	switch {
	case f.FailNth > 0 && s.offered == f.FailNth:
		why = "fail_nth=" + strconv.Itoa(f.FailNth)
	case f.FailEvery > 0 && s.offered%f.FailEvery == 0:
		why = "fail_every=" + strconv.Itoa(f.FailEvery)
	case s.failIDs[m.ID]:
		why = "op_id " + m.ID + " is set to fail"
	case time.Now().Before(f.FailUntil):
		return core.Unavailable(fmt.Errorf("%w (outage until %s)", ErrInjected, f.FailUntil.Format(time.RFC3339Nano)))
	default:
		return nil
	}
	err := fmt.Errorf("%w (%s)", ErrInjected, why)
	if f.Permanent {
		return core.Permanent(err)
	}
	return err
}

// Close implements core.Sink. Publishing after Close fails with
// core.ErrClosed; what was published stays readable.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// Messages returns a copy of what the sink stored, in order: every
// message it accepted (twice with AckTwice), less the copies dedup
// dropped, each with its Position, Stream and Retry.
func (s *Sink) Messages() []core.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kept.messages()
}

// Positions returns the positions of stream's messages the sink stored
// that are not retries, in the order it stored them: a relay's first
// sends and its re-sends (those dedup dropped left out).
func (s *Sink) Positions(stream string) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int64
	s.kept.each(func(e *entry) {
		if m := &e.msg; m.Stream == stream && streamed(m) {
			out = append(out, m.Position)
		}
	})
	return out
}

// LastPosition returns the highest position of stream the sink stored
// (retries left out), -1 if none: what the pulsar sink's LastPosition
// reports from the broker. It never fails; ctx is unused.
func (s *Sink) LastPosition(_ context.Context, stream string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.last[stream]; ok {
		return last, nil
	}
	return -1, nil
}

// Dropped returns how many stream messages deduplication dropped (see
// SetDedup).
func (s *Sink) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Len returns how many messages the sink stored (see Messages).
func (s *Sink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kept.len()
}

// Offered returns how many messages were offered to Publish, accepted or
// not, and in how many calls.
func (s *Sink) Offered() (messages, calls int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offered, s.calls
}

// WaitFor blocks until the sink holds at least n messages or ctx ends.
func (s *Sink) WaitFor(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		have, changed := s.kept.len(), s.changed
		s.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("memory sink: %d of %d messages: %w", have, n, ctx.Err())
		}
	}
}

// Replay implements core.Replayer over what the sink accepted. Message
// times are when Publish accepted them.
func (s *Sink) Replay(ctx context.Context, since time.Time, fn func(core.Delivered) error) error {
	s.mu.Lock()
	entries := s.kept.entries()
	s.mu.Unlock()
	for i, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.at.Before(since) {
			continue
		}
		m := e.msg
		h := map[string]string{}
		for _, kv := range m.Headers() {
			h[kv[0]] = kv[1]
		}
		if err := fn(core.Delivered{Key: m.Key, ID: m.ID, Payload: m.Payload, Headers: h,
			Position: strconv.Itoa(i), Time: e.at}); err != nil {
			return err
		}
	}
	return nil
}
