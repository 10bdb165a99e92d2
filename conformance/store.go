package conformance

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

// RunStore runs the store half of the suite: every Store and Locker
// method, the compare-and-set rules of the state machine, and the
// guarantees a store alone must keep (no phantom, bad input refused,
// disjoint concurrent claims, late commits claimed, values compared byte
// for byte).
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
		{"ClaimInRecordOrder", testClaimInRecordOrder},
		{"StrictClaimHoldsBackObject", testStrictClaim},
		{"ValuesCompareByteForByte", testBytewise},
		{"StaleSettleRefused", testStaleSettle},
		{"ReleaseRestoresState", testRelease},
		{"ExpiredClaimsAreSticky", testSticky},
		{"RestoreGivesBackToThePreviousClaim", testRestore},
		{"TentativeClaimKeepsThePreviousClaim", testTentative},
		{"RetryBecomesDue", testRetryDue},
		{"DeadListAndRequeue", testDeadRequeue},
		{"ConcurrentClaimsDisjoint", testConcurrentClaims},
		{"LateCommitIsClaimed", testLateCommit},
		{"Stats", testStats},
		{"ScanInSeqOrder", testScan},
		{"Cursors", testCursors},
		{"Leases", testLeases},
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

func record(t *testing.T, s core.Store, ops ...*core.Operation) []core.Record {
	t.Helper()
	ctx := testContext(t)
	require.NoError(t, recorder(t, s, nil).Record(ctx, ops...))
	recs := make([]core.Record, len(ops))
	for i, op := range ops {
		r, err := s.Get(ctx, op.OpID)
		require.NoError(t, err)
		recs[i] = r
	}
	return recs
}

func claim(t *testing.T, s core.Store, src core.ClaimSource, token int64, limit int, lease time.Duration, strict bool) []core.Record {
	t.Helper()
	recs, err := s.Claim(testContext(t), core.ClaimParams{Source: src, Token: token, Limit: limit, Lease: lease, Strict: strict})
	require.NoError(t, err)
	return recs
}

func seqsOf(recs []core.Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func testMigrateIdempotent(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	record(t, h.Store, NewOp("a", 1))
	require.NoError(t, h.Store.Migrate(ctx))
	require.NoError(t, h.Store.Migrate(ctx))
	st, err := h.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.Counts[core.StatePending], "migrating again keeps the rows")
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
	skey, vkey, err := core.GenerateEd25519("conformance.example/log")
	require.NoError(t, err)
	signer, err := core.NewEd25519Signer(skey)
	require.NoError(t, err)
	verifier, err := core.NewEd25519Verifier(vkey)
	require.NoError(t, err)

	op := NewOp("round/trip", 42)
	// SQL meta-characters and non-ASCII text are data, stored verbatim.
	op.Actor = `O'Brien"; DROP TABLE operation; -- \ %_ ?`
	op.DORepository = "répo ✓ 仓库 \U0001D11E"
	op.HashAlg = core.HashSHA512
	op.RequestBodyHash = "AB" + op.RequestBodyHash[:62] + op.RequestBodyHash
	op.ResponseBodyHash = ""
	op.ServerIP = "2001:DB8:0:0::1"
	op.CreatedAt = time.Date(2025, 12, 24, 15, 31, 11, 123456789, time.FixedZone("CST", 8*3600))
	require.NoError(t, recorder(t, h.Store, signer).Record(ctx, op))

	got, err := h.Store.Get(ctx, op.OpID)
	require.NoError(t, err)
	assert.Equal(t, *op, got.Op, "every field comes back as recorded")
	assert.Equal(t, time.Date(2025, 12, 24, 7, 31, 11, 123456000, time.UTC), got.Op.CreatedAt, "UTC, microseconds")
	assert.Equal(t, "2001:db8::1", got.Op.ServerIP, "canonical IP")
	assert.Equal(t, core.StatePending, got.State)
	assert.Equal(t, 0, got.Attempts)
	assert.Positive(t, got.Seq)
	require.NoError(t, core.VerifyOperation(&got.Op, true, verifier), "stored row verifies")

	_, err = h.Store.Get(ctx, "01890000-0000-7000-8000-000000000000")
	assert.ErrorIs(t, err, core.ErrNotFound)
}

