package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// RunPair runs the guarantees end to end: a store, the real engine and a
// sink, with what arrives read back through the broker's consumer. Each
// subtest is named after the guarantee it proves and fails when the
// guarantee breaks. Every engine publishes through a guard that fails the
// test if two engines publish one partition's stream at once, or if a
// first send goes out below a position the sink already accepted in its
// stream.
func RunPair(t *testing.T, newStore NewStoreFunc, newSink NewSinkFunc) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, p *pair)
	}{
		{"NoLossAcrossAbruptStop", testNoLossAbruptStop},
		{"NoLossAcrossSinkOutage", testNoLossOutage},
		{"NoPhantomAfterRollback", testNoPhantom},
		{"NoDuplicatesWithoutFailures", testNoDuplicates},
		{"StrictOrderPerObject", testStrictOrder},
		{"OrderPerObject", testOrderNonStrict},
		{"ClusterSharesPartitions", testCluster},
		{"PoisonIsolated", testPoison},
		{"DeadRequeue", testDeadRequeuePair},
		{"BadInputNeverStoredNorPublished", testBadInputNotPublished},
		{"WakeOnRecord", testWake},
		{"WakeOnlyPartitionsWithNewPositions", testWakeOnlyTouched},
		{"GracefulStop", testGracefulStop},
		{"Repartition", testRepartition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newPair(t, newStore(t), newSink(t)))
		})
	}
}

// pair is a store and a sink for one test. Engines publish to sink: the
// guard, then the fault injector, then the harness's sink.
type pair struct {
	StoreHarness
	read  func(ctx context.Context, n int) ([]Received, error)
	fault *faultSink
	guard *guardSink
	sink  core.Sink
}

func newPair(t *testing.T, sh StoreHarness, kh SinkHarness) *pair {
	f := newFaultSink(kh.Sink)
	g := newGuardSink(f)
	// Registered before any engine's cleanup, so it runs after the
	// engines stopped.
	t.Cleanup(func() { g.check(t) })
	return &pair{StoreHarness: sh, read: kh.Read, fault: f, guard: g, sink: g}
}

// storeFor returns engine i's store: its own handle when the harness can
// open one, as a separate process would have.
func (p *pair) storeFor(t *testing.T, i int) core.Store {
	if i == 0 || p.Reopen == nil {
		return p.Store
	}
	return p.Reopen(t)
}

// waitFor reads the broker until every operation of ops arrived and
// returns all it holds then.
func (p *pair) waitFor(t *testing.T, ctx context.Context, ops ...*core.Operation) []Received {
	t.Helper()
	n := len(ops)
	for {
		got, err := p.read(ctx, n)
		counts := countIDs(got)
		missing := 0
		for _, op := range ops {
			if counts[op.OpID] == 0 {
				missing++
			}
		}
		require.NoError(t, err, "waiting for %d operations to reach the sink: %d have not", len(ops), missing)
		if missing == 0 {
			return got
		}
		n = len(got) + missing
	}
}

// readSettled reads everything the broker holds once the store is
// settled: every operation was accepted by the sink before its cursor
// advanced, so nothing more is on its way.
func (p *pair) readSettled(t *testing.T, ctx context.Context, want int) []Received {
	t.Helper()
	got, err := p.read(ctx, want)
	require.NoError(t, err, "reading %d messages", want)
	return got
}

// scanAll returns every stored operation by op_id.
func scanAll(t *testing.T, s core.Store) map[string]core.Record {
	t.Helper()
	ctx := testContext(t)
	out := map[string]core.Record{}
	for after := int64(0); ; {
		page, err := s.Scan(ctx, core.ScanParams{AfterSeq: after, Limit: 1000})
		require.NoError(t, err)
		if len(page) == 0 {
			return out
		}
		for _, r := range page {
			out[r.Op.OpID] = r
		}
		after = page[len(page)-1].Seq
	}
}

// exactlyOnce requires every operation of ops to have arrived exactly
// once, and nothing else.
func exactlyOnce(t *testing.T, got []Received, ops []*core.Operation) {
	t.Helper()
	counts := countIDs(got)
	want := map[string]bool{}
	for _, op := range ops {
		want[op.OpID] = true
		assert.Equal(t, 1, counts[op.OpID], "operation %s (%s) reached the sink exactly once", op.OpID, op.DOID)
	}
	for id, n := range counts {
		if !want[id] {
			t.Errorf("operation %s reached the sink %d times but was not expected there", id, n)
		}
	}
}

