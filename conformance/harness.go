package conformance

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// StoreHarness is one fresh, migrated, empty store for one test.
type StoreHarness struct {
	// Store is the store under test.
	Store core.Store
	// DB is a handle on the same database, for the caller transactions
	// RecordTx joins (the suite uses both bun.Tx and *sql.Tx from it).
	DB *bun.DB
	// Reopen, if set, opens another store handle on the same database and
	// tables, as another process would; cluster tests give each engine its
	// own. Without it they share Store.
	Reopen func(t *testing.T) core.Store
}

// NewStoreFunc returns a fresh store harness. It registers its own cleanup
// with t.Cleanup and must isolate the store from every other test (its own
// file, schema, database or table prefix) so tests run in parallel.
type NewStoreFunc func(t *testing.T) StoreHarness

// Received is a message as a consumer read it from the broker.
type Received struct {
	Key     string
	ID      string
	Payload []byte
	Headers map[string]string
}

// SinkHarness is one fresh sink for one test (a new topic, say) and a way
// to read what reached the broker.
type SinkHarness struct {
	// Sink is the sink under test.
	Sink core.Sink
	// Read returns every message the broker holds, waiting until there are
	// at least n or ctx ends (then it returns what it has and ctx's error).
	// Messages with the same key must come in the order the broker stored
	// them. Read through the broker's own consumer, not the sink's
	// bookkeeping, so the test proves what a subscriber sees.
	Read func(ctx context.Context, n int) ([]Received, error)
}

// NewSinkFunc returns a fresh sink harness and registers its cleanup.
type NewSinkFunc func(t *testing.T) SinkHarness

// testContext bounds every wait of a test: until shortly before the test
// binary's deadline (go test -timeout), so the suite waits as long as a
// busy machine needs and a stuck wait still fails with its own message.
func testContext(t *testing.T) context.Context {
	return testenv.Context(t)
}

// NewOp returns a valid, unsealed operation on object doid (local part)
// under prefix 10.1000; i varies its content.
func NewOp(doid string, i int) *core.Operation {
	return &core.Operation{
		Source:           core.SourceDOIP,
		Type:             core.OpUpdate,
		DOID:             "10.1000/" + doid,
		DOPrefix:         "10.1000",
		DORepository:     "conformance",
		Actor:            fmt.Sprintf("user-%d", i%7),
		ProducerID:       "trustlog-conformance",
		RequestBodyHash:  fmt.Sprintf("%064x", i),
		ResponseBodyHash: fmt.Sprintf("%064x", i+1),
		ClientIP:         "192.0.2.10",
		ServerIP:         "2001:db8::1",
	}
}

// newOps returns n operations spread over objects obj-0 … obj-(objects-1),
// round robin.
func newOps(n, objects int) []*core.Operation {
	ops := make([]*core.Operation, n)
	for i := range ops {
		ops[i] = NewOp(fmt.Sprintf("obj-%d", i%objects), i)
	}
	return ops
}

// objectIn returns an object name (NewOp's doid argument) whose DOID falls
// in partition part of a store with n partitions: name-k for the smallest
// such k, so tests can put operations in the partitions they need.
func objectIn(name string, part, n int) string {
	for k := 0; ; k++ {
		o := name + "-" + strconv.Itoa(k)
		if core.PartitionOf("10.1000/"+o, n) == part {
			return o
		}
	}
}

// fastEngine is an engine configuration that makes the suite quick:
// short polls, leases and backoff. PublishTimeout is half the lease, the
// most Validate allows, so that a slow broker under a loaded test machine
// does not time out (a timeout re-sends, which the exactly-once checks
// would count as a copy). The engine logs warnings and errors to the
// test's output.
func fastEngine(t *testing.T) core.EngineConfig {
	return core.EngineConfig{
		Logger:         testLogger(t),
		BatchSize:      64,
		Lease:          4 * time.Second,
		PublishTimeout: 2 * time.Second,
		PollInterval:   20 * time.Millisecond,
		RetryPoll:      20 * time.Millisecond,
		MaxAttempts:    5,
		BackoffBase:    10 * time.Millisecond,
		BackoffMax:     100 * time.Millisecond,
		ProbeInterval:  200 * time.Millisecond,
	}
}

// clusterEngine is fastEngine for tests that run several engines on one
// store and assert that nothing is sent twice: leases long enough that
// none runs out on a loaded machine (an expired lease moves a partition
// while its owner may still send, the one legitimate source of copies;
// with 6 s, renewals of SQLite lease rows queued behind the writers
// under -race with both cores busy ran out), yet short enough that the
// balancer (every Lease/3) moves partitions within seconds. node names
// the engine's members.
func clusterEngine(t *testing.T, node string) core.EngineConfig {
	cfg := fastEngine(t)
	cfg.Node = node
	cfg.Lease, cfg.PublishTimeout = 12*time.Second, 6*time.Second
	cfg.PollInterval = 50 * time.Millisecond
	return cfg
}

