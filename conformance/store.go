package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/dialect"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// RunStore runs the store half of the suite: every Store, Locker and
// Notifier method against its contract in core/store.go, and, on a store
// that implements it, every core.Inspector method against core/inspect.go
// (a store without it logs so and passes those subtests), without an
// engine. Each subtest gets a fresh store and runs in parallel.
func RunStore(t *testing.T, newStore NewStoreFunc) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h StoreHarness)
	}{
		{"MigrateIsIdempotent", testMigrateIdempotent},
		{"InsertRoundTrip", testInsertRoundTrip},
		{"InsertAllOrNothing", testInsertAllOrNothing},
		{"BadInputRefused", testBadInputRefused},
		{"RollbackLeavesNothing", testRollbackLeavesNothing},
		{"SequenceGaplessInSeqOrder", testSequenceGapless},
		{"LateCommitSequencedLater", testLateCommit},
		{"AppendConflictWritesNothing", testAppendConflict},
		{"ConcurrentSequencersDoNotFork", testConcurrentSequencers},
		{"AppendAfterCommitsInOrder", testAppendAfter},
		{"ReadPartition", testReadPartition},
		{"AdvanceIsCompareAndSet", testAdvance},
		{"PartitionLeases", testPartitionLeases},
		{"Membership", testMembership},
		{"DueRetries", testDueRetries},
		{"StrictReadHoldsBackObject", testStrictRead},
		{"SettleRetries", testSettleRetries},
		{"DeadListAndRequeue", testDeadRequeue},
		{"GetDerivesState", testGetState},
		{"Stats", testStats},
		{"StatsBacklog", testStatsBacklog},
		{"FindHistory", testFindHistory},
		{"FindActorAndTime", testFindActor},
		{"FindRetryFilters", testFindRetryFilters},
		{"FindPaging", testFindPaging},
		{"FindRefused", testFindRefused},
		{"Relays", testRelays},
		{"ScanInSeqOrder", testScan},
		{"ValuesCompareByteForByte", testBytewise},
		{"Cursors", testCursors},
		{"Leases", testLeases},
		{"NotifyOnCommitAndSequence", testNotify},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// recorder returns a StoreOnly client: the store half never publishes.
func recorder(t *testing.T, s core.Store, signer core.Signer) *core.Client {
	t.Helper()
	c, err := core.NewClient(s, nil, core.Config{Strategy: core.StoreOnly, Signer: signer})
	require.NoError(t, err)
	return c
}

// record seals and inserts ops in one transaction of the store's own and
// returns them as stored.
func record(t *testing.T, s core.Store, ops ...*core.Operation) []core.Record {
	t.Helper()
	require.NoError(t, recorder(t, s, nil).Record(testContext(t), ops...))
	return refresh(t, s, ops...)
}

// refresh returns ops as the store holds them now.
func refresh(t *testing.T, s core.Store, ops ...*core.Operation) []core.Record {
	t.Helper()
	recs := make([]core.Record, len(ops))
	for i, op := range ops {
		recs[i] = get(t, s, op.OpID)
	}
	return recs
}

// get returns one operation as the store holds it now.
func get(t *testing.T, s core.Store, opID string) core.Record {
	t.Helper()
	r, err := s.Get(testContext(t), opID)
	require.NoError(t, err, "get %s", opID)
	return r
}

// sequence gives every operation without a position one and returns how
// many it positioned.
func sequence(t *testing.T, s core.Store) int {
	t.Helper()
	n, err := core.SequenceAll(testContext(t), s, 0)
	require.NoError(t, err, "sequence")
	return n
}

// partitions returns the store's partitions.
func partitions(t *testing.T, s core.Store) []core.Partition {
	t.Helper()
	ps, err := s.Partitions(testContext(t))
	require.NoError(t, err)
	return ps
}

// needPartitions returns the store's partition count and skips t when it
// has fewer than n (a store configured with one partition cannot show
// that partitions are kept apart).
func needPartitions(t *testing.T, s core.Store, n int) int {
	t.Helper()
	p := len(partitions(t, s))
	if p < n {
		t.Skipf("the store has %d partitions; this test needs %d", p, n)
	}
	return p
}

// take makes member the owner of part for an hour.
func take(t *testing.T, s core.Store, part int, member string) core.Partition {
	t.Helper()
	p, err := s.TakePartition(testContext(t), part, member, time.Hour)
	require.NoError(t, err, "take partition %d", part)
	return p
}

// partition returns partition part as the store holds it now.
func partition(t *testing.T, s core.Store, part int) core.Partition {
	t.Helper()
	ps := partitions(t, s)
	require.Greater(t, len(ps), part)
	return ps[part]
}

// leafIndexes returns the positions of records.
func leafIndexes(recs []core.Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.LeafIndex
	}
	return out
}

// states returns the states of records.
func states(recs []core.Record) []core.State {
	out := make([]core.State, len(recs))
	for i, r := range recs {
		out[i] = r.State
	}
	return out
}

// held returns the Held flags of records.
func held(recs []core.Record) []bool {
	out := make([]bool, len(recs))
	for i, r := range recs {
		out[i] = r.Held
	}
	return out
}

// hashMap is an in-memory tlog.HashReader.
type hashMap map[int64]tlog.Hash

// ReadHashes implements tlog.HashReader.
func (m hashMap) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		h, ok := m[idx]
		if !ok {
			return nil, fmt.Errorf("no hash at index %d", idx)
		}
		out[i] = h
	}
	return out, nil
}

// checkTree checks that the store's Merkle tree is the tree of recs'
// sealed operations in this order (position 0 first), and that every
// record is at its position.
func checkTree(t *testing.T, s core.Store, recs []core.Record) {
	t.Helper()
	ctx := testContext(t)
	want := hashMap{}
	for i := range recs {
		assert.Equal(t, int64(i), get(t, s, recs[i].Op.OpID).LeafIndex, "operation %s is at position %d", recs[i].Op.OpID, i)
		leaf, err := recs[i].Op.AppendSealed(nil)
		require.NoError(t, err)
		hs, err := tlog.StoredHashes(int64(i), leaf, want)
		require.NoError(t, err)
		for j, h := range hs {
			want[tlog.StoredHashIndex(0, int64(i))+int64(j)] = h
		}
	}
	n := int64(len(recs))
	size, err := s.TreeSize(ctx)
	require.NoError(t, err)
	require.Equal(t, n, size, "tree size")
	wantRoot, err := tlog.TreeHash(n, want)
	require.NoError(t, err)
	gotRoot, err := tlog.TreeHash(n, core.NewHashReader(ctx, s))
	require.NoError(t, err, "the store's stored hashes build the tree")
	assert.Equal(t, wantRoot, gotRoot, "the store's Merkle tree is the tree of the sealed operations in position order")
}

func testMigrateIdempotent(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	before := partitions(t, h.Store)
	require.NotEmpty(t, before, "Migrate creates the partitions")
	require.LessOrEqual(t, len(before), core.MaxPartitions)
	for i, p := range before {
		assert.Equal(t, i, p.Part, "partitions come in order")
		assert.Equal(t, int64(-1), p.Cursor, "a new partition's cursor is -1")
		assert.Empty(t, p.Owner, "a new partition has no owner")
	}
	logID, err := h.Store.Cursor(ctx, core.LogIDCursor)
	require.NoError(t, err, "Migrate writes the log identity")
	require.NotEmpty(t, logID.Value)

	recs := record(t, h.Store, NewOp("a", 1))
	sequence(t, h.Store)
	r := get(t, h.Store, recs[0].Op.OpID)
	p := take(t, h.Store, r.Part, "member-1")
	require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: r.Part, Generation: p.Generation, From: -1, To: r.LeafIndex}))
	want := partitions(t, h.Store)

	require.NoError(t, h.Store.Migrate(ctx))
	require.NoError(t, h.Store.Migrate(ctx))
	// Several processes migrating at once.
	if h.Reopen != nil {
		stores := []core.Store{h.Store, h.Reopen(t), h.Reopen(t)}
		errs := make(chan error, len(stores))
		for _, s := range stores {
			go func() { errs <- s.Migrate(ctx) }()
		}
		for range stores {
			require.NoError(t, <-errs, "concurrent Migrate")
		}
	}

	after := partitions(t, h.Store)
	require.Len(t, after, len(want), "migrating again keeps the partition count")
	for i := range want {
		assert.Equal(t, want[i].Cursor, after[i].Cursor, "partition %d keeps its cursor", i)
		assert.Equal(t, want[i].Generation, after[i].Generation, "partition %d keeps its generation", i)
		assert.Equal(t, want[i].Owner, after[i].Owner, "partition %d keeps its owner", i)
	}
	again, err := h.Store.Cursor(ctx, core.LogIDCursor)
	require.NoError(t, err)
	assert.Equal(t, logID.Value, again.Value, "the log identity is written once")
	st, err := h.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.Counts[core.StatePublished], "migrating again keeps the rows and their state")
	assert.Equal(t, int64(1), st.TreeSize)
	if ms, ok := h.Store.(core.MigrationStatuser); ok {
		list, err := ms.MigrationStatus(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, list)
		for _, m := range list {
			assert.True(t, m.Applied, "migration %s applied", m.Name)
		}
	}
}

