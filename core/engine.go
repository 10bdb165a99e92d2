package core

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"

	"github.com/go-trustlog/trustlog/internal/backoff"
)

// settleTimeout bounds a settle or release. It runs on a context detached
// from shutdown so a stopping engine still records what it published.
const settleTimeout = 10 * time.Second

// stopGrace is how long Stop waits, once its context ended and publishing
// was aborted, for the loops to give back what they hold. A loop stuck in
// a sink or store call that ignores its context is left behind after it.
const stopGrace = time.Second

// outagePause is the first pause of an outage (see sinkDown).
const outagePause = 100 * time.Millisecond

// claimRetry spaces a claim loop's tries while its claims fail (the store
// is away), settleRetry the tries to record an ordered batch's outcome
// (see settleLoop): the module's one schedule, without jitter.
var (
	claimRetry  = backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	settleRetry = backoff.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second}
)

// Engine relays stored operations to the sink: dispatcher loops claim
// pending operations in record order, a retrier claims due retries and
// expired leases, and both publish and settle through a pipeline (claim the
// next batch while this one is published, settle the last one meanwhile).
// See the package documentation for the state machine.
type Engine struct {
	store Store
	sink  Sink
	cfg   EngineConfig
	log   *slog.Logger

	wake      chan struct{}
	stopping  chan struct{}
	abortCtx  context.Context // cancelled when a graceful stop runs out of time
	abort     context.CancelFunc
	wg        sync.WaitGroup
	state     atomic.Int32 // 0 new, 1 running, 2 stopped
	stopOnce  sync.Once
	published atomic.Int64
	retried   atomic.Int64
	dead      atomic.Int64
	stale     atomic.Int64
	batches   atomic.Int64
	outages   atomic.Int64

	// pauseUntil (Unix nanoseconds) is 0 while the sink is available.
	// During an outage it holds every claim loop back until the next
	// probe, and then, while one loop probes, until the probe's window
	// ends (see claimLoop). It changes from or to 0 only under outMu.
	// Under outMu: since when the sink is down, streak (the failed probes
	// of this outage, its first refusal included), and stir, closed (and
	// replaced) when the loops held back should look again: the sink is
	// back, a probe failed (a new pause) or ended without an answer.
	// sinkOutages counts outages.
	pauseUntil  atomic.Int64
	outMu       sync.Mutex
	downSince   time.Time
	streak      int
	stir        chan struct{}
	sinkOutages atomic.Int64

	// nodeTag and epoch head every claim token (see token).
	nodeTag int64
	epoch   atomic.Int64
	// lastAtStart is the sink's last sequence when the engine started.
	lastAtStart int64
	// Under runMu: older is what this node's earlier runs recorded of their
	// run numbers, newest first (empty: unknown), and run is this run's,
	// changed by the ordered loop. position is where the sink's ordered
	// stream stood when this run started (see PositionedSink).
	runMu    sync.RWMutex
	older    runHistory
	run      runRecord
	position string
	tel      *telemetry
	// ordered: the sink is a SequencedSink; dispatcher 0 keeps the ordered
	// stream, and numbers its batches from nextBatch under the current run
	// number (see streamSeq).
	ordered   bool
	nextBatch int64
	// streamGen counts the ordered batches whose outcome could not be
	// recorded (see breakOrdered); the ordered loop renumbers the run
	// before its next ordered claim, and a batch claimed before a break is
	// sent unordered. Under streamMu, in stream ids (see streamSeq):
	// breakUpto, the highest id below every such outcome since the last
	// renumber (breaks counts them); unsettledLow, the highest id below the
	// unpublished rows of the ordered batch whose outcome is being
	// recorded; mainUpto, the highest id handed to the sink in the ordered
	// stream. (MaxInt64: none.)
	streamGen    atomic.Int64
	queued       atomic.Int64 // ordered batches claimed, not yet through publish
	streamMu     sync.Mutex
	breakUpto    int64
	breaks       int64
	unsettledLow int64
	mainUpto     int64
	// aliveStop ends holdAlive, which closes aliveDone (nil: no lease).
	aliveStop, aliveDone chan struct{}
	// restored counts, per seq, how often this engine gave a taken-over
	// operation back to its live owner (see takeOver), for the warning.
	restoredMu sync.Mutex
	restored   map[int64]int
	// awayUntil is when the pause after the sink's last refusal as
	// unavailable ends, or when a take-over last found the broker or the
	// store unavailable (unix nanoseconds): until a lease after it, the ordered stream claims no
	// due rows (see claimLoop). Without pending rows to probe the broker,
	// due claims resume a lease after the pause.
	awayUntil atomic.Int64
	// runKnown: this run's number and history are recorded (see
	// nextEpoch); until then the ordered stream claims nothing. Only
	// the ordered claim loop uses it once started.
	runKnown bool
	// claimRetry and settleRetry are the package's, or a test's shorter
	// ones.
	claimRetry, settleRetry backoff.Policy
}

// Claim tokens, from the high bit down: 0, the node tag (23 bits: which
// relay), the epoch (8 bits: which run of it), TentativeClaim (set for the
// ordered stream's claims of due rows until they are judged, see
// publish), 30 bits, and the low bit set for a batch of the ordered
// stream. The 30 bits are random, or for the ordered stream the batch's
// number under the run number (see streamSeq).
const (
	orderedBit = 1
	nodeShift  = 40
	epochShift = 32
)

// token is a claim token for an unordered batch.
func (e *Engine) token() int64 {
	return e.nodeTag<<nodeShift | e.epoch.Load()<<epochShift | rand.Int64N(maxBatch+1)<<1
}

// orderedToken is the claim token of the ordered stream's batch number
// batch under the current run number.
func (e *Engine) orderedToken(batch int64) int64 {
	return e.nodeTag<<nodeShift | e.epoch.Load()<<epochShift | batch<<1 | orderedBit
}

// epochOf and batchOf read a claim token's run number and ordered batch
// number.
func epochOf(token int64) int64 { return token >> epochShift & 0xff }
func batchOf(token int64) int64 { return token >> 1 & maxBatch }

// redelivery reports whether a claimed record was sent, in its ordered
// stream, by an earlier run of this node, which stopped before recording
// the outcome, with a stream id (returned) the broker held when that run
// ended (see held). Under in-order persistence such a message is on the
// broker; re-sending it with its stream id lets the broker drop it. One
// that never reached the broker goes out as a new message, and so does
// one of a run nobody can judge any more (a possible copy, never a loss).
func (e *Engine) redelivery(r *Record) (id int64, ok bool) {
	p := r.PrevToken
	if p == 0 || p>>nodeShift != e.nodeTag || p&orderedBit == 0 {
		return 0, false
	}
	e.runMu.RLock()
	defer e.runMu.RUnlock()
	if _, _, mine := e.run.lookup(epochOf(p), 0, 0); mine {
		return 0, false // this run's own claim
	}
	run, id, sent := e.older.find(epochOf(p), batchOf(p), r.Seq)
	if run == nil || !sent {
		return 0, false
	}
	return id, e.held(run, r.Op.DOID, id, run == e.older.latest() && id <= e.lastAtStart)
}

// held reports whether the broker holds the message with key and stream
// id id that run (of some node's history) sent in order: judged by where
// the stream stood when the run ended, if the history says and the sink
// can read it (PositionedSink), or else by latest: whether run is the
// node's latest and id at or below the broker's last sequence now (which
// nothing but that run has raised since).
func (e *Engine) held(run *runRecord, key string, id int64, latest bool) bool {
	if ps, ok := e.sink.(PositionedSink); ok && run.end != "" {
		return ps.HeldAt(run.end, key, id)
	}
	return latest
}

