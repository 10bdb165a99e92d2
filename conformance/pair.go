package conformance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

// RunPair runs the guarantees end to end: a store, the engine and a sink,
// with what arrives read back through the broker's consumer. Each subtest
// is named after the README guarantee it proves and fails when the
// guarantee breaks.
func RunPair(t *testing.T, newStore NewStoreFunc, newSink NewSinkFunc) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, p pair)
	}{
		{"NoLossAbandonedClaim", testNoLossAbandoned},
		{"NoLossSinkOutage", testNoLossOutage},
		{"NoPhantomAfterRollback", testNoPhantom},
		{"DuplicatesAreKeyed", testDuplicatesKeyed},
		{"StrictOrderPerObject", testStrictOrder},
		{"ClusterPublishesOnce", testCluster},
		{"RetryBackoffDeadRequeue", testRetryDeadRequeue},
		{"PoisonDoesNotStall", testPoison},
		{"BadInputNeverPublished", testBadInputNotPublished},
		{"WakeOnCommitOrPoll", testWake},
		{"StopSettlesOrReleases", testStop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, pair{StoreHarness: newStore(t), SinkHarness: newSink(t)})
		})
	}
}

type pair struct {
	StoreHarness
	SinkHarness
}

// readAll reads until want distinct op_ids arrived, then a little longer to
// catch anything extra (a phantom, a duplicate), and returns it all.
func (p pair) readAll(t *testing.T, ctx context.Context, want int) []Received {
	t.Helper()
	got, err := p.Read(ctx, want)
	require.NoError(t, err, "reading %d messages", want)
	extra, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if more, _ := p.Read(extra, len(got)+1); len(more) > len(got) {
		got = more
	}
	return got
}

func requireAll(t *testing.T, got []Received, ops []*core.Operation) {
	t.Helper()
	counts := countIDs(got)
	for _, op := range ops {
		require.Positive(t, counts[op.OpID], "operation %s (%s) reached the sink", op.OpID, op.DOID)
	}
}

func testNoLossAbandoned(t *testing.T, p pair) {
	ctx := testContext(t)
	ops := newOps(200, 20)
	record(t, p.Store, ops...)
	// A worker claimed a batch and died (kill -9) before publishing it.
	abandoned := claim(t, p.Store, core.ClaimPending, 99, 50, time.Second, false)
	require.Len(t, abandoned, 50)
	startEngine(t, p.Store, p.Sink, fastEngine(t))
	got := p.readAll(t, ctx, len(ops))
	requireAll(t, got, ops)
	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(len(ops)), st.Counts[core.StatePublished])
}

func testNoLossOutage(t *testing.T, p pair) {
	ctx := testContext(t)
	ops := newOps(100, 10)
	record(t, p.Store, ops...)
	fs := newFaultSink(p.Sink)
	fs.down(400 * time.Millisecond)
	e := startEngine(t, p.Store, fs, fastEngine(t))
	got := p.readAll(t, ctx, len(ops))
	requireAll(t, got, ops)
	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(len(ops)), st.Counts[core.StatePublished])
	assert.Positive(t, e.Stats().Outages, "the engine saw the outage")
	for _, op := range ops {
		r, err := p.Store.Get(ctx, op.OpID)
		require.NoError(t, err)
		require.Equal(t, 1, r.Attempts, "an outage does not use up %s's attempts", op.OpID)
	}
}

func testNoPhantom(t *testing.T, p pair) {
	ctx := testContext(t)
	c := recorder(t, p.Store, nil)
	var kept, rolled []*core.Operation
	for i := 0; i < 20; i++ {
		op := NewOp(fmt.Sprintf("tx-%d", i%4), i)
		tx, err := p.DB.BeginTx(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, c.RecordTx(ctx, tx, op))
		if i%3 == 0 {
			require.NoError(t, tx.Rollback())
			rolled = append(rolled, op)
		} else {
			require.NoError(t, tx.Commit())
			kept = append(kept, op)
		}
	}
	startEngine(t, p.Store, p.Sink, fastEngine(t))
	got := p.readAll(t, ctx, len(kept))
	settled(t, ctx, p.Store)
	requireAll(t, got, kept)
	counts := countIDs(got)
	for _, op := range rolled {
		assert.Zero(t, counts[op.OpID], "rolled-back operation %s must never be published", op.OpID)
	}
}

