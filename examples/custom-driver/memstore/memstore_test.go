package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/examples/custom-driver/memstore"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

var names atomic.Int64

// fresh returns the URL of a new named store, dropped at t's cleanup.
func fresh(t *testing.T, query string) string {
	name := fmt.Sprintf("unit-%d", names.Add(1))
	t.Cleanup(func() { memstore.Drop(name) })
	return "memstore://" + name + query
}

// open opens url, migrates it and closes it at t's cleanup.
func open(t *testing.T, url string) *memstore.Store {
	t.Helper()
	st, err := memstore.Open(testenv.Context(t), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(testenv.Context(t)); err != nil {
		t.Fatal(err)
	}
	return st
}

// sealed returns n sealed operations on object doid.
func sealed(t *testing.T, doid string, n int) []*core.Operation {
	t.Helper()
	ops := make([]*core.Operation, n)
	for i := range ops {
		ops[i] = &core.Operation{Source: core.SourceDOIP, Type: core.OpUpdate, DOID: "10.1000/" + doid,
			DOPrefix: "10.1000", Actor: fmt.Sprintf("actor-%d", i), ProducerID: "memstore-test"}
		if err := ops[i].Seal(nil); err != nil {
			t.Fatal(err)
		}
	}
	return ops
}

func TestOpenURL(t *testing.T) {
	ctx := testenv.Context(t)
	for _, bad := range []string{"memstore://x?partitions=0", "memstore://x?partitions=abc", "memstore://x?colour=red", "sqlite:x"} {
		if _, err := memstore.Open(ctx, bad); !errors.Is(err, core.ErrInvalidURL) {
			t.Errorf("Open(%q) = %v, want ErrInvalidURL", bad, err)
		}
	}
	if _, err := memstore.Open(ctx, "memstore://x?colour=red&size=2"); err == nil || !strings.Contains(err.Error(), "colour, size") {
		t.Errorf("unknown parameters not named: %v", err)
	}
	// Through the registry, as core.Open does.
	st, err := core.OpenStore(ctx, fresh(t, "?partitions=3"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	parts, err := st.Partitions(ctx)
	if err != nil || len(parts) != 3 {
		t.Fatalf("Partitions = %v, %v; want 3", parts, err)
	}
}

func TestSharedByName(t *testing.T) {
	ctx := testenv.Context(t)
	url := fresh(t, "")
	a, b := open(t, url), open(t, url)
	if err := a.Insert(ctx, nil, sealed(t, "shared", 2)); err != nil {
		t.Fatal(err)
	}
	if st, err := b.Stats(ctx); err != nil || st.MaxSeq != 2 {
		t.Fatalf("the second handle sees %+v, %v", st, err)
	}
	// A different partition count on a migrated store is refused.
	c, err := memstore.Open(ctx, url+"?partitions=5")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Migrate(ctx); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Migrate with another partition count = %v", err)
	}
	// Closing a handle leaves the data to the others; a closed handle
	// refuses calls.
	a.Close()
	if _, err := a.TreeSize(ctx); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("closed handle: %v", err)
	}
	if rec, err := b.Scan(ctx, core.ScanParams{}); err != nil || len(rec) != 2 {
		t.Fatalf("after closing a: %d records, %v", len(rec), err)
	}
	// A private store is nobody else's.
	p1, _ := memstore.Open(ctx, "memstore://")
	p2, _ := memstore.Open(ctx, "memstore://")
	for _, p := range []*memstore.Store{p1, p2} {
		if err := p.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := p1.Insert(ctx, nil, sealed(t, "private", 1)); err != nil {
		t.Fatal(err)
	}
	if st, _ := p2.Stats(ctx); st.MaxSeq != 0 {
		t.Fatalf("private stores share data: %+v", st)
	}
}

func TestCallerTransaction(t *testing.T) {
	ctx := testenv.Context(t)
	st := open(t, fresh(t, ""))
	db := st.DB()

	// Rolled back: nothing.
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Insert(ctx, tx, sealed(t, "tx", 1)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	// Open across a later commit: seq taken at insert, visible at commit.
	late, err := db.BeginTx(ctx, nil) // bun.Tx
	if err != nil {
		t.Fatal(err)
	}
	lateOps := sealed(t, "tx", 1)
	if err := st.Insert(ctx, late, lateOps); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, lateOps[0].OpID); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("uncommitted row visible: %v", err)
	}
	if err := st.Insert(ctx, db, sealed(t, "tx", 1)); err != nil { // autocommit through the pool
		t.Fatal(err)
	}
	if err := late.Commit(); err != nil {
		t.Fatal(err)
	}
	recs, err := st.Scan(ctx, core.ScanParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Op.OpID != lateOps[0].OpID || recs[0].Seq != 2 || recs[1].Seq != 3 {
		t.Fatalf("want the late commit first (seq 2) then seq 3, got %+v", recs)
	}
	// The database runs nothing else.
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (x int)"); err == nil {
		t.Fatal("foreign SQL accepted")
	}
	// A duplicate op_id fails the whole batch, at insert and at commit.
	dup := append(sealed(t, "tx", 1), lateOps[0])
	if err := st.Insert(ctx, nil, dup); !errors.Is(err, memstore.ErrDuplicateOpID) {
		t.Fatalf("duplicate: %v", err)
	}
	if recs, _ := st.Scan(ctx, core.ScanParams{}); len(recs) != 2 {
		t.Fatalf("a refused batch left %d rows", len(recs))
	}
}

func TestInsertRefusesInvalid(t *testing.T) {
	ctx := testenv.Context(t)
	st := open(t, fresh(t, ""))
	ops := sealed(t, "bad", 3)
	ops[2].DOID = "no-prefix"
	var ve *core.ValidationError
	if err := st.Insert(ctx, nil, ops); !errors.As(err, &ve) || ve.Index != 2 || ve.Field != "doid" {
		t.Fatalf("Insert = %v, want a ValidationError on doid at index 2", err)
	}
	unsealed := []*core.Operation{{Source: core.SourceDOIP, Type: core.OpCreate, DOID: "10.1000/x", DOPrefix: "10.1000", Actor: "a", ProducerID: "p"}}
	if err := st.Insert(ctx, nil, unsealed); !errors.As(err, &ve) {
		t.Fatalf("unsealed Insert = %v", err)
	}
	if st, _ := st.Stats(ctx); st.MaxSeq != 0 {
		t.Fatalf("refused batches stored rows: %+v", st)
	}
}

func TestFencing(t *testing.T) {
	ctx := testenv.Context(t)
	st := open(t, fresh(t, "?partitions=1"))
	ops := sealed(t, "fence", 2)
	if err := st.Insert(ctx, nil, ops); err != nil {
		t.Fatal(err)
	}
	if _, err := core.SequenceAll(ctx, st, 0); err != nil {
		t.Fatal(err)
	}
	old, err := st.TakePartition(ctx, 0, "a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.TakePartition(ctx, 0, "b", time.Hour); !errors.Is(err, core.ErrLeaseHeld) {
		t.Fatalf("second owner: %v", err)
	}
	// a's lease runs out at once; b takes over, and a is fenced.
	if _, err := st.RenewPartitions(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	cur, err := st.TakePartition(ctx, 0, "b", time.Hour)
	if err != nil || cur.Generation != old.Generation+1 {
		t.Fatalf("takeover: %+v, %v", cur, err)
	}
	err = st.Advance(ctx, core.AdvanceParams{Part: 0, Generation: old.Generation, From: -1, To: 1,
		Failed: []core.Failure{{Seq: 1, Err: "boom"}}})
	if !errors.Is(err, core.ErrFenced) {
		t.Fatalf("stale Advance = %v", err)
	}
	if s, _ := st.Stats(ctx); s.Counts[core.StatePending] != 2 || s.Partitions[0].Cursor != -1 {
		t.Fatalf("a fenced Advance wrote: %+v", s)
	}
	if err := st.Advance(ctx, core.AdvanceParams{Part: 0, Generation: cur.Generation, From: -1, To: 1,
		Failed: []core.Failure{{Seq: 1, Err: "boom", Delay: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	s, _ := st.Stats(ctx)
	if s.Counts[core.StatePublished] != 1 || s.Counts[core.StateRetrying] != 1 {
		t.Fatalf("after Advance: %+v", s.Counts)
	}
	// A strict read of a later operation of the same DOID is held.
	more := sealed(t, "fence", 1)
	if err := st.Insert(ctx, nil, more); err != nil {
		t.Fatal(err)
	}
	if _, err := core.SequenceAll(ctx, st, 0); err != nil {
		t.Fatal(err)
	}
	recs, err := st.ReadPartition(ctx, core.ReadParams{Part: 0, After: 1, Limit: 10, Strict: true})
	if err != nil || len(recs) != 1 || !recs[0].Held {
		t.Fatalf("strict read: %+v, %v", recs, err)
	}
	if err := st.SettleRetries(ctx, core.SettleParams{Part: 0, Generation: old.Generation, Published: []int64{1}}); !errors.Is(err, core.ErrFenced) {
		t.Fatalf("stale settle: %v", err)
	}
}

func TestLeases(t *testing.T) {
	ctx := testenv.Context(t)
	url := fresh(t, "")
	a, b := open(t, url), open(t, url)
	l, err := a.Locker().TryAcquire(ctx, "job", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Locker().TryAcquire(ctx, "job", time.Second); !errors.Is(err, core.ErrLeaseHeld) {
		t.Fatalf("held lease taken: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l2, err := b.Locker().TryAcquire(ctx, "job", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The holder's handle closes: the lease is lost and free at once.
	b.Close()
	testenv.Receive(t, l2.Lost(), "Lost of a lease whose handle closed")
	if _, err := a.Locker().TryAcquire(ctx, "job", time.Second); err != nil {
		t.Fatalf("lease of a closed handle still held: %v", err)
	}
}

func TestSubscribe(t *testing.T) {
	ctx := testenv.Context(t)
	url := fresh(t, "")
	a, b := open(t, url), open(t, url)
	sctx, cancel := context.WithCancel(ctx)
	ch, err := a.Subscribe(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Insert(ctx, nil, sealed(t, "wake", 1)); err != nil {
		t.Fatal(err)
	}
	testenv.Receive(t, ch, "a wake-up after another handle's insert")
	cancel()
	closed := make(chan struct{})
	go func() {
		for range ch {
		}
		close(closed)
	}()
	testenv.Receive(t, closed, "the subscription closing when its context ends")
}

// TestLedger runs the ledger's checkpointer on a memstore through the
// engine and audits the result: ledger.Storage works end to end.
func TestLedger(t *testing.T) {
	ctx := testenv.Context(t)
	st := open(t, fresh(t, ""))
	skey, _, err := core.GenerateEd25519("example.com/memstore")
	if err != nil {
		t.Fatal(err)
	}
	_, verifier, err := ledger.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := ledger.NewSequencer(ledger.Config{Key: skey})
	if err != nil {
		t.Fatal(err)
	}
	sink := memory.New(memory.Faults{})
	client, err := core.NewClient(st, sink, core.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Record(ctx, sealed(t, "ledger", 5)...); err != nil {
		t.Fatal(err)
	}
	engine, err := core.NewEngine(st, sink, core.EngineConfig{Ledger: seq})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer engine.Stop(context.WithoutCancel(ctx))

	eventually(t, "a checkpoint of the 5 operations", func() bool {
		cs, err := st.Checkpoints(ctx, ledger.CheckpointQuery{Latest: true})
		return err == nil && len(cs) == 1 && cs[0].Size == 5
	})
	report, err := ledger.Audit(ctx, st, ledger.AuditOptions{Log: verifier})
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() || report.Leaves != 5 || report.Checkpoints < 1 {
		t.Fatalf("audit: %+v", report)
	}
}

// eventually waits, for as long as testenv.Patience allows, until cond
// holds, checking it every few milliseconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testenv.Patience(t))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRepartitionRefuses: every refusal of Repartition writes nothing, and
// an insert staged before the change and committed after it lands in its
// object's new partition.
func TestRepartitionRefuses(t *testing.T) {
	ctx := testenv.Context(t)
	st := open(t, fresh(t, "?partitions=2"))
	refused := func(what, want string) {
		t.Helper()
		err := st.Repartition(ctx, 5, nil)
		var re *core.RepartitionError
		if !errors.As(err, &re) || !errors.Is(err, core.ErrRepartitionRefused) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: Repartition = %v, want a RepartitionError saying %q", what, err, want)
		}
		if ps, _ := st.Partitions(ctx); len(ps) != 2 {
			t.Fatalf("%s: a refused Repartition left %d partitions", what, len(ps))
		}
	}
	if err := st.Repartition(ctx, 0, nil); !errors.As(err, new(*core.ConfigError)) {
		t.Fatalf("Repartition(0) = %v, want a ConfigError", err)
	}

	// A live relay's heartbeat.
	if _, err := st.Heartbeat(ctx, "relay-1", time.Hour); err != nil {
		t.Fatal(err)
	}
	refused("heartbeat", "relays are running (relay-1)")
	if err := st.Leave(ctx, "relay-1"); err != nil {
		t.Fatal(err)
	}
	// The sequencer's lease.
	l, err := st.Locker().TryAcquire(ctx, core.SequencerLease, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	refused("sequencer", "sequencer is running")
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// A partition lease that has not run out.
	p, err := st.TakePartition(ctx, 1, "relay-2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	refused("partition lease", "partitions are leased: 1 (relay-2)")
	if err := st.ReleasePartition(ctx, 1, p.Generation); err != nil {
		t.Fatal(err)
	}
	// Operations with a position that are not published.
	ops := sealed(t, "repart", 3)
	if err := st.Insert(ctx, nil, ops); err != nil {
		t.Fatal(err)
	}
	if _, err := core.SequenceAll(ctx, st, 0); err != nil {
		t.Fatal(err)
	}
	refused("backlog", "3 operations with a position are not published yet")
	part := core.PartitionOf(ops[0].DOID, 2)
	p, err = st.TakePartition(ctx, part, "relay-2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Advance(ctx, core.AdvanceParams{Part: part, Generation: p.Generation, From: -1, To: 2}); err != nil {
		t.Fatal(err)
	}
	if err := st.ReleasePartition(ctx, part, p.Generation); err != nil {
		t.Fatal(err)
	}

	// Staged in a transaction before the change, committed after it.
	tx, err := st.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	late := sealed(t, "repart-late", 1)
	if err := st.Insert(ctx, tx, late); err != nil {
		t.Fatal(err)
	}
	var rewritten int64
	if err := st.Repartition(ctx, 5, func(n int64) { rewritten = n }); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if rewritten != 3 {
		t.Errorf("progress reported %d rewritten, want 3", rewritten)
	}
	ps, err := st.Partitions(ctx)
	if err != nil || len(ps) != 5 {
		t.Fatalf("Partitions = %v, %v; want 5", ps, err)
	}
	for _, p := range ps {
		if p.Cursor != 2 || p.Generation <= 1 || p.Owner != "" {
			t.Errorf("partition %d after the change: %+v, want cursor 2, a new generation, no owner", p.Part, p)
		}
	}
	recs, err := st.Scan(ctx, core.ScanParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if want := core.PartitionOf(r.Op.DOID, 5); r.Part != want {
			t.Errorf("seq %d is in partition %d, not %d", r.Seq, r.Part, want)
		}
	}
	if s, _ := st.Stats(ctx); s.Counts[core.StatePublished] != 3 || s.Counts[core.StatePending] != 1 {
		t.Errorf("states after the change: %v, want 3 published and the late one pending", s.Counts)
	}
}
