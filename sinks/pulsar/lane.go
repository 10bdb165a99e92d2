package pulsar

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/redact"
)

// A lane is one producer of the sink and the goroutine that feeds it, in
// order: a stream's producer (named after the stream, sequence id =
// position) or the plain producer (retries and stream-less messages). Its
// fields below ready are guarded by Sink.mu.
type lane struct {
	// name is the stream, "" for the plain lane.
	name string
	// ready is closed when the producer is created (p set) or could not
	// be (err set).
	ready chan struct{}
	p     pc.Producer
	err   error

	// queue holds sends not yet handed to the producer; wake (on Sink.mu)
	// tells the sender goroutine there are some, or that the lane closes.
	queue []*send
	wake  *sync.Cond
	// pending are a stream's sends queued or in flight, by position: a
	// re-send of one of them waits for it instead of going out twice.
	pending map[int64]*send
	// highest is the highest position handed to the stream (-1: none).
	highest int64
	// acked remembers the last ackedKeep positions the broker
	// acknowledged (stored, or already held), oldest first in ackedRing.
	acked     map[int64]bool
	ackedRing []int64
	// inflight counts sends queued or in flight; drained, if set, is
	// closed when it drops to 0. lastUse is when a Publish last used the
	// lane (for closing idle streams).
	inflight int
	drained  chan struct{}
	lastUse  time.Time
	// dead: the lane left the sink's map (closed, idle, or failed); it
	// hands nothing more to its producer. warned: it logged an
	// out-of-order position.
	dead, warned bool
	// ctx is what sends are handed with: it ends only when the lane
	// closes, so the client never fails one queued send while it still
	// delivers a later one.
	ctx        context.Context
	cancel     context.CancelFunc
	senderDone chan struct{}
}

// ackedKeep is how many acknowledged positions a stream's lane remembers,
// so that a re-send of one of them (the engine sends from its cursor
// again after an unknown outcome) is answered without a send. Many
// batches' worth: a re-send of a forgotten one is below the stream's
// highest position and not known, so it goes through the plain producer
// (a copy, never a loss; see Sink.Publish).
const ackedKeep = 1 << 13

// send is one message handed to a lane.
type send struct {
	lane *lane
	// pos is the stream position (sequence id), -1 in the plain lane;
	// opID keys the plain lane's registry ("" if not registered).
	pos  int64
	opID string
	pm   *pc.ProducerMessage
	done bool
	err  error
	// waiters get the send's outcome.
	waiters []func(error)
}

// streamed reports whether m goes through its stream's lane: an
// operation with a stream and a position that is not a retry.
func streamed(m *core.Message) bool {
	return m.Stream != "" && !m.Retry && m.Position >= 0 && m.Kind == core.KindOperation
}

// laneFor returns the lane of stream ("" for the plain lane), creating
// its producer if the sink has none: the first caller starts the creation
// and every caller waits for it, or for ctx. A creation that outlives ctx
// goes on, for the next caller. A creation error is core.Unavailable,
// whatever the broker said (see createProducer).
func (s *Sink) laneFor(ctx context.Context, stream string) (*lane, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, core.Unavailable(core.ErrClosed)
	}
	l := s.lanes[stream]
	if l == nil {
		l = &lane{name: stream, ready: make(chan struct{}), highest: -1, senderDone: make(chan struct{})}
		l.wake = sync.NewCond(&s.mu)
		l.ctx, l.cancel = context.WithCancel(context.Background())
		if stream != "" {
			l.pending, l.acked = map[int64]*send{}, map[int64]bool{}
		}
		s.lanes[stream] = l
		evict := s.evictLocked()
		s.wg.Add(1)
		go s.open(l)
		s.mu.Unlock()
		for _, e := range evict {
			s.closeLane(e, true)
		}
	} else {
		s.mu.Unlock()
	}
	select {
	case <-l.ready:
	case <-ctx.Done():
		return nil, core.Unavailable(fmt.Errorf("pulsar: producer %s: %w", l.label(), ctx.Err()))
	}
	if l.err != nil {
		return nil, l.err
	}
	return l, nil
}

// label names a lane's producer in errors and logs.
func (l *lane) label() string {
	if l.name == "" {
		return "(plain)"
	}
	return fmt.Sprintf("%q", l.name)
}

// open creates l's producer and starts its sender; on failure it takes l
// out of the sink's map, so the next caller tries again.
func (s *Sink) open(l *lane) {
	defer s.wg.Done()
	p, err := s.createProducer(l.name)
	s.mu.Lock()
	if err == nil && s.closed {
		s.mu.Unlock()
		p.Close()
		err = core.Unavailable(core.ErrClosed)
		s.mu.Lock()
	}
	if err != nil {
		l.err, l.dead = err, true
		if s.lanes[l.name] == l {
			delete(s.lanes, l.name)
		}
		close(l.senderDone)
		l.cancel()
	} else {
		l.p, l.lastUse = p, time.Now()
		s.wg.Add(1)
		go s.sender(l)
	}
	close(l.ready)
	s.mu.Unlock()
}