// atLeastOnce requires every operation of ops to have arrived.
func atLeastOnce(t *testing.T, got []Received, ops []*core.Operation) {
	t.Helper()
	counts := countIDs(got)
	for _, op := range ops {
		assert.Positive(t, counts[op.OpID], "operation %s (%s) reached the sink", op.OpID, op.DOID)
	}
}

// checkMessages checks what a consumer read against the store: each
// message is keyed by its DOID, carries its op_id and its position as
// headers, and its payload is the stored operation's sealed encoding, so
// a copy is byte-identical and consumers drop it by op_id.
func checkMessages(t *testing.T, got []Received, stored map[string]core.Record) {
	t.Helper()
	bad := 0
	for _, r := range got {
		rec, ok := stored[r.ID]
		if !assert.True(t, ok, "message %s is a stored operation", r.ID) {
			continue
		}
		want, err := rec.Op.AppendSealed(nil)
		require.NoError(t, err)
		okAll := assert.Equal(t, rec.Op.DOID, r.Key, "%s: the key is the DOID", r.ID) &&
			assert.Equal(t, r.ID, r.Headers[core.HeaderOpID], "%s carries its op_id", r.ID) &&
			assert.Equal(t, strconv.FormatInt(rec.LeafIndex, 10), r.Headers[core.HeaderPosition], "%s carries its position", r.ID) &&
			assert.True(t, bytes.Equal(want, r.Payload), "%s: the payload is the stored operation, sealed", r.ID)
		if !okAll {
			if bad++; bad == 5 {
				t.Fatal("stopping after 5 bad messages")
			}
		}
	}
}

// orderPerObject requires the first copies of ops to have reached the
// sink in record order per DOID.
func orderPerObject(t *testing.T, got []Received, ops []*core.Operation) {
	t.Helper()
	want := map[string][]string{}
	for _, op := range ops {
		want[op.DOID] = append(want[op.DOID], op.OpID)
	}
	have := map[string][]string{}
	seen := map[string]bool{}
	for _, r := range got {
		if !seen[r.ID] {
			seen[r.ID] = true
			have[r.Key] = append(have[r.Key], r.ID)
		}
	}
	for doid, w := range want {
		assert.Equal(t, w, have[doid], "operations on %s reach the sink in record order", doid)
	}
}

// without returns ops minus the given ones.
func without(ops []*core.Operation, drop ...*core.Operation) []*core.Operation {
	out := make([]*core.Operation, 0, len(ops))
	for _, op := range ops {
		if !slices.Contains(drop, op) {
			out = append(out, op)
		}
	}
	return out
}

// waitOwned waits until the engines own every partition between them,
// each its fair share's worth (at least one when there are partitions
// enough for every member), and the store agrees: each partition's owner
// is a member of a live engine, and each engine owns as many as it
// reports. nodes[i] is engines[i]'s Node; members of an engine with
// several workers are Node/0, Node/1, ….
func waitOwned(t *testing.T, ctx context.Context, s core.Store, engines []*core.Engine, nodes []string) {
	t.Helper()
	members := 0
	for _, e := range engines {
		members += e.Config().Workers
	}
	eventually(t, ctx, fmt.Sprintf("%d engines share the partitions", len(engines)), func() (bool, error) {
		parts, err := s.Partitions(ctx)
		if err != nil {
			return false, err
		}
		owned := make([]int64, len(engines))
		for _, p := range parts {
			i := slices.IndexFunc(nodes, func(n string) bool { return p.Owner == n || strings.HasPrefix(p.Owner, n+"/") })
			if i < 0 {
				return false, nil // free, or held by an engine that stopped
			}
			owned[i]++
		}
		for i, e := range engines {
			n := e.Stats().Partitions
			if n != owned[i] || len(parts) >= members && n < int64(e.Config().Workers) {
				return false, nil
			}
		}
		return true, nil
	})
}