func testInsertAllOrNothing(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	a, b := NewOp("a", 1), NewOp("b", 2)
	b.OpID = "0190a000-0000-7000-8000-00000000000b"
	c := NewOp("c", 3)
	c.OpID = b.OpID // duplicate op_id: the database refuses the batch
	err := recorder(t, h.Store, nil).Record(ctx, a, b, c)
	require.Error(t, err)
	st, err := h.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Zero(t, st.MaxSeq+st.Counts[core.StatePending], "a failed batch leaves no row")
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
	recs := claim(t, h.Store, core.ClaimPending, 1, 100, time.Minute, false)
	assert.ElementsMatch(t, ids(kept), opIDs(recs), "only committed operations can be claimed")
}

func opIDs(recs []core.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Op.OpID
	}
	return out
}

func testClaimInRecordOrder(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	recs := record(t, h.Store, newOps(10, 3)...)
	first := claim(t, h.Store, core.ClaimPending, 7, 4, time.Minute, false)
	require.Len(t, first, 4)
	assert.Equal(t, seqsOf(recs[:4]), seqsOf(first), "lowest seqs first, in order")
	for _, r := range first {
		assert.Equal(t, core.StateInFlight, r.State)
		assert.Equal(t, 1, r.Attempts)
	}
	after, err := h.Store.Claim(ctx, core.ClaimParams{Token: 8, Limit: 2, Lease: time.Minute, AfterSeq: recs[6].Seq})
	require.NoError(t, err)
	assert.Equal(t, seqsOf(recs[7:9]), seqsOf(after), "AfterSeq skips lower pending seqs")
	rest := claim(t, h.Store, core.ClaimPending, 8, 100, time.Minute, false)
	assert.Equal(t, append(seqsOf(recs[4:7]), recs[9].Seq), seqsOf(rest))
	assert.Empty(t, claim(t, h.Store, core.ClaimPending, 9, 100, time.Minute, false), "claimed rows are not claimed again")
	assert.Empty(t, claim(t, h.Store, core.ClaimDue, 9, 100, time.Minute, false), "nor by the retrier while the lease runs")
	st, err := h.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(10), st.Counts[core.StateInFlight])
}

func testStrictClaim(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	recs := record(t, h.Store, NewOp("d1", 1), NewOp("d1", 2), NewOp("d2", 3), NewOp("d2", 4), NewOp("d3", 5))
	got := claim(t, h.Store, core.ClaimPending, 1, 10, time.Minute, true)
	assert.Equal(t, []int64{recs[0].Seq, recs[2].Seq, recs[4].Seq}, seqsOf(got), "one head per object")
	assert.Empty(t, claim(t, h.Store, core.ClaimPending, 2, 10, time.Minute, true), "in-flight heads hold their objects back")

	// d1's head is published, d2's head fails and retries later.
	res, err := h.Store.Settle(ctx, core.SettleParams{Token: 1, Published: []int64{recs[0].Seq, recs[4].Seq},
		Failed: []core.Failure{{Seq: recs[2].Seq, Err: "boom", Delay: time.Hour}}})
	require.NoError(t, err)
	assert.Equal(t, core.SettleResult{Published: 2, Retrying: 1}, res)
	got = claim(t, h.Store, core.ClaimPending, 3, 10, time.Minute, true)
	assert.Equal(t, []int64{recs[1].Seq}, seqsOf(got), "a retrying head holds its object back in strict mode")

	// Without strict order the retrying head is overtaken.
	got = claim(t, h.Store, core.ClaimPending, 4, 10, time.Minute, false)
	assert.Equal(t, []int64{recs[3].Seq}, seqsOf(got))
}