func testInsertRoundTrip(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	P := len(partitions(t, h.Store))
	skey, vkey, err := core.GenerateEd25519("conformance.example/log")
	require.NoError(t, err)
	signer, err := core.NewEd25519Signer(skey)
	require.NoError(t, err)
	verifier, err := core.NewEd25519Verifier(vkey)
	require.NoError(t, err)
	c := recorder(t, h.Store, signer)

	op := NewOp("round/trip", 42)
	// SQL meta-characters and non-ASCII text are data, stored verbatim.
	op.Actor = `O'Brien"; DROP TABLE operation; -- \ %_ ?`
	op.DORepository = "répo ✓ 仓库 \U0001D11E"
	op.HashAlg = core.HashSHA512
	op.RequestBodyHash = "AB" + op.RequestBodyHash[:62] + op.RequestBodyHash
	op.ResponseBodyHash = ""
	op.ServerIP = "2001:DB8:0:0::1"
	op.CreatedAt = time.Date(2025, 12, 24, 15, 31, 11, 123456789, time.FixedZone("CST", 8*3600))
	require.NoError(t, c.Record(ctx, op))

	// Through the caller's transactions too: bun.Tx and *sql.Tx.
	viaBun, viaSQL := NewOp("tx/bun", 43), NewOp("tx/sql", 44)
	btx, err := h.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, c.RecordTx(ctx, btx, viaBun))
	require.NoError(t, btx.Commit())
	stx, err := h.DB.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, c.RecordTx(ctx, stx, viaSQL))
	require.NoError(t, stx.Commit())

	// A batch through *sql.Tx (a store may insert many rows another way
	// than one), with the same edge values in its middle and rows without
	// IPs.
	batch := make([]*core.Operation, 40)
	for i := range batch {
		batch[i] = NewOp(fmt.Sprintf("round/batch-%d", i%7), 100+i)
		if i%5 == 3 {
			batch[i].ClientIP, batch[i].ServerIP = "", ""
		}
	}
	edge := *op
	edge.OpID, edge.OpHash, edge.Sign = "", "", nil
	batch[17] = &edge
	btx2, err := h.DB.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, c.RecordTx(ctx, btx2, batch...))
	require.NoError(t, btx2.Commit())
	last := int64(0)
	for i, want := range batch {
		r := get(t, h.Store, want.OpID)
		assert.Equal(t, *want, r.Op, "batch row %d comes back as recorded", i)
		assert.Equal(t, core.PartitionOf(want.DOID, P), r.Part, "batch row %d: its partition", i)
		assert.Greater(t, r.Seq, last, "batch row %d: seqs grow in the batch's order", i)
		last = r.Seq
		require.NoError(t, core.VerifyOperation(&r.Op, true, verifier), "batch row %d verifies", i)
	}

	got := get(t, h.Store, op.OpID)
	assert.Equal(t, *op, got.Op, "every field comes back as recorded")
	assert.Equal(t, time.Date(2025, 12, 24, 7, 31, 11, 123456000, time.UTC), got.Op.CreatedAt, "UTC, microseconds")
	assert.Equal(t, "2001:db8::1", got.Op.ServerIP, "canonical IP")
	require.NoError(t, core.VerifyOperation(&got.Op, true, verifier), "stored row verifies")
	last = 0
	for _, want := range []*core.Operation{op, viaBun, viaSQL} {
		r := get(t, h.Store, want.OpID)
		assert.Equal(t, *want, r.Op, "%s comes back as recorded", want.DOID)
		assert.Equal(t, core.PartitionOf(want.DOID, P), r.Part, "%s: its partition is PartitionOf(doid, %d)", want.DOID, P)
		assert.Equal(t, int64(-1), r.LeafIndex, "%s: no position before sequencing", want.DOID)
		assert.Equal(t, core.StatePending, r.State)
		assert.Zero(t, r.Attempts)
		assert.Empty(t, r.LastError)
		assert.False(t, r.Held)
		assert.Greater(t, r.Seq, last, "seqs grow in insert order")
		last = r.Seq
	}

	_, err = h.Store.Get(ctx, "01890000-0000-7000-8000-000000000000")
	assert.ErrorIs(t, err, core.ErrNotFound)
}

func testInsertAllOrNothing(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	c := recorder(t, h.Store, nil)
	nothing := func(what string, ops ...*core.Operation) {
		t.Helper()
		st, err := h.Store.Stats(ctx)
		require.NoError(t, err)
		assert.Zero(t, st.MaxSeq, "%s: a failed batch leaves no row", what)
		for _, op := range ops {
			if op.OpID == "" {
				continue
			}
			_, err := h.Store.Get(ctx, op.OpID)
			assert.ErrorIs(t, err, core.ErrNotFound, "%s: %s is not stored", what, op.DOID)
		}
	}

	a, b, dup := NewOp("a", 1), NewOp("b", 2), NewOp("c", 3)
	b.OpID = "0190a000-0000-7000-8000-00000000000b"
	dup.OpID = b.OpID // duplicate op_id: the database refuses the batch
	require.Error(t, c.Record(ctx, a, b, dup))
	nothing("own transaction", a, b)

	// More rows than one INSERT statement takes: the last row's duplicate
	// must undo the first statements too.
	big := newOps(2500, 10)
	big[0].OpID = "0190a000-0000-7000-8000-0000000000b0"
	big[len(big)-1].OpID = big[0].OpID
	require.Error(t, c.Record(ctx, big...))
	nothing("several statements", big[0], big[1], big[len(big)/2], big[len(big)-2])

	// Through the caller's transaction, which the caller then rolls back.
	x, y, dupX := NewOp("x", 4), NewOp("y", 5), NewOp("z", 6)
	x.OpID = "0190a000-0000-7000-8000-0000000000c0"
	dupX.OpID = x.OpID
	tx, err := h.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.Error(t, c.RecordTx(ctx, tx, x, y, dupX))
	require.NoError(t, tx.Rollback())
	nothing("caller's transaction", x, y)
}

func testBadInputRefused(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	c := recorder(t, h.Store, nil)
	for _, tc := range []struct {
		field string
		mut   func(*core.Operation)
	}{
		{"doid", func(o *core.Operation) { o.DOID = "10.9999/elsewhere" }},
		{"doid", func(o *core.Operation) { o.DOID = "no-slash" }},
		{"request_body_hash", func(o *core.Operation) { o.RequestBodyHash = "abc" }},
		{"request_body_hash", func(o *core.Operation) { o.RequestBodyHash = "zz" + o.RequestBodyHash[2:] }},
		{"op_actor", func(o *core.Operation) { o.Actor = "bad\xffutf8" }},
		{"op_actor", func(o *core.Operation) { o.Actor = "nul\x00byte" }},
		{"producer_id", func(o *core.Operation) { o.ProducerID = string(make([]byte, core.MaxProducerIDLen+1)) }},
		{"client_ip", func(o *core.Operation) { o.ClientIP = "300.1.2.3" }},
		{"op_source", func(o *core.Operation) { o.Source = "HTTP" }},
		{"op_id", func(o *core.Operation) { o.OpID = "'; DROP TABLE operation; --" }},
	} {
		ops := []*core.Operation{NewOp("ok", 1), NewOp("ok", 2), NewOp("bad", 3)}
		tc.mut(ops[2])
		err := c.Record(ctx, ops...)
		var ve *core.ValidationError
		require.ErrorAs(t, err, &ve, "field %s", tc.field)
		assert.ErrorIs(t, err, core.ErrInvalidOperation)
		assert.Equal(t, tc.field, ve.Field)
		assert.Equal(t, 2, ve.Index, "names the operation's position")

		// Inside the caller's transaction too: the error comes before any
		// write, and the caller's commit carries no operation.
		tx, err := h.DB.BeginTx(ctx, nil)
		require.NoError(t, err)
		require.ErrorAs(t, c.RecordTx(ctx, tx, ops...), &ve)
		require.NoError(t, tx.Commit())
	}
	st, err := h.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Zero(t, st.MaxSeq, "nothing was written")
}