// createProducer creates the producer of stream ("" for the plain one).
// A stream's producer is named after it, never batches and never gives
// up a message (see the package documentation).
func (s *Sink) createProducer(stream string) (pc.Producer, error) {
	c := s.cfg
	opts := pc.ProducerOptions{Topic: c.Topic, Name: stream, SendTimeout: -1, DisableBatching: true}
	if stream == "" {
		opts.Name, opts.DisableBatching = c.ProducerName, c.NoBatching
		opts.BatchingMaxPublishDelay, opts.BatchingMaxMessages = c.BatchDelay, uint(c.BatchMessages)
		if c.SendTimeout > 0 {
			opts.SendTimeout = c.SendTimeout
		}
	}
	p, err := s.client.CreateProducer(opts)
	if err == nil {
		return p, nil
	}
	msg := redact.URL(err.Error())
	if stream != "" && strings.Contains(msg, "ProducerBusy") {
		// The previous owner of the partition is still connected: the
		// partition waits until it lets go.
		return nil, core.Unavailable(fmt.Errorf("pulsar: stream %q: another producer holds its name, the previous owner is still connected: %w",
			stream, errors.New(msg)))
	}
	// Creating a producer is never about a message: whatever the broker
	// answers (MetadataError or ServiceNotReady while it starts, a
	// PersistenceError while its storage recovers, often as plain
	// errors with no pulsar.Result), the sink is down for now, and the
	// partition waits without spending a message's attempts.
	return nil, core.Unavailable(fmt.Errorf("pulsar: producer %s on %s: %w", labelOf(stream), c.Topic, &wrapped{msg: msg, err: err}))
}

func labelOf(stream string) string { return (&lane{name: stream}).label() }

// wrapped carries the redacted text of a client error while errors.As
// still finds the client's *pc.Error for classify.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// evictLocked takes the least recently used idle streams out of the map
// while the sink has more than MaxStreams; the caller closes them.
func (s *Sink) evictLocked() []*lane {
	var out []*lane
	for s.streamCount() > s.cfg.MaxStreams {
		var oldest *lane
		for _, l := range s.lanes {
			if l.name != "" && l.idle() && (oldest == nil || l.lastUse.Before(oldest.lastUse)) {
				oldest = l
			}
		}
		if oldest == nil {
			break // every stream is busy: the bound is exceeded for now
		}
		s.dropLocked(oldest)
		out = append(out, oldest)
	}
	return out
}

// streamCount is how many stream lanes the sink holds.
func (s *Sink) streamCount() int {
	n := len(s.lanes)
	if s.lanes[""] != nil {
		n--
	}
	return n
}

// idle reports whether l is open and has nothing queued or in flight.
func (l *lane) idle() bool {
	select {
	case <-l.ready:
	default:
		return false
	}
	return l.err == nil && l.inflight == 0
}

// dropLocked takes l out of the sink's map and marks it dead: the sender
// hands nothing more to its producer.
func (s *Sink) dropLocked(l *lane) {
	if s.lanes[l.name] == l {
		delete(s.lanes, l.name)
	}
	l.dead = true
	l.wake.Broadcast()
}

// closeLane closes a dropped lane: with flush, it first waits (at most
// OperationTimeout) for what is queued or in flight; then it closes the
// producer, which fails whatever it still holds, and waits for the
// sender. It must not run on a producer's callback goroutine.
func (s *Sink) closeLane(l *lane, flush bool) {
	<-l.ready
	if l.err != nil {
		return
	}
	if flush {
		s.mu.Lock()
		var drained chan struct{}
		if l.inflight > 0 {
			drained = make(chan struct{})
			l.drained = drained
		}
		s.mu.Unlock()
		if drained != nil {
			t := time.NewTimer(s.cfg.OperationTimeout)
			select {
			case <-drained:
			case <-t.C:
			}
			t.Stop()
		}
	}
	l.cancel()
	l.p.Close()
	<-l.senderDone
}

// sender hands l's queue to its producer, in order, with l's context
// (see lane.ctx). Once l is dead, it fails what is still queued.
func (s *Sink) sender(l *lane) {
	defer s.wg.Done()
	defer close(l.senderDone)
	s.mu.Lock()
	for {
		for len(l.queue) == 0 && !l.dead {
			l.wake.Wait()
		}
		if len(l.queue) == 0 {
			s.mu.Unlock()
			return
		}
		sd := l.queue[0]
		l.queue = l.queue[1:]
		if l.dead {
			s.mu.Unlock()
			s.finished(sd, core.Unavailable(fmt.Errorf("pulsar: producer %s closed: %w", l.label(), core.ErrClosed)))
			s.mu.Lock()
			continue
		}
		s.mu.Unlock()
		pm := sd.pm
		l.p.SendAsync(l.ctx, pm, func(_ pc.MessageID, _ *pc.ProducerMessage, err error) { s.finished(sd, err) })
		s.mu.Lock()
	}
}