func testNoLossAbruptStop(t *testing.T, p *pair) {
	ctx := testContext(t)
	P := len(partitions(t, p.Store))
	ops := newOps(300, 30)
	record(t, p.Store, ops...)
	// The first engine's cursor advances never commit: each batch it
	// publishes reaches the sink and then waits, as if the relay were
	// killed between the sink's ack and the advance.
	stuck := &stuckStore{Store: p.Store, blocked: make(chan struct{}, 1)}
	cfg := fastEngine(t)
	cfg.BatchSize = 20
	e1, err := core.NewEngine(stuck, p.sink, cfg)
	require.NoError(t, err)
	require.NoError(t, e1.Start(ctx))
	t.Cleanup(func() { _ = e1.Stop(context.Background()) }) // at once if the test ends early
	testenv.Receive(t, stuck.blocked, "a batch the sink accepted waits for its cursor advance")
	abrupt, cancel := context.WithCancel(ctx)
	cancel()
	t.Logf("abrupt stop: %v", e1.Stop(abrupt)) // calls in flight aborted, partitions kept until their leases expire

	// Recorded while no relay runs.
	more := make([]*core.Operation, 100)
	for i := range more {
		more[i] = NewOp(fmt.Sprintf("obj-%d", i%30), 1000+i)
	}
	record(t, p.Store, more...)
	all := append(slices.Clone(ops), more...)

	startEngine(t, p.Store, p.sink, cfg)
	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(len(all)), st.Counts[core.StatePublished], "every operation is published")
	got := p.readSettled(t, ctx, len(all))
	atLeastOnce(t, got, all)
	checkMessages(t, got, scanAll(t, p.Store))
	extra := 0
	for id, n := range countIDs(got) {
		assert.LessOrEqual(t, n, 2, "operation %s: only a batch whose advance was lost goes out again, once", id)
		extra += n - 1
	}
	assert.LessOrEqual(t, extra, P*cfg.BatchSize, "copies are bounded by the batches in flight when the relay died")
}

// stuckStore is a store whose cursor advances never commit: Advance
// reports on blocked and waits until its context ends.
type stuckStore struct {
	core.Store
	blocked chan struct{}
}

// Advance implements core.Store.
func (s *stuckStore) Advance(ctx context.Context, _ core.AdvanceParams) error {
	select {
	case s.blocked <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

func testNoLossOutage(t *testing.T, p *pair) {
	ctx := testContext(t)
	ops := newOps(100, 10)
	record(t, p.Store, ops...)
	p.fault.setDown(true)
	e := startEngine(t, p.Store, p.sink, fastEngine(t))
	eventually(t, ctx, "the engine tried the sink three times during the outage", func() (bool, error) {
		return p.fault.callsWhileDown() >= 3, nil
	})
	_, down := e.SinkDown()
	assert.True(t, down, "the engine knows the sink is down")
	st, err := p.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Zero(t, st.Counts[core.StateRetrying]+st.Counts[core.StateDead], "an outage puts nothing in the retry table")
	assert.Zero(t, e.Stats().Retried+e.Stats().Dead)

	p.fault.setDown(false)
	st = settled(t, ctx, p.Store)
	assert.Equal(t, int64(len(ops)), st.Counts[core.StatePublished])
	got := p.readSettled(t, ctx, len(ops))
	exactlyOnce(t, got, ops)
	checkMessages(t, got, scanAll(t, p.Store))
	for _, op := range ops {
		r := get(t, p.Store, op.OpID)
		require.Equal(t, core.StatePublished, r.State)
		require.Zero(t, r.Attempts, "an outage does not use up %s's attempts", op.OpID)
	}
	assert.Positive(t, e.Stats().SinkOutages, "the engine counted the outage")
	eventually(t, ctx, "the engine knows the sink is back", func() (bool, error) {
		_, down := e.SinkDown()
		return !down, nil
	})
}

func testNoPhantom(t *testing.T, p *pair) {
	ctx := testContext(t)
	c := recorder(t, p.Store, nil)
	var kept, rolled []*core.Operation
	for i := 0; i < 30; i++ {
		op := NewOp(fmt.Sprintf("tx-%d", i%4), i)
		var tx interface {
			core.Execer
			Commit() error
			Rollback() error
		}
		var err error
		if i%2 == 0 { // bun.Tx
			tx, err = p.DB.BeginTx(ctx, nil)
		} else { // *sql.Tx
			tx, err = p.DB.DB.BeginTx(ctx, nil)
		}
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
	startEngine(t, p.Store, p.sink, fastEngine(t))
	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(len(kept)), st.Counts[core.StatePublished])
	assert.Equal(t, int64(len(kept)), st.TreeSize, "rolled-back operations are never sequenced")
	got := p.readSettled(t, ctx, len(kept))
	exactlyOnce(t, got, kept)
	for _, op := range rolled {
		_, err := p.Store.Get(ctx, op.OpID)
		assert.ErrorIs(t, err, core.ErrNotFound, "rolled-back operation %s is not stored", op.OpID)
	}
}

// testNoDuplicates: with nothing killed, engines that join one after the
// other (so partitions move while operations flow), one of them with
// several workers, send every operation exactly once while writers
// record under load. A copy can only come from a relay dying between the
// sink's ack and its cursor advance, or from a lease that ran out; here
// no relay dies and the leases are long.
func testNoDuplicates(t *testing.T, p *pair) {
	ctx := testContext(t)
	const (
		writers = 4
		batch   = 10
		most    = 100 // batches per writer at most
		backlog = 200 // writers wait while more operations than this are unsettled
	)
	var (
		mu       sync.Mutex
		recorded []*core.Operation
		balanced atomic.Bool
		wg       sync.WaitGroup
	)
	errs := make(chan error, writers)
	for w := range writers {
		s := p.storeFor(t, w%2)
		c := recorder(t, s, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			after := 0
			for b := 0; b < most && after < 10; b++ {
				if err := backlogBelow(ctx, s, backlog); err != nil {
					errs <- err
					return
				}
				ops := make([]*core.Operation, batch)
				for k := range ops {
					ops[k] = NewOp(fmt.Sprintf("w%d-obj-%d", w, k%5), w*100000+b*batch+k)
				}
				var err error
				if w%2 == 0 {
					err = c.Record(ctx, ops...)
				} else {
					// Through the caller's transaction.
					tx, e := p.DB.BeginTx(ctx, nil)
					if err = e; err == nil {
						if err = c.RecordTx(ctx, tx, ops...); err == nil {
							err = tx.Commit()
						} else {
							_ = tx.Rollback()
						}
					}
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				recorded = append(recorded, ops...)
				mu.Unlock()
				if balanced.Load() {
					after++
				}
			}
		}()
	}

	nodes := []string{"dup-0", "dup-1", "dup-2"}
	workers := []int{1, 3, 2}
	var engines []*core.Engine
	for i, node := range nodes {
		cfg := clusterEngine(t, node)
		cfg.Workers = workers[i]
		cfg.BatchSize = 25
		engines = append(engines, startEngine(t, p.storeFor(t, i), p.sink, cfg))
		waitOwned(t, ctx, p.Store, engines, nodes[:i+1])
		if i == 0 {
			eventually(t, ctx, "the first engine publishes", func() (bool, error) { return engines[0].Stats().Published > 0, nil })
		}
	}
	balanced.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(len(recorded)), st.Counts[core.StatePublished])
	got := p.readSettled(t, ctx, len(recorded))
	exactlyOnce(t, got, recorded)
	checkMessages(t, got, scanAll(t, p.Store))
	var published int64
	for _, e := range engines {
		published += e.Stats().Published
	}
	assert.Equal(t, int64(len(recorded)), published, "the engines together sent each operation once")
	t.Logf("%d operations", len(recorded))
}

// backlogBelow waits until fewer than n operations of s are unsettled.
func backlogBelow(ctx context.Context, s core.Store, n int64) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := s.Stats(ctx)
		if err != nil || unsettled(st) < n {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the backlog stayed at %d or more: %w", n, ctx.Err())
		case <-tick.C:
		}
	}
}

