package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-trustlog/trustlog/internal/backoff"
)

// Engine is the relay: it runs, in one process, the jobs that take a
// committed operation to the sink. Each job has its own file:
//
//   - the sequencer (sequencer.go) gives every committed operation its
//     position, one leader per store;
//   - the balancer (balancer.go) shares the store's partitions among the
//     live relays through lease rows;
//   - a publisher (publisher.go) per owned partition reads operations
//     above the partition's cursor in position order, sends them and
//     advances the cursor, fenced by the lease's generation;
//   - the retrier (retrier.go), inside each publisher, re-sends what the
//     sink refused, from the retry table.
//
// An engine stores nothing per operation to publish it: a published
// operation is one whose position is at or below its partition's cursor.
type Engine struct {
	store Store
	sink  Sink
	cfg   EngineConfig
	log   *slog.Logger
	tel   *telemetry

	logID string

	state    atomic.Int32 // 0 new, 1 started, 2 stopped
	stopping chan struct{}
	stopOnce sync.Once
	// soft ends when Stop begins: loops finish the batch in hand and
	// return. hard ends when the graceful stop runs out of time: calls in
	// flight are aborted.
	softCtx, hardCtx context.Context
	softStop         context.CancelFunc
	hardStop         context.CancelFunc
	wg               sync.WaitGroup

	// sequencerWake wakes the sequencer (Wake, commit notifications).
	sequencerWake chan struct{}
	// pubWake holds, per partition, the channel the next wake of its
	// publisher closes (publisherWake, wakePublishers).
	pubMu   sync.Mutex
	pubWake map[int]chan struct{}
	// leading is set while this engine holds the sequencer lease: then
	// it wakes its publishers itself after each append, for the
	// partitions the append gave positions in, and a commit notification
	// (an application's record, or its own append) only wakes the
	// sequencer.
	leading atomic.Bool
	// listening is set when the engine subscribed to the store's commit
	// notifications: then they, not busyPoll, wake the sequencer.
	listening atomic.Bool

	outage outage

	owned                    atomic.Int64
	published, retried, dead atomic.Int64
	sequenced, batches       atomic.Int64
	refused                  atomic.Int64
}

// EngineStats are an engine's counters since it started.
type EngineStats struct {
	// Published counts messages the sink accepted (retries included).
	Published int64
	// Retried counts failed sends that went to (or stayed in) the retry
	// table; Dead those that went dead.
	Retried, Dead int64
	// Sequenced counts operations this engine's sequencer gave positions.
	Sequenced int64
	// Batches counts batches published.
	Batches int64
	// Partitions is how many partitions the engine owns now.
	Partitions int64
	// Outages counts batches the sink refused as unavailable;
	// SinkOutages the outages they made up (streaks of such refusals
	// ended by an accepted message).
	Outages, SinkOutages int64
}