func testRollbackLeavesNothing(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	c := recorder(t, h.Store, nil)
	// bun.Tx
	btx, err := h.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	rolled := []*core.Operation{NewOp("x", 1), NewOp("x", 2)}
	require.NoError(t, c.RecordTx(ctx, btx, rolled...))
	require.NoError(t, btx.Rollback())
	// *sql.Tx
	stx, err := h.DB.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	rolled2 := NewOp("y", 3)
	require.NoError(t, c.RecordTx(ctx, stx, rolled2))
	require.NoError(t, stx.Rollback())
	// and a committed one of each kind
	kept := []*core.Operation{NewOp("z", 4), NewOp("z", 5)}
	btx, err = h.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, c.RecordTx(ctx, btx, kept[0]))
	require.NoError(t, btx.Commit())
	stx, err = h.DB.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, c.RecordTx(ctx, stx, kept[1]))
	require.NoError(t, stx.Commit())

	for _, op := range append(rolled, rolled2) {
		_, err := h.Store.Get(ctx, op.OpID)
		assert.ErrorIs(t, err, core.ErrNotFound, "rolled-back operation %s is not stored", op.OpID)
	}
	assert.Equal(t, 2, sequence(t, h.Store), "only committed operations are sequenced")
	all, err := h.Store.Scan(ctx, core.ScanParams{})
	require.NoError(t, err)
	assert.Equal(t, ids(kept), opIDs(all), "only committed operations are stored")
	checkTree(t, h.Store, refresh(t, h.Store, kept...))
}

func testSequenceGapless(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	ops := newOps(10, 3)
	record(t, h.Store, ops[:3]...)
	record(t, h.Store, ops[3:7]...)
	record(t, h.Store, ops[7:]...)
	recs := refresh(t, h.Store, ops...)
	for i := 1; i < len(recs); i++ {
		require.Greater(t, recs[i].Seq, recs[i-1].Seq, "seqs grow in insert order")
	}
	size, err := h.Store.TreeSize(ctx)
	require.NoError(t, err)
	assert.Zero(t, size)

	un, err := h.Store.Unsequenced(ctx, 0, 4)
	require.NoError(t, err)
	assert.Equal(t, seqsOf(recs[:4]), seqsOf(un), "Unsequenced: lowest seqs first, Limit honoured")
	P := len(partitions(t, h.Store))
	for i, r := range un {
		assert.Equal(t, recs[i].Op, r.Op, "Unsequenced returns the operation")
		assert.Equal(t, int64(-1), r.LeafIndex)
		assert.Equal(t, core.PartitionOf(r.Op.DOID, P), r.Part, "Unsequenced returns the partition (the engine wakes its publisher)")
	}
	un, err = h.Store.Unsequenced(ctx, recs[5].Seq, 100)
	require.NoError(t, err)
	assert.Equal(t, seqsOf(recs[6:]), seqsOf(un), "Unsequenced: above afterSeq only")

	n, err := core.SequenceAll(ctx, h.Store, 3) // several batches
	require.NoError(t, err)
	assert.Equal(t, 10, n)
	assert.Equal(t, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, leafIndexes(refresh(t, h.Store, ops...)), "gapless positions in seq order")
	un, err = h.Store.Unsequenced(ctx, 0, 100)
	require.NoError(t, err)
	assert.Empty(t, un, "every operation has its position")
	assert.Zero(t, sequence(t, h.Store), "sequencing again positions nothing")
	checkTree(t, h.Store, recs)

	// Later operations extend the tree; a fresh sequencer reads the
	// stored hashes it needs (ReadHashes).
	more := newOps(5, 2)
	record(t, h.Store, more...)
	assert.Equal(t, 5, sequence(t, h.Store))
	all := refresh(t, h.Store, append(slices.Clone(ops), more...)...)
	for i, r := range all {
		assert.Equal(t, int64(i), r.LeafIndex)
	}
	checkTree(t, h.Store, all)
	st, err := h.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(15), st.TreeSize)
}

// testLateCommit: a transaction that took its seq first but commits
// after a later one is not skipped: it gets the next position when it
// commits. The sequencer selects by "has no position", never by a seq or
// time bound.
func testLateCommit(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	c := recorder(t, h.Store, nil)
	a, b := NewOp("late", 1), NewOp("early", 2)
	txA, err := h.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, c.RecordTx(ctx, txA, a))
	if h.DB.Dialect().Name() == dialect.SQLite {
		// SQLite has one writer at a time: A holds the write lock from its
		// first statement to its commit, so B can neither take a seq nor
		// commit before A does, and there is no late commit to make. Both
		// still get their positions in seq order.
		require.NoError(t, txA.Commit())
		record(t, h.Store, b)
		assert.Equal(t, 2, sequence(t, h.Store))
		checkTree(t, h.Store, refresh(t, h.Store, a, b))
		return
	}
	record(t, h.Store, b) // B commits while A is open
	_, err = h.Store.Get(ctx, a.OpID)
	require.ErrorIs(t, err, core.ErrNotFound, "A is not committed yet")
	assert.Equal(t, 1, sequence(t, h.Store), "B is sequenced; A is not visible")
	assert.Equal(t, int64(0), get(t, h.Store, b.OpID).LeafIndex)

	require.NoError(t, txA.Commit())
	ra, rb := get(t, h.Store, a.OpID), get(t, h.Store, b.OpID)
	require.Less(t, ra.Seq, rb.Seq, "A took its seq before B")
	assert.Equal(t, int64(-1), ra.LeafIndex)
	assert.Equal(t, 1, sequence(t, h.Store), "A, committed late, is sequenced, not skipped")
	checkTree(t, h.Store, []core.Record{rb, ra})
}

func testAppendConflict(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	first := record(t, h.Store, NewOp("a", 1), NewOp("a", 2))
	require.Equal(t, 2, sequence(t, h.Store))
	c := record(t, h.Store, NewOp("a", 3))[0]
	rd := core.NewHashReader(ctx, h.Store)
	leaf, err := c.Op.AppendSealed(nil)
	require.NoError(t, err)
	hashes, err := tlog.StoredHashes(2, leaf, rd)
	require.NoError(t, err)
	for _, stale := range []int64{1, 3} {
		err = h.Store.Append(ctx, stale, []int64{c.Seq}, hashes)
		assert.ErrorIs(t, err, core.ErrConflict, "Append at size %d while the tree has 2", stale)
		// AppendAfter writes before it checks the size: at a stale size
		// its positions and hashes are those of committed leaves, and the
		// store's unique indexes refuse them; that is a conflict too, not
		// a failure of the database.
		if oa, ok := h.Store.(core.OverlappingAppender); ok {
			err = oa.AppendAfter(ctx, stale, []int64{c.Seq}, []int{c.Part}, hashes, func(context.Context) error { return nil })
			assert.ErrorIs(t, err, core.ErrConflict, "AppendAfter at size %d while the tree has 2", stale)
		}
	}
	// A seq that has a position already.
	leafA, err := first[0].Op.AppendSealed(nil)
	require.NoError(t, err)
	hashesA, err := tlog.StoredHashes(2, leafA, rd)
	require.NoError(t, err)
	err = h.Store.Append(ctx, 2, []int64{first[0].Seq}, hashesA)
	assert.ErrorIs(t, err, core.ErrConflict, "an operation is positioned once")
	err = h.Store.Append(ctx, 2, []int64{c.Seq, first[1].Seq}, append(slices.Clone(hashes), hashesA...))
	assert.ErrorIs(t, err, core.ErrConflict, "one positioned operation refuses the whole Append")

	size, err := h.Store.TreeSize(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(2), size, "a refused Append writes nothing")
	assert.Equal(t, int64(-1), get(t, h.Store, c.Op.OpID).LeafIndex)
	assert.Equal(t, []int64{0, 1}, leafIndexes(refresh(t, h.Store, &first[0].Op, &first[1].Op)))

	require.NoError(t, h.Store.Append(ctx, 2, []int64{c.Seq}, hashes))
	checkTree(t, h.Store, []core.Record{first[0], first[1], c})
}