// testStrictOrder: in strict mode an operation that fails holds back the
// later operations of its DOID until it is published or dead, across
// engines, while other DOIDs keep flowing.
func testStrictOrder(t *testing.T, p *pair) {
	ctx := testContext(t)
	ops := newOps(240, 12)
	blocked := make([]*core.Operation, 5)  // its head fails until the test lets it through
	deadHead := make([]*core.Operation, 4) // its head fails for good
	for i := range blocked {
		blocked[i] = NewOp("blocked", 500+i)
	}
	for i := range deadHead {
		deadHead[i] = NewOp("dead-head", 600+i)
	}
	var all []*core.Operation
	for c := 0; c < 6; c++ {
		chunk := slices.Clone(ops[c*40 : (c+1)*40])
		if c < len(blocked) {
			chunk = slices.Insert(chunk, 3, blocked[c])
		}
		if c < len(deadHead) {
			chunk = slices.Insert(chunk, 7, deadHead[c])
		}
		record(t, p.Store, chunk...)
		all = append(all, chunk...)
	}
	for i, op := range ops {
		if i%5 == 0 {
			p.fault.failFor(op.OpID, 2) // fails twice, then goes through
		}
	}
	p.fault.failFor(blocked[0].OpID, -1)
	p.fault.failPermanently(deadHead[0].OpID, true)

	nodes := []string{"strict-0", "strict-1", "strict-2"}
	for i, node := range nodes {
		cfg := clusterEngine(t, node)
		cfg.StrictOrder = true
		cfg.BatchSize = 16
		cfg.Workers = 1 + i%2
		cfg.MaxAttempts = 1 << 30 // the blocked head never goes dead
		startEngine(t, p.storeFor(t, i), p.sink, cfg)
	}
	flowing := without(all, append(slices.Clone(blocked), deadHead[0])...)
	got := p.waitFor(t, ctx, flowing...)
	counts := countIDs(got)
	for _, op := range blocked {
		assert.Zero(t, counts[op.OpID], "%s waits behind its failing head", op.OpID)
	}
	assert.GreaterOrEqual(t, len(p.fault.offers(blocked[0].OpID)), 2, "the blocked head was tried")

	p.fault.failFor(blocked[0].OpID, 0)
	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(1), st.Counts[core.StateDead], "only the head that fails for good is dead")
	assert.Equal(t, core.StateDead, get(t, p.Store, deadHead[0].OpID).State)
	got = p.readSettled(t, ctx, len(all)-1)
	published := without(all, deadHead[0])
	exactlyOnce(t, got, published)
	orderPerObject(t, got, published)
	checkMessages(t, got, scanAll(t, p.Store))
}