// finished records a send's outcome and tells its waiters. A stream lane
// whose send fails for any reason but the message itself is dropped and
// closed: a later send getting through after a failed one would leave a
// gap below positions the broker holds, and the broker would drop the
// failed one's re-send as a copy. The next Publish of the stream opens a
// new producer, and the broker tells it where the stream stands. The
// plain lane is dropped only when its producer was closed under it.
func (s *Sink) finished(sd *send, err error) {
	err = classify(err)
	l := sd.lane
	drop := false
	s.mu.Lock()
	if sd.done {
		s.mu.Unlock()
		return
	}
	sd.done, sd.err, sd.pm = true, err, nil
	if l.inflight--; l.inflight == 0 && l.drained != nil {
		close(l.drained)
		l.drained = nil
	}
	if l.name != "" {
		if l.pending[sd.pos] == sd {
			delete(l.pending, sd.pos)
		}
		switch {
		case err == nil:
			l.remember(sd.pos)
		case !core.IsPermanent(err) && !l.dead:
			drop = true
		}
	} else if err != nil && !l.dead && producerGone(err) {
		drop = true
	}
	if sd.opID != "" && s.byID[sd.opID] == sd {
		if err != nil {
			delete(s.byID, sd.opID)
		} else {
			s.keep(sd.opID)
		}
	}
	if drop {
		s.dropLocked(l)
	}
	waiters := sd.waiters
	sd.waiters = nil
	s.mu.Unlock()
	if drop {
		s.log.Warn("trustlog/pulsar: a producer failed a message; closing it, the next publish opens it again",
			"producer", l.label(), "position", sd.pos, "err", err)
		s.wg.Add(1)
		go func() { // not on the client's callback goroutine: Close waits for it
			defer s.wg.Done()
			s.closeLane(l, false)
		}()
	}
	for _, w := range waiters {
		w(err)
	}
}

// producerGone reports whether err says the client closed the producer
// (the topic was deleted, terminated, or the producer fenced).
func producerGone(err error) bool {
	var pe *pc.Error
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Result() {
	case pc.ProducerClosed, pc.TopicNotFound, pc.TopicTerminated, pc.ProducerFenced:
		return true
	}
	return false
}

// remember records pos as acknowledged, forgetting the oldest beyond
// ackedKeep.
func (l *lane) remember(pos int64) {
	if l.acked[pos] {
		return
	}
	l.acked[pos] = true
	l.ackedRing = append(l.ackedRing, pos)
	if len(l.ackedRing) > ackedKeep {
		delete(l.acked, l.ackedRing[0])
		l.ackedRing = l.ackedRing[1:]
	}
}

// keepIDs is how many delivered operations (by op_id) the plain lane
// remembers, so that a retry of one whose receipt came after its publish
// gave up is answered without a second copy.
const keepIDs = 1 << 14

// keep remembers a delivered op_id, forgetting the oldest beyond keepIDs.
func (s *Sink) keep(opID string) {
	s.kept = append(s.kept, opID)
	if len(s.kept) > keepIDs {
		if old := s.byID[s.kept[0]]; old != nil && old.done {
			delete(s.byID, s.kept[0])
		}
		s.kept = s.kept[1:]
	}
}

// reapIdle closes stream lanes nobody used for StreamIdle, until the sink
// closes: a relay that gave a partition up frees its producer name for
// the partition's next owner.
func (s *Sink) reapIdle() {
	defer s.wg.Done()
	every := max(s.cfg.StreamIdle/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		var idle []*lane
		s.mu.Lock()
		for _, l := range s.lanes {
			if l.name != "" && l.idle() && time.Since(l.lastUse) >= s.cfg.StreamIdle {
				s.dropLocked(l)
				idle = append(idle, l)
			}
		}
		s.mu.Unlock()
		for _, l := range idle {
			s.closeLane(l, true)
		}
	}
}

// CloseStream closes the producer of stream, if the sink has one, after
// what it holds is delivered (for at most the operation timeout): its
// name is free at the broker for the partition's next owner at once,
// rather than after StreamIdle. A later Publish to the stream opens it
// again.
func (s *Sink) CloseStream(stream string) error {
	if stream == "" {
		return errors.New("pulsar: CloseStream needs a stream name")
	}
	s.mu.Lock()
	l := s.lanes[stream]
	if l != nil {
		s.dropLocked(l)
	}
	s.mu.Unlock()
	if l != nil {
		s.closeLane(l, true)
	}
	return nil
}

// LastPosition returns the highest position of stream the broker has
// acknowledged to this sink's producer of it (stored, or dropped as one
// it already held), -1 if none yet: pulsar-client-go's
// Producer.LastSequenceID, the maximum over the topic's partitions. It
// opens the stream's producer if the sink has none, so it fails with
// core.Unavailable while another client holds the stream. The client
// learns the value from receipts only: a producer that has sent nothing
// yet says -1 even where the broker holds positions of the stream from an
// earlier owner. For logs, status and tests.
func (s *Sink) LastPosition(ctx context.Context, stream string) (int64, error) {
	if stream == "" {
		return -1, errors.New("pulsar: LastPosition needs a stream name")
	}
	l, err := s.laneFor(ctx, stream)
	if err != nil {
		return -1, err
	}
	return l.p.LastSequenceID(), nil
}