// testConcurrentSequencers: sequencers racing on one store (the engine
// keeps one, through SequencerLease; a lease that moves can overlap) never
// fork the log: one Append per size wins, the rest fail with ErrConflict.
func testConcurrentSequencers(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	ops := newOps(300, 7)
	for i := 0; i < len(ops); i += 100 {
		record(t, h.Store, ops[i:i+100]...)
	}
	stores := []core.Store{h.Store, h.Store, h.Store}
	if h.Reopen != nil {
		stores[1], stores[2] = h.Reopen(t), h.Reopen(t)
	}
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	errs := make(chan error, len(stores))
	for _, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := core.SequenceAll(ctx, s, 16)
				mu.Lock()
				total += n
				mu.Unlock()
				switch {
				case errors.Is(err, core.ErrConflict):
				case err != nil:
					errs <- err
					return
				case n == 0:
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, len(ops), total, "each operation was appended once")
	recs := refresh(t, h.Store, ops...)
	for i, r := range recs {
		require.Equal(t, int64(i), r.LeafIndex, "operation %d: gapless positions in seq order", i)
	}
	checkTree(t, h.Store, recs)
}

// testAppendAfter: a core.OverlappingAppender's AppendAfter commits only
// after the Append before it, writes nothing when that one failed or the
// tree is not where it expects, and does not hold up the Append it waits
// for; UnsequencedExcept reads past the batches in flight. A store without
// the interface logs so and passes.
func testAppendAfter(t *testing.T, h StoreHarness) {
	oa, ok := h.Store.(core.OverlappingAppender)
	if !ok {
		t.Log("the store does not implement core.OverlappingAppender: its batches are appended one after the other")
		return
	}
	ctx := testContext(t)
	recs := record(t, h.Store, NewOp("a", 1), NewOp("b", 2), NewOp("a", 3), NewOp("c", 4))
	seqs := func(rs []core.Record) []int64 {
		out := make([]int64, len(rs))
		for i, r := range rs {
			out[i] = r.Seq
		}
		return out
	}
	parts := func(rs []core.Record) []int {
		out := make([]int, len(rs))
		for i, r := range rs {
			out[i] = r.Part
		}
		return out
	}
	got, err := oa.UnsequencedExcept(ctx, seqs(recs[:2]), 10)
	require.NoError(t, err)
	assert.Equal(t, seqs(recs[2:]), seqs(got), "the first unsequenced operations, those in flight excepted")
	got, err = oa.UnsequencedExcept(ctx, seqs(recs[1:2]), 2)
	require.NoError(t, err)
	assert.Equal(t, []int64{recs[0].Seq, recs[2].Seq}, seqs(got), "in seq order, limit honoured")

	// The stored hashes of the four leaves; the first batch is recs[:2].
	all := hashMap{}
	for i, r := range recs {
		leaf, err := r.Op.AppendSealed(nil)
		require.NoError(t, err)
		hs, err := tlog.StoredHashes(int64(i), leaf, all)
		require.NoError(t, err)
		for j, x := range hs {
			all[tlog.StoredHashIndex(0, int64(i))+int64(j)] = x
		}
	}
	hashesFrom := func(from, to int64) []tlog.Hash {
		var out []tlog.Hash
		for i := tlog.StoredHashIndex(0, from); i < tlog.StoredHashIndex(0, to); i++ {
			out = append(out, all[i])
		}
		return out
	}
	first, second := hashesFrom(0, 2), hashesFrom(2, 4)
	unsequenced := func(msg string) {
		t.Helper()
		size, err := h.Store.TreeSize(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(0), size, msg)
		assert.Equal(t, []int64{-1, -1, -1, -1}, leafIndexes(refresh(t, h.Store, &recs[0].Op, &recs[1].Op, &recs[2].Op, &recs[3].Op)), msg)
	}

	err = oa.AppendAfter(ctx, 2, seqs(recs[2:]), parts(recs[2:]), second, func(context.Context) error { return errors.New("the append before failed") })
	assert.ErrorIs(t, err, core.ErrConflict, "the append before failed")
	unsequenced("an AppendAfter whose predecessor failed writes nothing")
	err = oa.AppendAfter(ctx, 2, seqs(recs[2:]), parts(recs[2:]), second, func(context.Context) error { return nil })
	assert.ErrorIs(t, err, core.ErrConflict, "the tree has 0 leaves, not 2")
	unsequenced("an AppendAfter at the wrong size writes nothing")

	// The second batch waits for the first, which is not held up by it.
	waiting, release := make(chan struct{}), make(chan error)
	var once sync.Once
	var prevErr error
	done := make(chan error, 1)
	go func() {
		done <- oa.AppendAfter(ctx, 2, seqs(recs[2:]), parts(recs[2:]), second, func(context.Context) error {
			once.Do(func() {
				close(waiting)
				prevErr = <-release
			})
			return prevErr
		})
	}()
	select {
	case <-waiting:
	case err := <-done:
		t.Fatalf("AppendAfter returned before waiting for the append before it: %v", err)
	case <-ctx.Done():
		t.Fatal("AppendAfter never waited for the append before it")
	}
	unsequenced("nothing of an AppendAfter is visible before the append before it returned")
	require.NoError(t, h.Store.Append(ctx, 0, seqs(recs[:2]), first), "the append before is not held up by the one after it")
	release <- nil
	require.NoError(t, <-done)
	checkTree(t, h.Store, refresh(t, h.Store, &recs[0].Op, &recs[1].Op, &recs[2].Op, &recs[3].Op))
	// Each operation is read from its own partition at its position:
	// AppendAfter wrote the partitions it was given with the positions.
	for i, r := range recs {
		got, err := h.Store.ReadPartition(ctx, core.ReadParams{Part: r.Part, After: int64(i) - 1, Limit: 1})
		require.NoError(t, err)
		if assert.Len(t, got, 1, "partition %d above position %d", r.Part, i-1) {
			assert.Equal(t, r.Seq, got[0].Seq, "partition %d above position %d", r.Part, i-1)
			assert.Equal(t, int64(i), got[0].LeafIndex, "the position of seq %d", r.Seq)
		}
	}
}

func testReadPartition(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	P := needPartitions(t, h.Store, 2)
	pa, pb := 0, P-1
	x, y, z := objectIn("x", pa, P), objectIn("y", pa, P), objectIn("z", pb, P)
	ops := []*core.Operation{NewOp(x, 1), NewOp(z, 2), NewOp(y, 3), NewOp(x, 4), NewOp(z, 5), NewOp(y, 6), NewOp(x, 7)}
	record(t, h.Store, ops...)
	sequence(t, h.Store)
	recs := refresh(t, h.Store, ops...)
	inA := []core.Record{recs[0], recs[2], recs[3], recs[5], recs[6]}
	inB := []core.Record{recs[1], recs[4]}
	late := record(t, h.Store, NewOp(x, 8)) // not sequenced: no position
	partsBefore := partitions(t, h.Store)
	statsBefore, err := h.Store.Stats(ctx)
	require.NoError(t, err)

	read := func(p core.ReadParams) []core.Record {
		t.Helper()
		got, err := h.Store.ReadPartition(ctx, p)
		require.NoError(t, err)
		return got
	}
	got := read(core.ReadParams{Part: pa, After: -1, Limit: 100})
	require.Equal(t, opIDs(inA), opIDs(got), "the partition's operations in position order, and only them")
	for i, r := range got {
		assert.Equal(t, inA[i].Op, r.Op)
		assert.Equal(t, inA[i].Seq, r.Seq)
		assert.Equal(t, pa, r.Part)
		assert.Equal(t, inA[i].LeafIndex, r.LeafIndex)
		assert.Equal(t, core.StatePending, r.State, "above the cursor: pending")
		assert.Zero(t, r.Attempts)
		assert.False(t, r.Held)
	}
	assert.Equal(t, opIDs(inA[:2]), opIDs(read(core.ReadParams{Part: pa, After: -1, Limit: 2})), "Limit honoured")
	assert.Equal(t, opIDs(inA[2:]), opIDs(read(core.ReadParams{Part: pa, After: inA[1].LeafIndex, Limit: 100})), "above After only")
	assert.Empty(t, read(core.ReadParams{Part: pa, After: inA[4].LeafIndex, Limit: 100}), "an operation without a position is not read")
	assert.Equal(t, opIDs(inB), opIDs(read(core.ReadParams{Part: pb, After: -1, Limit: 100})))
	assert.Equal(t, opIDs(inA), opIDs(read(core.ReadParams{Part: pa, After: -1, Limit: 100, Strict: true})),
		"a strict read with an empty retry table holds nothing back")

	assert.Equal(t, partsBefore, partitions(t, h.Store), "ReadPartition writes nothing")
	statsAfter, err := h.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, statsBefore.Counts, statsAfter.Counts, "ReadPartition writes nothing")
	assert.Equal(t, int64(-1), get(t, h.Store, late[0].Op.OpID).LeafIndex)
}

