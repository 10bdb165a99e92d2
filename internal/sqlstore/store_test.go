package sqlstore_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
	"github.com/go-trustlog/trustlog/internal/sqlstore/storetest"
)

// newOp returns a sealed operation on doid.
func newOp(t testing.TB, doid string) *core.Operation {
	t.Helper()
	op := &core.Operation{Source: core.SourceDOIP, Type: core.OpCreate, DOID: doid, DOPrefix: "10.1000",
		Actor: "alice", ProducerID: "storetest"}
	require.NoError(t, op.Seal(nil))
	return op
}

// doidIn returns the n-th DOID (from 0) of partition part in a store of
// parts partitions.
func doidIn(part, parts, n int) string {
	for i := 0; ; i++ {
		d := fmt.Sprintf("10.1000/obj-%d", i)
		if core.PartitionOf(d, parts) == part {
			if n == 0 {
				return d
			}
			n--
		}
	}
}

// record inserts ops on doids and sequences them; it returns the records
// by op_id.
func record(t *testing.T, s core.Store, doids ...string) []*core.Operation {
	t.Helper()
	ctx := context.Background()
	ops := make([]*core.Operation, len(doids))
	for i, d := range doids {
		ops[i] = newOp(t, d)
	}
	require.NoError(t, s.Insert(ctx, nil, ops))
	_, err := core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	return ops
}

func get(t *testing.T, s core.Store, op *core.Operation) core.Record {
	t.Helper()
	r, err := s.Get(context.Background(), op.OpID)
	require.NoError(t, err)
	return r
}

func leavesOf(recs []core.Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.LeafIndex
	}
	return out
}

// TestMigrateNew: a new store gets the partitions its URL asks for (the
// default without), a log identity, and an existing one keeps its number
// of partitions: asking for another is refused, saying why.
func TestMigrateNew(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		url := db.URL(t)
		s := storetest.Open(t, url)
		ps, err := s.Partitions(ctx)
		require.NoError(t, err)
		require.Len(t, ps, core.PartitionsDefault)
		for i, p := range ps {
			assert.Equal(t, core.Partition{Part: i, Cursor: -1}, p)
		}
		id, err := s.Cursor(ctx, core.LogIDCursor)
		require.NoError(t, err)
		assert.Regexp(t, regexp.MustCompile(`^[0-9a-f]{16}$`), id.Value)
		require.NoError(t, s.Migrate(ctx), "again")
		again, err := s.Cursor(ctx, core.LogIDCursor)
		require.NoError(t, err)
		assert.Equal(t, id.Value, again.Value, "the log identity is written once")

		other := storetest.OpenRaw(t, storetest.WithParam(t, url, "partitions", "4"))
		err = other.Migrate(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "has 16 partitions and the URL asks for 4")
		assert.Contains(t, err.Error(), "`trustlog partitions set 4` changes it")
		same := storetest.OpenRaw(t, storetest.WithParam(t, url, "partitions", "16"))
		require.NoError(t, same.Migrate(ctx), "the number it has is fine")

		small := storetest.Open(t, storetest.WithParam(t, db.URL(t), "partitions", "3"))
		ps, err = small.Partitions(ctx)
		require.NoError(t, err)
		assert.Len(t, ps, 3)
		ops := record(t, small, "10.1000/a", "10.1000/b", "10.1000/c", "10.1000/d")
		for _, op := range ops {
			r := get(t, small, op)
			assert.Equal(t, core.PartitionOf(op.DOID, 3), r.Part, "Insert writes the partition")
			assert.Equal(t, core.StatePending, r.State)
		}
	})
}