// EngineStats counts what an engine did since it started.
type EngineStats struct {
	Published, Retried, Dead, Stale, Batches int64
	// Outages counts batches the sink refused as unavailable.
	Outages int64
	// SinkOutages counts outages: each began with a refusal as
	// unavailable and ended with a message the sink accepted, however
	// many batches it refused meanwhile.
	SinkOutages int64
}

// NewEngine returns an engine relaying from store to sink. Start it with
// Start or Run.
func NewEngine(store Store, sink Sink, cfg EngineConfig) (*Engine, error) {
	if store == nil || sink == nil && cfg.Ledger == nil {
		return nil, configErr("Engine", "needs a store and a sink (or a ledger)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults(store.Capabilities())
	abortCtx, abort := context.WithCancel(context.Background())
	e := &Engine{
		store: store, sink: sink, cfg: cfg, log: cfg.Logger,
		wake:     make(chan struct{}, 1),
		stopping: make(chan struct{}),
		abortCtx: abortCtx, abort: abort,
		tel:        newTelemetry(cfg.Telemetry, sink),
		claimRetry: claimRetry, settleRetry: settleRetry,
	}
	if cfg.Node != "" {
		h := fnv.New32a()
		h.Write([]byte(cfg.Node))
		e.nodeTag = int64(h.Sum32() & (1<<23 - 1))
	} else {
		e.nodeTag = rand.Int64N(1 << 23)
	}
	e.epoch.Store(rand.Int64N(256))
	e.breakUpto, e.unsettledLow = math.MaxInt64, math.MaxInt64
	return e, nil
}

// nextEpoch numbers this run of the node one after the previous one,
// through the node's run history (a store cursor), and records where the
// previous run ended (this run's start position), so redelivery can tell
// which earlier claims the broker holds. Without a node name the run has
// a random epoch and treats no claim as a redelivery. It returns an error
// when the store cannot be read or written: the ordered stream then waits
// and tries again (see claimLoop). A run that claimed without its history
// could not tell its node's earlier claims from new ones (it would send
// what the broker holds again, as new messages), and its first
// renumbering would write a history without the earlier runs.
func (e *Engine) nextEpoch(ctx context.Context) error {
	if e.cfg.Node == "" {
		return nil
	}
	// The tag entry first: written again on a retry, it changes nothing,
	// while each run record written pushes an older run out.
	mine, err := e.registerTag(ctx)
	if err != nil {
		return err
	}
	name := epochCursor(e.cfg.Node)
	var hist runHistory
	c, err := e.store.Cursor(ctx, name)
	switch {
	case err == nil:
		hist, _ = parseRunHistory(c.Value)
	case !errors.Is(err, ErrNotFound):
		return fmt.Errorf("read this node's run history: %w", err)
	}
	run := runRecord{base: e.run.base}
	if len(hist.runs) > 0 {
		run.current = (hist.runs[0].current + 1) & 0xff
		hist.runs[0].end = e.position
	}
	next := hist.withLatest(run, false)
	if err := e.store.SetCursor(ctx, name, next.String()); err != nil {
		return fmt.Errorf("record this node's run number: %w", err)
	}
	e.runMu.Lock()
	e.run = run
	if mine {
		e.older = runHistory{runs: next.runs[1:]}
	}
	e.runMu.Unlock()
	e.epoch.Store(run.current)
	return nil
}

// renumber gives the rest of this run the next run number (epoch), as if
// the node had restarted, after an ordered batch's outcome could not be
// recorded (or when the batch numbers of the current one run out). The
// run record keeps, for the old number, the stream id below every such
// outcome: claims of the old number at or below it were handed to the
// ordered stream in order, and a later run (or a taker) may still re-send
// them as redeliveries; the uncertain rows above it keep a claim of the
// old number that nobody takes for that, so they go out as new messages,
// while the ordered stream goes on under the new number, its batches
// numbered on from the old number's.
// Without a node name there is nothing to renumber (no later run knows
// this one).
func (e *Engine) renumber(ctx context.Context) error {
	if e.cfg.Node == "" {
		e.run.base, e.nextBatch = e.run.base+e.nextBatch, 0
		return nil
	}
	// Let the ordered batches claimed before the break through the publish
	// loop first: one handed to the stream meanwhile counts in mainUpto.
	for e.queued.Load() > 0 {
		if !e.idle(5*time.Millisecond, nil) {
			return errors.New("renumber this run: stopping")
		}
	}
	e.streamMu.Lock()
	upto, breaks := min(e.breakUpto, e.unsettledLow, e.mainUpto), e.breaks
	e.streamMu.Unlock()
	next := e.run.renumbered(e.run.base+e.nextBatch, upto)
	e.runMu.RLock()
	hist := runHistory{runs: append([]runRecord{e.run}, e.older.runs...)}.withLatest(next, true)
	e.runMu.RUnlock()
	if err := e.store.SetCursor(ctx, epochCursor(e.cfg.Node), hist.String()); err != nil {
		return fmt.Errorf("renumber this run: %w", err)
	}
	e.streamMu.Lock()
	if e.breaks == breaks {
		e.breakUpto = math.MaxInt64
	}
	e.streamMu.Unlock()
	e.runMu.Lock()
	e.run, e.older, e.nextBatch = next, runHistory{runs: hist.runs[1:]}, 0
	e.runMu.Unlock()
	e.epoch.Store(next.current)
	return nil
}

// aliveLease is the name of the lease a named engine with a TakeoverSink
// holds while it runs (see holdAlive).
func aliveLease(node string) string { return "trustlog.node." + node + ".alive" }

// holdAlive holds this node's alive lease until Stop ends, taking it
// again when it is lost (a database restart) or held by this node's
// previous process (a lease row not yet expired). An engine about to take
// this node's expired claims over tries the lease first: while it is
// held the node is alive, even while its stream is not connected to the
// broker (during an outage, when another relay could otherwise borrow its
// stream's name), and its sends still pending would land after the
// taker's new messages: copies.
func (e *Engine) holdAlive() {
	defer close(e.aliveDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-e.aliveStop; cancel() }()
	for ctx.Err() == nil {
		lease, err := e.store.Locker().TryAcquire(ctx, aliveLease(e.cfg.Node), e.cfg.Lease)
		if err != nil {
			backoff.Sleep(ctx, time.Second) // a held lease expires by itself: every second, no growth
			continue
		}
		select {
		case <-lease.Lost():
		case <-ctx.Done():
		}
		rctx, rcancel := context.WithTimeout(context.Background(), settleTimeout)
		lease.Release(rctx)
		rcancel()
	}
}

// nodeEntry is the value of the cursor trustlog.nodetag.<tag>: which node
// claims with that tag, and the broker's name of its ordered stream.
// Ambiguous: two node names hash to the tag, so neither the nodes
// themselves nor their takers can tell their claims apart.
type nodeEntry struct {
	Node      string `json:"node,omitempty"`
	Stream    string `json:"stream,omitempty"`
	Ambiguous bool   `json:"ambiguous,omitempty"`
}

func tagCursor(tag int64) string { return "trustlog.nodetag." + strconv.FormatInt(tag, 10) }

func epochCursor(node string) string { return "trustlog.node." + node + ".epoch" }

// registerTag records which node claims under this engine's tag, and the
// name of its ordered stream, for engines that take its claims over. It
// reports false when another node name has the same tag: the tag is then
// marked ambiguous for good, and neither node treats a claim as its own
// re-send or another's take-over.
func (e *Engine) registerTag(ctx context.Context) (bool, error) {
	entry := nodeEntry{Node: e.cfg.Node}
	if ts, ok := e.sink.(TakeoverSink); ok {
		entry.Stream = ts.StreamName()
	}
	key := tagCursor(e.nodeTag)
	c, err := e.store.Cursor(ctx, key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, fmt.Errorf("read this node's tag entry: %w", err)
	}
	if err == nil {
		var old nodeEntry
		if json.Unmarshal([]byte(c.Value), &old) == nil && (old.Ambiguous || old.Node != e.cfg.Node) {
			e.log.WarnContext(ctx, "trustlog: another node name has this node's claim tag; re-sends after a crash and take-overs are not deduplicated for either (rename one node)",
				"node", e.cfg.Node, "tag", e.nodeTag, "other", old.Node)
			entry = nodeEntry{Ambiguous: true}
		}
	}
	b, _ := json.Marshal(entry)
	if err := e.store.SetCursor(ctx, key, string(b)); err != nil {
		return false, fmt.Errorf("record this node's tag entry: %w", err)
	}
	return !entry.Ambiguous, nil
}

// Config returns the engine's configuration with defaults applied.
func (e *Engine) Config() EngineConfig { return e.cfg }

// Stats returns the engine's counters.
func (e *Engine) Stats() EngineStats {
	return EngineStats{
		Published: e.published.Load(), Retried: e.retried.Load(), Dead: e.dead.Load(),
		Stale: e.stale.Load(), Batches: e.batches.Load(), Outages: e.outages.Load(),
		SinkOutages: e.sinkOutages.Load(),
	}
}

// Wake makes an idle dispatcher look for work now instead of at its next
// poll. It never blocks.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Start launches the engine's goroutines and returns. ctx is used only to
// subscribe to commit notifications; Stop ends the engine.
func (e *Engine) Start(ctx context.Context) error {
	if !e.state.CompareAndSwap(0, 1) {
		return errors.New("trustlog: engine already started")
	}
	if n, ok := e.store.(Notifier); ok && e.store.Capabilities().ListenNotify && e.sink != nil {
		subCtx, cancel := context.WithCancel(e.abortCtx)
		ch, err := n.Subscribe(subCtx)
		if err != nil {
			cancel()
			e.log.WarnContext(ctx, "trustlog: cannot listen for commits, polling instead", "err", err, "poll", e.cfg.PollInterval)
		} else {
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer cancel()
				for {
					select {
					case _, ok := <-ch:
						if !ok {
							return
						}
						e.Wake()
					case <-e.stopping:
						return
					}
				}
			}()
		}
	}
	if e.cfg.Ledger != nil {
		lctx, cancel := context.WithCancel(context.Background())
		e.wg.Add(2)
		go func() {
			defer e.wg.Done()
			if err := e.cfg.Ledger.Run(lctx, e.store, e.sink); err != nil {
				e.log.Error("trustlog: ledger stopped", "err", err)
			}
		}()
		go func() { defer e.wg.Done(); <-e.stopping; cancel() }()
	}
	e.tel.observeStore(e.cfg.Telemetry, e.store)
	if _, ok := e.sink.(TakeoverSink); ok && e.cfg.Node != "" && e.store.Locker() != nil {
		e.aliveStop, e.aliveDone = make(chan struct{}), make(chan struct{})
		go e.holdAlive()
	}
	if ss, ok := e.sink.(SequencedSink); ok {
		last, granted, err := ss.OrderedStream(ctx)
		switch {
		case err != nil:
			e.log.WarnContext(ctx, "trustlog: sink cannot say its last sequence; no ordered stream", "err", err)
		case granted:
			e.ordered, e.lastAtStart = true, last
			e.run.base = max(last, 0)>>seqBits + 1 // every id above what the broker holds
			if ps, ok := ss.(PositionedSink); ok {
				e.position = ps.Position()
			}
		}
		switch err := e.nextEpoch(ctx); {
		case err == nil:
			e.runKnown = true
		case e.ordered:
			e.log.WarnContext(ctx, "trustlog: cannot record this run in the node's run history yet; the ordered stream waits for the store", "err", err)
		default:
			e.log.WarnContext(ctx, "trustlog: cannot record this run in the node's run history; no redeliveries this run", "err", err)
		}
	}
	if e.sink != nil {
		for i := 0; i < e.cfg.Workers; i++ {
			e.startLoop(ClaimPending, e.cfg.PollInterval, i == 0 && e.ordered)
		}
		if !e.ordered { // the ordered loop claims due operations itself
			e.startLoop(ClaimDue, e.cfg.RetryPoll, false)
		}
	}
	e.log.InfoContext(ctx, "trustlog: engine started", "workers", e.cfg.Workers, "batch", e.cfg.BatchSize,
		"lease", e.cfg.Lease.String(), "strict", e.cfg.StrictOrder, "poll", e.cfg.PollInterval.String())
	return nil
}

// Stop stops claiming, lets the batches being published finish and settles
// them, and releases claimed batches not yet published. If ctx ends first,
// publishing is aborted and what was not acknowledged is released. When
// Stop returns no engine goroutine is left, unless ctx ended and a loop
// stuck in a sink or store call that ignores its context (a client
// library's hung write) did not finish within a second after: Stop then
// returns anyway, with an error saying so, and leaves it behind to finish
// on its own; what it holds comes back when its lease ends.
func (e *Engine) Stop(ctx context.Context) error {
	if e.state.Load() == 0 {
		e.state.Store(2)
		return nil
	}
	e.stopOnce.Do(func() { close(e.stopping) })
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("trustlog: engine stop: %w; in-flight publishes aborted and released", ctx.Err())
		e.abort()
		t := time.NewTimer(stopGrace)
		select {
		case <-done:
		case <-t.C:
			err = fmt.Errorf("trustlog: engine stop: %w; in-flight publishes aborted, and loops still stuck in a sink or store call %s later left behind (their batches come back when their leases end)",
				ctx.Err(), stopGrace)
			e.log.Error("trustlog: engine stop ran out of time; loops stuck in the sink or the store are left behind", "grace", stopGrace)
		}
		t.Stop()
	}
	e.abort()
	e.tel.stop()
	if e.aliveStop != nil {
		close(e.aliveStop)
		<-e.aliveDone
	}
	if ss, ok := e.sink.(SequencedSink); ok && e.ordered {
		ss.EndOrderedStream()
	}
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

// claimed is a batch on its way through the pipeline.
type claimed struct {
	token   int64
	ordered bool
	gen     int64 // streamGen when claimed
	// ids, for a batch of the ordered stream, is its stream ids' high
	// part: a row's id is ids | seq&seqMask (see streamSeq).
	ids  int64
	recs []Record
	// expires is when the claim's lease runs out (measured from before
	// the claim, so never later than the database's).
	expires time.Time
	span    trace.Span
	// probe, for a batch that probes an unavailable sink, is the probe's
	// window (see claimLoop, endProbe).
	probe int64
}

// outcome is a published batch on its way to settle.
type outcome struct {
	token     int64
	ids       int64 // as claimed.ids
	published []int64
	failed    []Failure
	release   []int64
	// restore are operations given back to the claim they were taken
	// from (see giveBack, takeOver).
	restore []int64
	recs    []Record
	span    trace.Span
	// settled, for a batch of the ordered stream that did not all go
	// out, is closed once its outcome is recorded (see publishLoop).
	settled chan struct{}
	// recorded: Settle wrote the outcome (see record).
	recorded bool
}

// startLoop starts one claim → publish → settle pipeline. The ordered
// loop publishes its batches in claim order, so it alone can keep the
// ordered stream.
func (e *Engine) startLoop(src ClaimSource, poll time.Duration, ordered bool) {
	toPublish := make(chan claimed, 1)
	toSettle := make(chan outcome, 1)
	e.wg.Add(3)
	go func() { defer e.wg.Done(); e.claimLoop(src, poll, ordered, toPublish) }()
	go func() { defer e.wg.Done(); e.publishLoop(toPublish, toSettle) }()
	go func() { defer e.wg.Done(); e.settleLoop(toSettle) }()
}

func (e *Engine) claimLoop(src ClaimSource, poll time.Duration, ordered bool, out chan claimed) {
	defer close(out)
	// A batch handed on but not yet taken by the publisher when the engine
	// stops is given back here: the publisher may be stuck in the sink.
	defer func() {
		select {
		case b := <-out:
			e.giveBack(b)
			e.dequeue(b.ordered)
			e.endProbe(b.probe)
		default:
		}
	}()
	claimErrs := backoff.Series{Policy: e.claimRetry}
	numbered := int64(0)  // the streamGen the run number covers
	var lastDue time.Time // the ordered loop's last claim of due operations
	for {
		select {
		case <-e.stopping:
			return
		default:
		}
		probe := int64(0)
		if e.pauseUntil.Load() != 0 {
			// The sink is down. Until the pause ends, wait (woken when
			// the sink is back, or a probe failed or ended without an
			// answer: see stirred); then one loop probes it with one
			// batch, within a window after which another may. (A whole
			// batch, not one operation: an ordered batch records what the
			// sink already holds before it sends the rest, which batches
			// of one from several loops would not keep.)
			stir := e.stirred()
			if until := e.pauseUntil.Load(); until != 0 {
				if wait := time.Until(time.Unix(0, until)); wait > 0 {
					if !e.idle(min(wait, e.cfg.ProbeInterval), stir) {
						return
					}
					continue
				}
				probe = time.Now().Add(e.cfg.PublishTimeout + e.cfg.ProbeInterval).UnixNano()
				if !e.pauseUntil.CompareAndSwap(until, probe) {
					continue
				}
			}
		}
		expires := time.Now().Add(e.cfg.Lease)
		p := ClaimParams{Source: src, Limit: e.cfg.BatchSize, Lease: e.cfg.Lease, Strict: e.cfg.StrictOrder,
			Node: e.nodeTag, Grace: e.cfg.Lease}
		_, ts := e.sink.(TakeoverSink)
		away := ts && time.Since(time.Unix(0, e.awayUntil.Load())) < e.cfg.Lease
		var recs []Record
		var err error
		inOrder := false
		gen := e.streamGen.Load()
		if ordered && !e.runKnown {
			ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Lease/2)
			if err = e.nextEpoch(ctx); err == nil {
				e.runKnown, numbered = true, gen
				e.log.Info("trustlog: this run is recorded in the node's run history; the ordered stream starts", "node", e.cfg.Node, "run", e.epoch.Load())
			}
			cancel()
		}
		if err == nil && ordered && (gen != numbered || e.nextBatch >= maxBatch) {
			ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Lease/2)
			if err = e.renumber(ctx); err == nil {
				numbered = gen
				e.log.Info("trustlog: ordered stream goes on under a new run number", "node", e.cfg.Node, "run", e.epoch.Load())
			}
			cancel()
		}
		inStream := ordered && err == nil
		ids := int64(0)
		if inStream {
			// The ordered stream takes every operation as its next batch
			// (see streamSeq): due ones (retries, expired claims) first,
			// every RetryPoll, then pending ones, in seq order. While
			// the broker is away (see awayUntil), no due ones: an expired
			// claim says which earlier claim (this node's or another's)
			// may have sent the row, and a new claim overwrites that
			// until the row is judged, which waits for the broker (a
			// borrow, or batches ahead of it); a kill meanwhile leaves
			// the row looking sent by the new claim, and the next sender
			// sends a copy of the earlier claim's message. Pending rows
			// still go into the stream: they probe the broker.
			sources := []ClaimSource{ClaimPending}
			if time.Since(lastDue) >= e.cfg.RetryPoll && !away {
				sources, lastDue = []ClaimSource{ClaimDue, ClaimPending}, time.Now()
			}
			for _, source := range sources {
				p.Source = source
				batch := e.nextBatch
				p.Token, ids = e.orderedToken(batch), streamSeq(e.run.base, batch, 0)
				if source == ClaimDue {
					// Tentative until judged (see publish): a row taken
					// from an expired claim keeps that claim, for the next
					// claimer, should this process die before it knows
					// which rows go out under this batch's ids.
					p.Token |= TentativeClaim
				}
				if recs, err = e.claim(p); err != nil || len(recs) > 0 {
					e.nextBatch++
				}
				if err != nil {
					// The claim may have committed (a lost connection
					// hides it): rows taken in the ordered stream's name
					// and never sent. Sending later batches under the same
					// run number would let a later run take them for
					// re-sends the broker already holds.
					e.breakOrdered(fmt.Errorf("ordered claim: %w", err), ids-1)
					break
				}
				if len(recs) > 0 {
					inOrder = true
					recs = e.oneBlock(p.Token, ids, recs)
					break
				}
			}
		} else if err == nil {
			p.Token = e.token()
			recs, err = e.claim(p)
		}
		token := p.Token
		if err == nil && len(recs) > 0 {
			e.tel.claimDur.Record(context.Background(), time.Since(expires.Add(-e.cfg.Lease)).Seconds(), e.tel.sourceAttr[p.Source])
		}
		if err != nil || len(recs) == 0 {
			e.endProbe(probe)
		}
		if err != nil {
			delay := claimErrs.Next()
			e.log.Warn("trustlog: claim failed", "source", src, "err", err, "retry_in", delay)
			if !e.idle(delay, nil) {
				return
			}
			continue
		}
		claimErrs.Reset()
		if len(recs) == 0 {
			var wake <-chan struct{}
			if src == ClaimPending {
				wake = e.wake
			}
			if !e.idle(poll, wake) {
				return
			}
			continue
		}
		if src == ClaimPending && len(recs) == e.cfg.BatchSize {
			e.Wake() // more is waiting: let an idle sibling start too
		}
		span := e.tel.batchSpan(p.Source, expires.Add(-e.cfg.Lease), recs)
		select {
		case <-e.stopping: // stopped while claiming: hand nothing on
			e.release(token, recs)
			span.End()
			e.endProbe(probe)
			return
		default:
		}
		if inOrder {
			e.queued.Add(1)
		}
		select {
		case out <- claimed{token: token, ordered: inOrder, gen: gen, ids: ids, recs: recs, expires: expires, span: span, probe: probe}:
		case <-e.stopping:
			if inOrder {
				e.queued.Add(-1)
			}
			e.release(token, recs)
			span.End()
			e.endProbe(probe)
			return
		}
	}
}