// testOrderNonStrict: without strict mode and without failures, each
// object's operations still reach the sink in record order, across
// engines that rebalance while operations are recorded.
func testOrderNonStrict(t *testing.T, p *pair) {
	ctx := testContext(t)
	ops := newOps(300, 20)
	// Engines join while operations are recorded: partitions move
	// between them mid-stream.
	nodes := []string{"order-0", "order-1", "order-2"}
	var engines []*core.Engine
	for i, node := range nodes {
		cfg := clusterEngine(t, node)
		cfg.BatchSize = 16
		cfg.Workers = 1 + i%2
		engines = append(engines, startEngine(t, p.storeFor(t, i), p.sink, cfg))
		if i > 0 {
			waitOwned(t, ctx, p.Store, engines, nodes[:i+1])
		}
		for k := i * 100; k < (i+1)*100; k += 20 {
			record(t, p.Store, ops[k:k+20]...)
		}
	}
	settled(t, ctx, p.Store)
	got := p.readSettled(t, ctx, len(ops))
	exactlyOnce(t, got, ops)
	orderPerObject(t, got, ops)
	checkMessages(t, got, scanAll(t, p.Store))
}

// testCluster: engines on one store share its partitions, each partition
// published by one engine at a time (the guard fails the test if two
// publish one stream at once); one that joins gets partitions, one that
// stops gives them up, and every operation arrives once.
func testCluster(t *testing.T, p *pair) {
	ctx := testContext(t)
	needPartitions(t, p.Store, 4)
	nodes := []string{"node-0", "node-1", "node-2"}
	var engines []*core.Engine
	for i, node := range nodes {
		engines = append(engines, startEngine(t, p.storeFor(t, i), p.sink, clusterEngine(t, node)))
	}
	var all []*core.Operation
	batch := func(k int) {
		ops := make([]*core.Operation, 150)
		for i := range ops {
			ops[i] = NewOp(fmt.Sprintf("obj-%d", i%60), k*1000+i)
		}
		record(t, p.Store, ops...)
		all = append(all, ops...)
	}
	batch(0)
	waitOwned(t, ctx, p.Store, engines, nodes)
	batch(1)

	// A relay joins: it gets its share.
	nodes = append(nodes, "node-3")
	engines = append(engines, startEngine(t, p.storeFor(t, 3), p.sink, clusterEngine(t, "node-3")))
	waitOwned(t, ctx, p.Store, engines, nodes)
	batch(2)

	// A relay stops: it gives its partitions back, the others take them.
	require.NoError(t, engines[0].Stop(ctx), "a graceful stop")
	assert.Zero(t, engines[0].Stats().Partitions, "a stopped engine owns nothing")
	waitOwned(t, ctx, p.Store, engines[1:], nodes[1:])
	batch(3)

	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(len(all)), st.Counts[core.StatePublished])
	got := p.readSettled(t, ctx, len(all))
	exactlyOnce(t, got, all)
	checkMessages(t, got, scanAll(t, p.Store))
}

// deadEvents collects OnDead events.
type deadEvents struct {
	mu  sync.Mutex
	evs []core.DeadEvent
}

func (d *deadEvents) add(ev core.DeadEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.evs = append(d.evs, ev)
}

func (d *deadEvents) get() []core.DeadEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.evs)
}