// testLogger writes warnings and errors to t's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startEngine starts an engine and stops it gracefully at cleanup.
func startEngine(t *testing.T, store core.Store, sink core.Sink, cfg core.EngineConfig) *core.Engine {
	t.Helper()
	e, err := core.NewEngine(store, sink, cfg)
	require.NoError(t, err)
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.Patience(t))
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("engine stop at cleanup: %v", err)
		}
	})
	return e
}

// eventually calls cond every 10ms until it holds, and fails t (saying
// what it waited for) if ctx ends first. An error from cond fails t at
// once.
func eventually(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		require.NoError(t, err, what)
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-tick.C:
		}
	}
}

// unsettled counts the operations that are neither published nor dead.
func unsettled(st core.Stats) int64 {
	return st.Counts[core.StatePending] + st.Counts[core.StateRetrying]
}

// settled waits until the store has no pending or retrying operation and
// returns its stats.
func settled(t *testing.T, ctx context.Context, s core.Store) core.Stats {
	t.Helper()
	var st core.Stats
	eventually(t, ctx, "every operation is published or dead", func() (bool, error) {
		var err error
		st, err = s.Stats(ctx)
		return err == nil && unsettled(st) == 0, err
	})
	return st
}

// ids returns the op_ids of ops.
func ids(ops []*core.Operation) []string {
	out := make([]string, len(ops))
	for i, op := range ops {
		out[i] = op.OpID
	}
	return out
}

// opIDs returns the op_ids of records.
func opIDs(recs []core.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Op.OpID
	}
	return out
}

// seqsOf returns the seqs of records.
func seqsOf(recs []core.Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

// countIDs counts received messages per op_id.
func countIDs(msgs []Received) map[string]int {
	m := make(map[string]int, len(msgs))
	for _, r := range msgs {
		m[r.ID]++
	}
	return m
}

// faultSink wraps a sink and fails, delays or refuses chosen messages
// before they reach it, so failure scenarios run against every real sink.
// With no faults set it passes everything through.
type faultSink struct {
	core.Sink
	mu        sync.Mutex
	fail      map[string]int // op_id → failures left (-1: forever)
	permanent map[string]bool
	offered   map[string][]time.Time
	down      bool          // every message is refused as unavailable
	delay     time.Duration // every Publish waits this long first (honouring ctx)
	calls     int           // Publish calls while down
}

func newFaultSink(inner core.Sink) *faultSink {
	return &faultSink{Sink: inner, fail: map[string]int{}, permanent: map[string]bool{}, offered: map[string][]time.Time{}}
}

// failFor makes op fail its next n offers (n < 0: forever, 0: no more),
// with an error retrying can fix.
func (f *faultSink) failFor(opID string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[opID] = n
}

// failPermanently makes op fail every offer with a core.Permanent error.
func (f *faultSink) failPermanently(opID string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.permanent[opID] = on
}

// setDown starts (true) or ends (false) an outage: while it lasts every
// message is refused as core.Unavailable.
func (f *faultSink) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	f.calls = 0
}

// callsWhileDown returns how many Publish calls the outage refused.
func (f *faultSink) callsWhileDown() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// setDelay makes every Publish wait d before it goes on.
func (f *faultSink) setDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// offers returns when op was offered to the sink.
func (f *faultSink) offers(opID string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.offered[opID])
}

// Publish implements core.Sink.
func (f *faultSink) Publish(ctx context.Context, msgs []core.Message) []error {
	f.mu.Lock()
	delay := f.delay
	f.mu.Unlock()
	if delay > 0 {
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return core.FailAll(len(msgs), ctx.Err())
		}
	}
	errs := make([]error, len(msgs))
	pass := make([]core.Message, 0, len(msgs))
	idx := make([]int, 0, len(msgs))
	f.mu.Lock()
	now := time.Now()
	if f.down {
		f.calls++
	}
	for i, m := range msgs {
		f.offered[m.ID] = append(f.offered[m.ID], now)
		switch n := f.fail[m.ID]; {
		case f.down:
			errs[i] = core.Unavailable(fmt.Errorf("conformance: injected outage"))
		case f.permanent[m.ID]:
			errs[i] = core.Permanent(fmt.Errorf("conformance: injected permanent failure for %s", m.ID))
		case n != 0:
			if n > 0 {
				f.fail[m.ID] = n - 1
			}
			errs[i] = fmt.Errorf("conformance: injected failure for %s", m.ID)
		default:
			pass = append(pass, m)
			idx = append(idx, i)
		}
	}
	f.mu.Unlock()
	if len(pass) > 0 {
		res := f.Sink.Publish(ctx, pass)
		if len(res) != len(pass) {
			res = core.FailAll(len(pass), fmt.Errorf("sink returned %d results for %d messages", len(res), len(pass)))
		}
		for j, err := range res {
			errs[idx[j]] = err
		}
	}
	return errs
}

