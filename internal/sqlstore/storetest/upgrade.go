package storetest

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
	"github.com/go-trustlog/trustlog/ledger"
)

// DOIDIn returns the n-th DOID (from 0) of the form 10.1000/obj-<i> that
// falls in partition part of a store of parts partitions.
func DOIDIn(part, parts, n int) string {
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

// oldRow is an operation as the previous schema stored it.
type oldRow struct {
	name string
	part int
	// state, attempts, lastError and due are the old publishing columns
	// (due relative to now).
	state     int
	attempts  int
	lastError string
	due       time.Duration
	// leaf is the position the previous release's ledger gave it (-1:
	// none yet).
	leaf int64

	op  *core.Operation
	seq int64
}

// memHashes holds stored hashes in stored-hash index order.
type memHashes []tlog.Hash

func (m *memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x >= int64(len(*m)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = (*m)[x]
	}
	return out, nil
}

func (m *memHashes) add(n int64, leaf []byte) ([]tlog.Hash, error) {
	hs, err := tlog.StoredHashes(n, leaf, m)
	if err != nil {
		return nil, err
	}
	*m = append(*m, hs...)
	return hs, nil
}

// OldState is an operation's publishing state in the previous schema's
// columns.
type OldState struct {
	// State is 0 pending, 1 in flight, 2 retrying, 3 published, 4 dead.
	State    int
	Attempts int
	// LastError is stored as NULL when empty.
	LastError string
	// Due is due_at (NULL when zero): a retry's next attempt, an
	// in-flight claim's lease expiry.
	Due time.Time
}

// InsertOld stores a sealed operation in a store of the previous schema
// (Insert writes the partition, which that schema has not) and returns
// its seq. An in-flight one gets a claim token, a published one its
// published_at.
func (s *Store) InsertOld(t testing.TB, op *core.Operation, st OldState) int64 {
	t.Helper()
	var due, published, lastErr, token, clientIP, serverIP any
	if !st.Due.IsZero() {
		due = s.Time(st.Due)
	}
	if st.State == 1 {
		token = int64(77) << 40
	}
	if st.State == 3 {
		published = s.Time(time.Now())
	}
	if st.LastError != "" {
		lastErr = st.LastError
	}
	if op.ClientIP != "" {
		clientIP = op.ClientIP
	}
	if op.ServerIP != "" {
		serverIP = op.ServerIP
	}
	s.Exec(t, `INSERT INTO {{.Op}} (op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor, producer_id,
		hash_alg, request_body_hash, response_body_hash, client_ip, server_ip, created_at, op_hash, signer, sign, updated_at,
		state, attempts, due_at, last_error, claim_token, published_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		op.OpID, string(op.Source), op.Type, op.DOID, op.DOPrefix, op.DORepository, op.Actor, op.ProducerID,
		string(op.HashAlg), op.RequestBodyHash, op.ResponseBodyHash, clientIP, serverIP, s.Time(op.CreatedAt),
		op.OpHash, op.Signer, hex.EncodeToString(op.Sign), s.Time(time.Now()),
		st.State, st.Attempts, due, lastErr, token, published)
	var seq int64
	if err := s.DB().QueryRow(s.SQL(t, `SELECT seq FROM {{.Op}} WHERE op_id = ?`), op.OpID).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	return seq
}

// Upgrade proves Migrate's upgrade of a store of the previous release
// (before partitions, with the operation's publishing state in its row)
// on the database url names: a store of two partitions holding
// operations in every old state (pending untried and tried, in flight,
// retrying, published, dead), some of them sequenced by the previous
// release's ledger (out of seq order, with a checkpoint) and some not.
// After Migrate every operation has a position (the tree grew from the
// old one, whose checkpoint still verifies; its size is the number of
// operations), Get, Stats, ListDead and DueRetries report each one's
// state carried over, a partition read from its cursor returns only the
// untried pending operations at its end, never a published one, and the
// status view agrees.
func Upgrade(t *testing.T, rawURL string) {
	s, rows, oldRoot := previousRelease(t, rawURL)
	checkUpgrade(t, s, rows, oldRoot, true)
}

// UpgradeInterrupted is Upgrade where the first Migrate stopped right
// after the positions migration did its work but before it was recorded
// as applied (a crash): the next Migrate runs it again, and it carries
// nothing over twice.
func UpgradeInterrupted(t *testing.T, rawURL string) {
	s, rows, oldRoot := previousRelease(t, rawURL)
	ctx := context.Background()
	v := s.Dialect().PositionsMigration
	require.NoError(t, s.MigrateUpTo(ctx, v))
	s.Exec(t, `DELETE FROM `+s.Names().Migrations+` WHERE name = ?`, v)
	// Published meanwhile by a relay of this release (the store was
	// usable): the second run must not undo it.
	p, err := s.TakePartition(ctx, 1, "early-relay", time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Advance(ctx, core.AdvanceParams{Part: 1, Generation: p.Generation, From: 9, To: 11}))
	require.NoError(t, s.ReleasePartition(ctx, 1, p.Generation))
	checkUpgrade(t, s, rows, oldRoot, false)
}

// previousRelease fills a store of the previous schema, see Upgrade.
func previousRelease(t *testing.T, rawURL string) (*Store, []*oldRow, tlog.Hash) {
	ctx := context.Background()
	s := OpenRaw(t, WithParam(t, rawURL, "partitions", "2"))
	require.NoError(t, s.MigrateUpTo(ctx, s.BeforePartitions()))

	now := time.Now().UTC().Truncate(time.Microsecond)
	// Positions after the upgrade: the sequenced ones keep theirs (0-3),
	// the others follow in seq order (4-11).
	rows := []*oldRow{
		{name: "A", part: 0, state: 3, leaf: 0},
		{name: "B", part: 1, state: 4, attempts: 5, lastError: "gone", leaf: 1},
		{name: "C", part: 0, state: 2, attempts: 2, lastError: "timeout", due: time.Hour, leaf: 2},
		{name: "D", part: 1, state: 1, attempts: 1, due: time.Minute, leaf: -1},
		{name: "E", part: 0, state: 0, leaf: -1},
		{name: "F", part: 0, state: 3, leaf: -1},
		{name: "G", part: 1, state: 0, attempts: 3, lastError: "adopted retry", leaf: -1},
		{name: "H", part: 0, state: 4, attempts: 1, lastError: "permanent", leaf: -1},
		{name: "I", part: 1, state: 0, leaf: 3},
		{name: "J", part: 1, state: 2, attempts: 1, lastError: "refused", due: -time.Minute, leaf: -1},
		{name: "L", part: 0, state: 0, leaf: -1},
		{name: "M", part: 1, state: 0, leaf: -1},
	}
	for i, r := range rows {
		r.op = &core.Operation{Source: core.SourceDOIP, Type: core.OpUpdate, DOID: DOIDIn(r.part, 2, i),
			DOPrefix: "10.1000", Actor: "alice", ProducerID: "previous-release", CreatedAt: now.Add(time.Duration(i-100) * time.Second)}
		require.NoError(t, r.op.Seal(nil))
		var due time.Time
		if r.state == 1 || r.state == 2 {
			due = now.Add(r.due)
		}
		r.seq = s.InsertOld(t, r.op, OldState{State: r.state, Attempts: r.attempts, LastError: r.lastError, Due: due})
	}

	// The previous release's ledger sequenced four of them, in its own
	// order, and signed a checkpoint of that tree.
	var mem memHashes
	var sequenced []*oldRow
	for _, r := range rows {
		if r.leaf >= 0 {
			sequenced = append(sequenced, r)
		}
	}
	slices.SortFunc(sequenced, func(a, b *oldRow) int { return int(a.leaf - b.leaf) })
	for _, r := range sequenced {
		leaf, err := r.op.AppendSealed(nil)
		require.NoError(t, err)
		first := int64(len(mem))
		hs, err := mem.add(r.leaf, leaf)
		require.NoError(t, err)
		idx := make([]int64, len(hs))
		raw := make([][]byte, len(hs))
		for i := range hs {
			idx[i], raw[i] = first+int64(i), hs[i][:]
		}
		q, args := s.Dialect().HashInsert(s.Names().Hash, idx, raw)
		_, err = s.DB().Exec(q, args...)
		require.NoError(t, err)
		s.Exec(t, `UPDATE {{.Op}} SET leaf_index = ? WHERE seq = ?`, r.leaf, r.seq)
	}
	oldSize := int64(len(sequenced))
	s.Exec(t, `UPDATE {{.Tree}} SET size = ? WHERE id = 1`, oldSize)
	oldRoot, err := tlog.TreeHash(oldSize, &mem)
	require.NoError(t, err)
	require.NoError(t, s.SaveCheckpoint(ctx, ledger.StoredCheckpoint{Size: oldSize, Root: oldRoot, Note: []byte("previous release\n")}))
	return s, rows, oldRoot
}

// checkUpgrade migrates s, filled by previousRelease, and checks it; full
// says the whole upgrade runs in this Migrate (and reports its progress).
func checkUpgrade(t *testing.T, s *Store, rows []*oldRow, oldRoot tlog.Hash, full bool) {
	ctx := context.Background()
	now := time.Now().UTC()
	oldSize := int64(4)
	byName := map[string]*oldRow{}
	for _, r := range rows {
		byName[r.name] = r
	}
	var mu sync.Mutex
	got := map[string]int64{}
	require.NoError(t, s.MigrateWithProgress(ctx, func(step string, done int64) {
		mu.Lock()
		defer mu.Unlock()
		assert.GreaterOrEqual(t, done, got[step], "progress of %q only grows", step)
		got[step] = done
	}))
	if full {
		assert.Equal(t, int64(len(rows)), got[sqlstore.StepPartition], "every row given its partition")
		assert.Equal(t, int64(len(rows))-oldSize, got[sqlstore.StepSequence], "the unsequenced rows sequenced")
		assert.Equal(t, int64(8), got[sqlstore.StepRetry], "the unsettled rows below the cursors moved to the retry table")
		ms, err := s.MigrationStatus(ctx)
		require.NoError(t, err)
		var after int64
		for _, m := range ms {
			if m.Name[:5] > s.BeforePartitions() {
				after++
			}
		}
		assert.Equal(t, after, got[sqlstore.StepMigrations], "every migration after the previous release's")
		assert.GreaterOrEqual(t, after, int64(3), "the partitions, the positions, the derived state")
	} else {
		assert.Zero(t, got[sqlstore.StepSequence], "sequenced by the first run")
		assert.Zero(t, got[sqlstore.StepRetry], "carried over by the first run, not twice")
	}

	_, err := s.DB().Exec(s.SQL(t, `SELECT state FROM {{.Op}}`))
	assert.Error(t, err, "the old publishing columns are gone")

	// Positions: the old ones kept, the rest in seq order.
	wantLeaf := map[string]int64{"A": 0, "B": 1, "C": 2, "I": 3, "D": 4, "E": 5, "F": 6, "G": 7, "H": 8, "J": 9, "L": 10, "M": 11}
	for _, r := range rows {
		rec, err := s.Get(ctx, r.op.OpID)
		require.NoError(t, err)
		assert.Equal(t, wantLeaf[r.name], rec.LeafIndex, r.name)
		assert.Equal(t, r.part, rec.Part, r.name)
		assert.Equal(t, r.op.OpHash, rec.Op.OpHash, r.name)
	}
	size, err := s.TreeSize(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(len(rows)), size, "the tree holds every operation")
	var count int64
	require.NoError(t, s.DB().QueryRow(s.SQL(t, `SELECT COUNT(*) FROM {{.Op}}`)).Scan(&count))
	assert.Equal(t, count, size)
	stored := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return s.ReadHashes(ctx, idx) })
	root, err := tlog.TreeHash(oldSize, stored)
	require.NoError(t, err)
	assert.Equal(t, oldRoot, root, "the old checkpoint still verifies")
	leaves, err := s.Leaves(ctx, 0, 100)
	require.NoError(t, err)
	require.Len(t, leaves, len(rows))
	var fresh memHashes
	for i, l := range leaves {
		require.Equal(t, int64(i), l.LeafIndex)
		b, err := l.Op.AppendSealed(nil)
		require.NoError(t, err)
		_, err = fresh.add(int64(i), b)
		require.NoError(t, err)
	}
	want, err := tlog.TreeHash(size, &fresh)
	require.NoError(t, err)
	root, err = tlog.TreeHash(size, stored)
	require.NoError(t, err)
	assert.Equal(t, want, root, "the stored tree is the tree of the operations in position order")

	// Partition 0: A(0) C(2) E(5) F(6) H(8) L(10); its cursor is H, the
	// last that was not pending and untried. Partition 1: B(1) I(3) D(4)
	// G(7) J(9) M(11); its cursor is J.
	ps, err := s.Partitions(ctx)
	require.NoError(t, err)
	require.Len(t, ps, 2)
	assert.Equal(t, int64(8), ps[0].Cursor)
	// In an interrupted upgrade a relay published M in between.
	mPublished := !full
	if mPublished {
		assert.Equal(t, int64(11), ps[1].Cursor)
	} else {
		assert.Equal(t, int64(9), ps[1].Cursor)
	}

	type wantRec struct {
		state    core.State
		attempts int
		lastErr  string
		due      time.Time
	}
	wants := map[string]wantRec{
		"A": {core.StatePublished, 0, "", time.Time{}},
		"B": {core.StateDead, 5, "gone", now},
		"C": {core.StateRetrying, 2, "timeout", now.Add(time.Hour)},
		"D": {core.StateRetrying, 1, "", now},
		"E": {core.StateRetrying, 0, "", now},
		"F": {core.StatePublished, 0, "", time.Time{}},
		"G": {core.StateRetrying, 3, "adopted retry", now},
		"H": {core.StateDead, 1, "permanent", now},
		"I": {core.StateRetrying, 0, "", now},
		"J": {core.StateRetrying, 1, "refused", now.Add(-time.Minute)},
		"L": {core.StatePending, 0, "", time.Time{}},
		"M": {core.StatePending, 0, "", time.Time{}},
	}
	if mPublished {
		wants["M"] = wantRec{core.StatePublished, 0, "", time.Time{}}
	}
	for _, r := range rows {
		rec, err := s.Get(ctx, r.op.OpID)
		require.NoError(t, err)
		w := wants[r.name]
		assert.Equal(t, w.state, rec.State, r.name)
		assert.Equal(t, w.attempts, rec.Attempts, r.name)
		assert.Equal(t, w.lastErr, rec.LastError, r.name)
		if w.due.IsZero() {
			assert.True(t, rec.DueAt.IsZero(), "%s: no due time", r.name)
		} else {
			assert.WithinDuration(t, w.due, rec.DueAt, 30*time.Second, r.name)
		}
	}

	st, err := s.Stats(ctx)
	require.NoError(t, err)
	pending, published := int64(2), int64(2)
	if mPublished {
		pending, published = 1, 3
	}
	assert.Equal(t, map[core.State]int64{core.StatePending: pending, core.StateRetrying: 6, core.StatePublished: published, core.StateDead: 2}, st.Counts)
	assert.Equal(t, size, st.TreeSize)
	assert.Equal(t, byName["M"].seq, st.MaxSeq)
	assert.Equal(t, byName["C"].op.CreatedAt, st.OldestUnsettled, "the first retry")

	dead, err := s.ListDead(ctx, core.ListParams{})
	require.NoError(t, err)
	require.Len(t, dead, 2)
	assert.Equal(t, []string{byName["B"].op.OpID, byName["H"].op.OpID}, []string{dead[0].Op.OpID, dead[1].Op.OpID})

	for part, name := range []string{"L", "M"} {
		recs, err := s.ReadPartition(ctx, core.ReadParams{Part: part, After: ps[part].Cursor, Limit: 100})
		require.NoError(t, err)
		if wants[name].state == core.StatePublished {
			assert.Empty(t, recs, "partition %d is published to its end", part)
			continue
		}
		require.Len(t, recs, 1, "partition %d above its cursor", part)
		assert.Equal(t, byName[name].op.OpID, recs[0].Op.OpID, "only the untried pending one at its end")
	}
	names := func(recs []core.Record) []string {
		var out []string
		for _, rec := range recs {
			for _, r := range rows {
				if r.op.OpID == rec.Op.OpID {
					out = append(out, r.name)
				}
			}
		}
		return out
	}
	due, err := s.DueRetries(ctx, core.DueParams{Part: 0, Limit: 100})
	require.NoError(t, err)
	assert.Equal(t, []string{"E"}, names(due), "C is due in an hour, H is dead")
	due, err = s.DueRetries(ctx, core.DueParams{Part: 1, Limit: 100})
	require.NoError(t, err)
	assert.Equal(t, []string{"I", "D", "G", "J"}, names(due), "in position order")

	for name, status := range map[string]string{"A": "TRUSTLOGGED", "B": "DEAD", "C": "NOT_TRUSTLOGGED", "E": "NOT_TRUSTLOGGED", "L": "NOT_TRUSTLOGGED"} {
		var got string
		require.NoError(t, s.DB().QueryRow(s.SQL(t, `SELECT trustlog_status FROM {{.Status}} WHERE op_id = ?`), byName[name].op.OpID).Scan(&got))
		assert.Equal(t, status, got, name)
	}

	require.NoError(t, s.Migrate(ctx), "migrating again changes nothing")
	st2, err := s.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, st.Counts, st2.Counts)

	// The store works as a new one: a new operation gets its partition
	// and the next position, and a relay publishes partition 0 from its
	// cursor.
	op := &core.Operation{Source: core.SourceDOIP, Type: core.OpCreate, DOID: DOIDIn(0, 2, 100), DOPrefix: "10.1000",
		Actor: "bob", ProducerID: "this-release"}
	require.NoError(t, op.Seal(nil))
	require.NoError(t, s.Insert(ctx, nil, []*core.Operation{op}))
	n, err := core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	rec, err := s.Get(ctx, op.OpID)
	require.NoError(t, err)
	assert.Equal(t, int64(len(rows)), rec.LeafIndex)
	assert.Equal(t, 0, rec.Part)
	p, err := s.TakePartition(ctx, 0, "relay", time.Minute)
	require.NoError(t, err)
	recs, err := s.ReadPartition(ctx, core.ReadParams{Part: 0, After: p.Cursor, Limit: 100})
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, []string{"L"}, names(recs[:1]))
	assert.Equal(t, op.OpID, recs[1].Op.OpID, "L, then the new one")
	require.NoError(t, s.Advance(ctx, core.AdvanceParams{Part: 0, Generation: p.Generation, From: p.Cursor, To: recs[1].LeafIndex}))
	st, err = s.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, published+2, st.Counts[core.StatePublished])
	assert.Equal(t, pending-1, st.Counts[core.StatePending])
}