// testPoison: an operation that always fails is retried with exponential
// backoff, goes dead after MaxAttempts, and the rest keep flowing, its
// own object's later operations too.
func testPoison(t *testing.T, p *pair) {
	ctx := testContext(t)
	ops := newOps(300, 30)
	record(t, p.Store, ops...)
	poison := ops[0] // at the head of its partition and of its object
	p.fault.failFor(poison.OpID, -1)
	cfg := fastEngine(t)
	cfg.MaxAttempts = 4
	cfg.BackoffBase = 50 * time.Millisecond
	cfg.BackoffMax = time.Second
	var dead deadEvents
	cfg.OnDead = dead.add
	e := startEngine(t, p.Store, p.sink, cfg)

	p.waitFor(t, ctx, ops[1:]...)
	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(len(ops)-1), st.Counts[core.StatePublished])
	assert.Equal(t, int64(1), st.Counts[core.StateDead])
	r := get(t, p.Store, poison.OpID)
	assert.Equal(t, core.StateDead, r.State)
	assert.Equal(t, cfg.MaxAttempts, r.Attempts, "dead after MaxAttempts")
	assert.Contains(t, r.LastError, "injected failure")
	offers := p.fault.offers(poison.OpID)
	require.Len(t, offers, cfg.MaxAttempts, "offered once per attempt")
	for k := 1; k < len(offers); k++ {
		minGap := time.Duration(float64(cfg.BackoffBase<<(k-1)) * (1 - core.BackoffJitterDefault))
		assert.GreaterOrEqual(t, offers[k].Sub(offers[k-1]), minGap, "attempt %d waited for its backoff", k+1)
	}
	eventually(t, ctx, "OnDead reports the poison", func() (bool, error) { return len(dead.get()) > 0, nil })
	evs := dead.get()
	require.Len(t, evs, 1, "OnDead reports it once")
	assert.Equal(t, poison.OpID, evs[0].OpID)
	assert.Equal(t, cfg.MaxAttempts, evs[0].Attempts)
	assert.Equal(t, int64(1), e.Stats().Dead)

	got := p.readSettled(t, ctx, len(ops)-1)
	exactlyOnce(t, got, ops[1:])
	checkMessages(t, got, scanAll(t, p.Store))
}

// testDeadRequeuePair: an operation dead after MaxAttempts and one dead at
// once from a permanent error are listed, and once requeued they are
// published.
func testDeadRequeuePair(t *testing.T, p *pair) {
	ctx := testContext(t)
	ops := newOps(6, 3)
	record(t, p.Store, ops...)
	retried, permanent := ops[1], ops[4]
	p.fault.failFor(retried.OpID, -1)
	p.fault.failPermanently(permanent.OpID, true)
	cfg := fastEngine(t)
	cfg.MaxAttempts = 3
	var dead deadEvents
	cfg.OnDead = dead.add
	startEngine(t, p.Store, p.sink, cfg)

	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(2), st.Counts[core.StateDead])
	r := get(t, p.Store, retried.OpID)
	assert.Equal(t, core.StateDead, r.State)
	assert.Equal(t, 3, r.Attempts, "dead after MaxAttempts")
	r = get(t, p.Store, permanent.OpID)
	assert.Equal(t, core.StateDead, r.State)
	assert.Equal(t, 1, r.Attempts, "a permanent error is dead at once")
	assert.Contains(t, r.LastError, "permanent")
	assert.Len(t, p.fault.offers(permanent.OpID), 1, "a permanent error is not retried")
	list, err := p.Store.ListDead(ctx, core.ListParams{})
	require.NoError(t, err)
	assert.Equal(t, []string{retried.OpID, permanent.OpID}, opIDs(list))
	eventually(t, ctx, "OnDead reports both", func() (bool, error) { return len(dead.get()) >= 2, nil })
	assert.Len(t, dead.get(), 2)

	p.fault.failFor(retried.OpID, 0)
	p.fault.failPermanently(permanent.OpID, false)
	n, err := p.Store.Requeue(ctx, core.RequeueParams{OpIDs: []string{retried.OpID}})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	p.waitFor(t, ctx, retried)
	n, err = p.Store.Requeue(ctx, core.RequeueParams{All: true})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	st = settled(t, ctx, p.Store)
	assert.Equal(t, int64(len(ops)), st.Counts[core.StatePublished], "published after requeue")
	got := p.readSettled(t, ctx, len(ops))
	exactlyOnce(t, got, ops)
	checkMessages(t, got, scanAll(t, p.Store))
}

func testBadInputNotPublished(t *testing.T, p *pair) {
	ctx := testContext(t)
	c, err := core.NewClient(p.Store, p.sink, core.Config{})
	require.NoError(t, err)
	good, bad := NewOp("good", 1), NewOp("bad", 2)
	bad.DOID = "10.1000/" + strings.Repeat("x", core.MaxDOIDLen)
	var ve *core.ValidationError
	require.ErrorAs(t, c.Record(ctx, good, bad), &ve)
	assert.Equal(t, "doid", ve.Field)
	assert.Equal(t, 1, ve.Index)
	// In the caller's transaction, which then commits.
	good2 := NewOp("good", 3)
	tx, err := p.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.ErrorAs(t, c.RecordTx(ctx, tx, good2, bad), &ve)
	require.NoError(t, tx.Commit())
	// PublishOnly refuses it before the sink.
	po, err := core.NewClient(nil, p.sink, core.Config{Strategy: core.PublishOnly})
	require.NoError(t, err)
	require.ErrorAs(t, po.Record(ctx, NewOp("good", 4), bad), &ve)

	after := NewOp("after", 5)
	require.NoError(t, c.Record(ctx, after))
	startEngine(t, p.Store, p.sink, fastEngine(t))
	st := settled(t, ctx, p.Store)
	assert.Equal(t, int64(1), st.TreeSize, "only the valid later operation is stored")
	stored := scanAll(t, p.Store)
	assert.Len(t, stored, 1, "nothing of a refused batch is stored")
	assert.Contains(t, stored, after.OpID)
	got := p.readSettled(t, ctx, 1)
	exactlyOnce(t, got, []*core.Operation{after})
}

