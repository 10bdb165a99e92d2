package conformance

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

// The Inspector half of the store suite: core.Inspector is optional, so
// each of these subtests logs and returns on a store without it (the
// built-in drivers assert at compile time that they implement it).
// testStatsBacklog is core.Store's own contract and runs on every store.

// inspector returns h's store as a core.Inspector, or nil (having said
// so) when it is not one.
func inspector(t *testing.T, h StoreHarness) core.Inspector {
	t.Helper()
	in, ok := h.Store.(core.Inspector)
	if !ok {
		t.Logf("%T does not implement core.Inspector: nothing to check", h.Store)
		return nil
	}
	return in
}

// find runs q and fails t on an error.
func find(t *testing.T, in core.Inspector, q core.FindQuery) []core.Record {
	t.Helper()
	recs, err := in.Find(testContext(t), q)
	require.NoError(t, err, "Find(%+v)", q)
	return recs
}

// sameAsGet checks that every record Find returned is the operation as
// Get returns it: state, attempts, last error, due and update times,
// position and partition included.
func sameAsGet(t *testing.T, s core.Store, recs []core.Record, what string) {
	t.Helper()
	for _, r := range recs {
		assert.Equal(t, get(t, s, r.Op.OpID), r, "%s: %s is returned as Get returns it", what, r.Op.OpID)
	}
}

// testFindHistory: an object's history is every operation of its DOID,
// whatever its state, in seq order, and nothing else.
func testFindHistory(t *testing.T, h StoreHarness) {
	in := inspector(t, h)
	if in == nil {
		return
	}
	ctx := testContext(t)
	P := len(partitions(t, h.Store))
	part := 0
	obj, other := objectIn("hist", part, P), objectIn("hist-other", part, P)
	far := objectIn("hist-far", P-1, P)
	hist := make([]*core.Operation, 6)
	for i := range hist {
		hist[i] = NewOp(obj, i)
	}
	// h0 published, h1 retrying (failed twice), h2 dead from Advance,
	// h3 dead from SettleRetries, h4 pending with a position, h5
	// pending without; operations of other objects in between.
	record(t, h.Store, hist[0], NewOp(other, 10), hist[1], hist[2], NewOp(far, 11), hist[3])
	sequence(t, h.Store)
	recs := refresh(t, h.Store, hist[:4]...)
	p := take(t, h.Store, part, "member-1")
	require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: part, Generation: p.Generation, From: -1, To: recs[3].LeafIndex,
		Failed: []core.Failure{{Seq: recs[1].Seq, Err: "boom", Delay: time.Hour}, {Seq: recs[2].Seq, Err: "gone", Dead: true},
			{Seq: recs[3].Seq, Err: "refused", Delay: time.Hour}}}))
	require.NoError(t, h.Store.SettleRetries(ctx, core.SettleParams{Part: part, Generation: p.Generation,
		Failed: []core.Failure{{Seq: recs[1].Seq, Err: "boom again", Delay: time.Hour}, {Seq: recs[3].Seq, Err: "refused for good", Dead: true}}}))
	record(t, h.Store, hist[4], NewOp(other, 12))
	sequence(t, h.Store)
	record(t, h.Store, hist[5])

	got := find(t, in, core.FindQuery{DOID: "10.1000/" + obj})
	require.Equal(t, ids(hist), opIDs(got), "the object's operations in seq order, and only them")
	assert.Equal(t, []core.State{core.StatePublished, core.StateRetrying, core.StateDead, core.StateDead, core.StatePending, core.StatePending},
		states(got))
	sameAsGet(t, h.Store, got, "history")
	assert.Equal(t, 2, got[1].Attempts)
	assert.Equal(t, "boom again", got[1].LastError)
	assert.Equal(t, "refused for good", got[3].LastError)
	assert.Equal(t, int64(-1), got[5].LeafIndex, "an operation without a position is in the history")

	assert.Equal(t, ids(hist[2:4]), opIDs(find(t, in, core.FindQuery{DOID: "10.1000/" + obj, State: core.StateDead})), "the object's dead operations")
	assert.Equal(t, ids(hist[1:2]), opIDs(find(t, in, core.FindQuery{DOID: "10.1000/" + obj, State: core.StateRetrying})),
		"the object's retrying operations")
	assert.Empty(t, find(t, in, core.FindQuery{DOID: "10.1000/" + obj + "-none"}), "an object with no operation has no history")
	assert.Empty(t, find(t, in, core.FindQuery{DOID: "10.1000/" + obj[:len(obj)-1]}), "a DOID matches exactly, not as a prefix")
}