func testAdvance(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	P := needPartitions(t, h.Store, 2)
	pa, pb := 0, P-1
	a, b, c := objectIn("a", pa, P), objectIn("b", pa, P), objectIn("c", pa, P)
	ops := []*core.Operation{NewOp(a, 1), NewOp(b, 2), NewOp(c, 3), NewOp(a, 4), NewOp(b, 5), NewOp(objectIn("o", pb, P), 6)}
	record(t, h.Store, ops...)
	sequence(t, h.Store)
	r := refresh(t, h.Store, ops...)
	other := r[5]
	p := take(t, h.Store, pa, "member-1")
	assert.Equal(t, int64(-1), p.Cursor)

	failed := []core.Failure{
		{Seq: r[1].Seq, Err: "boom", Delay: time.Hour},
		{Seq: r[2].Seq, Err: "refused", Dead: true},
		{Seq: r[3].Seq, Held: true},
	}
	unchanged := func(what string) {
		t.Helper()
		assert.Equal(t, int64(-1), partition(t, h.Store, pa).Cursor, "%s: the cursor did not move", what)
		for _, x := range r[:5] {
			got := get(t, h.Store, x.Op.OpID)
			assert.Equal(t, core.StatePending, got.State, "%s: %s stays pending, nothing goes to the retry table", what, x.Op.DOID)
			assert.Zero(t, got.Attempts)
		}
	}
	err := h.Store.Advance(ctx, core.AdvanceParams{Part: pa, Generation: p.Generation - 1, From: -1, To: r[4].LeafIndex, Failed: failed})
	require.ErrorIs(t, err, core.ErrFenced, "an older generation is fenced")
	unchanged("older generation")
	err = h.Store.Advance(ctx, core.AdvanceParams{Part: pa, Generation: p.Generation, From: r[0].LeafIndex, To: r[4].LeafIndex, Failed: failed})
	require.ErrorIs(t, err, core.ErrFenced, "a From that is not the cursor is fenced")
	unchanged("wrong From")

	before := time.Now()
	require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: pa, Generation: p.Generation, From: -1, To: r[3].LeafIndex, Failed: failed}))
	now := partition(t, h.Store, pa)
	assert.Equal(t, r[3].LeafIndex, now.Cursor, "the cursor moved to To")
	assert.Equal(t, p.Generation, now.Generation, "Advance does not change the generation")
	assert.Equal(t, "member-1", now.Owner)
	assert.Equal(t, int64(-1), partition(t, h.Store, pb).Cursor, "other partitions keep their cursor")

	got := refresh(t, h.Store, ops...)
	assert.Equal(t, core.StatePublished, got[0].State, "at or below the cursor, not failed: published")
	assert.Zero(t, got[0].Attempts)
	assert.Equal(t, core.StateRetrying, got[1].State, "failed: retrying")
	assert.Equal(t, 1, got[1].Attempts, "a first failure is attempt 1")
	assert.Equal(t, "boom", got[1].LastError)
	assert.WithinDuration(t, before.Add(time.Hour), got[1].DueAt, time.Minute, "due after Delay")
	assert.Equal(t, core.StateDead, got[2].State, "dead")
	assert.Equal(t, 1, got[2].Attempts)
	assert.Equal(t, "refused", got[2].LastError)
	assert.Equal(t, core.StateRetrying, got[3].State, "held: in the retry table, not dead")
	assert.Zero(t, got[3].Attempts, "a held operation was not sent: no attempt")
	assert.Empty(t, got[3].LastError)
	assert.False(t, got[3].DueAt.After(time.Now().Add(time.Minute)), "a held operation is due at once")
	assert.Equal(t, core.StatePending, got[4].State, "above the cursor: pending")
	assert.Equal(t, core.StatePending, got[5].State, "another partition's operation: pending")

	err = h.Store.Advance(ctx, core.AdvanceParams{Part: pa, Generation: p.Generation, From: -1, To: r[4].LeafIndex,
		Failed: []core.Failure{{Seq: r[4].Seq, Err: "late", Delay: time.Hour}}})
	require.ErrorIs(t, err, core.ErrFenced, "an advance from a cursor that moved is fenced")
	assert.Equal(t, core.StatePending, get(t, h.Store, r[4].Op.OpID).State, "a fenced advance writes no failure")
	assert.Equal(t, 1, get(t, h.Store, r[1].Op.OpID).Attempts, "nor touches earlier ones")

	// A new owner (here the same member again) fences the old generation.
	p2 := take(t, h.Store, pa, "member-1")
	assert.Equal(t, p.Generation+1, p2.Generation)
	assert.Equal(t, r[3].LeafIndex, p2.Cursor, "a taken partition comes with its cursor")
	err = h.Store.Advance(ctx, core.AdvanceParams{Part: pa, Generation: p.Generation, From: r[3].LeafIndex, To: r[4].LeafIndex})
	require.ErrorIs(t, err, core.ErrFenced, "the previous owner's advance is fenced")
	assert.Equal(t, r[3].LeafIndex, partition(t, h.Store, pa).Cursor)
	require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: pa, Generation: p2.Generation, From: r[3].LeafIndex, To: r[4].LeafIndex}))
	assert.Equal(t, core.StatePublished, get(t, h.Store, r[4].Op.OpID).State)
	assert.Equal(t, core.StatePending, get(t, h.Store, other.Op.OpID).State)
}

func testPartitionLeases(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	P := needPartitions(t, h.Store, 2)
	p0, p1 := 0, P-1
	start := partitions(t, h.Store)
	before := time.Now()

	a := take(t, h.Store, p0, "m1")
	assert.Equal(t, p0, a.Part)
	assert.Equal(t, "m1", a.Owner)
	assert.Equal(t, start[p0].Generation+1, a.Generation, "taking increments the generation")
	assert.Equal(t, int64(-1), a.Cursor)
	assert.WithinDuration(t, before.Add(time.Hour), a.Expires, time.Minute, "held until ttl from now")
	assert.Equal(t, a.Generation, partition(t, h.Store, p0).Generation)
	assert.Equal(t, "m1", partition(t, h.Store, p0).Owner)

	_, err := h.Store.TakePartition(ctx, p0, "m2", time.Hour)
	require.ErrorIs(t, err, core.ErrLeaseHeld, "a held partition is not taken")
	assert.Equal(t, "m1", partition(t, h.Store, p0).Owner)
	assert.Equal(t, a.Generation, partition(t, h.Store, p0).Generation, "a refused take changes nothing")

	again := take(t, h.Store, p0, "m1")
	assert.Equal(t, a.Generation+1, again.Generation, "the owner taking again gets a new generation")
	assert.Equal(t, "m1", again.Owner)

	// An expired lease is taken by another member.
	short, err := h.Store.TakePartition(ctx, p1, "m1", time.Second)
	require.NoError(t, err)
	var taken core.Partition
	eventually(t, ctx, "m2 takes p1 once m1's lease expired", func() (bool, error) {
		var err error
		taken, err = h.Store.TakePartition(ctx, p1, "m2", time.Hour)
		if errors.Is(err, core.ErrLeaseHeld) {
			return false, nil
		}
		return err == nil, err
	})
	assert.Equal(t, short.Generation+1, taken.Generation)
	assert.Equal(t, "m2", taken.Owner)

	before = time.Now()
	renewed, err := h.Store.RenewPartitions(ctx, "m1", 2*time.Hour)
	require.NoError(t, err)
	require.Len(t, renewed, 1, "m1 still owns p0 only: p1 expired and was taken")
	assert.Equal(t, p0, renewed[0].Part)
	assert.Equal(t, again.Generation, renewed[0].Generation, "renewing keeps the generation")
	assert.WithinDuration(t, before.Add(2*time.Hour), renewed[0].Expires, time.Minute)
	assert.WithinDuration(t, before.Add(2*time.Hour), partition(t, h.Store, p0).Expires, time.Minute)
	renewed, err = h.Store.RenewPartitions(ctx, "m2", time.Hour)
	require.NoError(t, err)
	require.Len(t, renewed, 1)
	assert.Equal(t, p1, renewed[0].Part)
	renewed, err = h.Store.RenewPartitions(ctx, "nobody", time.Hour)
	require.NoError(t, err)
	assert.Empty(t, renewed)

	// Releasing with a stale generation is a no-op.
	require.NoError(t, h.Store.ReleasePartition(ctx, p0, a.Generation))
	assert.Equal(t, "m1", partition(t, h.Store, p0).Owner, "a release of an older generation does nothing")
	require.NoError(t, h.Store.ReleasePartition(ctx, p1, short.Generation))
	assert.Equal(t, "m2", partition(t, h.Store, p1).Owner, "the previous owner cannot release the new owner's lease")
	_, err = h.Store.TakePartition(ctx, p0, "m2", time.Hour)
	require.ErrorIs(t, err, core.ErrLeaseHeld)

	require.NoError(t, h.Store.ReleasePartition(ctx, p0, again.Generation))
	assert.Empty(t, partition(t, h.Store, p0).Owner, "released")
	renewed, err = h.Store.RenewPartitions(ctx, "m1", time.Hour)
	require.NoError(t, err)
	assert.Empty(t, renewed, "a released partition is not renewed")
	m2 := take(t, h.Store, p0, "m2")
	assert.Equal(t, again.Generation+1, m2.Generation, "a released partition is free at once")
	for i, p := range partitions(t, h.Store) {
		if i != p0 && i != p1 {
			assert.Equal(t, start[i].Generation, p.Generation, "partition %d untouched", i)
			assert.Empty(t, p.Owner, "partition %d untouched", i)
		}
	}
}