// TestMigrateConcurrently: migrators starting together agree on one
// schema, one set of partitions and one log identity.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		url := storetest.WithParam(t, db.URL(t), "partitions", "5")
		stores := []*storetest.Store{storetest.OpenRaw(t, url), storetest.OpenRaw(t, url), storetest.OpenRaw(t, url)}
		var wg sync.WaitGroup
		errs := make([]error, len(stores))
		for i, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Migrate(ctx)
			}()
		}
		wg.Wait()
		var ids []string
		for i, s := range stores {
			require.NoError(t, errs[i])
			ps, err := s.Partitions(ctx)
			require.NoError(t, err)
			assert.Len(t, ps, 5)
			c, err := s.Cursor(ctx, core.LogIDCursor)
			require.NoError(t, err)
			ids = append(ids, c.Value)
		}
		assert.Equal(t, ids[0], ids[1])
		assert.Equal(t, ids[0], ids[2])
	})
}

// TestBadPartitionsParameter: the drivers refuse a partitions parameter
// out of range, naming it.
func TestBadPartitionsParameter(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"sqlite:/tmp/x.db?partitions=0", "sqlite:/tmp/x.db?partitions=1025", "sqlite:/tmp/x.db?partitions=many",
		"postgres://u:hunter2@localhost/db?partitions=0", "mysql://u:hunter2@localhost/db?partitions=2000",
	} {
		_, err := core.OpenStore(context.Background(), url)
		require.ErrorIs(t, err, core.ErrInvalidURL, url)
		assert.Contains(t, err.Error(), "partitions must be an integer from 1 to 1024", url)
		assert.NotContains(t, err.Error(), "hunter2")
	}
}

// TestPartitionLeases: a partition goes to one member at a time, each
// take increments its generation, renewals keep what a member holds and a
// release at an old generation does nothing.
func TestPartitionLeases(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		s := storetest.Open(t, storetest.WithParam(t, db.URL(t), "partitions", "4"))
		p, err := s.TakePartition(ctx, 1, "relay-a", time.Minute)
		require.NoError(t, err)
		assert.Equal(t, 1, p.Part)
		assert.Equal(t, int64(1), p.Generation)
		assert.Equal(t, "relay-a", p.Owner)
		assert.Equal(t, int64(-1), p.Cursor)
		assert.WithinDuration(t, time.Now().Add(time.Minute), p.Expires, 10*time.Second)

		_, err = s.TakePartition(ctx, 1, "relay-b", time.Minute)
		require.ErrorIs(t, err, core.ErrLeaseHeld)
		again, err := s.TakePartition(ctx, 1, "relay-a", time.Minute)
		require.NoError(t, err, "the owner may take it again")
		assert.Equal(t, int64(2), again.Generation, "and fences its own earlier writes")
		_, err = s.TakePartition(ctx, 9, "relay-a", time.Minute)
		require.Error(t, err)
		assert.NotErrorIs(t, err, core.ErrLeaseHeld)

		_, err = s.TakePartition(ctx, 2, "relay-a", time.Second)
		require.NoError(t, err)
		held, err := s.RenewPartitions(ctx, "relay-a", time.Minute)
		require.NoError(t, err)
		require.Len(t, held, 2)
		assert.Equal(t, []int{1, 2}, []int{held[0].Part, held[1].Part})
		assert.WithinDuration(t, time.Now().Add(time.Minute), held[1].Expires, 10*time.Second, "renewed")

		// An expired lease is anyone's.
		_, err = s.TakePartition(ctx, 3, "relay-a", time.Second)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			_, err := s.TakePartition(ctx, 3, "relay-b", time.Minute)
			return err == nil
		}, 20*time.Second, 50*time.Millisecond)
		held, err = s.RenewPartitions(ctx, "relay-a", time.Minute)
		require.NoError(t, err)
		assert.Len(t, held, 2, "a lease taken over is gone")

		require.NoError(t, s.ReleasePartition(ctx, 1, 1), "an old generation releases nothing")
		ps, err := s.Partitions(ctx)
		require.NoError(t, err)
		assert.Equal(t, "relay-a", ps[1].Owner)
		require.NoError(t, s.ReleasePartition(ctx, 1, 2))
		ps, err = s.Partitions(ctx)
		require.NoError(t, err)
		assert.Equal(t, "", ps[1].Owner)
		assert.Equal(t, int64(2), ps[1].Generation)
		p, err = s.TakePartition(ctx, 1, "relay-b", time.Minute)
		require.NoError(t, err, "a released partition is free")
		assert.Equal(t, int64(3), p.Generation)
	})
}