func testStaleSettle(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	recs := record(t, h.Store, newOps(3, 3)...)
	a := claim(t, h.Store, core.ClaimPending, 111, 10, time.Second, false)
	require.Len(t, a, 3)
	// Worker A stalls past its lease; the retrier hands the rows to B.
	var b []core.Record
	eventually(t, ctx, "the expired claim is taken back", func() (bool, error) {
		var err error
		b, err = h.Store.Claim(ctx, core.ClaimParams{Source: core.ClaimDue, Token: 222, Limit: 10, Lease: time.Minute})
		return len(b) == 3, err
	})
	assert.Equal(t, seqsOf(recs), seqsOf(b))
	for i, r := range b {
		assert.Equal(t, 2, r.Attempts, "the abandoned claim counts as an attempt")
		assert.Equal(t, int64(111), r.PrevToken, "the claim says who held the row before")
		assert.Zero(t, a[i].PrevToken, "a first claim has no predecessor")
	}
	// A wakes up and settles with its old token: refused, nothing written.
	res, err := h.Store.Settle(ctx, core.SettleParams{Token: 111, Published: seqsOf(a)})
	require.NoError(t, err)
	assert.Equal(t, core.SettleResult{Stale: 3}, res)
	res, err = h.Store.Settle(ctx, core.SettleParams{Token: 111, Failed: []core.Failure{{Seq: a[0].Seq, Err: "late", Dead: true}}})
	require.NoError(t, err)
	assert.Equal(t, core.SettleResult{Stale: 1}, res)
	n, err := h.Store.Release(ctx, core.ReleaseParams{Token: 111, Seqs: seqsOf(a)})
	require.NoError(t, err)
	assert.Zero(t, n, "a stale release changes nothing")
	for _, r := range recs {
		got, err := h.Store.Get(ctx, r.Op.OpID)
		require.NoError(t, err)
		assert.Equal(t, core.StateInFlight, got.State, "B still owns it")
	}
	res, err = h.Store.Settle(ctx, core.SettleParams{Token: 222, Published: seqsOf(b)})
	require.NoError(t, err)
	assert.Equal(t, core.SettleResult{Published: 3}, res)
	res, err = h.Store.Settle(ctx, core.SettleParams{Token: 222, Published: seqsOf(b)})
	require.NoError(t, err)
	assert.Equal(t, core.SettleResult{Stale: 3}, res, "settling twice is refused too")
}

func testRelease(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	recs := record(t, h.Store, newOps(2, 2)...)
	got := claim(t, h.Store, core.ClaimPending, 5, 10, time.Minute, false)
	require.Len(t, got, 2)
	// The second fails once, is claimed again by the retrier, then released.
	_, err := h.Store.Settle(ctx, core.SettleParams{Token: 5, Failed: []core.Failure{{Seq: recs[1].Seq, Err: "e", Delay: time.Millisecond}}})
	require.NoError(t, err)
	var due []core.Record
	eventually(t, ctx, "the retry is due", func() (bool, error) {
		var err error
		due, err = h.Store.Claim(ctx, core.ClaimParams{Source: core.ClaimDue, Token: 6, Limit: 10, Lease: time.Minute})
		return len(due) == 1, err
	})
	n, err := h.Store.Release(ctx, core.ReleaseParams{Token: 5, Seqs: []int64{recs[0].Seq}})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	n, err = h.Store.Release(ctx, core.ReleaseParams{Token: 6, Seqs: seqsOf(due)})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	r0, err := h.Store.Get(ctx, recs[0].Op.OpID)
	require.NoError(t, err)
	assert.Equal(t, core.StatePending, r0.State, "claimed from pending, back to pending")
	assert.Zero(t, r0.Attempts, "the released attempt is not counted")
	r1, err := h.Store.Get(ctx, recs[1].Op.OpID)
	require.NoError(t, err)
	assert.Equal(t, core.StateRetrying, r1.State, "claimed from retrying, back to retrying")
	assert.Equal(t, 1, r1.Attempts)
	assert.Len(t, claim(t, h.Store, core.ClaimPending, 7, 10, time.Minute, false), 1)
}