// oneBlock sorts an ordered batch (ids its stream ids' high part) by seq
// and returns the rows that share the first row's block of seqs, giving
// the rest back (see streamSeq: their ids would not rise with their
// seqs). If the rest cannot be given back, rows of the batch stay claimed
// under ids the stream never sent: the batch goes out unordered and the
// run renumbers.
func (e *Engine) oneBlock(token, ids int64, recs []Record) []Record {
	slices.SortFunc(recs, func(a, b Record) int { return cmp.Compare(a.Seq, b.Seq) })
	n := len(recs)
	for n > 1 && !sameBlock(recs[0].Seq, recs[n-1].Seq) {
		n--
	}
	if n == len(recs) {
		return recs
	}
	if err := e.release(token, recs[n:]); err != nil {
		e.breakOrdered(fmt.Errorf("ordered batch across a block of seqs: %w", err), ids-1)
	}
	return recs[:n]
}

// claim runs one claim to its end even when a stop aborts the engine: a
// claim interrupted by its context may still have committed, leaving rows
// in flight that nobody releases until their lease expires. Once it
// returns, a stopping loop releases what it got. Bounded by half a lease.
func (e *Engine) claim(p ClaimParams) ([]Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Lease/2)
	defer cancel()
	return e.store.Claim(ctx, p)
}

