package conformance

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

// bytewisePair is an object whose operation fails and one whose name
// differs from it only by trailing spaces, case or a no-break space, in
// the same partition (so a store comparing DOIDs with a PAD SPACE or
// case-insensitive collation, within the partition or across the retry
// table, would take one for the other).
type bytewisePair struct {
	head, variant string // object names (NewOp's doid)
}

// bytewisePairs returns one pair per kind of near-identical name, each
// in a single partition of a store with n partitions where one of the
// first few thousand candidates is (FNV-1a cannot put a name and the same
// name with a no-break space appended in one of 16 partitions, for one).
func bytewisePairs(n int) []bytewisePair {
	kinds := []func(k string) bytewisePair{
		func(k string) bytewisePair { return bytewisePair{"a" + k, "a" + k + " "} },
		func(k string) bytewisePair { return bytewisePair{"b" + k, "B" + k} },
		func(k string) bytewisePair { return bytewisePair{"c" + k + " ", "c" + k} },
		func(k string) bytewisePair { return bytewisePair{"d" + k, "d" + k + "\u00a0"} },
		func(k string) bytewisePair { return bytewisePair{"e" + k, "e" + k + "  "} },
		func(k string) bytewisePair { return bytewisePair{"f" + k + " ", "f" + k + "  "} },
	}
	out := make([]bytewisePair, len(kinds))
	for i, kind := range kinds {
		out[i] = kind("0")
		for k := 0; k < 4096; k++ {
			p := kind(strconv.Itoa(k))
			if core.PartitionOf("10.1000/"+p.head, n) == core.PartitionOf("10.1000/"+p.variant, n) {
				out[i] = p
				break
			}
		}
	}
	return out
}

// testBytewise: DOIDs, op_ids and cursor names compare byte for byte, as
// Go compares them. A PAD SPACE collation (MySQL's and MariaDB's
// utf8mb4_bin) makes "10.1000/x" and "10.1000/x " one object for strict
// order and one key for lookups and unique constraints; a case- or
// accent-insensitive one does the same to "x" and "X". Each spelling here
// must be its own object, its own operation and its own cursor.
func testBytewise(t *testing.T, h StoreHarness) {
	ctx := testContext(t)
	P := len(partitions(t, h.Store))
	pairs := bytewisePairs(P)

	// Each head fails and waits for a retry an hour away: in strict order
	// it holds back its own object, and only that one.
	heads := make([]*core.Operation, len(pairs))
	for i, p := range pairs {
		heads[i] = NewOp(p.head, i)
	}
	record(t, h.Store, heads...)
	sequence(t, h.Store)
	headRecs := refresh(t, h.Store, heads...)
	type owned struct {
		gen    int64
		cursor int64
	}
	parts := map[int]*owned{}
	failed := map[int][]core.Failure{}
	for _, r := range headRecs {
		if parts[r.Part] == nil {
			parts[r.Part] = &owned{gen: take(t, h.Store, r.Part, "member-1").Generation, cursor: -1}
		}
		parts[r.Part].cursor = max(parts[r.Part].cursor, r.LeafIndex)
		failed[r.Part] = append(failed[r.Part], core.Failure{Seq: r.Seq, Err: "poison", Delay: time.Hour})
	}
	for part, o := range parts {
		require.NoError(t, h.Store.Advance(ctx, core.AdvanceParams{Part: part, Generation: o.gen, From: -1, To: o.cursor, Failed: failed[part]}))
	}

	// One more operation on each held-back object, and one on the object
	// that differs from it only by trailing spaces, case or a no-break
	// space.
	var later, heldOps, freeOps []*core.Operation
	for i, p := range pairs {
		x, y := NewOp(p.head, 100+i), NewOp(p.variant, 200+i)
		heldOps, freeOps = append(heldOps, x), append(freeOps, y)
		later = append(later, y, x)
	}
	record(t, h.Store, later...)
	sequence(t, h.Store)
	heldBack := map[string]bool{}
	for part := range P {
		after := int64(-1)
		if o := parts[part]; o != nil {
			after = o.cursor
		}
		recs, err := h.Store.ReadPartition(ctx, core.ReadParams{Part: part, After: after, Limit: 100, Strict: true})
		require.NoError(t, err)
		for _, r := range recs {
			heldBack[r.Op.OpID] = r.Held
		}
	}
	for i := range pairs {
		assert.True(t, heldBack[heldOps[i].OpID], "%q is held back by its own failing head", heldOps[i].DOID)
		assert.False(t, heldBack[freeOps[i].OpID],
			"%q is not held back by the failing head of %q: a DOID that differs by trailing spaces, case or a no-break space is another object",
			freeOps[i].DOID, heldOps[i].DOID)
	}

	// Lookups: each operation comes back with its own DOID, byte for byte,
	// in its own partition, and an op_id with a trailing space or in upper
	// case is another id.
	for _, op := range append(append(heads, heldOps...), freeOps...) {
		r := get(t, h.Store, op.OpID)
		assert.Equal(t, []byte(op.DOID), []byte(r.Op.DOID), "operation %s keeps its DOID", op.OpID)
		assert.Equal(t, core.PartitionOf(op.DOID, P), r.Part, "%q is in the partition of its own bytes", op.DOID)
		for _, other := range []string{op.OpID + " ", op.OpID + "  ", strings.ToUpper(op.OpID)} {
			if other == op.OpID {
				continue
			}
			_, err := h.Store.Get(ctx, other)
			assert.ErrorIs(t, err, core.ErrNotFound, "Get(%q) finds no operation: op_id %q is another id", other, op.OpID)
		}
	}

	// Requeue names dead operations by op_id, byte for byte too.
	dead := headRecs[0]
	require.NoError(t, h.Store.SettleRetries(ctx, core.SettleParams{Part: dead.Part, Generation: parts[dead.Part].gen,
		Failed: []core.Failure{{Seq: dead.Seq, Err: "rejected", Dead: true}}}))
	n, err := h.Store.Requeue(ctx, core.RequeueParams{OpIDs: []string{dead.Op.OpID + " "}})
	require.NoError(t, err)
	assert.Zero(t, n, "no dead operation has op_id %q", dead.Op.OpID+" ")
	n, err = h.Store.Requeue(ctx, core.RequeueParams{OpIDs: []string{dead.Op.OpID}})
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