func testRetryDue(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	recs := record(t, h.Store, NewOp("r", 1))
	claim(t, h.Store, core.ClaimPending, 1, 1, time.Minute, false)
	res, err := h.Store.Settle(ctx, core.SettleParams{Token: 1, Failed: []core.Failure{{Seq: recs[0].Seq, Err: "broker unavailable", Delay: 1500 * time.Millisecond}}})
	require.NoError(t, err)
	assert.Equal(t, core.SettleResult{Retrying: 1}, res)
	got, err := h.Store.Get(ctx, recs[0].Op.OpID)
	require.NoError(t, err)
	assert.Equal(t, core.StateRetrying, got.State)
	assert.Equal(t, "broker unavailable", got.LastError)
	assert.Equal(t, core.StatusNotTrustlogged, got.State.Status())
	assert.WithinDuration(t, time.Now().Add(1500*time.Millisecond), got.DueAt, time.Second)
	assert.Empty(t, claim(t, h.Store, core.ClaimDue, 2, 10, time.Minute, false), "not due yet")
	assert.Empty(t, claim(t, h.Store, core.ClaimPending, 2, 10, time.Minute, false), "a retry is not pending")
	eventually(t, ctx, "the retry becomes due", func() (bool, error) {
		recs, err := h.Store.Claim(ctx, core.ClaimParams{Source: core.ClaimDue, Token: 3, Limit: 10, Lease: time.Minute})
		return len(recs) == 1 && recs[0].Attempts == 2, err
	})
}

func testDeadRequeue(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	recs := record(t, h.Store, newOps(4, 4)...)
	claim(t, h.Store, core.ClaimPending, 1, 10, time.Minute, false)
	res, err := h.Store.Settle(ctx, core.SettleParams{Token: 1, Published: []int64{recs[0].Seq},
		Failed: []core.Failure{{Seq: recs[1].Seq, Err: "too large", Dead: true}, {Seq: recs[3].Seq, Err: "rejected", Dead: true},
			{Seq: recs[2].Seq, Err: "later", Delay: time.Hour}}})
	require.NoError(t, err)
	assert.Equal(t, core.SettleResult{Published: 1, Retrying: 1, Dead: 2}, res)

	dead, err := h.Store.ListDead(ctx, core.ListParams{})
	require.NoError(t, err)
	require.Equal(t, []int64{recs[1].Seq, recs[3].Seq}, seqsOf(dead))
	assert.Equal(t, "too large", dead[0].LastError)
	assert.Equal(t, core.StatusDead, dead[0].State.Status())
	page, err := h.Store.ListDead(ctx, core.ListParams{AfterSeq: recs[1].Seq, Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, []int64{recs[3].Seq}, seqsOf(page))

	n, err := h.Store.Requeue(ctx, core.RequeueParams{OpIDs: []string{recs[1].Op.OpID, recs[0].Op.OpID}})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only dead operations are requeued")
	n, err = h.Store.Requeue(ctx, core.RequeueParams{All: true})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	_, err = h.Store.Requeue(ctx, core.RequeueParams{})
	assert.Error(t, err, "requeue needs ids or All")
	got := claim(t, h.Store, core.ClaimPending, 2, 10, time.Minute, false)
	assert.Equal(t, []int64{recs[1].Seq, recs[3].Seq}, seqsOf(got), "requeued operations are pending again")
	for _, r := range got {
		assert.Equal(t, 1, r.Attempts, "with a fresh attempt count")
	}
}

func testConcurrentClaims(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	const n, workers = 600, 4
	c := recorder(t, h.Store, nil)
	ops := newOps(n, 50)
	for i := 0; i < n; i += 100 {
		require.NoError(t, c.Record(ctx, ops[i:i+100]...))
	}
	stores := []core.Store{h.Store}
	for len(stores) < workers {
		if h.Reopen == nil {
			stores = append(stores, h.Store)
		} else {
			stores = append(stores, h.Reopen(t))
		}
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(s core.Store, token int64) {
			defer wg.Done()
			for {
				recs, err := s.Claim(ctx, core.ClaimParams{Token: token, Limit: 7, Lease: time.Minute})
				if err != nil {
					errs <- err
					return
				}
				if len(recs) == 0 {
					return
				}
				mu.Lock()
				for _, r := range recs {
					seen[r.Seq]++
				}
				mu.Unlock()
				res, err := s.Settle(ctx, core.SettleParams{Token: token, Published: seqsOf(recs)})
				if err != nil || res.Published != len(recs) {
					errs <- errors.Join(err, errors.New("settle did not publish the whole claim"))
					return
				}
			}
		}(stores[w], int64(1000+w))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Len(t, seen, n, "every operation claimed")
	for seq, k := range seen {
		if k != 1 {
			t.Errorf("seq %d claimed %d times", seq, k)
		}
	}
	st, err := h.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(n), st.Counts[core.StatePublished])
}

func testLateCommit(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	c := recorder(t, h.Store, nil)
	a, b := NewOp("late", 1), NewOp("early", 2)
	// A takes its sequence value first but commits after B.
	txA, err := h.DB.DB.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, c.RecordTx(ctx, txA, a))
	done := make(chan error, 1)
	go func() {
		txB, err := h.DB.DB.BeginTx(ctx, nil)
		if err == nil {
			if err = c.RecordTx(ctx, txB, b); err == nil {
				err = txB.Commit()
			} else {
				txB.Rollback()
			}
		}
		done <- err
	}()
	// Databases with one writer (SQLite) make B wait for A: then there is
	// no late commit to lose, and the test still checks both arrive.
	select {
	case err := <-done:
		require.NoError(t, err)
		got := claim(t, h.Store, core.ClaimPending, 1, 10, time.Minute, false)
		assert.Equal(t, []string{b.OpID}, opIDs(got), "B is visible, A is not yet")
		require.NoError(t, txA.Commit())
	case <-time.After(2 * time.Second):
		require.NoError(t, txA.Commit())
		require.NoError(t, <-done)
	}
	claim(t, h.Store, core.ClaimPending, 2, 10, time.Minute, false)
	for _, op := range []*core.Operation{a, b} {
		r, err := h.Store.Get(ctx, op.OpID)
		require.NoError(t, err)
		assert.Equal(t, core.StateInFlight, r.State, "%s was claimed", op.DOID)
	}
}