func testMembership(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	beat := func(member string, ttl time.Duration) []string {
		t.Helper()
		live, err := h.Store.Heartbeat(ctx, member, ttl)
		require.NoError(t, err)
		return live
	}
	assert.Equal(t, []string{"relay-b"}, beat("relay-b", time.Hour), "a member sees itself")
	assert.Equal(t, []string{"relay-a", "relay-b"}, beat("relay-a", time.Hour), "live members, sorted")
	assert.Equal(t, []string{"relay-a", "relay-b", "relay-c"}, beat("relay-c", time.Hour))
	require.NoError(t, h.Store.Leave(ctx, "relay-b"))
	require.NoError(t, h.Store.Leave(ctx, "relay-unknown"), "leaving as an unknown member is fine")
	assert.Equal(t, []string{"relay-a", "relay-c"}, beat("relay-c", time.Hour), "a member that left is forgotten at once")
	// relay-a's next heartbeat is short, and it stops beating.
	assert.Contains(t, beat("relay-a", time.Second), "relay-a")
	eventually(t, ctx, "relay-a's heartbeat expires", func() (bool, error) {
		live, err := h.Store.Heartbeat(ctx, "relay-c", time.Hour)
		return slices.Equal(live, []string{"relay-c"}), err
	})
	assert.Equal(t, []string{"relay-a", "relay-c"}, beat("relay-a", time.Hour), "an expired member that beats again is back")
}

// retryFixture is a partition with a retry table: objects X, Y, W and V in
// partition part, Q in partition other.
//
//	X1 failed (due now), X2 X3 held
//	Y1 failed (due in an hour), Y2 held
//	W1 dead, W2 held
//	V1 dead
//	Q1 failed (due now), in the other partition
type retryFixture struct {
	P, part, other int
	gen, otherGen  int64
	names          map[string]string // object → DOID local part
	x1, x2, x3     core.Record
	y1, y2         core.Record
	w1, w2, v1     core.Record
	q1             core.Record
}

func newRetryFixture(t *testing.T, h StoreHarness) *retryFixture {
	ctx := testContext(t)
	P := needPartitions(t, h.Store, 2)
	f := &retryFixture{P: P, part: 0, other: P - 1, names: map[string]string{}}
	for _, n := range []string{"x", "y", "w", "v", "z"} {
		f.names[n] = objectIn(n, f.part, P)
	}
	f.names["q"] = objectIn("q", f.other, P)
	ops := []*core.Operation{
		NewOp(f.names["x"], 1), NewOp(f.names["x"], 2), NewOp(f.names["x"], 3),
		NewOp(f.names["y"], 4), NewOp(f.names["y"], 5),
		NewOp(f.names["w"], 6), NewOp(f.names["w"], 7),
		NewOp(f.names["v"], 8),
		NewOp(f.names["q"], 9),
	}
	record(t, h.Store, ops...)
	sequence(t, h.Store)
	r := refresh(t, h.Store, ops...)
	f.x1, f.x2, f.x3, f.y1, f.y2, f.w1, f.w2, f.v1, f.q1 = r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]
	f.gen = take(t, h.Store, f.part, "member-1").Generation
	f.otherGen = take(t, h.Store, f.other, "member-1").Generation
	require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: f.part, Generation: f.gen, From: -1, To: f.v1.LeafIndex, Failed: []core.Failure{
		{Seq: f.x1.Seq, Err: "x1 failed"},
		{Seq: f.x2.Seq, Held: true},
		{Seq: f.x3.Seq, Held: true},
		{Seq: f.y1.Seq, Err: "y1 failed", Delay: time.Hour},
		{Seq: f.y2.Seq, Held: true},
		{Seq: f.w1.Seq, Err: "w1 refused", Dead: true},
		{Seq: f.w2.Seq, Held: true},
		{Seq: f.v1.Seq, Err: "v1 refused", Dead: true},
	}}))
	require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: f.other, Generation: f.otherGen, From: -1, To: f.q1.LeafIndex,
		Failed: []core.Failure{{Seq: f.q1.Seq, Err: "q1 failed"}}}))
	return f
}

// due reads partition part's due retries.
func due(t *testing.T, s core.Store, part, limit int, strict bool) []core.Record {
	t.Helper()
	recs, err := s.DueRetries(testContext(t), core.DueParams{Part: part, Limit: limit, Strict: strict})
	require.NoError(t, err)
	return recs
}

func testDueRetries(t *testing.T, h StoreHarness) {
	f := newRetryFixture(t, h)
	want := []core.Record{f.x1, f.x2, f.x3, f.y2, f.w2}
	got := due(t, h.Store, f.part, 100, false)
	require.Equal(t, opIDs(want), opIDs(got), "due and not dead, in position order: not Y1 (due in an hour), not W1 or V1 (dead)")
	for i, r := range got {
		assert.Equal(t, want[i].Op, r.Op)
		assert.Equal(t, want[i].LeafIndex, r.LeafIndex, "a retry keeps its position")
		assert.Equal(t, f.part, r.Part)
		assert.Equal(t, core.StateRetrying, r.State)
	}
	assert.Equal(t, []int{1, 0, 0, 0, 0}, attemptsOf(got))
	assert.Equal(t, "x1 failed", got[0].LastError)
	assert.Equal(t, opIDs(want[:2]), opIDs(due(t, h.Store, f.part, 2, false)), "Limit honoured")
	assert.Equal(t, opIDs([]core.Record{f.x1, f.w2}), opIDs(due(t, h.Store, f.part, 100, true)),
		"strict: only the head of each object (X1); Y2 waits behind Y1, not due; W2 is a head, as dead W1 does not hold it back")
	assert.Equal(t, opIDs([]core.Record{f.q1}), opIDs(due(t, h.Store, f.other, 100, false)), "only the partition's retries")
	for i := 1; i < f.P-1; i++ {
		assert.Empty(t, due(t, h.Store, i, 100, false), "partition %d has no retry", i)
	}
}

func attemptsOf(recs []core.Record) []int {
	out := make([]int, len(recs))
	for i, r := range recs {
		out[i] = r.Attempts
	}
	return out
}

func testStrictRead(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	f := newRetryFixture(t, h)
	ops := []*core.Operation{NewOp(f.names["x"], 10), NewOp(f.names["y"], 11), NewOp(f.names["w"], 12), NewOp(f.names["v"], 13), NewOp(f.names["z"], 14)}
	record(t, h.Store, ops...)
	sequence(t, h.Store)
	p := core.ReadParams{Part: f.part, After: f.v1.LeafIndex, Limit: 100, Strict: true}
	got, err := h.Store.ReadPartition(ctx, p)
	require.NoError(t, err)
	require.Equal(t, ids(ops), opIDs(got))
	assert.Equal(t, []bool{true, true, true, false, false}, held(got),
		"strict: X, Y and W have an earlier operation in the retry table that is not dead; V's is dead; Z has none")
	p.Strict = false
	got, err = h.Store.ReadPartition(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, []bool{false, false, false, false, false}, held(got), "only a strict read holds back")
}