// plainStore hides a store's commit notifications (core.Notifier and
// ListenNotify), so an engine over it learns of new operations only from
// its polls and from Record.
type plainStore struct{ core.Store }

// Capabilities implements core.Store.
func (s plainStore) Capabilities() core.Capabilities {
	c := s.Store.Capabilities()
	c.ListenNotify = false
	return c
}

// testWake: with polls an hour apart, an operation is published at once
// because something wakes the engine: the store's commit notification
// (ListenNotify), and, on every store, Record on a client whose engine it
// is.
func testWake(t *testing.T, p *pair) {
	ctx := testContext(t)
	P := int64(len(partitions(t, p.Store)))
	cfg := fastEngine(t)
	cfg.PollInterval, cfg.RetryPoll = time.Hour, time.Hour
	// Two operations on one object: the second finds the sequencer and
	// its partition's publisher idle after the first.
	if p.Store.Capabilities().ListenNotify {
		e, err := core.NewEngine(p.Store, p.sink, cfg)
		require.NoError(t, err)
		require.NoError(t, e.Start(ctx))
		eventually(t, ctx, "the engine owns every partition", func() (bool, error) { return e.Stats().Partitions == P, nil })
		c := recorder(t, p.Store, nil)
		for i := range 2 {
			op := NewOp("wake-notify", i)
			tx, err := p.DB.BeginTx(ctx, nil)
			require.NoError(t, err)
			require.NoError(t, c.RecordTx(ctx, tx, op))
			require.NoError(t, tx.Commit())
			p.waitFor(t, ctx, op)
		}
		require.NoError(t, e.Stop(ctx))
	}

	cl, err := core.NewClient(plainStore{p.Store}, p.sink, core.Config{Engine: cfg})
	require.NoError(t, err)
	e, err := cl.Engine()
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.Patience(t))
		defer cancel()
		_ = e.Stop(ctx)
	})
	eventually(t, ctx, "the engine owns every partition", func() (bool, error) { return e.Stats().Partitions == P, nil })
	for i := range 2 {
		op := NewOp("wake", i)
		require.NoError(t, cl.Record(ctx, op))
		p.waitFor(t, ctx, op)
	}
}

// readCounter counts ReadPartition calls per partition; it keeps the
// store's commit notifications (core.Notifier), if any.
type readCounter struct {
	core.Store
	mu    sync.Mutex
	reads map[int]int
}

// ReadPartition implements core.Store.
func (r *readCounter) ReadPartition(ctx context.Context, p core.ReadParams) ([]core.Record, error) {
	r.mu.Lock()
	r.reads[p.Part]++
	r.mu.Unlock()
	return r.Store.ReadPartition(ctx, p)
}

// Subscribe implements core.Notifier when the store does.
func (r *readCounter) Subscribe(ctx context.Context) (<-chan struct{}, error) {
	if n, ok := r.Store.(core.Notifier); ok {
		return n.Subscribe(ctx)
	}
	return nil, errors.New("conformance: the store has no commit notifications")
}

func (r *readCounter) snapshot() map[int]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.reads)
}