// NewEngine returns an engine relaying store to sink. A nil sink only
// sequences (StoreOnly).
func NewEngine(store Store, sink Sink, cfg EngineConfig) (*Engine, error) {
	if store == nil {
		return nil, configErr("store", "is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults(store.Capabilities())
	if cfg.Node == "" {
		cfg.Node = defaultNode()
	}
	e := &Engine{
		store: store, sink: sink, cfg: cfg, log: cfg.Logger,
		stopping:      make(chan struct{}),
		sequencerWake: make(chan struct{}, 1),
		pubWake:       map[int]chan struct{}{},
	}
	e.tel = newTelemetry(cfg.Telemetry, sink)
	e.softCtx, e.softStop = context.WithCancel(context.Background())
	e.hardCtx, e.hardStop = context.WithCancel(context.Background())
	return e, nil
}

// defaultNode names a relay that was given no name: host, process and
// random bits, so two processes never share a member name.
func defaultNode() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// Config returns the engine's configuration with defaults applied.
func (e *Engine) Config() EngineConfig { return e.cfg }

// Stats returns the engine's counters.
func (e *Engine) Stats() EngineStats {
	return EngineStats{
		Published: e.published.Load(), Retried: e.retried.Load(), Dead: e.dead.Load(),
		Sequenced: e.sequenced.Load(), Batches: e.batches.Load(), Partitions: e.owned.Load(),
		Outages: e.refused.Load(), SinkOutages: e.outage.count.Load(),
	}
}

// Wake makes the engine look for new operations now instead of at its
// next poll. It never blocks.
func (e *Engine) Wake() {
	select {
	case e.sequencerWake <- struct{}{}:
	default:
	}
}

// wakePublishers wakes the idle publishers of the given partitions, or
// of every partition if parts is nil. Waking only those that have new
// positions matters at a steady rate: each wake is a read of its
// partition, and an append of a few operations touches a few partitions.
func (e *Engine) wakePublishers(parts []int) {
	e.pubMu.Lock()
	defer e.pubMu.Unlock()
	if parts == nil {
		for part, ch := range e.pubWake {
			close(ch)
			delete(e.pubWake, part)
		}
		return
	}
	for _, part := range parts {
		if ch, ok := e.pubWake[part]; ok {
			close(ch)
			delete(e.pubWake, part)
		}
	}
}

// publisherWake returns the channel the next wake of part's publisher
// closes.
func (e *Engine) publisherWake(part int) <-chan struct{} {
	e.pubMu.Lock()
	defer e.pubMu.Unlock()
	ch, ok := e.pubWake[part]
	if !ok {
		ch = make(chan struct{})
		e.pubWake[part] = ch
	}
	return ch
}

// idle waits d, or until wake receives or ctx ends.
func (e *Engine) idle(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

// Start launches the engine's jobs and returns. ctx is used only for the
// start itself (reading the log's identity, subscribing to commit
// notifications); Stop ends the engine.
func (e *Engine) Start(ctx context.Context) error {
	if !e.state.CompareAndSwap(0, 1) {
		return errors.New("trustlog: engine already started")
	}
	if e.sink != nil {
		c, err := e.store.Cursor(ctx, LogIDCursor)
		if err != nil {
			e.state.Store(2)
			if errors.Is(err, ErrNotFound) {
				return fmt.Errorf("trustlog: the store has no log identity (%s): run `trustlog migrate up`", LogIDCursor)
			}
			return fmt.Errorf("trustlog: read the log identity: %w", err)
		}
		e.logID = c.Value
	}
	if n, ok := e.store.(Notifier); ok && e.store.Capabilities().ListenNotify {
		ch, err := n.Subscribe(e.softCtx)
		if err != nil {
			e.log.WarnContext(ctx, "trustlog: cannot listen for commits, polling instead", "err", err, "poll", e.cfg.PollInterval)
		} else {
			e.listening.Store(true)
			e.goJob(func() {
				for range ch {
					e.Wake()
					if !e.leading.Load() {
						// Maybe another process's append: positions
						// in any partition.
						e.wakePublishers(nil)
					}
				}
			})
		}
	}
	e.goJob(func() { sequencer{e}.run(e.softCtx) })
	if e.cfg.Ledger != nil {
		e.goJob(func() {
			if err := e.cfg.Ledger.Run(e.softCtx, e.store, e.sink); err != nil {
				e.log.Error("trustlog: ledger stopped", "err", err)
			}
		})
	}
	e.tel.observeStore(e.cfg.Telemetry, e.store)
	if e.sink != nil {
		for w := range e.cfg.Workers {
			member := e.cfg.Node
			if e.cfg.Workers > 1 {
				member += "/" + strconv.Itoa(w)
			}
			b := newBalancer(e, member)
			e.goJob(b.run)
		}
	}
	e.log.InfoContext(ctx, "trustlog: engine started", "node", e.cfg.Node, "workers", e.cfg.Workers, "batch", e.cfg.BatchSize,
		"lease", e.cfg.Lease.String(), "strict", e.cfg.StrictOrder, "poll", e.cfg.PollInterval.String())
	return nil
}

// goJob runs fn as one of the engine's goroutines.
func (e *Engine) goJob(fn func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		fn()
	}()
}

// stopGrace is how long Stop waits, after aborting, for goroutines stuck
// in a call that ignores its context.
const stopGrace = time.Second

// Stop stops the engine: publishers finish the batch in hand (publish and
// cursor advance), give their partitions back and the relay leaves the
// balancer. If ctx ends first, calls in flight are aborted; a batch the
// sink took whose cursor advance was aborted goes out again from its new
// owner (Pulsar drops it as a duplicate). When Stop returns no engine
// goroutine is left, unless one is stuck in a sink or store call that
// ignores its context: Stop then returns after a second more with an
// error saying so.
func (e *Engine) Stop(ctx context.Context) error {
	if e.state.Load() == 0 {
		e.state.Store(2)
		return nil
	}
	e.stopOnce.Do(func() { close(e.stopping); e.softStop() })
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
		if f, ok := e.cfg.Ledger.(LedgerFinisher); ok {
			if ferr := f.Finish(ctx, e.store, e.sink); ferr != nil {
				e.log.Warn("trustlog: the ledger's last step on stop failed; the next relay to run does it", "err", ferr)
			}
		}
	case <-ctx.Done():
		err = fmt.Errorf("trustlog: engine stop: %w; calls in flight aborted", ctx.Err())
		e.hardStop()
		t := time.NewTimer(stopGrace)
		select {
		case <-done:
		case <-t.C:
			err = fmt.Errorf("trustlog: engine stop: %w; calls in flight aborted, and goroutines still stuck in a sink or store call %s later left behind (their partitions move when their leases end)",
				ctx.Err(), stopGrace)
			e.log.Error("trustlog: engine stop ran out of time; goroutines stuck in the sink or the store are left behind", "grace", stopGrace)
		}
		t.Stop()
	}
	e.hardStop()
	e.tel.stop()
	e.state.Store(2)
	e.log.Info("trustlog: engine stopped", "published", e.published.Load(), "dead", e.dead.Load())
	return err
}

// Run starts the engine and blocks until ctx ends, then stops gracefully
// within ShutdownTimeout.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), e.cfg.ShutdownTimeout)
	defer cancel()
	return e.Stop(sctx)
}