// TestHeartbeat: members are listed sorted while their time runs, and
// forgotten when it ran out or they leave.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		s := storetest.Open(t, db.URL(t))
		m, err := s.Heartbeat(ctx, "relay-b", time.Minute)
		require.NoError(t, err)
		assert.Equal(t, []string{"relay-b"}, m)
		_, err = s.Heartbeat(ctx, "relay-c", time.Second)
		require.NoError(t, err)
		m, err = s.Heartbeat(ctx, "relay-a", time.Minute)
		require.NoError(t, err)
		assert.Equal(t, []string{"relay-a", "relay-b", "relay-c"}, m)
		require.Eventually(t, func() bool {
			m, err := s.Heartbeat(ctx, "relay-a", time.Minute)
			return err == nil && len(m) == 2
		}, 20*time.Second, 50*time.Millisecond, "relay-c's time runs out")
		require.NoError(t, s.Leave(ctx, "relay-b"))
		m, err = s.Heartbeat(ctx, "relay-a", time.Minute)
		require.NoError(t, err)
		assert.Equal(t, []string{"relay-a"}, m)
	})
}

// TestPublishing: a partition is read in position order above its
// cursor; Advance moves the cursor, fenced by generation and cursor, and
// puts failures in the retry table; retries are due, settled, go dead
// and are requeued; every record reports its derived state.
func TestPublishing(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		s := storetest.Open(t, storetest.WithParam(t, db.URL(t), "partitions", "2"))
		d0, d0b, d1 := doidIn(0, 2, 0), doidIn(0, 2, 1), doidIn(1, 2, 0)
		ops := record(t, s, d0, d1, d0b, d0, d0b, d1)
		// Positions follow seq: partition 0 holds 0, 2, 3, 4; partition 1
		// holds 1, 5.
		recs, err := s.ReadPartition(ctx, core.ReadParams{Part: 0, After: -1, Limit: 10})
		require.NoError(t, err)
		assert.Equal(t, []int64{0, 2, 3, 4}, leavesOf(recs))
		for i, r := range recs {
			assert.Equal(t, core.StatePending, r.State)
			assert.Equal(t, 0, r.Part)
			assert.False(t, r.Held)
			assert.Equal(t, []*core.Operation{ops[0], ops[2], ops[3], ops[4]}[i].OpID, r.Op.OpID)
		}
		assert.Equal(t, ops[0].OpHash, recs[0].Op.OpHash)
		recs, err = s.ReadPartition(ctx, core.ReadParams{Part: 0, After: 2, Limit: 1})
		require.NoError(t, err)
		assert.Equal(t, []int64{3}, leavesOf(recs))

		p, err := s.TakePartition(ctx, 0, "relay-a", time.Minute)
		require.NoError(t, err)
		err = s.Advance(ctx, core.AdvanceParams{Part: 0, Generation: p.Generation + 1, From: -1, To: 2})
		require.ErrorIs(t, err, core.ErrFenced, "another generation")
		err = s.Advance(ctx, core.AdvanceParams{Part: 0, Generation: p.Generation, From: 0, To: 2})
		require.ErrorIs(t, err, core.ErrFenced, "another cursor")
		// Leaf 2 (ops[2]) fails, leaf 0 is published.
		require.NoError(t, s.Advance(ctx, core.AdvanceParams{Part: 0, Generation: p.Generation, From: -1, To: 2,
			Failed: []core.Failure{{Seq: get(t, s, ops[2]).Seq, Err: "broker down", Delay: time.Hour}}}))
		err = s.Advance(ctx, core.AdvanceParams{Part: 0, Generation: p.Generation, From: 2, To: 4,
			Failed: []core.Failure{{Seq: get(t, s, ops[1]).Seq, Err: "x"}}})
		require.Error(t, err, "a failure outside the advanced range")
		assert.NotErrorIs(t, err, core.ErrFenced)
		ps, err := s.Partitions(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(2), ps[0].Cursor, "nothing written")

		r := get(t, s, ops[0])
		assert.Equal(t, core.StatePublished, r.State)
		assert.Equal(t, int64(0), r.LeafIndex)
		r = get(t, s, ops[2])
		assert.Equal(t, core.StateRetrying, r.State)
		assert.Equal(t, 1, r.Attempts)
		assert.Equal(t, "broker down", r.LastError)
		assert.WithinDuration(t, time.Now().Add(time.Hour), r.DueAt, time.Minute)
		assert.Equal(t, core.StatePending, get(t, s, ops[3]).State)
		assert.Equal(t, core.StatePending, get(t, s, ops[1]).State, "partition 1 is untouched")

		due, err := s.DueRetries(ctx, core.DueParams{Part: 0, Limit: 10})
		require.NoError(t, err)
		assert.Empty(t, due, "not due for an hour")

		// Strict reads hold later operations of a DOID with a retry.
		recs, err = s.ReadPartition(ctx, core.ReadParams{Part: 0, After: 2, Limit: 10, Strict: true})
		require.NoError(t, err)
		require.Len(t, recs, 2)
		assert.False(t, recs[0].Held, "leaf 3 is on %s, which has no retry", d0)
		assert.True(t, recs[1].Held, "leaf 4 is on %s, whose leaf 2 is in the retry table", d0b)
		recs, err = s.ReadPartition(ctx, core.ReadParams{Part: 0, After: 2, Limit: 10})
		require.NoError(t, err)
		assert.False(t, recs[1].Held, "only strict reads hold")

		// Leaf 3 is published, leaf 4 held (due now, no attempt).
		require.NoError(t, s.Advance(ctx, core.AdvanceParams{Part: 0, Generation: p.Generation, From: 2, To: 4,
			Failed: []core.Failure{{Seq: get(t, s, ops[4]).Seq, Held: true}}}))
		r = get(t, s, ops[4])
		assert.Equal(t, core.StateRetrying, r.State)
		assert.Equal(t, 0, r.Attempts)
		assert.Equal(t, "", r.LastError)
		due, err = s.DueRetries(ctx, core.DueParams{Part: 0, Limit: 10})
		require.NoError(t, err)
		assert.Equal(t, []int64{4}, leavesOf(due))
		due, err = s.DueRetries(ctx, core.DueParams{Part: 0, Limit: 10, Strict: true})
		require.NoError(t, err)
		assert.Empty(t, due, "leaf 4 waits behind leaf 2 of its DOID")

		// The retry of leaf 2 fails for good: it goes dead, and no longer
		// holds leaf 4 back.
		err = s.SettleRetries(ctx, core.SettleParams{Part: 0, Generation: p.Generation - 1,
			Failed: []core.Failure{{Seq: get(t, s, ops[2]).Seq, Err: "rejected", Dead: true}}})
		require.ErrorIs(t, err, core.ErrFenced)
		require.NoError(t, s.SettleRetries(ctx, core.SettleParams{Part: 0, Generation: p.Generation,
			Failed: []core.Failure{{Seq: get(t, s, ops[2]).Seq, Err: "rejected", Dead: true}}}))
		r = get(t, s, ops[2])
		assert.Equal(t, core.StateDead, r.State)
		assert.Equal(t, 2, r.Attempts)
		assert.Equal(t, "rejected", r.LastError)
		due, err = s.DueRetries(ctx, core.DueParams{Part: 0, Limit: 10, Strict: true})
		require.NoError(t, err)
		assert.Equal(t, []int64{4}, leavesOf(due), "a dead operation holds nothing back")
		assert.Equal(t, core.StateRetrying, due[0].State)
		require.NoError(t, s.SettleRetries(ctx, core.SettleParams{Part: 0, Generation: p.Generation,
			Published: []int64{due[0].Seq}}))
		assert.Equal(t, core.StatePublished, get(t, s, ops[4]).State)

		dead, err := s.ListDead(ctx, core.ListParams{})
		require.NoError(t, err)
		require.Len(t, dead, 1)
		assert.Equal(t, ops[2].OpID, dead[0].Op.OpID)
		assert.Equal(t, core.StateDead, dead[0].State)

		st, err := s.Stats(ctx)
		require.NoError(t, err)
		assert.Equal(t, map[core.State]int64{core.StatePending: 2, core.StateRetrying: 0, core.StatePublished: 3, core.StateDead: 1}, st.Counts)
		assert.Equal(t, int64(6), st.TreeSize)
		assert.Equal(t, get(t, s, ops[5]).Seq, st.MaxSeq)
		assert.Equal(t, ops[1].CreatedAt, st.OldestUnsettled, "partition 1's first operation")
		require.Len(t, st.Partitions, 2)
		assert.Equal(t, int64(4), st.Partitions[0].Cursor)
		assert.Equal(t, "relay-a", st.Partitions[0].Owner)

		n, err := s.Requeue(ctx, core.RequeueParams{OpIDs: []string{ops[2].OpID}})
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		r = get(t, s, ops[2])
		assert.Equal(t, core.StateRetrying, r.State)
		assert.Equal(t, 0, r.Attempts)
		due, err = s.DueRetries(ctx, core.DueParams{Part: 0, Limit: 10, Strict: true})
		require.NoError(t, err)
		assert.Equal(t, []int64{2}, leavesOf(due), "due at once")
		n, err = s.Requeue(ctx, core.RequeueParams{All: true})
		require.NoError(t, err)
		assert.Zero(t, n, "nothing else is dead")

		// A new owner fences the old one.
		_, err = s.TakePartition(ctx, 0, "relay-a", time.Minute)
		require.NoError(t, err)
		err = s.SettleRetries(ctx, core.SettleParams{Part: 0, Generation: p.Generation, Published: []int64{due[0].Seq}})
		require.ErrorIs(t, err, core.ErrFenced)
		assert.Equal(t, core.StateRetrying, get(t, s, ops[2]).State, "nothing written")
	})
}