// idle waits d, or until woken, and reports false when the engine stops.
func (e *Engine) idle(d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-wake:
		return true
	case <-e.stopping:
		return false
	}
}

// publishLoop publishes claimed batches one after the other.
//
// A batch of the ordered stream that did not all go out holds the loop
// until its outcome is recorded. The sink's deduplication keys on the
// highest sequence it holds: were a later ordered batch to reach it while
// a failed message still carried its ordered claim, a crash at that moment
// would have the next run re-send the failed message as a redelivery below
// the broker's last sequence, and the broker would drop it. Recording the
// failure clears the claim, so the message goes out again as a new one.
// If it cannot be recorded the run is renumbered before the next ordered
// claim (see renumber), and a batch claimed before that is given back, to
// go out in the renumbered stream.
func (e *Engine) publishLoop(in <-chan claimed, out chan<- outcome) {
	defer close(out)
	for b := range in {
		queued := b.ordered
		if b.ordered && b.gen != e.streamGen.Load() {
			// Its ids are above the mark renumber keeps for the old
			// number, so it needs no new break if it cannot be given
			// back: its rows come back after the lease.
			b.ordered = false
			e.giveBack(b)
			e.dequeue(queued)
			e.endProbe(b.probe)
			continue
		}
		select {
		case <-e.stopping:
			// Claimed before the stop but not started: give it back.
			e.giveBack(b)
			e.dequeue(queued)
			e.endProbe(b.probe)
			continue
		default:
		}
		if time.Until(b.expires) < e.cfg.PublishTimeout {
			// The batch waited so long that its lease could run out
			// mid-publish and another worker publish it too: give it back.
			e.log.Warn("trustlog: claim too close to its lease expiry, releasing", "rows", len(b.recs))
			e.giveBack(b)
			e.dequeue(queued)
			e.endProbe(b.probe)
			continue
		}
		o := e.publish(b)
		e.endProbe(b.probe) // if the sink neither refused nor took it
		if b.ordered {
			e.streamMu.Lock()
			if low := o.unpublishedBelow(); low < math.MaxInt64 {
				o.settled = make(chan struct{})
				e.unsettledLow = low // before mainUpto covers the batch
			}
			e.mainUpto = max(e.mainUpto, b.ids|b.recs[len(b.recs)-1].Seq&seqMask)
			e.streamMu.Unlock()
		}
		e.dequeue(queued)
		out <- o
		if o.settled != nil {
			<-o.settled
		}
	}
}