// testWakeOnlyTouched: after the sequencer gives positions, only the
// publishers of the partitions that received them read their partition,
// whatever else wakes the engine (on stores with commit notifications,
// each record and each append notifies). Waking every publisher costs a
// read per partition per append; at a steady 1,000 operations a second
// that was most of a relay's work and of its commit → ack latency.
func testWakeOnlyTouched(t *testing.T, p *pair) {
	ctx := testContext(t)
	st := &readCounter{Store: p.Store, reads: map[int]int{}}
	parts := partitions(t, p.Store)
	cfg := fastEngine(t)
	cfg.PollInterval, cfg.RetryPoll = time.Hour, time.Hour // only wakes make publishers read
	e := startEngine(t, st, p.sink, cfg)
	eventually(t, ctx, "every publisher started and read once", func() (bool, error) {
		return len(st.snapshot()) == len(parts), nil
	})
	c := recorder(t, p.Store, nil)
	send := func(from int) {
		ops := make([]*core.Operation, 5)
		for i := range ops {
			ops[i] = NewOp("wake-one-object", from+i)
			require.NoError(t, c.Record(ctx, ops[i]))
		}
		e.Wake() // stores without notifications
		p.waitFor(t, ctx, ops...)
	}
	send(0)
	before := st.snapshot()
	part := core.PartitionOf(NewOp("wake-one-object", 0).DOID, len(parts))
	for i := 1; i <= 3; i++ {
		send(5 * i)
	}
	after := st.snapshot()
	for _, pt := range parts {
		if pt.Part == part {
			assert.Greater(t, after[pt.Part], before[pt.Part], "the object's partition %d is read after each append", pt.Part)
			continue
		}
		assert.Equal(t, before[pt.Part], after[pt.Part], "partition %d, which received nothing, is not read", pt.Part)
	}
}

// testGracefulStop: Stop lets every publisher finish the batch in hand,
// so what the sink accepted is exactly what the store says is published,
// every partition is given back, and a new engine publishes the rest
// once.
func testGracefulStop(t *testing.T, p *pair) {
	ctx := testContext(t)
	ops := newOps(400, 12)
	record(t, p.Store, ops...)
	p.fault.setDelay(50 * time.Millisecond)
	cfg := fastEngine(t)
	cfg.BatchSize = 5
	cfg.Workers = 2
	e, err := core.NewEngine(p.Store, p.sink, cfg)
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	eventually(t, ctx, "publishing is under way", func() (bool, error) { return e.Stats().Published > 0, nil })
	require.NoError(t, e.Stop(ctx), "a graceful stop finishes in time")
	for _, part := range partitions(t, p.Store) {
		assert.Empty(t, part.Owner, "partition %d was given back", part.Part)
	}
	published := map[string]bool{}
	for id, r := range scanAll(t, p.Store) {
		assert.NotEqual(t, core.StateRetrying, r.State)
		if r.State == core.StatePublished {
			published[id] = true
		}
	}
	got := p.readSettled(t, ctx, len(published))
	for id, n := range countIDs(got) {
		assert.True(t, published[id], "%s reached the sink, so its cursor advanced before Stop returned", id)
		assert.Equal(t, 1, n, "%s was sent once", id)
	}
	assert.Len(t, got, len(published), "everything published reached the sink")
	assert.Equal(t, e.Stats().Published, int64(len(published)))
	t.Logf("published %d of %d before the stop", len(published), len(ops))

	p.fault.setDelay(0)
	startEngine(t, p.Store, p.sink, cfg)
	settled(t, ctx, p.Store)
	got = p.readSettled(t, ctx, len(ops))
	exactlyOnce(t, got, ops)
	checkMessages(t, got, scanAll(t, p.Store))
}

// testRepartition: the partition hand-over of a core.Repartitioner keeps
// per-object order and sends nothing twice. Operations are published
// under the store's number of partitions, the number changes with every
// engine stopped, then more operations on the same objects are recorded,
// half through a store handle that still counts the old number, and
// published under the new one. A store without the interface has nothing
// to prove here.
func testRepartition(t *testing.T, p *pair) {
	r, ok := p.Store.(core.Repartitioner)
	if !ok {
		t.Skip("the store does not implement core.Repartitioner")
	}
	ctx := testContext(t)
	before, err := p.Store.Partitions(ctx)
	require.NoError(t, err)
	stale := p.storeFor(t, 1)
	ops := newOps(200, 20)
	record(t, stale, ops[0])
	record(t, p.Store, ops[1:100]...)
	e := startEngine(t, p.Store, p.sink, fastEngine(t))
	settled(t, ctx, p.Store)
	require.NoError(t, e.Stop(ctx))

	n := 2*len(before) + 1
	require.NoError(t, r.Repartition(ctx, n, nil))
	for k := 100; k < 200; k += 10 {
		s := p.Store
		if k%20 == 0 {
			s = stale
		}
		record(t, s, ops[k:k+10]...)
	}
	startEngine(t, p.Store, p.sink, fastEngine(t))
	settled(t, ctx, p.Store)
	got := p.readSettled(t, ctx, len(ops))
	exactlyOnce(t, got, ops)
	orderPerObject(t, got, ops)
	ps, err := p.Store.Partitions(ctx)
	require.NoError(t, err)
	require.Len(t, ps, n)
	for id, rec := range scanAll(t, p.Store) {
		assert.Equal(t, core.PartitionOf(rec.Op.DOID, n), rec.Part, "%s is in its object's partition", id)
	}
}
