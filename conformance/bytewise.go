package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

// testBytewise: DOIDs, op_ids and cursor names compare byte for byte, as
// Go compares them. A PAD SPACE collation (MySQL's and MariaDB's
// utf8mb4_bin) makes "10.1000/x" and "10.1000/x " one object for strict
// order and one key for lookups and unique constraints; a case- or
// accent-insensitive one does the same to "x" and "X". Each spelling here
// must be its own object, its own operation and its own cursor.
func testBytewise(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	// Two heads fail and wait for a retry an hour away, holding back their
	// objects in strict mode: "x" and "y " (trailing space).
	heads := []*core.Operation{NewOp("x", 1), NewOp("y ", 2)}
	record(t, h.Store, heads...)
	got := claim(t, h.Store, core.ClaimPending, 1, 10, time.Minute, true)
	require.Equal(t, ids(heads), opIDs(got), "two objects, two heads")
	res, err := h.Store.Settle(ctx, core.SettleParams{Token: 1, Failed: []core.Failure{
		{Seq: got[0].Seq, Err: "poison", Delay: time.Hour}, {Seq: got[1].Seq, Err: "poison", Delay: time.Hour}}})
	require.NoError(t, err)
	require.Equal(t, core.SettleResult{Retrying: 2}, res)

	// One more operation on each held-back object, and operations on
	// objects that differ from them only by trailing spaces, case or a
	// trailing no-break space.
	held := []*core.Operation{NewOp("x", 3), NewOp("y ", 4)}
	free := []*core.Operation{NewOp("x ", 5), NewOp("X", 6), NewOp("x  ", 7), NewOp("x\u00a0", 8), NewOp("y", 9), NewOp("y  ", 10)}
	record(t, h.Store, held[0], free[0], free[1], held[1], free[2], free[3], free[4], free[5])
	got = claim(t, h.Store, core.ClaimPending, 2, 20, time.Minute, true)
	assert.ElementsMatch(t, doids(free), doids(got),
		"a failing operation on one DOID holds back only that DOID, not one that differs by a trailing space or case")
	assert.Subset(t, ids(free), opIDs(got))
	for _, op := range held {
		assert.NotContains(t, opIDs(got), op.OpID, "%q is held back by its own failing head", op.DOID)
	}

	// Lookups: each operation comes back with its own DOID, byte for byte,
	// and an op_id with a trailing space or in upper case is another id.
	for _, op := range append(append(heads, held...), free...) {
		r, err := h.Store.Get(ctx, op.OpID)
		require.NoError(t, err)
		assert.Equal(t, []byte(op.DOID), []byte(r.Op.DOID), "operation %s keeps its DOID", op.OpID)
		for _, other := range []string{op.OpID + " ", op.OpID + "  ", strings.ToUpper(op.OpID)} {
			if other == op.OpID {
				continue
			}
			_, err := h.Store.Get(ctx, other)
			assert.ErrorIs(t, err, core.ErrNotFound, "Get(%q) finds no operation: op_id %q is another id", other, op.OpID)
		}
	}
	// Requeue names dead operations by op_id, byte for byte too.
	res, err = h.Store.Settle(ctx, core.SettleParams{Token: 2, Failed: []core.Failure{{Seq: got[0].Seq, Err: "rejected", Dead: true}}})
	require.NoError(t, err)
	require.Equal(t, core.SettleResult{Dead: 1}, res)
	n, err := h.Store.Requeue(ctx, core.RequeueParams{OpIDs: []string{got[0].Op.OpID + " "}})
	require.NoError(t, err)
	assert.Zero(t, n, "no dead operation has op_id %q", got[0].Op.OpID+" ")
	n, err = h.Store.Requeue(ctx, core.RequeueParams{OpIDs: []string{got[0].Op.OpID}})
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	// Cursor names: trailing spaces, a trailing tab and case make other
	// cursors (the unique key must not merge them).
	names := []string{"bytewise", "bytewise ", "bytewise  ", "bytewise\t", "Bytewise", "bytewise\u00a0"}
	for i, name := range names {
		require.NoError(t, h.Store.SetCursor(ctx, name, fmt.Sprint(i)))
	}
	for i, name := range names {
		c, err := h.Store.Cursor(ctx, name)
		require.NoError(t, err, "cursor %q", name)
		assert.Equal(t, fmt.Sprint(i), c.Value, "cursor %q keeps its own value", name)
	}
	_, err = h.Store.Cursor(ctx, "bytewise   ")
	assert.ErrorIs(t, err, core.ErrNotFound, "a cursor name with one more trailing space is another name")
}

// doids returns the DOIDs of operations or records, quoted so that
// trailing spaces show in a failure.
func doids[T *core.Operation | core.Record](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		switch v := any(x).(type) {
		case *core.Operation:
			out[i] = fmt.Sprintf("%q", v.DOID)
		case core.Record:
			out[i] = fmt.Sprintf("%q", v.Op.DOID)
		}
	}
	return out
}