// testFindActor: an actor's operations, exactly that actor (case
// included), within a half-open time range From <= created_at < To
// compared at the stored microsecond.
func testFindActor(t *testing.T, h StoreHarness) {
	in := inspector(t, h)
	if in == nil {
		return
	}
	P := len(partitions(t, h.Store))
	base := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	var alice, all []*core.Operation
	for i := 0; i < 5; i++ {
		for _, actor := range []string{"alice", "bob", "Alice"} {
			op := NewOp(objectIn("actor", i%P, P), 100+len(all))
			op.Actor = actor
			op.CreatedAt = base.Add(time.Duration(i) * time.Second)
			all = append(all, op)
			if actor == "alice" {
				alice = append(alice, op)
			}
		}
	}
	record(t, h.Store, all...)
	sequence(t, h.Store)

	q := func(from, to time.Time) []string {
		t.Helper()
		got := find(t, in, core.FindQuery{Actor: "alice", From: from, To: to})
		sameAsGet(t, h.Store, got, "actor")
		return opIDs(got)
	}
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	assert.Equal(t, ids(alice), q(time.Time{}, time.Time{}), "the actor's operations in seq order: not bob's, not Alice's")
	assert.Equal(t, ids(alice[1:3]), q(at(1), at(3)), "From included, To excluded")
	assert.Equal(t, ids(alice[1:]), q(at(1), time.Time{}), "no To: open")
	assert.Equal(t, ids(alice[:1]), q(time.Time{}, at(1)), "no From: open")
	assert.Empty(t, q(at(3), at(3)), "an empty range")
	assert.Equal(t, ids(alice[2:3]), q(at(1).Add(time.Nanosecond), at(2).Add(time.Nanosecond)),
		"bounds compare with the stored time: 1s+1ns excludes 1s, 2s+1ns includes 2s")
	assert.Equal(t, ids(alice[1:2]), q(at(1).In(time.FixedZone("UTC+8", 8*3600)), at(2).In(time.FixedZone("UTC-5", -5*3600))),
		"bounds are instants, whatever their zone")
	assert.Equal(t, ids(alice[3:4]), opIDs(find(t, in, core.FindQuery{Actor: "alice", DOID: alice[3].DOID, From: at(2)})),
		"actor and DOID together")
	assert.Empty(t, find(t, in, core.FindQuery{Actor: "alic"}), "an actor matches exactly, not as a prefix")
}