// TestUpgrade: Migrate upgrades a store of the previous release in place
// (see storetest.Upgrade; the drivers' upgrade tests run it too).
func TestUpgrade(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db storetest.DB) {
		storetest.Upgrade(t, db.URL(t))
	})
}

// TestUpgradeInterrupted: an upgrade that stopped after the positions
// migration's work, before it was recorded, finishes without carrying
// anything over twice (see storetest.UpgradeInterrupted).
func TestUpgradeInterrupted(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db storetest.DB) {
		storetest.UpgradeInterrupted(t, db.URL(t))
	})
}

// TestPrune: an operation is prunable once published and recorded long
// enough ago; the horizon stops at the first that is not (above its
// partition's cursor, or in the retry table), and PruneLeaves refuses to
// go past it.
func TestPrune(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		s := storetest.Open(t, storetest.WithParam(t, db.URL(t), "partitions", "2"))
		d0, d1 := doidIn(0, 2, 0), doidIn(1, 2, 0)
		ops := record(t, s, d0, d0, d1, d0, d0)
		// Partition 0 holds positions 0, 1, 3, 4: 0 published, 1 failed,
		// 3 published; 4 is above the cursor. Partition 1 (2) is not
		// published.
		p, err := s.TakePartition(ctx, 0, "relay", time.Minute)
		require.NoError(t, err)
		require.NoError(t, s.Advance(ctx, core.AdvanceParams{Part: 0, Generation: p.Generation, From: -1, To: 3,
			Failed: []core.Failure{{Seq: get(t, s, ops[1]).Seq, Err: "no", Delay: time.Hour}}}))
		h, err := s.PruneHorizon(ctx, 0, 5, 0)
		require.NoError(t, err)
		assert.Equal(t, int64(1), h, "position 1 is in the retry table")
		h, err = s.PruneHorizon(ctx, 0, 5, time.Hour)
		require.NoError(t, err)
		assert.Equal(t, int64(0), h, "everything was recorded less than an hour ago")
		h, err = s.PruneHorizon(ctx, 0, 1, 0)
		require.NoError(t, err)
		assert.Equal(t, int64(1), h, "all of [0, 1) is prunable")

		_, err = s.PruneLeaves(ctx, 0, 2, 0)
		require.ErrorIs(t, err, core.ErrConflict, "position 1 is not prunable")
		n, err := s.PruneLeaves(ctx, 0, 1, 0)
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)
		_, err = s.Get(ctx, ops[0].OpID)
		require.ErrorIs(t, err, core.ErrNotFound)
		c, err := s.Cursor(ctx, "trustlog.ledger.pruned_below")
		require.NoError(t, err)
		assert.Equal(t, "1", c.Value)
		// Stats derives the operations with a position from the tree size
		// and this horizon: position 3 is the one published left.
		st, err := s.Stats(ctx)
		require.NoError(t, err)
		assert.Equal(t, map[core.State]int64{core.StatePending: 2, core.StateRetrying: 1, core.StatePublished: 1, core.StateDead: 0}, st.Counts)
		assert.Equal(t, []int64{1, 1}, []int64{st.Partitions[0].Backlog, st.Partitions[1].Backlog}, "position 4 in partition 0, 2 in 1")

		// Settled and published, position 1 and then 2 (partition 1) follow.
		require.NoError(t, s.SettleRetries(ctx, core.SettleParams{Part: 0, Generation: p.Generation, Published: []int64{get(t, s, ops[1]).Seq}}))
		h, err = s.PruneHorizon(ctx, 1, 5, 0)
		require.NoError(t, err)
		assert.Equal(t, int64(2), h, "position 2's partition has not published it")
		p1, err := s.TakePartition(ctx, 1, "relay", time.Minute)
		require.NoError(t, err)
		require.NoError(t, s.Advance(ctx, core.AdvanceParams{Part: 1, Generation: p1.Generation, From: -1, To: 2}))
		h, err = s.PruneHorizon(ctx, 1, 5, 0)
		require.NoError(t, err)
		assert.Equal(t, int64(4), h, "position 4 is above its cursor")
		n, err = s.PruneLeaves(ctx, 1, 4, 0)
		require.NoError(t, err)
		assert.Equal(t, int64(3), n)
		st, err = s.Stats(ctx)
		require.NoError(t, err)
		assert.Equal(t, map[core.State]int64{core.StatePending: 1, core.StateRetrying: 0, core.StatePublished: 0, core.StateDead: 0}, st.Counts)
		assert.Equal(t, int64(5), st.TreeSize, "the log keeps its leaves")
		assert.Equal(t, []int64{1, 0}, []int64{st.Partitions[0].Backlog, st.Partitions[1].Backlog})

		// A horizon that is no horizon is an error, not a wrong count.
		require.NoError(t, s.SetCursor(ctx, "trustlog.ledger.pruned_below", "6"))
		_, err = s.Stats(ctx)
		assert.ErrorContains(t, err, "not a prune horizon within the tree size 5")
	})
}