func testDuplicatesKeyed(t *testing.T, p pair) {
	ctx := testContext(t)
	ops := newOps(40, 8)
	record(t, p.Store, ops...)
	// Worker A claims and publishes a batch, and dies before settling:
	// the only window in which a duplicate can arise.
	batch := claim(t, p.Store, core.ClaimPending, 7, 10, time.Second, false)
	msgs := make([]core.Message, len(batch))
	for i := range batch {
		m, err := core.NewMessage(&batch[i].Op, batch[i].Seq)
		require.NoError(t, err)
		msgs[i] = m
	}
	for _, err := range p.Sink.Publish(ctx, msgs) {
		require.NoError(t, err)
	}
	startEngine(t, p.Store, p.Sink, fastEngine(t))
	settled(t, ctx, p.Store)
	// Every operation is published, so the broker holds everything now;
	// the batch may be there twice (or once: a sink that remembers what it
	// delivered in this process need not send it again).
	got := p.readAll(t, ctx, len(ops))
	requireAll(t, got, ops)
	dups := 0
	payloads := map[string]string{}
	for _, r := range got {
		assert.Equal(t, r.ID, r.Headers[core.HeaderOpID], "every message carries its op_id")
		if prev, seen := payloads[r.ID]; seen {
			dups++
			assert.Equal(t, prev, string(r.Payload), "a duplicate is byte-identical, so consumers can drop it by op_id")
		}
		payloads[r.ID] = string(r.Payload)
	}
	assert.LessOrEqual(t, dups, len(batch), "duplicates are bounded by the abandoned batch")
	assert.Len(t, payloads, len(ops))
}

func testStrictOrder(t *testing.T, p pair) {
	ctx := testContext(t)
	ops := newOps(240, 12)
	fs := newFaultSink(p.Sink)
	c := recorder(t, p.Store, nil)
	require.NoError(t, c.Record(ctx, ops...))
	for i, op := range ops {
		if i%5 == 0 {
			fs.failFor(op.OpID, 2) // fails twice, then goes through
		}
	}
	cfg := fastEngine(t)
	cfg.StrictOrder = true
	cfg.BatchSize = 16
	for i := 0; i < 4; i++ {
		startEngine(t, p.storeFor(t, i), fs, cfg)
	}
	got := p.readAll(t, ctx, len(ops))
	requireAll(t, got, ops)
	want := map[string][]string{}
	for _, op := range ops {
		want[op.DOID] = append(want[op.DOID], op.OpID)
	}
	have := map[string][]string{}
	first := map[string]bool{}
	for _, r := range got {
		if !first[r.ID] {
			first[r.ID] = true
			have[r.Key] = append(have[r.Key], r.ID)
		}
	}
	for doid, w := range want {
		assert.Equal(t, w, have[doid], "operations on %s reach the sink in record order", doid)
	}
}

// storeFor returns worker i's store: its own handle when the harness can
// open one, as a separate process would have.
func (p pair) storeFor(t *testing.T, i int) core.Store {
	if i == 0 || p.Reopen == nil {
		return p.Store
	}
	return p.Reopen(t)
}

func testCluster(t *testing.T, p pair) {
	ctx := testContext(t)
	const n = 1000
	ops := newOps(n, 100)
	c := recorder(t, p.Store, nil)
	for i := 0; i < n; i += 100 {
		require.NoError(t, c.Record(ctx, ops[i:i+100]...))
	}
	cfg := fastEngine(t)
	cfg.BatchSize = 25
	// Leases long enough that none expires on a slow (-race) machine: the
	// test is about concurrent workers, not about expiry.
	cfg.Lease, cfg.PublishTimeout = time.Minute, 10*time.Second
	var engines []*core.Engine
	for i := 0; i < 4; i++ {
		engines = append(engines, startEngine(t, p.storeFor(t, i), p.Sink, cfg))
	}
	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(n), st.Counts[core.StatePublished])
	got := p.readAll(t, ctx, n)
	requireAll(t, got, ops)
	for id, k := range countIDs(got) {
		assert.Equal(t, 1, k, "operation %s published %d times", id, k)
	}
	var published, stale int64
	for _, e := range engines {
		s := e.Stats()
		published += s.Published
		stale += s.Stale
	}
	assert.Equal(t, int64(n), published, "the engines together settled each operation once")
	assert.Zero(t, stale, "no worker published what another held")
}

