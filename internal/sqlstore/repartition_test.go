package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sqlstore/storetest"
)

// publishAll publishes every partition to its end as a relay would: the
// operations of failed go to the retry table, due at once.
func publishAll(t *testing.T, s core.Store, failed ...*core.Operation) {
	t.Helper()
	ctx := context.Background()
	ps, err := s.Partitions(ctx)
	require.NoError(t, err)
	for _, part := range ps {
		p, err := s.TakePartition(ctx, part.Part, "publisher", time.Minute)
		require.NoError(t, err)
		recs, err := s.ReadPartition(ctx, core.ReadParams{Part: p.Part, After: p.Cursor, Limit: 10_000})
		require.NoError(t, err)
		if len(recs) > 0 {
			var fails []core.Failure
			for _, r := range recs {
				for _, op := range failed {
					if r.Op.OpID == op.OpID {
						fails = append(fails, core.Failure{Seq: r.Seq, Err: "refused"})
					}
				}
			}
			require.NoError(t, s.Advance(ctx, core.AdvanceParams{Part: p.Part, Generation: p.Generation, From: p.Cursor,
				To: recs[len(recs)-1].LeafIndex, Failed: fails}))
		}
		require.NoError(t, s.ReleasePartition(ctx, p.Part, p.Generation))
	}
}

// refused asserts that err is a *core.RepartitionError whose reason
// contains want.
func refused(t *testing.T, err error, want string) {
	t.Helper()
	var re *core.RepartitionError
	require.ErrorAs(t, err, &re)
	require.ErrorIs(t, err, core.ErrRepartitionRefused)
	assert.Contains(t, re.Reason, want)
	assert.NotEmpty(t, re.Fix)
}