func testSettleRetries(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	f := newRetryFixture(t, h)
	err := h.Store.SettleRetries(ctx, core.SettleParams{Part: f.part, Generation: f.gen - 1, Published: []int64{f.x1.Seq},
		Failed: []core.Failure{{Seq: f.x2.Seq, Err: "stale", Dead: true}}})
	require.ErrorIs(t, err, core.ErrFenced, "an older generation is fenced")
	assert.Equal(t, core.StateRetrying, get(t, h.Store, f.x1.Op.OpID).State, "a fenced settle writes nothing")
	assert.Equal(t, core.StateRetrying, get(t, h.Store, f.x2.Op.OpID).State, "a fenced settle writes nothing")

	before := time.Now()
	require.NoError(t, h.Store.SettleRetries(ctx, core.SettleParams{Part: f.part, Generation: f.gen, Published: []int64{f.x1.Seq},
		Failed: []core.Failure{{Seq: f.x2.Seq, Err: "x2 failed", Delay: time.Hour}}}))
	x1, x2 := get(t, h.Store, f.x1.Op.OpID), get(t, h.Store, f.x2.Op.OpID)
	assert.Equal(t, core.StatePublished, x1.State, "published: out of the retry table")
	assert.Equal(t, core.StateRetrying, x2.State)
	assert.Equal(t, 1, x2.Attempts, "attempts + 1")
	assert.Equal(t, "x2 failed", x2.LastError)
	assert.WithinDuration(t, before.Add(time.Hour), x2.DueAt, time.Minute, "due after Delay")
	assert.Equal(t, opIDs([]core.Record{f.x3, f.y2, f.w2}), opIDs(due(t, h.Store, f.part, 100, false)))
	assert.Equal(t, opIDs([]core.Record{f.w2}), opIDs(due(t, h.Store, f.part, 100, true)),
		"strict: X3 waits behind X2, now X's head")

	require.NoError(t, h.Store.SettleRetries(ctx, core.SettleParams{Part: f.part, Generation: f.gen,
		Failed: []core.Failure{{Seq: f.x2.Seq, Err: "x2 refused", Dead: true}}}))
	x2 = get(t, h.Store, f.x2.Op.OpID)
	assert.Equal(t, core.StateDead, x2.State)
	assert.Equal(t, 2, x2.Attempts, "attempts + 1, also when it goes dead")
	assert.Equal(t, "x2 refused", x2.LastError)
	assert.Equal(t, opIDs([]core.Record{f.x3, f.w2}), opIDs(due(t, h.Store, f.part, 100, true)),
		"strict: a dead operation no longer holds its object back")

	// A retry that fails with a short delay becomes due again.
	require.NoError(t, h.Store.SettleRetries(ctx, core.SettleParams{Part: f.other, Generation: f.otherGen,
		Failed: []core.Failure{{Seq: f.q1.Seq, Err: "q1 failed again", Delay: 200 * time.Millisecond}}}))
	eventually(t, ctx, "Q1 is due again", func() (bool, error) {
		recs, err := h.Store.DueRetries(ctx, core.DueParams{Part: f.other, Limit: 10})
		return len(recs) == 1 && recs[0].Attempts == 2 && recs[0].LastError == "q1 failed again", err
	})

	// A new owner fences the old generation.
	require.NoError(t, h.Store.ReleasePartition(ctx, f.part, f.gen))
	p := take(t, h.Store, f.part, "member-2")
	err = h.Store.SettleRetries(ctx, core.SettleParams{Part: f.part, Generation: f.gen, Published: []int64{f.x3.Seq}})
	require.ErrorIs(t, err, core.ErrFenced, "the previous owner's settle is fenced")
	assert.Equal(t, core.StateRetrying, get(t, h.Store, f.x3.Op.OpID).State)
	require.NoError(t, h.Store.SettleRetries(ctx, core.SettleParams{Part: f.part, Generation: p.Generation, Published: []int64{f.x3.Seq, f.w2.Seq}}))
	assert.Equal(t, []core.State{core.StatePublished, core.StatePublished}, states(refresh(t, h.Store, &f.x3.Op, &f.w2.Op)))
}

func testDeadRequeue(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	P := len(partitions(t, h.Store))
	part := 0
	obj := []string{objectIn("r0", part, P), objectIn("r1", part, P), objectIn("r2", part, P), objectIn("r3", part, P)}
	ops := []*core.Operation{NewOp(obj[0], 1), NewOp(obj[1], 2), NewOp(obj[2], 3), NewOp(obj[3], 4)}
	record(t, h.Store, ops...)
	sequence(t, h.Store)
	recs := refresh(t, h.Store, ops...)
	p := take(t, h.Store, part, "member-1")
	require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: part, Generation: p.Generation, From: -1, To: recs[3].LeafIndex,
		Failed: []core.Failure{{Seq: recs[1].Seq, Err: "too large", Dead: true}, {Seq: recs[3].Seq, Err: "rejected", Dead: true},
			{Seq: recs[2].Seq, Err: "later", Delay: time.Hour}}}))

	dead, err := h.Store.ListDead(ctx, core.ListParams{})
	require.NoError(t, err)
	require.Equal(t, seqsOf([]core.Record{recs[1], recs[3]}), seqsOf(dead), "dead operations in seq order")
	assert.Equal(t, recs[1].Op, dead[0].Op)
	assert.Equal(t, "too large", dead[0].LastError)
	assert.Equal(t, core.StateDead, dead[0].State)
	assert.Equal(t, core.StatusDead, dead[0].State.Status())
	page, err := h.Store.ListDead(ctx, core.ListParams{AfterSeq: recs[1].Seq, Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, []int64{recs[3].Seq}, seqsOf(page), "paged by AfterSeq and Limit")

	n, err := h.Store.Requeue(ctx, core.RequeueParams{OpIDs: []string{recs[1].Op.OpID, recs[0].Op.OpID, recs[2].Op.OpID}})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only dead operations are requeued")
	r1 := get(t, h.Store, recs[1].Op.OpID)
	assert.Equal(t, core.StateRetrying, r1.State, "requeued: due again")
	assert.Zero(t, r1.Attempts, "with no attempts")
	assert.Equal(t, core.StatePublished, get(t, h.Store, recs[0].Op.OpID).State, "a published operation is left alone")
	assert.Equal(t, 1, get(t, h.Store, recs[2].Op.OpID).Attempts, "a retrying operation is left alone")
	assert.Equal(t, opIDs([]core.Record{recs[1]}), opIDs(due(t, h.Store, part, 100, false)), "due at once")

	n, err = h.Store.Requeue(ctx, core.RequeueParams{})
	if err == nil {
		assert.Zero(t, n, "a requeue naming nothing requeues nothing")
	}
	assert.Equal(t, core.StateDead, get(t, h.Store, recs[3].Op.OpID).State)
	n, err = h.Store.Requeue(ctx, core.RequeueParams{All: true})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "All requeues every dead operation")
	n, err = h.Store.Requeue(ctx, core.RequeueParams{All: true})
	require.NoError(t, err)
	assert.Zero(t, n)
	dead, err = h.Store.ListDead(ctx, core.ListParams{})
	require.NoError(t, err)
	assert.Empty(t, dead)
	assert.Equal(t, opIDs([]core.Record{recs[1], recs[3]}), opIDs(due(t, h.Store, part, 100, false)))
}

func testGetState(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	P := len(partitions(t, h.Store))
	part := 0
	obj := objectIn("s", part, P)
	pub, ret, dead := NewOp(obj, 1), NewOp(obj, 2), NewOp(obj, 3)
	record(t, h.Store, pub, ret, dead)
	sequence(t, h.Store)
	recs := refresh(t, h.Store, pub, ret, dead)
	p := take(t, h.Store, part, "member-1")
	require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: part, Generation: p.Generation, From: -1, To: recs[2].LeafIndex,
		Failed: []core.Failure{{Seq: recs[1].Seq, Err: "e", Delay: time.Hour}, {Seq: recs[2].Seq, Err: "e", Dead: true}}}))
	above := NewOp(obj, 4)
	record(t, h.Store, above)
	sequence(t, h.Store)
	unseq := NewOp(obj, 5)
	record(t, h.Store, unseq)

	for _, tc := range []struct {
		op     *core.Operation
		state  core.State
		status core.Status
		pos    bool
		why    string
	}{
		{pub, core.StatePublished, core.StatusTrustlogged, true, "position at or below the cursor, not in the retry table"},
		{ret, core.StateRetrying, core.StatusNotTrustlogged, true, "in the retry table"},
		{dead, core.StateDead, core.StatusDead, true, "dead in the retry table"},
		{above, core.StatePending, core.StatusNotTrustlogged, true, "position above the cursor"},
		{unseq, core.StatePending, core.StatusNotTrustlogged, false, "no position yet"},
	} {
		r := get(t, h.Store, tc.op.OpID)
		assert.Equal(t, tc.state, r.State, "%s: %s", tc.state, tc.why)
		assert.Equal(t, tc.status, r.State.Status())
		if tc.pos {
			assert.GreaterOrEqual(t, r.LeafIndex, int64(0), "%s has a position", tc.why)
		} else {
			assert.Equal(t, int64(-1), r.LeafIndex)
		}
	}
}