// dequeue counts an ordered batch through the publish loop (see renumber).
func (e *Engine) dequeue(queued bool) {
	if queued {
		e.queued.Add(-1)
	}
}

// giveBack releases a claimed batch that was not published.
func (e *Engine) giveBack(b claimed) {
	if err := e.release(b.token, b.recs); err != nil && b.ordered {
		e.breakOrdered(err, b.ids|b.recs[0].Seq&seqMask-1)
	}
	b.span.End()
}

// breakOrdered notes that an ordered batch's outcome could not be
// recorded, every uncertain row above upto: batches claimed before go out
// unordered, and the ordered loop renumbers the run before it claims
// again (see renumber). Under streamMu, so that renumber sees either the
// batch as unsettled or the break.
func (e *Engine) breakOrdered(err error, upto int64) {
	e.streamMu.Lock()
	e.breakUpto = min(e.breakUpto, upto)
	e.breaks++
	e.streamGen.Add(1)
	e.streamMu.Unlock()
	e.log.Warn("trustlog: an ordered batch's outcome could not be recorded; the ordered stream goes on under a new run number", "err", err)
}

// publish sends one batch and sorts the results. A row whose content no
// longer matches its op_hash was altered after it was recorded: it is not
// published and goes dead at once.
func (e *Engine) publish(b claimed) outcome {
	o := outcome{token: b.token, ids: b.ids, recs: b.recs, span: b.span}
	ctx, cancel := context.WithTimeout(e.abortCtx, e.cfg.PublishTimeout)
	defer cancel()
	held, restore, returnStreams := e.takeOver(ctx, b.recs)
	defer returnStreams()
	_, positioned := e.sink.(PositionedSink)
	msgs := make([]Message, 0, len(b.recs))
	idx := make([]int, 0, len(b.recs))
	var buf []byte
	sending, _ := e.sink.(SendingSink)
	// delivered: delivered by this process before, or held by the broker
	// from an earlier claim's send; published without a second send (a
	// re-send under the id it went out with would only be dropped).
	var delivered []int64
	for i := range b.recs {
		r := &b.recs[i]
		pending, done := false, false
		if sending != nil {
			pending, done = sending.Sent(r.Seq)
		}
		if restore[i] || pending && r.PrevToken&orderedBit != 0 {
			// Given back to its owner, or still being sent by this
			// process under its previous claim: back to that claim.
			o.restore = append(o.restore, r.Seq)
			continue
		}
		if done {
			delivered = append(delivered, r.Seq)
			continue
		}
		buf = r.Op.AppendCanonical(buf[:0])
		if got := hashHex(buf); got != r.Op.OpHash {
			o.failed = append(o.failed, Failure{Seq: r.Seq, Dead: true,
				Err: fmt.Sprintf("integrity: stored row does not match its op_hash %s (computed %s); it was altered after recording", r.Op.OpHash, got)})
			continue
		}
		m, err := NewMessage(&r.Op, r.Seq)
		if err != nil {
			o.failed = append(o.failed, Failure{Seq: r.Seq, Dead: true, Err: truncate(err.Error(), 1000)})
			continue
		}
		if b.ordered {
			m.Ordered, m.StreamSeq = true, b.ids|r.Seq&seqMask
		}
		id, again := e.redelivery(r)
		switch {
		case held[i] || again && positioned:
			// Judged per partition: the broker holds it.
			delivered = append(delivered, r.Seq)
			continue
		case again:
			// Judged against the broker's highest last sequence: the
			// sink checks the message's partition.
			m.Redelivery, m.PrevStreamSeq = true, id
		case r.PrevToken&orderedBit != 0 && r.PrevToken>>nodeShift == e.nodeTag:
			e.log.Debug("trustlog: own earlier claim sent as a new message", "op_id", r.Op.OpID, "seq", r.Seq,
				"run", epochOf(r.PrevToken), "batch", batchOf(r.PrevToken))
		case r.PrevToken != 0 && r.PrevToken&orderedBit == 0:
			e.log.Debug("trustlog: claimed before outside an ordered stream, sent as a new message", "op_id", r.Op.OpID,
				"seq", r.Seq, "prev_token", strconv.FormatInt(r.PrevToken, 16), "state", r.State)
		}
		msgs = append(msgs, m)
		idx = append(idx, i)
	}
	if len(msgs) == 0 {
		o.published = delivered
		return o
	}
	if !b.ordered {
		o.published = delivered
	} else if len(delivered) > 0 || len(o.restore) > 0 {
		// Nothing of an ordered batch goes out while a row of it that
		// does not go out still carries its claim: after a crash that row
		// would sit under the batch's ids, below ids that reached the
		// broker, and count as sent (if it was given back: a loss) or not
		// (if it was delivered before: a copy). Record those rows first;
		// if that fails, send nothing.
		pre := outcome{token: b.token, published: delivered, restore: o.restore, span: b.span}
		if err := e.record(&pre); err != nil {
			if !pre.recorded {
				o.published = delivered
			}
			for _, i := range idx {
				o.giveBack(&b.recs[i])
			}
			return o
		}
		o.restore = nil
	}
	if b.token&TentativeClaim != 0 && !e.adopt(&o, b, idx) {
		return o
	}
	start := time.Now()
	errs := e.sink.Publish(ctx, msgs)
	cancel()
	acked := time.Now()
	e.tel.publishDur.Record(context.Background(), acked.Sub(start).Seconds(), e.tel.sinkAttr)
	if len(errs) != len(msgs) {
		errs = FailAll(len(msgs), fmt.Errorf("sink returned %d results for %d messages", len(errs), len(msgs)))
	}
	aborted := e.abortCtx.Err() != nil
	unavailable := false
	sent := 0
	for j, err := range errs {
		r := &b.recs[idx[j]]
		switch {
		case err == nil:
			sent++
			o.published = append(o.published, r.Seq)
			e.tel.ackLatency.Record(context.Background(), acked.Sub(r.Op.CreatedAt).Seconds(), e.tel.sinkAttr)
		case aborted:
			o.giveBack(r)
		case IsUnavailable(err) && b.ordered && !msgs[j].Redelivery:
			// Handed to the ordered stream, which never gives a message
			// up: the broker gets it in order or not at all. It keeps
			// its claim until the lease ends (a release would forget
			// who sent it, and the next sender would send a copy);
			// this process's retry then waits for the pending send, and
			// after a crash it is a redelivery. (A re-send under an
			// earlier claim's id goes back to that claim, below: that
			// claim, not this one, says under which id it went.)
			if !unavailable {
				unavailable = true
				e.sinkDown(err, b.probe != 0)
			}
		case IsUnavailable(err):
			// Not the operation's fault: give it back uncounted.
			o.giveBack(r)
			if !unavailable {
				unavailable = true
				e.sinkDown(err, b.probe != 0)
			}
		default:
			o.failed = append(o.failed, Failure{
				Seq: r.Seq, Err: truncate(err.Error(), 1000),
				Delay: e.backoff(r.Attempts),
				Dead:  IsPermanent(err) || r.Attempts >= e.cfg.MaxAttempts,
			})
		}
	}
	if !unavailable && sent > 0 {
		e.sinkUp()
	}
	var perr error
	if sent < len(msgs) {
		perr = fmt.Errorf("%d of %d messages failed", len(msgs)-sent, len(msgs))
	}
	e.tel.child(o.span, "publish", start, perr)
	return o
}