// CloseStream implements core.StreamCloser: it passes the call on to a
// sink that keeps a resource per stream (Pulsar's producers), so
// partitions move between engines as fast as they would without the
// wrapper.
func (f *faultSink) CloseStream(stream string) error {
	if sc, ok := f.Sink.(core.StreamCloser); ok {
		return sc.CloseStream(stream)
	}
	return nil
}

// guardSink sits between the engines of a test and the sink and checks
// what only the sink side can see: that no two callers publish one stream
// at once (a stream is a partition, and at most one relay publishes a
// partition at a time), and that within a stream no first send (not a
// Retry) goes out below a position the sink already accepted unless it is
// a re-send of that very position (a sink that deduplicates by stream and
// position, as Pulsar does with sequence ids, would drop it: a loss).
type guardSink struct {
	core.Sink
	mu         sync.Mutex
	active     map[string]int
	accepted   map[string]map[int64]bool
	highest    map[string]int64
	violations []string
}

func newGuardSink(inner core.Sink) *guardSink {
	return &guardSink{Sink: inner, active: map[string]int{}, accepted: map[string]map[int64]bool{}, highest: map[string]int64{}}
}

// streamed reports whether m is a first send of an operation in a stream.
func streamed(m *core.Message) bool {
	return m.Kind == core.KindOperation && m.Stream != "" && !m.Retry && m.Position >= 0
}

// Publish implements core.Sink.
func (g *guardSink) Publish(ctx context.Context, msgs []core.Message) []error {
	var streams []string
	g.mu.Lock()
	for i := range msgs {
		if s := msgs[i].Stream; s != "" && !slices.Contains(streams, s) {
			streams = append(streams, s)
			if g.active[s] > 0 {
				g.violations = append(g.violations, fmt.Sprintf("stream %s: two Publish calls at once (two owners of one partition)", s))
			}
			g.active[s]++
		}
	}
	g.mu.Unlock()
	errs := g.Sink.Publish(ctx, msgs)
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range streams {
		g.active[s]--
	}
	if len(errs) != len(msgs) {
		return errs
	}
	for i := range msgs {
		m := &msgs[i]
		if !streamed(m) {
			continue
		}
		acc := g.accepted[m.Stream]
		if acc == nil {
			acc = map[int64]bool{}
			g.accepted[m.Stream] = acc
			g.highest[m.Stream] = -1
		}
		if h := g.highest[m.Stream]; m.Position < h && !acc[m.Position] {
			g.violations = append(g.violations, fmt.Sprintf(
				"stream %s: operation %s (position %d) sent as a first send (Retry false) after the sink accepted position %d: "+
					"positions of first sends must increase within a stream, or a sink deduplicating by sequence id drops it",
				m.Stream, m.ID, m.Position, h))
		}
		if errs[i] == nil {
			acc[m.Position] = true
			g.highest[m.Stream] = max(g.highest[m.Stream], m.Position)
		}
	}
	return errs
}

// CloseStream implements core.StreamCloser, passing the call on.
func (g *guardSink) CloseStream(stream string) error {
	if sc, ok := g.Sink.(core.StreamCloser); ok {
		return sc.CloseStream(stream)
	}
	return nil
}

// check fails t with every violation seen.
func (g *guardSink) check(t *testing.T) {
	g.mu.Lock()
	defer g.mu.Unlock()
	const most = 10
	for i, v := range g.violations {
		if i == most {
			t.Errorf("… and %d more stream violations", len(g.violations)-most)
			break
		}
		t.Error(v)
	}
}

// ReadFrom builds a SinkHarness's Read from a core.Replayer: it replays
// the topic until at least n messages arrived or ctx ends.
func ReadFrom(r core.Replayer) func(ctx context.Context, n int) ([]Received, error) {
	return func(ctx context.Context, n int) ([]Received, error) {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			var got []Received
			err := r.Replay(ctx, time.Time{}, func(d core.Delivered) error {
				got = append(got, Received{Key: d.Key, ID: d.ID, Payload: d.Payload, Headers: d.Headers})
				return nil
			})
			if err == nil && len(got) >= n {
				return got, nil
			}
			select {
			case <-ctx.Done():
				if err == nil {
					err = fmt.Errorf("%d of %d messages arrived: %w", len(got), n, ctx.Err())
				}
				return got, err
			case <-tick.C:
			}
		}
	}
}