func testStats(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	P := len(partitions(t, h.Store))
	st, err := h.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Zero(t, st.MaxSeq)
	assert.Zero(t, st.TreeSize)
	assert.True(t, st.OldestUnsettled.IsZero())
	assert.Len(t, st.Partitions, P)
	for _, s := range core.States {
		assert.Contains(t, st.Counts, s, "a count for every state, zeros too")
		assert.Zero(t, st.Counts[s])
	}

	part := 0
	obj := objectIn("st", part, P)
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ops := make([]*core.Operation, 6)
	for i := range ops {
		ops[i] = NewOp(obj, i)
		ops[i].CreatedAt = base.Add(time.Duration(i) * time.Second)
	}
	// 0, 1 published; 2 dead; 3 retrying; 4 pending (positioned); 5 pending (not).
	record(t, h.Store, ops[:4]...)
	sequence(t, h.Store)
	recs := refresh(t, h.Store, ops[:4]...)
	p := take(t, h.Store, part, "member-1")
	require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: part, Generation: p.Generation, From: -1, To: recs[3].LeafIndex,
		Failed: []core.Failure{{Seq: recs[2].Seq, Err: "e", Dead: true}, {Seq: recs[3].Seq, Err: "e", Delay: time.Hour}}}))
	record(t, h.Store, ops[4])
	sequence(t, h.Store)
	last := record(t, h.Store, ops[5])[0]

	st, err = h.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[core.State]int64{core.StatePending: 2, core.StateRetrying: 1, core.StatePublished: 2, core.StateDead: 1}, st.Counts)
	assert.Equal(t, last.Seq, st.MaxSeq)
	assert.Equal(t, int64(5), st.TreeSize)
	assert.Equal(t, ops[3].CreatedAt, st.OldestUnsettled.UTC(), "the oldest operation neither published nor dead")
	require.Len(t, st.Partitions, P)
	assert.Equal(t, recs[3].LeafIndex, st.Partitions[part].Cursor)
	assert.Equal(t, "member-1", st.Partitions[part].Owner)
	assert.Equal(t, p.Generation, st.Partitions[part].Generation)
}

func testScan(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	P := len(partitions(t, h.Store))
	part := 0
	obj := objectIn("scan", part, P)
	ops := make([]*core.Operation, 7)
	for i := range ops {
		ops[i] = NewOp(obj, i)
	}
	record(t, h.Store, ops[:3]...)
	sequence(t, h.Store)
	first := refresh(t, h.Store, ops[:3]...)
	p := take(t, h.Store, part, "member-1")
	require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: part, Generation: p.Generation, From: -1, To: first[2].LeafIndex,
		Failed: []core.Failure{{Seq: first[1].Seq, Err: "e", Delay: time.Hour}, {Seq: first[2].Seq, Err: "e", Dead: true}}}))
	record(t, h.Store, ops[3:]...)

	var all []core.Record
	for after := int64(0); ; {
		page, err := h.Store.Scan(ctx, core.ScanParams{AfterSeq: after, Limit: 3})
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		require.LessOrEqual(t, len(page), 3, "Limit honoured")
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	want := refresh(t, h.Store, ops...)
	assert.Equal(t, seqsOf(want), seqsOf(all), "every operation, in seq order, whatever its state")
	assert.Equal(t, []core.State{core.StatePublished, core.StateRetrying, core.StateDead, core.StatePending, core.StatePending, core.StatePending, core.StatePending}, states(all))
	for i, r := range all {
		assert.Equal(t, want[i].Op, r.Op)
		assert.Equal(t, want[i].LeafIndex, r.LeafIndex)
		assert.Equal(t, want[i].Part, r.Part)
	}
}

func testCursors(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	_, err := h.Store.Cursor(ctx, "operation_scan")
	assert.ErrorIs(t, err, core.ErrNotFound)
	require.NoError(t, h.Store.SetCursor(ctx, "operation_scan", "41"))
	require.NoError(t, h.Store.SetCursor(ctx, "operation_scan", "42"))
	require.NoError(t, h.Store.SetCursor(ctx, "other", "x"))
	c, err := h.Store.Cursor(ctx, "operation_scan")
	require.NoError(t, err)
	assert.Equal(t, "operation_scan", c.Name)
	assert.Equal(t, "42", c.Value)
	assert.WithinDuration(t, time.Now(), c.UpdatedAt, time.Minute)
	c, err = h.Store.Cursor(ctx, "other")
	require.NoError(t, err)
	assert.Equal(t, "x", c.Value)
	assert.Error(t, h.Store.SetCursor(ctx, "", "x"), "a cursor needs a name")
	id, err := h.Store.Cursor(ctx, core.LogIDCursor)
	require.NoError(t, err, "the log identity is a named cursor")
	assert.NotEmpty(t, id.Value)
}

func testLeases(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	// Renewed every third of it: 2 s leaves a holder that a loaded machine
	// starves for more than a second its lease (1 s did not, under
	// stress-ng --cpu 2 with the race detector, on SQLite).
	const ttl = 2 * time.Second
	l := h.Store.Locker()
	name := "conformance-" + t.Name()
	lease, err := l.TryAcquire(ctx, name, ttl)
	require.NoError(t, err)
	assert.Equal(t, name, lease.Name())
	other := h.Store
	if h.Reopen != nil {
		other = h.Reopen(t)
	}
	_, err = other.Locker().TryAcquire(ctx, name, ttl)
	assert.ErrorIs(t, err, core.ErrLeaseHeld)
	_, err = l.TryAcquire(ctx, name, ttl)
	assert.ErrorIs(t, err, core.ErrLeaseHeld, "one holder at a time, in one process too")
	free, err := other.Locker().TryAcquire(ctx, name+"-other", ttl)
	require.NoError(t, err, "another name is another lease")
	require.NoError(t, free.Release(ctx))

	// Held for two TTLs: the holder keeps it alive.
	for end := time.Now().Add(2 * ttl); time.Now().Before(end); {
		select {
		case <-lease.Lost():
			t.Fatal("a lease its holder keeps renewing was lost")
		case <-time.After(50 * time.Millisecond):
		}
		_, err = other.Locker().TryAcquire(ctx, name, ttl)
		require.ErrorIs(t, err, core.ErrLeaseHeld, "still held after its TTL")
	}
	require.NoError(t, lease.Release(ctx))
	require.NoError(t, lease.Release(ctx), "Release is idempotent")
	again, err := other.Locker().TryAcquire(ctx, name, ttl)
	require.NoError(t, err, "free after release")
	require.NoError(t, again.Release(ctx))

	// A holder that can no longer renew (its store is closed) loses the
	// lease, and it is free once its TTL ran out. A session lease ends
	// with its database session, which closing a handle does not end
	// while the lease holds the connection: it is not checked here.
	if h.Reopen == nil || h.Store.Capabilities().SessionLeases {
		return
	}
	gone := h.Reopen(t)
	lost, err := gone.Locker().TryAcquire(ctx, name, ttl)
	require.NoError(t, err)
	require.NoError(t, gone.Close())
	testenv.Receive(t, lost.Lost(), "a lease that cannot be renewed reports Lost")
	eventually(t, ctx, "the lost lease is free once its TTL ran out", func() (bool, error) {
		l, err := h.Store.Locker().TryAcquire(ctx, name, ttl)
		if errors.Is(err, core.ErrLeaseHeld) {
			return false, nil
		}
		if err == nil {
			err = l.Release(ctx)
		}
		return err == nil, err
	})
}

// testNotify: a store that can (ListenNotify) wakes engines when
// operations commit and when they are sequenced, and closes the channel
// when the subscription's context ends.
func testNotify(t *testing.T, h StoreHarness) {
	if !h.Store.Capabilities().ListenNotify {
		t.Skip("the store polls (no ListenNotify)")
	}
	n, ok := h.Store.(core.Notifier)
	require.True(t, ok, "a store with ListenNotify implements core.Notifier")
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	ch, err := n.Subscribe(ctx)
	require.NoError(t, err)
	drain := func() {
		for {
			select {
			case <-ch:
			default:
				return
			}
		}
	}
	record(t, h.Store, NewOp("notify", 1))
	testenv.Receive(t, ch, "a notification after a commit of the store's own")
	drain()
	c := recorder(t, h.Store, nil)
	tx, err := h.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, c.RecordTx(ctx, tx, NewOp("notify", 2)))
	require.NoError(t, tx.Commit())
	testenv.Receive(t, ch, "a notification after the caller's transaction commits")
	drain()
	sequence(t, h.Store)
	testenv.Receive(t, ch, "a notification after operations are sequenced")

	closed := make(chan struct{})
	go func() {
		for range ch {
		}
		close(closed)
	}()
	cancel()
	testenv.Receive(t, closed, "the channel closes when the subscription's context ends")
}