// TestAppendNotifies: on PostgreSQL the sequencer's Append wakes the
// subscribers of every process, as an insert does.
func TestAppendNotifies(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := storetest.PostgresURL(t)
	s := storetest.Open(t, url)
	other := storetest.Open(t, url)
	n, ok := other.Driver.(core.Notifier)
	require.True(t, ok)
	require.True(t, other.Capabilities().ListenNotify)
	wake, err := n.Subscribe(ctx)
	require.NoError(t, err)
	select {
	case <-wake: // listening
	case <-ctx.Done():
		t.Fatal("the listener never connected")
	}
	// Inserted without a notification, so only Append can wake.
	op := newOp(t, "10.1000/quiet")
	s.Exec(t, `INSERT INTO {{.Op}} (`+sqlstore.InsertColumns+`) VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, '', '', NULL, NULL, ?, ?, '', '', ?, ?)`,
		op.OpID, string(op.Source), op.Type, op.DOID, op.DOPrefix, op.Actor, op.ProducerID, string(op.HashAlg),
		op.CreatedAt, op.OpHash, op.CreatedAt, core.PartitionOf(op.DOID, core.PartitionsDefault))
	select {
	case <-wake:
		t.Fatal("woken by an insert without NOTIFY")
	default:
	}
	seqd, err := core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	require.Equal(t, 1, seqd)
	select {
	case <-wake:
	case <-ctx.Done():
		t.Fatal("Append did not wake the other store's subscriber")
	}
}