// adopt makes the tentative claim of an ordered batch of due rows a plain
// one for the rows that go out under its ids (idx) and those it records
// as failed, now that the rest is recorded: a crash after this leaves
// them looking sent by this batch, as they may be. It reports false, the
// rows given back, if not all of them could be adopted: nothing goes out.
func (e *Engine) adopt(o *outcome, b claimed, idx []int) bool {
	seqs := make([]int64, 0, len(idx)+len(o.failed))
	for _, i := range idx {
		seqs = append(seqs, b.recs[i].Seq)
	}
	for _, f := range o.failed {
		seqs = append(seqs, f.Seq)
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	n, err := e.store.Adopt(ctx, AdoptParams{Token: b.token, Seqs: seqs})
	cancel()
	if err == nil {
		o.token = b.token &^ TentativeClaim
		if n == len(seqs) {
			return true
		}
		// Some rows were claimed by another relay since (this claim's
		// lease ran out): give back the others.
		e.log.Warn("trustlog: an ordered batch's rows were claimed by another relay while it was judged; giving it back",
			"rows", len(seqs), "still_claimed", n)
	} else {
		// It may have committed: rows under the plain claim that never
		// went out, below the ids of later batches.
		e.breakOrdered(fmt.Errorf("adopt: %w", err), b.ids|b.recs[0].Seq&seqMask-1)
	}
	for _, i := range idx {
		o.giveBack(&b.recs[i])
	}
	return false
}

// giveBack hands r back unpublished, uncounted. A row that came from an
// ordered claim (its own node's previous run's, or a node this engine
// took over from) goes back to that claim, which says who may have sent
// it and under which sequence: a plain release would forget that, and
// the next sender would have to send it as a new message, a copy if the
// broker had it.
func (o *outcome) giveBack(r *Record) {
	if r.PrevToken&orderedBit != 0 {
		o.restore = append(o.restore, r.Seq)
	} else {
		o.release = append(o.release, r.Seq)
	}
}

// unpublishedBelow is, for a batch of the ordered stream, the highest
// stream id below every row of o that was not published (MaxInt64 if all
// were).
func (o *outcome) unpublishedBelow() int64 {
	low := int64(math.MaxInt64)
	for _, seqs := range [][]int64{o.release, o.restore} {
		for _, s := range seqs {
			low = min(low, o.ids|s&seqMask-1)
		}
	}
	for _, f := range o.failed {
		low = min(low, o.ids|f.Seq&seqMask-1)
	}
	return low
}

// stuckRestores is how often an engine gives one taken-over operation
// back to its live owner before it warns that the owner does not take it
// back (and again every as many times). It never sends such an operation
// itself: the owner's send may still be pending in its producer (during
// an outage, or while it reconnects), and would land after this engine's
// new message, a copy. An owner that stays stuck must be restarted (or
// stopped): then its claims are taken over.
const stuckRestores = 10

// takeOver looks at the claims of another node's ordered stream among
// recs (rows whose lease ran out, taken over after the grace). For each
// such node it checks that the node is dead (its alive lease is free, see
// holdAlive) and borrows the node's stream from the sink: while the owner
// is alive or connected, or the store or broker is unavailable, its rows
// go back to it (restore[i]), however often (see stuckRestores);
// otherwise the rows its runs sent in order (see
// runHistory) that the broker holds from the stream (see held: for its
// latest run, at or below the last sequence where the row's key goes;
// the stream is sent in order and never gives up a message) are on the
// broker (held[i]): published, nothing sent. Everything else goes out as
// new messages. done gives the borrowed streams back (borrowing holds the
// name, so no new run of the owner sends while the engine judges).
func (e *Engine) takeOver(ctx context.Context, recs []Record) (held, restore map[int]bool, done func()) {
	done = func() {}
	ts, ok := e.sink.(TakeoverSink)
	if !ok {
		return nil, nil, done
	}
	var byTag map[int64][]int
	for i := range recs {
		p := recs[i].PrevToken
		if p != 0 && p&orderedBit != 0 && p>>nodeShift != e.nodeTag {
			if byTag == nil {
				byTag = map[int64][]int{}
			}
			byTag[p>>nodeShift] = append(byTag[p>>nodeShift], i)
		}
	}
	if byTag == nil {
		return nil, nil, done
	}
	var borrowed []BorrowedStream
	var leases []Lease
	done = func() {
		for _, bs := range borrowed {
			bs.Release()
		}
		for _, l := range leases {
			rctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
			l.Release(rctx)
			cancel()
		}
	}
	// giveBack restores the rows idx to their owner's claim and returns
	// how many.
	giveBack := func(idx []int) int {
		for _, i := range idx {
			if restore == nil {
				restore = map[int]bool{}
			}
			restore[i] = true
		}
		return len(idx)
	}
	for tag, idx := range byTag {
		c, err := e.store.Cursor(ctx, tagCursor(tag))
		var owner nodeEntry
		switch {
		case err != nil && !errors.Is(err, ErrNotFound):
			// The store cannot say whose claims they are: a new message
			// could be a copy.
			e.log.Warn("trustlog: cannot read the owner of expired claims; giving them back", "rows", giveBack(idx), "err", err)
			continue
		case err != nil || json.Unmarshal([]byte(c.Value), &owner) != nil || owner.Ambiguous || owner.Stream == "":
			// Unknown owner (no tag entry, or two node names share the
			// tag): new messages.
			e.log.Warn("trustlog: expired claims of a node this engine cannot name; sending them as new messages",
				"tag", tag, "rows", len(idx), "ambiguous", owner.Ambiguous, "op_ids", opIDs{recs: recs, idx: idx})
			continue
		}
		lease, err := e.ownerAlive(ctx, owner.Node)
		if lease != nil {
			leases = append(leases, lease)
		}
		var bs BorrowedStream
		if err == nil {
			bs, err = ts.Borrow(ctx, owner.Stream)
		}
		if busy, down := errors.Is(err, ErrStreamBusy) || errors.Is(err, ErrLeaseHeld), IsUnavailable(err); busy || down {
			// Busy: the owner is alive. Down: the broker (or the store)
			// cannot say how far the owner got, and a new message would
			// be a copy of whatever it holds. Either way the rows go back
			// to the owner's claim, for it or a later taker.
			n := giveBack(idx)
			e.log.Debug("trustlog: given back to their owner", "node", owner.Node, "op_ids", opIDs{recs: recs, idx: idx})
			if busy {
				e.log.Info("trustlog: the owner of expired claims is alive; giving them back", "node", owner.Node, "rows", n)
				stuck := false
				for _, i := range idx {
					stuck = e.restoredAgain(recs[i].Seq)%stuckRestores == 0 || stuck
				}
				if stuck {
					e.log.Warn("trustlog: the owner of expired claims is alive but does not take them back; they stay with it (restart it if it is stuck)",
						"node", owner.Node, "rows", n, "given_back", stuckRestores)
				}
			} else {
				e.awayUntil.Store(time.Now().UnixNano())
				e.log.Warn("trustlog: cannot borrow the ordered stream of a node whose claims this engine took over; giving them back", "node", owner.Node, "rows", n, "err", err)
			}
			continue
		}
		if err != nil {
			e.log.Warn("trustlog: cannot borrow the ordered stream of a node whose claims this engine took over; sending them as new messages",
				"node", owner.Node, "err", err)
			continue
		}
		borrowed = append(borrowed, bs)
		// Read after the borrow: while this engine holds the name, no new
		// run of the owner can send.
		var hist runHistory
		c, err = e.store.Cursor(ctx, epochCursor(owner.Node))
		switch {
		case err == nil:
			hist, _ = parseRunHistory(c.Value)
		case !errors.Is(err, ErrNotFound):
			e.log.Warn("trustlog: cannot read the run history of a node whose claims this engine took over; giving them back",
				"node", owner.Node, "rows", giveBack(idx), "err", err)
			continue
		}
		n := 0
		for _, i := range idx {
			r := &recs[i]
			run, id, sent := hist.find(epochOf(r.PrevToken), batchOf(r.PrevToken), r.Seq)
			if run != nil && sent && e.held(run, r.Op.DOID, id, run == hist.latest() && bs.Holds(r.Op.DOID, id)) {
				if held == nil {
					held = map[int]bool{}
				}
				held[i] = true
				n++
				continue
			}
			e.log.Debug("trustlog: taken over as a new message", "op_id", r.Op.OpID, "seq", r.Seq, "node", owner.Node,
				"run", epochOf(r.PrevToken), "batch", batchOf(r.PrevToken), "known_run", run != nil, "sent_in_order", sent, "id", id)
		}
		e.log.Info("trustlog: took over expired claims of another node's ordered stream", "node", owner.Node,
			"rows", len(idx), "held_by_the_broker", n)
		e.log.Debug("trustlog: taken over, held by the broker", "node", owner.Node, "op_ids", opIDs{recs: recs, idx: idx, keep: func(i int) bool { return held[i] }})
	}
	return held, restore, done
}

// opIDs lists the op_ids of recs[idx] (those keep keeps, if set) in
// debug logs that let a chaos run trace an operation from claim to claim;
// the list is built only if the line is written.
type opIDs struct {
	recs []Record
	idx  []int
	keep func(i int) bool
}

func (l opIDs) LogValue() slog.Value {
	ids := make([]string, 0, len(l.idx))
	for _, i := range l.idx {
		if l.keep == nil || l.keep(i) {
			ids = append(ids, l.recs[i].Op.OpID)
		}
	}
	return slog.AnyValue(ids)
}

// ownerAlive takes the alive lease of node (see holdAlive), for the
// caller to release once it is done with the node's claims (meanwhile a
// new process of the node does not count as alive, but it cannot have
// sends of them pending either). It returns ErrLeaseHeld (wrapped) while
// the node runs, an Unavailable error if the store cannot say, and no
// lease and no error without a locker.
func (e *Engine) ownerAlive(ctx context.Context, node string) (Lease, error) {
	locker := e.store.Locker()
	if locker == nil {
		return nil, nil
	}
	lease, err := locker.TryAcquire(ctx, aliveLease(node), e.cfg.Lease)
	switch {
	case err == nil:
		return lease, nil
	case errors.Is(err, ErrLeaseHeld):
		return nil, err
	default:
		return nil, Unavailable(err)
	}
}

// restoredAgain counts one more give-back of a taken-over seq to its
// live owner and returns the count (see stuckRestores).
func (e *Engine) restoredAgain(seq int64) int {
	e.restoredMu.Lock()
	defer e.restoredMu.Unlock()
	if e.restored == nil || len(e.restored) >= 1<<16 {
		e.restored = map[int64]int{}
	}
	e.restored[seq]++
	return e.restored[seq]
}

// sinkDown notes a batch the sink refused as unavailable. The first
// refusal begins an outage and pauses every claim loop; each failed probe
// (a batch sent when a pause ended, see claimLoop) grows the streak and
// pauses again: 100ms, doubling per step of the streak, capped at
// ProbeInterval. Other batches refused meanwhile (sent by other loops
// before the outage began) are the same outage and change nothing: the
// streak counts the sink's outage, not the batches or loops that saw it.
func (e *Engine) sinkDown(err error, probe bool) {
	e.outages.Add(1)
	e.outMu.Lock()
	defer e.outMu.Unlock()
	now := time.Now()
	switch {
	case e.pauseUntil.Load() == 0:
		e.sinkOutages.Add(1)
		e.downSince, e.streak = now, 1
	case probe:
		e.streak++
	default:
		return
	}
	pause := Backoff(e.streak, outagePause, e.cfg.ProbeInterval, e.cfg.BackoffJitter)
	e.pauseUntil.Store(now.Add(pause).UnixNano())
	e.awayUntil.Store(now.Add(pause).UnixNano())
	e.stirLocked() // loops waiting out a probe's window wait for this pause instead
	if e.streak == 1 {
		e.log.Warn("trustlog: sink unavailable, pausing; probing it until it is back", "err", err, "pause", pause,
			"streak", e.streak, "probe_every", e.cfg.ProbeInterval)
	} else {
		e.log.Debug("trustlog: sink still unavailable", "err", err, "pause", pause, "streak", e.streak,
			"down_for", now.Sub(e.downSince).Round(time.Millisecond))
	}
}

// sinkUp notes a message the sink accepted: an outage ends, and every
// claim loop resumes at once.
func (e *Engine) sinkUp() {
	if e.pauseUntil.Load() == 0 {
		return
	}
	e.outMu.Lock()
	defer e.outMu.Unlock()
	if e.pauseUntil.Load() == 0 {
		return
	}
	now := time.Now()
	e.pauseUntil.Store(0)
	if away := e.awayUntil.Load(); away > now.UnixNano() {
		e.awayUntil.CompareAndSwap(away, now.UnixNano()) // the pause ends now
	}
	e.stirLocked()
	e.log.Info("trustlog: sink available again, resuming", "down_for", now.Sub(e.downSince).Round(time.Millisecond),
		"streak", e.streak)
	e.streak = 0
}

// stirred returns a channel closed when the loops held back by an outage
// should look at pauseUntil again (it changed other than by a loop taking
// a probe). Take it before reading pauseUntil: a change made after that
// closes it.
func (e *Engine) stirred() <-chan struct{} {
	e.outMu.Lock()
	defer e.outMu.Unlock()
	if e.stir == nil {
		e.stir = make(chan struct{})
	}
	return e.stir
}

// stirLocked wakes the loops held back by an outage (see stirred). Under
// outMu.
func (e *Engine) stirLocked() {
	if e.stir != nil {
		close(e.stir)
		e.stir = nil
	}
}

// endProbe ends a probe (its window, 0 for a batch that is no probe) that
// the sink neither refused as unavailable nor accepted: it claimed
// nothing, was given back unsent, or failed otherwise. Another loop may
// probe at once.
func (e *Engine) endProbe(window int64) {
	if window == 0 {
		return
	}
	e.outMu.Lock()
	defer e.outMu.Unlock()
	if e.pauseUntil.CompareAndSwap(window, time.Now().UnixNano()) {
		e.stirLocked()
	}
}

func (e *Engine) settleLoop(in <-chan outcome) {
	for o := range in {
		e.batches.Add(1)
		err := e.record(&o)
		if err != nil && o.settled != nil {
			// An ordered batch that did not all go out holds the stream
			// until its outcome is written; if it cannot be, the run
			// renumbers and takes the batch's published rows above the
			// first unpublished one for uncertain (copies after a crash).
			// A database restart is over in seconds: try again for up to a
			// lease first.
			deadline := time.Now().Add(e.cfg.Lease)
			for tries := (backoff.Series{Policy: e.settleRetry}); err != nil && time.Now().Before(deadline); {
				if !e.idle(tries.Next(), nil) {
					break
				}
				err = e.record(&o)
			}
		}
		if o.settled != nil {
			if err != nil {
				e.breakOrdered(err, o.unpublishedBelow())
			}
			e.streamMu.Lock()
			e.unsettledLow = math.MaxInt64
			e.streamMu.Unlock()
			close(o.settled)
		}
		if o.span != nil {
			o.span.End()
		}
	}
}

// record writes o's outcome to the store: Settle, then the rows given
// back (see returnRows). A part written before is not written again.
func (e *Engine) record(o *outcome) error {
	if !o.recorded {
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		start := time.Now()
		res, err := e.store.Settle(ctx, SettleParams{Token: o.token, Published: o.published, Failed: o.failed})
		cancel()
		e.tel.settleDur.Record(context.Background(), time.Since(start).Seconds())
		e.tel.child(o.span, "settle", start, err)
		if err != nil {
			// The rows stay in flight; their lease expires and the retrier
			// takes them back, so a published one may go out again.
			e.log.Error("trustlog: settle failed; the batch will be retried after its lease", "err", err,
				"published", len(o.published), "failed", len(o.failed))
			return err
		}
		o.recorded = true
		e.published.Add(int64(res.Published))
		e.retried.Add(int64(res.Retrying))
		e.dead.Add(int64(res.Dead))
		bg := context.Background()
		e.tel.published.Add(bg, int64(res.Published), e.tel.sinkAttr)
		e.tel.retried.Add(bg, int64(res.Retrying), e.tel.sinkAttr)
		e.tel.dead.Add(bg, int64(res.Dead), e.tel.sinkAttr)
		e.stale.Add(int64(res.Stale))
		if res.Stale > 0 {
			e.log.Warn("trustlog: stale settle: lease expired and another worker claimed the rows", "rows", res.Stale)
		}
		e.reportFailures(*o)
	}
	return e.returnRows(o)
}

func (e *Engine) reportFailures(o outcome) {
	if len(o.failed) == 0 {
		return
	}
	bySeq := make(map[int64]*Record, len(o.recs))
	for i := range o.recs {
		bySeq[o.recs[i].Seq] = &o.recs[i]
	}
	for _, f := range o.failed {
		r := bySeq[f.Seq]
		if !f.Dead {
			e.log.Debug("trustlog: publish failed, will retry", "op_id", r.Op.OpID, "attempt", r.Attempts, "delay", f.Delay, "err", f.Err)
			continue
		}
		e.log.Error("trustlog: operation is dead", "op_id", r.Op.OpID, "doid", r.Op.DOID, "attempts", r.Attempts, "err", f.Err)
		if e.cfg.OnDead != nil {
			e.cfg.OnDead(DeadEvent{Seq: r.Seq, OpID: r.Op.OpID, DOID: r.Op.DOID, Attempts: r.Attempts, Err: f.Err})
		}
	}
}

// release gives a claimed batch back unpublished (see outcome.giveBack).
func (e *Engine) release(token int64, recs []Record) error {
	o := outcome{token: token}
	for i := range recs {
		o.giveBack(&recs[i])
	}
	return e.returnRows(&o)
}

// returnRows gives o's unpublished rows back: o.release to the state they
// were claimed from, o.restore to the claim they were taken from. It
// returns the first error.
func (e *Engine) returnRows(o *outcome) error {
	var first error
	for _, p := range []ReleaseParams{{Token: o.token, Seqs: o.release}, {Token: o.token, Seqs: o.restore, Restore: true}} {
		if len(p.Seqs) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		_, err := e.store.Release(ctx, p)
		cancel()
		if err != nil {
			e.log.Error("trustlog: giving rows back failed; they come back when their lease expires", "err", err, "rows", len(p.Seqs), "restore", p.Restore)
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// backoff is the delay before attempt number attempts+1.
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