func testRetryDeadRequeue(t *testing.T, p pair) {
	ctx := testContext(t)
	ops := newOps(3, 3)
	record(t, p.Store, ops...)
	poison := ops[1]
	fs := newFaultSink(p.Sink)
	fs.failFor(poison.OpID, -1)
	cfg := fastEngine(t)
	cfg.MaxAttempts = 3
	cfg.BackoffBase = 150 * time.Millisecond
	cfg.BackoffMax = time.Second
	var mu sync.Mutex
	var deadEvents []core.DeadEvent
	cfg.OnDead = func(ev core.DeadEvent) {
		mu.Lock()
		defer mu.Unlock()
		deadEvents = append(deadEvents, ev)
	}
	startEngine(t, p.Store, fs, cfg)
	eventually(t, ctx, "the failing operation is dead", func() (bool, error) {
		r, err := p.Store.Get(ctx, poison.OpID)
		return r.State == core.StateDead, err
	})
	r, err := p.Store.Get(ctx, poison.OpID)
	require.NoError(t, err)
	assert.Equal(t, 3, r.Attempts, "dead after MaxAttempts")
	assert.Contains(t, r.LastError, "injected failure")
	assert.Equal(t, core.StatusDead, r.State.Status())
	offers := fs.offers(poison.OpID)
	require.Len(t, offers, 3, "offered once per attempt")
	for k := 1; k < len(offers); k++ {
		minGap := time.Duration(float64(cfg.BackoffBase<<(k-1)) * (1 - core.BackoffJitterDefault))
		assert.GreaterOrEqual(t, offers[k].Sub(offers[k-1]), minGap, "attempt %d waited for its backoff", k+1)
	}
	// OnDead runs right after the settle that made it dead commits.
	events := func() []core.DeadEvent {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(deadEvents)
	}
	eventually(t, ctx, "OnDead reports it", func() (bool, error) { return len(events()) > 0, nil })
	evs := events()
	require.Len(t, evs, 1, "OnDead reports it once")
	assert.Equal(t, poison.OpID, evs[0].OpID)

	fs.failFor(poison.OpID, 0)
	n, err := p.Store.Requeue(ctx, core.RequeueParams{OpIDs: []string{poison.OpID}})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	got := p.readAll(t, ctx, len(ops))
	requireAll(t, got, ops)
	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(len(ops)), st.Counts[core.StatePublished], "published after requeue")
}

func testPoison(t *testing.T, p pair) {
	ctx := testContext(t)
	ops := newOps(300, 30)
	record(t, p.Store, ops...)
	poison := ops[0] // at the head of the queue
	fs := newFaultSink(p.Sink)
	fs.failFor(poison.OpID, -1)
	cfg := fastEngine(t)
	cfg.MaxAttempts = 4
	startEngine(t, p.Store, fs, cfg)
	got := p.readAll(t, ctx, len(ops)-1)
	requireAll(t, got, ops[1:])
	assert.Zero(t, countIDs(got)[poison.OpID])
	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(len(ops)-1), st.Counts[core.StatePublished])
	assert.Equal(t, int64(1), st.Counts[core.StateDead])
}

func testBadInputNotPublished(t *testing.T, p pair) {
	ctx := testContext(t)
	c, err := core.NewClient(p.Store, p.Sink, core.Config{})
	require.NoError(t, err)
	good := NewOp("good", 1)
	bad := NewOp("bad", 2)
	bad.DOID = "10.1000/" + strings.Repeat("x", core.MaxDOIDLen)
	var ve *core.ValidationError
	require.ErrorAs(t, c.Record(ctx, good, bad), &ve)
	assert.Equal(t, "doid", ve.Field)
	require.NoError(t, c.Record(ctx, NewOp("after", 3)))
	startEngine(t, p.Store, p.Sink, fastEngine(t))
	got := p.readAll(t, ctx, 1)
	assert.Len(t, got, 1, "only the valid later operation is published")
	// PublishOnly refuses bad input before the sink too.
	po, err := core.NewClient(nil, p.Sink, core.Config{Strategy: core.PublishOnly})
	require.NoError(t, err)
	require.ErrorAs(t, po.Record(ctx, bad), &ve)
}