// TestMigrateDownEmpty: an empty store, log identity and all, rolls back
// to no schema on every database, and migrates up again.
func TestMigrateDownEmpty(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		s := storetest.Open(t, db.URL(t))
		ms, err := s.MigrationStatus(ctx)
		require.NoError(t, err)
		names, err := s.MigrateDown(ctx)
		require.NoError(t, err)
		assert.Len(t, names, len(ms), "one group: every migration")
		assert.ErrorIs(t, s.CheckSchema(ctx), sqlstore.ErrNoSchema)
		require.NoError(t, s.Migrate(ctx))
		ops := record(t, s, "10.1000/again")
		assert.Equal(t, core.StatePending, get(t, s, ops[0]).State)
	})
}

// TestInsertNeedsPartitions: a store whose schema has no partitions yet
// refuses to record, saying to migrate.
func TestInsertNeedsPartitions(t *testing.T) {
	t.Parallel()
	s := storetest.OpenRaw(t, storetest.SQLiteURL(t))
	require.NoError(t, s.MigrateUpTo(context.Background(), "00002"))
	err := s.Insert(context.Background(), nil, []*core.Operation{newOp(t, "10.1000/x")})
	require.ErrorIs(t, err, sqlstore.ErrNoPartitions)
}

// TestStatsWithoutPartitions: a store whose partition table is still
// empty (migrated up to the partitions, not through the positions
// migration that creates them) has figures and no partitions, on every
// database (MySQL's per-partition statements have nothing to write out).
func TestStatsWithoutPartitions(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		s := storetest.OpenRaw(t, db.URL(t))
		require.NoError(t, s.MigrateUpTo(ctx, s.BeforePositions(t)))
		st, err := s.Stats(ctx)
		require.NoError(t, err)
		assert.Empty(t, st.Partitions)
		assert.Equal(t, map[core.State]int64{core.StatePending: 0, core.StateRetrying: 0, core.StatePublished: 0, core.StateDead: 0}, st.Counts)
		assert.Zero(t, st.MaxSeq)
		assert.Zero(t, st.TreeSize)
	})
}

// TestStatsMaxPartitions: Stats of a store of core.MaxPartitions
// partitions, whose statements MySQL writes out per partition, gives
// each partition its backlog.
func TestStatsMaxPartitions(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		P := core.MaxPartitions
		s := storetest.Open(t, storetest.WithParam(t, db.URL(t), "partitions", strconv.Itoa(P)))
		last := doidIn(P-1, P, 0)
		record(t, s, doidIn(0, P, 0), last, last)
		st, err := s.Stats(ctx)
		require.NoError(t, err)
		require.Len(t, st.Partitions, P)
		backlogs := map[int]int64{}
		for _, p := range st.Partitions {
			if p.Backlog != 0 {
				backlogs[p.Part] = p.Backlog
			}
		}
		assert.Equal(t, map[int]int64{0: 1, P - 1: 2}, backlogs)
		assert.Equal(t, int64(3), st.Counts[core.StatePending])
		assert.Equal(t, int64(3), st.TreeSize)
		assert.False(t, st.OldestUnsettled.IsZero())
	})
}