// TestRepartition: the hand-over of core.Repartitioner. Refused, writing
// nothing, while anything could publish or is left to publish; then every
// cursor at the last position, every operation (sequenced or not) and
// retry row in its DOID's new partition, and what a process that still
// counts the old partitions records is moved to its object's partition
// before it gets a position. Growing and shrinking.
func TestRepartition(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		url := storetest.WithParam(t, db.URL(t), "partitions", "4")
		s := storetest.Open(t, url)
		doids := make([]string, 24)
		for i := range doids {
			doids[i] = fmt.Sprintf("10.1000/obj-%02d", i)
		}
		ops := record(t, s, doids...)
		// A process that recorded before the change and counts 4.
		stale := storetest.Open(t, url)
		require.NoError(t, stale.Insert(ctx, nil, []*core.Operation{newOp(t, doids[0])}))
		_, err := core.SequenceAll(ctx, s, 0)
		require.NoError(t, err)

		err = s.Repartition(ctx, 7, nil)
		refused(t, err, "25 operations with a position are not published yet")
		ps, err := s.Partitions(ctx)
		require.NoError(t, err)
		require.Len(t, ps, 4, "nothing written")

		publishAll(t, s, ops[3])
		_, err = s.Heartbeat(ctx, "relay-a", time.Minute)
		require.NoError(t, err)
		refused(t, s.Repartition(ctx, 7, nil), "relays are running (relay-a)")
		require.NoError(t, s.Leave(ctx, "relay-a"))
		held, err := s.TakePartition(ctx, 2, "relay-b", time.Minute)
		require.NoError(t, err)
		refused(t, s.Repartition(ctx, 7, nil), "partitions are leased: 2 (relay-b)")
		require.NoError(t, s.ReleasePartition(ctx, 2, held.Generation))
		seq, err := s.Locker().TryAcquire(ctx, core.SequencerLease, time.Minute)
		require.NoError(t, err)
		refused(t, s.Repartition(ctx, 7, nil), "sequencer")
		require.NoError(t, seq.Release(ctx))
		var cfg *core.ConfigError
		require.ErrorAs(t, s.Repartition(ctx, 0, nil), &cfg)
		require.ErrorAs(t, s.Repartition(ctx, core.MaxPartitions+1, nil), &cfg)

		// Recorded, not sequenced yet: moved with the rest.
		waiting := []*core.Operation{newOp(t, doids[1]), newOp(t, doids[2])}
		require.NoError(t, s.Insert(ctx, nil, waiting))
		before, err := s.Partitions(ctx)
		require.NoError(t, err)
		var gen int64
		for _, p := range before {
			gen = max(gen, p.Generation)
		}
		var progress []int64
		require.NoError(t, s.Repartition(ctx, 7, func(n int64) { progress = append(progress, n) }))
		assert.Equal(t, []int64{27}, progress, "every operation looked at")
		ps, err = s.Partitions(ctx)
		require.NoError(t, err)
		require.Len(t, ps, 7)
		for i, p := range ps {
			assert.Equal(t, core.Partition{Part: i, Cursor: 24, Generation: gen + 1}, p, "cursor at the last position, a newer generation, no owner")
		}
		checkParts := func(n, ops int) {
			t.Helper()
			recs, err := s.Scan(ctx, core.ScanParams{Limit: 1000})
			require.NoError(t, err)
			require.Len(t, recs, ops)
			for _, r := range recs {
				assert.Equal(t, core.PartitionOf(r.Op.DOID, n), r.Part, "seq %d", r.Seq)
			}
		}
		checkParts(7, 27)
		r := get(t, s, ops[3])
		assert.Equal(t, core.StateRetrying, r.State)
		for part := range 7 {
			due, err := s.DueRetries(ctx, core.DueParams{Part: part, Limit: 10})
			require.NoError(t, err)
			if part == core.PartitionOf(doids[3], 7) {
				require.Len(t, due, 1, "the retry row is in its new partition")
				assert.Equal(t, ops[3].OpID, due[0].Op.OpID)
			} else {
				assert.Empty(t, due, "partition %d", part)
			}
		}
		st, err := s.Stats(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(2), st.Counts[core.StatePending], "the two unsequenced")
		assert.Equal(t, int64(1), st.Counts[core.StateRetrying])
		assert.Equal(t, int64(24), st.Counts[core.StatePublished])

		// Run again with the same number: nothing to change.
		require.NoError(t, s.Repartition(ctx, 7, nil))
		again, err := s.Partitions(ctx)
		require.NoError(t, err)
		assert.Equal(t, ps, again, "the partition rows stay")

		// The stale process records with 4 partitions; the sequencer
		// moves its operations to their object's partition.
		late := []*core.Operation{newOp(t, doids[0]), newOp(t, doids[5]), newOp(t, doids[6])}
		require.NoError(t, stale.Insert(ctx, nil, late))
		n, err := core.SequenceAll(ctx, s, 0)
		require.NoError(t, err)
		assert.Equal(t, 5, n)
		for _, op := range append(waiting, late...) {
			r := get(t, s, op)
			assert.Equal(t, core.PartitionOf(op.DOID, 7), r.Part, op.DOID)
			assert.GreaterOrEqual(t, r.LeafIndex, int64(25), "after every earlier position")
			recs, err := s.ReadPartition(ctx, core.ReadParams{Part: r.Part, After: 24, Limit: 10})
			require.NoError(t, err)
			assert.Contains(t, leavesOf(recs), r.LeafIndex, "published from its new partition")
		}
		checkParts(7, 30)

		// Shrink.
		publishAll(t, s)
		before, err = s.Partitions(ctx)
		require.NoError(t, err)
		for _, p := range before {
			gen = max(gen, p.Generation)
		}
		require.NoError(t, s.Repartition(ctx, 2, nil))
		ps, err = s.Partitions(ctx)
		require.NoError(t, err)
		require.Len(t, ps, 2)
		for _, p := range ps {
			assert.Equal(t, int64(29), p.Cursor)
			assert.Equal(t, gen+1, p.Generation)
		}
		checkParts(2, 30)
		r = get(t, s, ops[3])
		assert.Equal(t, core.StateRetrying, r.State)
		assert.Equal(t, core.PartitionOf(doids[3], 2), r.Part)
		st, err = s.Stats(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(29), st.Counts[core.StatePublished])
		assert.Equal(t, int64(0), st.Counts[core.StatePending])
	})
}