func testStats(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	st, err := h.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Zero(t, st.MaxSeq)
	assert.True(t, st.OldestUnsettled.IsZero())
	for _, s := range core.States {
		assert.Contains(t, st.Counts, s)
	}
	recs := record(t, h.Store, newOps(5, 5)...)
	claim(t, h.Store, core.ClaimPending, 1, 2, time.Minute, false)
	_, err = h.Store.Settle(ctx, core.SettleParams{Token: 1, Published: []int64{recs[0].Seq, recs[1].Seq}})
	require.NoError(t, err)
	st, err = h.Store.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(2), st.Counts[core.StatePublished])
	assert.Equal(t, int64(3), st.Counts[core.StatePending])
	assert.Equal(t, recs[4].Seq, st.MaxSeq)
	assert.Equal(t, recs[2].Seq-1, st.LowWatermark, "everything at or below is settled")
	assert.Equal(t, recs[2].Op.CreatedAt, st.OldestUnsettled)
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
	assert.Equal(t, "42", c.Value)
	assert.WithinDuration(t, time.Now(), c.UpdatedAt, time.Minute)
	assert.Error(t, h.Store.SetCursor(ctx, "", "x"))
}

func testLeases(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	l := h.Store.Locker()
	name := "conformance-" + t.Name()
	lease, err := l.TryAcquire(ctx, name, time.Second)
	require.NoError(t, err)
	assert.Equal(t, name, lease.Name())
	other := h.Store
	if h.Reopen != nil {
		other = h.Reopen(t)
	}
	_, err = other.Locker().TryAcquire(ctx, name, time.Second)
	assert.ErrorIs(t, err, core.ErrLeaseHeld)
	// Held past its TTL: the holder keeps it alive.
	time.Sleep(1500 * time.Millisecond)
	select {
	case <-lease.Lost():
		t.Fatal("a renewed lease was lost")
	default:
	}
	_, err = other.Locker().TryAcquire(ctx, name, time.Second)
	assert.ErrorIs(t, err, core.ErrLeaseHeld, "still held after its TTL")
	require.NoError(t, lease.Release(ctx))
	require.NoError(t, lease.Release(ctx), "Release is idempotent")
	again, err := other.Locker().TryAcquire(ctx, name, time.Second)
	require.NoError(t, err, "free after release")
	require.NoError(t, again.Release(ctx))
}

