package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
)

// publishFirst marks the first n pending operations (in leaf order)
// published, as a relay would: per partition, the cursor moves to the
// last of them (taking the partition's lease).
func publishFirst(t *testing.T, st ledger.Storage, n int) []core.Record {
	t.Helper()
	ctx := context.Background()
	all, err := st.Leaves(ctx, 0, 1<<20)
	require.NoError(t, err)
	var recs []core.Record
	for _, r := range all {
		if r.State == core.StatePending && len(recs) < n {
			recs = append(recs, r)
		}
	}
	require.Len(t, recs, n)
	last := map[int]int64{}
	for _, r := range recs {
		last[r.Part] = max(last[r.Part], r.LeafIndex)
	}
	for part, to := range last {
		p, err := st.TakePartition(ctx, part, "prune-test", time.Minute)
		require.NoError(t, err)
		require.NoError(t, st.Advance(ctx, core.AdvanceParams{Part: part, Generation: p.Generation, From: p.Cursor, To: to}))
		require.NoError(t, st.ReleasePartition(ctx, part, p.Generation))
	}
	return recs
}

// TestPrune: on every driver, pruning deletes exactly the prefix of the
// log whose operations were published long enough ago, archives them
// first, and leaves a log whose audit and proofs still verify; a leaf hash
// altered below the horizon is still found.
func TestPrune(t *testing.T) {
	t.Parallel()
	for name, open := range drivers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			k := newKeys(t)
			st := open(t)
			fill(t, st, k, 40)
			published := publishFirst(t, st, 25)
			time.Sleep(20 * time.Millisecond)

			res, err := ledger.Prune(ctx, st, ledger.PruneOptions{OlderThan: time.Hour})
			require.NoError(t, err)
			assert.Zero(t, res.Deleted, "nothing was published an hour ago")
			res, err = ledger.Prune(ctx, st, ledger.PruneOptions{DryRun: true})
			require.NoError(t, err)
			assert.Equal(t, ledger.PruneResult{From: 0, Below: 25, Deleted: 25}, res)
			leaves, err := st.Leaves(ctx, 0, 100)
			require.NoError(t, err)
			require.Len(t, leaves, 40, "a dry run deletes nothing")

			var archived []core.Record
			res, err = ledger.Prune(ctx, st, ledger.PruneOptions{Batch: 10, Archive: func(recs []core.Record) error {
				archived = append(archived, recs...)
				return nil
			}})
			require.NoError(t, err)
			assert.Equal(t, ledger.PruneResult{From: 0, Below: 25, Deleted: 25}, res, "the pending leaf 25 stops the prune")
			require.Len(t, archived, 25)
			for i, r := range archived {
				assert.Equal(t, int64(i), r.LeafIndex)
				assert.Equal(t, published[i].Op.OpID, r.Op.OpID)
			}
			leaves, err = st.Leaves(ctx, 0, 100)
			require.NoError(t, err)
			require.Len(t, leaves, 15)
			assert.Equal(t, int64(25), leaves[0].LeafIndex)
			h, err := ledger.PrunedBelow(ctx, st)
			require.NoError(t, err)
			assert.Equal(t, int64(25), h)
			res, err = ledger.Prune(ctx, st, ledger.PruneOptions{})
			require.NoError(t, err)
			assert.Zero(t, res.Deleted, "nothing more is prunable")

			rep := audit(t, st, k)
			assert.True(t, rep.OK(), "%+v", rep.Findings)
			assert.Equal(t, int64(25), rep.PrunedBelow)
			assert.Equal(t, int64(15), rep.Leaves)
			p, err := ledger.Prove(ctx, st, leaves[5].Op.OpID)
			require.NoError(t, err)
			op, _, err := p.Verify(k.log, true, k.opVer)
			require.NoError(t, err)
			assert.Equal(t, leaves[5].Op.OpID, op.OpID)
			_, err = ledger.Prove(ctx, st, published[3].Op.OpID)
			assert.ErrorIs(t, err, core.ErrNotFound, "a pruned operation has no proof from the store")

			// The tree still vouches for what was pruned.
			setHash(t, st, tlog.StoredHashIndex(0, 3), make([]byte, 32))
			assert.False(t, audit(t, st, k).OK(), "a leaf hash altered below the horizon is found")
		})
	}
}

// TestPruneEmptyLog: a store whose log is empty (no relay has given its
// operations positions yet) is not pruned: nothing would record what was
// deleted.
func TestPruneEmptyLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := drivers["sqlite"](t)
	c, err := core.NewClient(st, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	ops := make([]*core.Operation, 30)
	for i := range ops {
		ops[i] = conformance.NewOp("plain", i)
	}
	require.NoError(t, c.Record(ctx, ops...))
	_, err = ledger.Prune(ctx, st, ledger.PruneOptions{})
	require.ErrorIs(t, err, ledger.ErrEmptyLog)
	s, err := st.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(30), s.Counts[core.StatePending], "nothing deleted")
}

// TestPruneOnlyBelowTheCheckpoint: leaves no signed checkpoint covers yet
// are never pruned (they could never be proven): a log without a
// checkpoint is refused, and a log whose tail is past its newest
// checkpoint is pruned up to that checkpoint only.
func TestPruneOnlyBelowTheCheckpoint(t *testing.T) {
	t.Parallel()
	for name, open := range drivers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			k := newKeys(t)
			st := open(t)
			c, err := core.NewClient(st, nil, core.Config{Strategy: core.StoreOnly, Signer: k.signer})
			require.NoError(t, err)
			seq, err := ledger.NewSequencer(ledger.Config{Key: k.skey})
			require.NoError(t, err)
			record := func(from, n int) {
				ops := make([]*core.Operation, n)
				for i := range ops {
					ops[i] = conformance.NewOp("unsigned-tail", from+i)
				}
				require.NoError(t, c.Record(ctx, ops...))
				got, err := seq.Sequence(ctx, st)
				require.NoError(t, err)
				require.Equal(t, n, got)
			}
			record(0, 10)
			publishFirst(t, st, 10)
			_, err = ledger.Prune(ctx, st, ledger.PruneOptions{})
			require.ErrorIs(t, err, ledger.ErrUnsigned, "no checkpoint yet")
			leaves, err := st.Leaves(ctx, 0, 100)
			require.NoError(t, err)
			assert.Len(t, leaves, 10, "nothing deleted")

			_, err = seq.Checkpoint(ctx, st)
			require.NoError(t, err)
			record(10, 5)
			publishFirst(t, st, 5)
			res, err := ledger.Prune(ctx, st, ledger.PruneOptions{})
			require.NoError(t, err)
			assert.Equal(t, ledger.PruneResult{From: 0, Below: 10, Deleted: 10}, res, "up to the checkpoint of 10, not the tree of 15")
			_, err = seq.Checkpoint(ctx, st)
			require.NoError(t, err)
			res, err = ledger.Prune(ctx, st, ledger.PruneOptions{})
			require.NoError(t, err)
			assert.Equal(t, ledger.PruneResult{From: 10, Below: 15, Deleted: 5}, res, "the rest once a checkpoint covers it")
			assert.True(t, audit(t, st, k).OK())
		})
	}
}