// SinkDown reports whether the engine holds its sink to be unavailable: it
// refused a batch as unavailable (see Unavailable) and has accepted
// nothing since. since is when that outage began. For health checks
// (`trustlog relay --metrics-addr` serves it at /readyz).
func (e *Engine) SinkDown() (since time.Time, down bool) { return e.outage.down() }

// outage is the engine's view of the sink's availability, for logs,
// metrics and health: an outage begins with a batch the sink refused as
// unavailable and ends with the first message it accepts. (Each
// partition pauses on its own refusals: see publisher.)
type outage struct {
	count atomic.Int64

	mu       sync.Mutex
	failures int
	since    time.Time
}

// fail records a refusal as unavailable and returns the streak (1 for
// the refusal that began the outage).
func (o *outage) fail() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failures == 0 {
		o.since = time.Now()
		o.count.Add(1)
	}
	o.failures++
	return o.failures
}

// ok ends an outage; it returns the streak that ended (0: there was no
// outage).
func (o *outage) ok() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	was := o.failures
	o.failures = 0
	return was
}

func (o *outage) down() (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.since, o.failures > 0
}

// streamName is the sink stream of partition part: the log's identity and
// the partition.
func (e *Engine) streamName(part int) string {
	return e.logID + "-p" + strconv.Itoa(part)
}

// backoff is the delay before attempt+1 of an operation that failed
// attempt times.
func (e *Engine) backoff(attempts int) time.Duration {
	return Backoff(attempts, e.cfg.BackoffBase, e.cfg.BackoffMax, e.cfg.BackoffJitter)
}

// Backoff returns base * 2^(attempt-1), capped at max, times a random factor
// in [1-jitter, 1+jitter] (and never above max, nor below 0); an attempt
// below 1 counts as 1. It is the delay before an operation's next attempt,
// computed from the attempt number stored with it, so it is a pure
// function of its arguments (apart from the jitter), as fast and as safe
// from overflow at attempt 10^9 as at attempt 2. Every other retry delay
// of trustlog (the engine's pauses, the stores' retries, the listener's
// reconnects) comes from the same schedule.
func Backoff(attempt int, base, max time.Duration, jitter float64) time.Duration {
	return backoff.Policy{Base: base, Max: max, Jitter: jitter}.Delay(attempt)
}

// truncate makes s storable as last_error: valid UTF-8, no NUL, at most n
// bytes (cut at a rune boundary).
func truncate(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