func testWake(t *testing.T, p pair) {
	ctx := testContext(t)
	cfg := fastEngine(t)
	if p.Store.Capabilities().ListenNotify {
		// Polls are an hour apart: only the commit notification can
		// deliver in time.
		cfg.PollInterval, cfg.RetryPoll = time.Hour, time.Hour
	} else {
		cfg.PollInterval = 50 * time.Millisecond
	}
	startEngine(t, p.Store, p.Sink, cfg)
	time.Sleep(200 * time.Millisecond) // let the engine go idle
	c := recorder(t, p.Store, nil)
	tx, err := p.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	op := NewOp("wake", 1)
	require.NoError(t, c.RecordTx(ctx, tx, op))
	require.NoError(t, tx.Commit())
	got := p.readAll(t, ctx, 1)
	requireAll(t, got, []*core.Operation{op})

	// A client and its engine in one process: Record wakes the engine
	// directly, whatever the database can do.
	cl, err := core.NewClient(p.Store, p.Sink, core.Config{Engine: core.EngineConfig{Logger: testLogger(t),
		PollInterval: time.Hour, RetryPoll: time.Hour, Lease: 2 * time.Second, PublishTimeout: time.Second}})
	require.NoError(t, err)
	e, err := cl.Engine()
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	defer e.Stop(ctx)
	time.Sleep(100 * time.Millisecond)
	op2 := NewOp("wake", 2)
	require.NoError(t, cl.Record(ctx, op2))
	got = p.readAll(t, ctx, 2)
	requireAll(t, got, []*core.Operation{op, op2})
}

func testStop(t *testing.T, p pair) {
	ctx := testContext(t)
	ops := newOps(120, 12)
	record(t, p.Store, ops...)
	cfg := fastEngine(t)
	cfg.BatchSize = 10
	cfg.Workers = 2
	slow := &delaySink{Sink: p.Sink, delay: 150 * time.Millisecond}
	e, err := core.NewEngine(p.Store, slow, cfg)
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	eventually(t, ctx, "publishing is under way", func() (bool, error) { return e.Stats().Published > 0, nil })
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	require.NoError(t, e.Stop(stopCtx), "a graceful stop finishes in time")
	cancel()
	st, err := p.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Zero(t, st.Counts[core.StateInFlight], "nothing is left in flight after a graceful stop")

	// Out of time: publishes are aborted and their claims released.
	slow.set(5 * time.Second)
	e2, err := core.NewEngine(p.Store, slow, cfg)
	require.NoError(t, err)
	require.NoError(t, e2.Start(ctx))
	eventually(t, ctx, "a slow publish is in flight", func() (bool, error) {
		// Inside the sink: a batch merely claimed when Stop comes is
		// released at once, without a publish to abort.
		return slow.inDelay() > 0, nil
	})
	stopCtx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
	assert.Error(t, e2.Stop(stopCtx), "Stop reports that it ran out of time")
	cancel()
	st, err = p.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Zero(t, st.Counts[core.StateInFlight], "aborted claims are released, not left to expire")

	slow.set(0)
	startEngine(t, p.Store, slow, cfg)
	got := p.readAll(t, ctx, len(ops))
	requireAll(t, got, ops)
}

// delaySink delays every publish, honouring ctx.
type delaySink struct {
	core.Sink
	mu      sync.Mutex
	delay   time.Duration
	waiting int // publishes inside their delay now
}

// inDelay reports how many publishes are waiting out their delay.
func (d *delaySink) inDelay() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waiting
}

func (d *delaySink) set(delay time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delay = delay
}

func (d *delaySink) Publish(ctx context.Context, msgs []core.Message) []error {
	d.mu.Lock()
	delay := d.delay
	d.waiting++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.waiting--
		d.mu.Unlock()
	}()
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return core.FailAll(len(msgs), ctx.Err())
	}
	return d.Sink.Publish(ctx, msgs)
}