// testFindRetryFilters: State picks retrying or dead operations;
// ErrorContains matches the last error as plain text, byte for byte (no
// LIKE wildcards, case-sensitive); ChangedBefore the retry row's last
// change; each implies the retry table.
func testFindRetryFilters(t *testing.T, h StoreHarness) {
	in := inspector(t, h)
	if in == nil {
		return
	}
	ctx := testContext(t)
	P := len(partitions(t, h.Store))
	part := 0
	ops := make([]*core.Operation, 8)
	for i := range ops {
		ops[i] = NewOp(objectIn("filter-"+strconv.Itoa(i), part, P), 200+i)
	}
	record(t, h.Store, ops...)
	sequence(t, h.Store)
	recs := refresh(t, h.Store, ops...)
	// e0..e6 fail, e7 is published.
	failures := []struct {
		err  string
		dead bool
	}{
		{"disk 100% full", false},
		{"disk 100 percent full", false}, // "100%" as a LIKE pattern would match it
		{"bad_key", true},
		{"badXkey", true}, // "d_k" as a LIKE pattern would match it
		{"Disk 100% FULL", true},
		{`back\slash [x]`, false}, // `\s` as a LIKE pattern (\ escapes) would match any "s"
		{"ünïcode ✓ 仓库", false},
	}
	var failed []core.Failure
	for i, f := range failures {
		if f.dead {
			failed = append(failed, core.Failure{Seq: recs[i].Seq, Err: f.err, Dead: true})
		} else {
			failed = append(failed, core.Failure{Seq: recs[i].Seq, Err: f.err, Delay: time.Hour})
		}
	}
	p := take(t, h.Store, part, "member-1")
	require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: part, Generation: p.Generation, From: -1, To: recs[7].LeafIndex, Failed: failed}))

	e := func(is ...int) []string {
		out := make([]string, len(is))
		for i, x := range is {
			out[i] = ops[x].OpID
		}
		return out
	}
	check := func(q core.FindQuery, want []string, what string) {
		t.Helper()
		got := find(t, in, q)
		assert.Equal(t, want, opIDs(got), "%s: Find(%+v)", what, q)
		sameAsGet(t, h.Store, got, what)
	}
	check(core.FindQuery{State: core.StateRetrying}, e(0, 1, 5, 6), "retrying, in seq order")
	check(core.FindQuery{State: core.StateDead}, e(2, 3, 4), "dead, in seq order")
	check(core.FindQuery{State: core.StateDead, Limit: 2}, e(2, 3), "dead, Limit honoured")
	check(core.FindQuery{State: core.StateDead, AfterSeq: recs[3].Seq}, e(4), "dead, after a seq")
	check(core.FindQuery{ErrorContains: "100%"}, e(0, 4), "% is a character")
	check(core.FindQuery{ErrorContains: "disk 100%"}, e(0), "case-sensitive")
	check(core.FindQuery{ErrorContains: "FULL"}, e(4), "case-sensitive")
	check(core.FindQuery{ErrorContains: "d_k"}, e(2), "_ is a character")
	check(core.FindQuery{ErrorContains: `\s`}, e(5), `\ is a character`)
	check(core.FindQuery{ErrorContains: "[x]"}, e(5), "brackets are characters")
	check(core.FindQuery{ErrorContains: "仓库"}, e(6), "non-ASCII text")
	check(core.FindQuery{ErrorContains: "%"}, e(0, 4), "a lone %")
	check(core.FindQuery{ErrorContains: "100%", State: core.StateDead}, e(4), "error and state")
	check(core.FindQuery{ErrorContains: "100%", State: core.StateRetrying}, e(0), "error and state")
	check(core.FindQuery{ErrorContains: "no such error"}, e(), "no match")

	// e5 fails again until its retry row changed after the others'
	// (the database's clock may tick in milliseconds).
	first := refresh(t, h.Store, ops[:7]...)
	eventually(t, ctx, "e5's retry row changes after the others'", func() (bool, error) {
		err := h.Store.SettleRetries(ctx, core.SettleParams{Part: part, Generation: p.Generation,
			Failed: []core.Failure{{Seq: recs[5].Seq, Err: `back\slash [x] again`, Delay: time.Hour}}})
		if err != nil {
			return false, err
		}
		r, err := h.Store.Get(ctx, ops[5].OpID)
		if err != nil {
			return false, err
		}
		for i, f := range first {
			if i != 5 && !r.UpdatedAt.After(f.UpdatedAt) {
				return false, nil
			}
		}
		return true, nil
	})
	e5 := get(t, h.Store, ops[5].OpID)
	var before []string
	earliest := e5.UpdatedAt
	for i, f := range first {
		if i != 5 {
			before = append(before, f.Op.OpID)
			earliest = minTime(earliest, f.UpdatedAt)
		}
	}
	check(core.FindQuery{ChangedBefore: e5.UpdatedAt}, before, "changed before e5's last failure: the others, not the published one")
	check(core.FindQuery{ChangedBefore: e5.UpdatedAt.Add(time.Microsecond)}, e(0, 1, 2, 3, 4, 5, 6), "changed up to e5's last failure")
	check(core.FindQuery{ChangedBefore: e5.UpdatedAt, State: core.StateDead}, e(2, 3, 4), "changed before, and dead")
	check(core.FindQuery{ChangedBefore: earliest}, e(), "nothing changed before the first failure")
	check(core.FindQuery{ChangedBefore: time.Now().Add(time.Hour), DOID: ops[7].DOID, Actor: ops[7].Actor}, e(),
		"a published operation has no retry row to have changed")
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// testFindPaging: AfterSeq pages in seq order; Limit defaults to
// FindLimitDefault and is lowered to FindLimitMax.
func testFindPaging(t *testing.T, h StoreHarness) {
	in := inspector(t, h)
	if in == nil {
		return
	}
	n := core.FindLimitMax + 5
	name := objectIn("paging", 0, len(partitions(t, h.Store)))
	obj := "10.1000/" + name
	ops := make([]*core.Operation, n)
	for i := range ops {
		ops[i] = NewOp(name, 300+i)
	}
	require.NoError(t, recorder(t, h.Store, nil).Record(testContext(t), ops...))
	record(t, h.Store, NewOp("paging-other", 1)) // after them, another object

	got := find(t, in, core.FindQuery{DOID: obj})
	require.Len(t, got, core.FindLimitDefault, "Limit 0 is the default")
	assert.Equal(t, ids(ops[:core.FindLimitDefault]), opIDs(got), "the first operations in seq order")
	got = find(t, in, core.FindQuery{DOID: obj, Limit: 5 * core.FindLimitMax})
	assert.Equal(t, ids(ops[:core.FindLimitMax]), opIDs(got), "a Limit above FindLimitMax is lowered to it")
	assert.Equal(t, ids(ops[100:107]), opIDs(find(t, in, core.FindQuery{DOID: obj, AfterSeq: got[99].Seq, Limit: 7})), "a page after a seq")

	var all []core.Record
	for after := int64(0); ; {
		page := find(t, in, core.FindQuery{DOID: obj, AfterSeq: after, Limit: 300})
		if len(page) == 0 {
			break
		}
		require.LessOrEqual(t, len(page), 300)
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	assert.Equal(t, ids(ops), opIDs(all), "paging by AfterSeq returns every operation once, in seq order")
	for i := 1; i < len(all); i++ {
		require.Greater(t, all[i].Seq, all[i-1].Seq)
	}
	assert.Empty(t, find(t, in, core.FindQuery{DOID: obj, AfterSeq: all[len(all)-1].Seq}), "nothing after the last")
}

// testFindRefused: a query that would read the whole operation table, or
// asks for a state Find does not select, is refused with a
// *core.QueryError naming the field.
func testFindRefused(t *testing.T, h StoreHarness) {
	in := inspector(t, h)
	if in == nil {
		return
	}
	record(t, h.Store, NewOp("refused", 1))
	sequence(t, h.Store)
	now := time.Now()
	for _, tc := range []struct {
		q     core.FindQuery
		field string
		why   string
	}{
		{core.FindQuery{}, "", "an empty query"},
		{core.FindQuery{From: now.Add(-time.Hour), To: now, AfterSeq: 1, Limit: 10}, "", "a time range alone reads the whole table"},
		{core.FindQuery{DOID: "10.1000/refused-0", State: core.StatePublished}, "State", "published is not a state Find selects"},
		{core.FindQuery{DOID: "10.1000/refused-0", State: core.State(1)}, "State", "no such state"},
		{core.FindQuery{Actor: "user-1", State: core.State(-2)}, "State", "no such state"},
		{core.FindQuery{DOID: "10.1000/refused-0", Limit: -1}, "Limit", "a negative Limit"},
	} {
		recs, err := in.Find(testContext(t), tc.q)
		require.Error(t, err, "%s: Find(%+v)", tc.why, tc.q)
		assert.ErrorIs(t, err, core.ErrInvalidQuery, tc.why)
		var qe *core.QueryError
		if assert.True(t, errors.As(err, &qe), "%s: a *core.QueryError, not %T", tc.why, err) {
			assert.Equal(t, tc.field, qe.Field, tc.why)
		}
		assert.Empty(t, recs, tc.why)
	}
}

// testRelays: Relays lists the members whose heartbeat has not run out,
// sorted, as Heartbeat would, without a heartbeat of its own.
func testRelays(t *testing.T, h StoreHarness) {
	in := inspector(t, h)
	if in == nil {
		return
	}
	ctx := testContext(t)
	relays := func() []string {
		t.Helper()
		live, err := in.Relays(ctx)
		require.NoError(t, err)
		return live
	}
	assert.Empty(t, relays(), "no relay yet")
	for _, m := range []string{"relay-c", "relay-a", "relay-b"} {
		_, err := h.Store.Heartbeat(ctx, m, time.Hour)
		require.NoError(t, err)
	}
	assert.Equal(t, []string{"relay-a", "relay-b", "relay-c"}, relays(), "live members, sorted")
	if h.Reopen != nil {
		other, ok := h.Reopen(t).(core.Inspector)
		require.True(t, ok, "another handle on the store is an Inspector too")
		live, err := other.Relays(ctx)
		require.NoError(t, err)
		assert.Equal(t, []string{"relay-a", "relay-b", "relay-c"}, live, "another handle sees the same members")
	}
	require.NoError(t, h.Store.Leave(ctx, "relay-b"))
	assert.Equal(t, []string{"relay-a", "relay-c"}, relays(), "a member that left is gone at once")
	// relay-a's last heartbeat is short, and nobody beats after it: only
	// Relays' own reading can leave it out.
	_, err := h.Store.Heartbeat(ctx, "relay-a", time.Millisecond)
	require.NoError(t, err)
	eventually(t, ctx, "relay-a's heartbeat runs out", func() (bool, error) {
		live, err := in.Relays(ctx)
		return slices.Equal(live, []string{"relay-c"}), err
	})
	live, err := h.Store.Heartbeat(ctx, "relay-d", time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []string{"relay-c", "relay-d"}, live, "Heartbeat agrees")
	assert.Equal(t, live, relays(), "Relays agrees with Heartbeat")
	require.NoError(t, h.Store.Leave(ctx, "relay-c"))
	require.NoError(t, h.Store.Leave(ctx, "relay-d"))
	assert.Empty(t, relays(), "every member left")
}

// testStatsBacklog: Stats gives each partition its backlog, the
// operations ReadPartition returns above its cursor (not those without a
// position); the pending count is those plus the unsequenced ones. Only
// Stats fills Backlog.
func testStatsBacklog(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	P := len(partitions(t, h.Store))
	pa, pb := 0, P-1
	var ops []*core.Operation
	for i := 0; i < 5; i++ {
		ops = append(ops, NewOp(objectIn("backlog-a", pa, P), i))
	}
	for i := 0; i < 3; i++ {
		ops = append(ops, NewOp(objectIn("backlog-b", pb, P), 10+i))
	}
	record(t, h.Store, ops...)
	sequence(t, h.Store)
	recs := refresh(t, h.Store, ops...)
	record(t, h.Store, NewOp(objectIn("backlog-a", pa, P), 20), NewOp(objectIn("backlog-b", pb, P), 21)) // no position

	check := func(what string) core.Stats {
		t.Helper()
		st, err := h.Store.Stats(ctx)
		require.NoError(t, err)
		require.Len(t, st.Partitions, P)
		var sum int64
		for i, p := range st.Partitions {
			above, err := h.Store.ReadPartition(ctx, core.ReadParams{Part: i, After: p.Cursor, Limit: 1000})
			require.NoError(t, err)
			assert.Equal(t, int64(len(above)), p.Backlog, "%s: partition %d's backlog is what ReadPartition returns above its cursor", what, i)
			sum += p.Backlog
		}
		assert.Equal(t, sum+2, st.Counts[core.StatePending], "%s: pending is the backlogs and the unsequenced", what)
		for _, p := range partitions(t, h.Store) {
			assert.Zero(t, p.Backlog, "%s: Partitions leaves Backlog 0", what)
		}
		return st
	}
	st := check("nothing published")
	if P > 1 {
		assert.Equal(t, int64(5), st.Partitions[pa].Backlog)
		assert.Equal(t, int64(3), st.Partitions[pb].Backlog)
	} else {
		assert.Equal(t, int64(8), st.Partitions[pa].Backlog)
	}

	// Partition a publishes its first three operations, the second of
	// them failing: two above its cursor remain.
	p := take(t, h.Store, pa, "member-1")
	require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: pa, Generation: p.Generation, From: -1, To: recs[2].LeafIndex,
		Failed: []core.Failure{{Seq: recs[1].Seq, Err: "e", Delay: time.Hour}}}))
	st = check("partition a advanced")
	if P > 1 {
		assert.Equal(t, int64(2), st.Partitions[pa].Backlog, "above the cursor only")
		assert.Equal(t, int64(3), st.Partitions[pb].Backlog, "another partition keeps its backlog")
	} else {
		assert.Equal(t, int64(5), st.Partitions[pa].Backlog)
	}
	assert.Equal(t, int64(1), st.Counts[core.StateRetrying], "a failed operation is retrying, not backlog")
	for i := range st.Partitions {
		if i != pa && i != pb {
			assert.Zero(t, st.Partitions[i].Backlog, "partition %d has no operation", i)
		}
	}
}