func testScan(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	recs := record(t, h.Store, newOps(7, 3)...)
	claim(t, h.Store, core.ClaimPending, 1, 2, time.Minute, false)
	_, err := h.Store.Settle(ctx, core.SettleParams{Token: 1, Published: []int64{recs[0].Seq}})
	require.NoError(t, err)
	var all []core.Record
	for after := int64(0); ; {
		page, err := h.Store.Scan(ctx, core.ScanParams{AfterSeq: after, Limit: 3})
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		require.LessOrEqual(t, len(page), 3)
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	assert.Equal(t, seqsOf(recs), seqsOf(all), "every operation, in seq order, whatever its state")
	assert.Equal(t, core.StatePublished, all[0].State)
	assert.Equal(t, core.StateInFlight, all[1].State)
	assert.Equal(t, core.StatePending, all[2].State)
}

// testSticky: an expired claim goes back to the node that held it at
// once, and to other nodes only after the grace period.
func testSticky(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	const nodeA, nodeB = int64(5), int64(7)
	recs := record(t, h.Store, newOps(2, 2)...)
	held := claim(t, h.Store, core.ClaimPending, nodeA<<40|1<<33, 10, time.Second, false)
	require.Len(t, held, 2)
	time.Sleep(1100 * time.Millisecond)
	other, err := h.Store.Claim(ctx, core.ClaimParams{Source: core.ClaimDue, Token: nodeB<<40 | 2, Limit: 10, Lease: time.Minute,
		Node: nodeB, Grace: time.Hour})
	require.NoError(t, err)
	assert.Empty(t, other, "another node waits for the grace period")
	var own []core.Record
	eventually(t, ctx, "the owner takes its expired claims back", func() (bool, error) {
		var err error
		own, err = h.Store.Claim(ctx, core.ClaimParams{Source: core.ClaimDue, Token: nodeA<<40 | 3<<33, Limit: 10,
			Lease: time.Second, Node: nodeA, Grace: time.Hour})
		return len(own) == 2, err
	})
	assert.Equal(t, seqsOf(recs), seqsOf(own))
	assert.Equal(t, nodeA<<40|1<<33, own[0].PrevToken)
	// Expired again; after the grace, any node may take them.
	time.Sleep(1100 * time.Millisecond)
	eventually(t, ctx, "another node takes them after the grace", func() (bool, error) {
		got, err := h.Store.Claim(ctx, core.ClaimParams{Source: core.ClaimDue, Token: nodeB<<40 | 4, Limit: 10, Lease: time.Minute,
			Node: nodeB, Grace: time.Millisecond})
		return len(got) == 2, err
	})
}

// testRestore: a node that took over another's expired claims can give
// them back to that claim (Release with Restore): in flight under the
// previous token again, expired, the attempt given back, so the previous
// node takes them at once and others only after the grace.
func testRestore(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	const nodeA, nodeB = int64(5), int64(7)
	tokenA := nodeA<<40 | 1<<33 | 1
	recs := record(t, h.Store, newOps(3, 3)...)
	held := claim(t, h.Store, core.ClaimPending, tokenA, 2, time.Second, false)
	require.Len(t, held, 2)
	time.Sleep(1100 * time.Millisecond)
	var taken []core.Record
	eventually(t, ctx, "node B takes the expired claims over", func() (bool, error) {
		var err error
		taken, err = h.Store.Claim(ctx, core.ClaimParams{Source: core.ClaimDue, Token: nodeB<<40 | 2, Limit: 10,
			Lease: time.Minute, Node: nodeB, Grace: time.Millisecond})
		return len(taken) == 2, err
	})
	require.Equal(t, tokenA, taken[0].PrevToken)
	// A first claim has no previous one: Restore leaves it claimed.
	fresh := claim(t, h.Store, core.ClaimPending, nodeB<<40|3, 10, time.Minute, false)
	require.Len(t, fresh, 1)
	n, err := h.Store.Release(ctx, core.ReleaseParams{Token: nodeB<<40 | 3, Seqs: seqsOf(fresh), Restore: true})
	require.NoError(t, err)
	assert.Zero(t, n, "nothing to restore a first claim to")
	got, err := h.Store.Get(ctx, fresh[0].Op.OpID)
	require.NoError(t, err)
	assert.Equal(t, core.StateInFlight, got.State)

	n, err = h.Store.Release(ctx, core.ReleaseParams{Token: nodeB<<40 | 2, Seqs: seqsOf(taken), Restore: true})
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	for _, r := range taken {
		got, err := h.Store.Get(ctx, r.Op.OpID)
		require.NoError(t, err)
		assert.Equal(t, core.StateInFlight, got.State)
		assert.Equal(t, 1, got.Attempts, "the take-over's attempt is given back")
	}
	other, err := h.Store.Claim(ctx, core.ClaimParams{Source: core.ClaimDue, Token: nodeB<<40 | 4, Limit: 10,
		Lease: time.Minute, Node: nodeB, Grace: time.Hour})
	require.NoError(t, err)
	assert.Empty(t, other, "the grace starts again for other nodes")
	var back []core.Record
	eventually(t, ctx, "node A takes its claims back at once", func() (bool, error) {
		var err error
		back, err = h.Store.Claim(ctx, core.ClaimParams{Source: core.ClaimDue, Token: nodeA<<40 | 2<<33, Limit: 10,
			Lease: time.Minute, Node: nodeA, Grace: time.Hour})
		return len(back) == 2, err
	})
	assert.Equal(t, seqsOf(recs[:2]), seqsOf(back))
	assert.Equal(t, tokenA, back[0].PrevToken, "as if node A's claim had just expired")
	assert.Equal(t, 2, back[0].Attempts)
}

// testTentative: node B takes node A's expired claims with a tentative
// claim (core.TentativeClaim) and adopts one of them. B dies; node C,
// claiming them after B's lease, must find A's claim behind the rows B
// only judged (their previous token), and B's plain claim behind the one
// it adopted (B may have sent that one).
func testTentative(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	const nodeA, nodeB, nodeC = int64(5), int64(7), int64(9)
	tokenA := nodeA<<40 | 1<<33 | 1
	record(t, h.Store, newOps(3, 3)...)
	require.Len(t, claim(t, h.Store, core.ClaimPending, tokenA, 3, 200*time.Millisecond, false), 3)
	take := func(what string, token, node int64) []core.Record {
		var got []core.Record
		eventually(t, ctx, what, func() (bool, error) {
			var err error
			got, err = h.Store.Claim(ctx, core.ClaimParams{Source: core.ClaimDue, Token: token, Limit: 10,
				Lease: 200 * time.Millisecond, Node: node, Grace: time.Millisecond})
			return len(got) == 3, err
		})
		return got
	}
	plainB := nodeB<<40 | 2<<1 | 1
	tentativeB := plainB | core.TentativeClaim
	taken := take("node B takes A's expired claims tentatively", tentativeB, nodeB)
	for _, r := range taken {
		assert.Equal(t, tokenA, r.PrevToken, "seq %d: A's claim is the previous one", r.Seq)
	}

	_, err := h.Store.Adopt(ctx, core.AdoptParams{Token: plainB, Seqs: seqsOf(taken[:1])})
	require.Error(t, err, "a plain token is not a tentative claim's")
	n, err := h.Store.Adopt(ctx, core.AdoptParams{Token: tentativeB, Seqs: seqsOf(taken[:1])})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	n, err = h.Store.Adopt(ctx, core.AdoptParams{Token: tentativeB, Seqs: seqsOf(taken[:1])})
	require.NoError(t, err)
	assert.Zero(t, n, "adopted already: no longer under the tentative claim")
	got, err := h.Store.Get(ctx, taken[0].Op.OpID)
	require.NoError(t, err)
	assert.Equal(t, core.StateInFlight, got.State)
	assert.Equal(t, tokenA, got.PrevToken, "adopting keeps the previous token")

	again := take("node C takes B's expired claims", nodeC<<40|3<<1|1, nodeC)
	assert.Equal(t, plainB, again[0].PrevToken, "the adopted row: B's plain claim")
	for _, r := range again[1:] {
		assert.Equal(t, tokenA, r.PrevToken, "seq %d: B only judged it; A's claim is kept", r.Seq)
	}
	n, err = h.Store.Adopt(ctx, core.AdoptParams{Token: tentativeB, Seqs: seqsOf(again)})
	require.NoError(t, err)
	assert.Zero(t, n, "claimed by C since: nothing to adopt")
}
