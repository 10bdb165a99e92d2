package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
)

// The store implements ledger.Storage: the Merkle log lives in the same
// database as the operations, in three tables (stored hashes, the tree
// size, signed checkpoints) and the operation's leaf_index column, which
// is also its position in its partition's publishing order.

var _ ledger.Storage = (*Store)(nil)

// Unsequenced implements core.Store.
func (s *Store) Unsequenced(ctx context.Context, afterSeq int64, limit int) ([]core.Record, error) {
	return s.unsequenced(ctx, s.q.Unsequenced, afterSeq, limit)
}

// unsequenced runs q, a read of operations without a position (arg, then
// limit), and once more if it was short because the queue had seqs whose
// operation is gone (unqueueMissing removed them).
func (s *Store) unsequenced(ctx context.Context, q string, arg any, limit int) ([]core.Record, error) {
	recs, err := s.queryRecords(ctx, s.db, q, arg, limit)
	if err == nil && s.unqueueMissing(ctx, len(recs), limit) {
		recs, err = s.queryRecords(ctx, s.db, q, arg, limit)
	}
	if err != nil {
		return nil, s.errf("ledger: unsequenced: %w", err)
	}
	return recs, nil
}

// unqueueEvery is how often at most a store looks for queued seqs whose
// operation is gone, and unqueueLook how many of the queue's first seqs
// it looks at (at least the read's limit).
const (
	unqueueEvery = 10 * time.Second
	unqueueLook  = 1000
)

// unqueueMissing runs Queries.UnqueueMissing after a read that returned
// fewer records than its limit (the seqs it took first may have had no
// row), at most once per unqueueEvery, and reports whether it removed
// any (the read is worth running again). The first short read of a
// store always looks. It is housekeeping, not the read: where it fails
// (a role that may only read, as an auditor's `verify` may use) the
// read stands as it is.
func (s *Store) unqueueMissing(ctx context.Context, got, limit int) bool {
	if s.q.UnqueueMissing == "" || got >= limit {
		return false
	}
	now, last := time.Now().UnixNano(), s.unqueuedAt.Load()
	if last != 0 && now-last < int64(unqueueEvery) || !s.unqueuedAt.CompareAndSwap(last, now) {
		return false
	}
	res, err := s.db.ExecContext(ctx, s.q.UnqueueMissing, max(limit, unqueueLook))
	if err != nil {
		return false
	}
	n, err := res.RowsAffected()
	return err == nil && n > 0
}

// UnsequencedExcept implements core.OverlappingAppender. Without the
// dialect's Queries.UnsequencedExcept it reads the excepted seqs too and
// drops them.
func (s *Store) UnsequencedExcept(ctx context.Context, except []int64, limit int) ([]core.Record, error) {
	if s.q.UnsequencedExcept == "" || len(except) == 0 {
		recs, err := s.Unsequenced(ctx, 0, limit+len(except))
		if err != nil {
			return nil, err
		}
		return core.RecordsExcept(recs, except, limit), nil
	}
	return s.unsequenced(ctx, s.q.UnsequencedExcept, except, limit)
}

// Leaves implements ledger.Storage.
func (s *Store) Leaves(ctx context.Context, from int64, limit int) ([]core.Record, error) {
	recs, err := s.queryRecords(ctx, s.db, s.q.Leaves, from, limit)
	if err != nil {
		return nil, s.errf("ledger: leaves: %w", err)
	}
	return recs, nil
}

// TreeSize implements core.Store.
func (s *Store) TreeSize(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, s.q.TreeSize).Scan(&n); err != nil {
		return 0, s.errf("ledger: tree size: %w", err)
	}
	return n, nil
}

// ReadHashes implements core.Store.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	return s.readHashes(ctx, indexes, false)
}

// readHashes is ReadHashes; oneEach reads the table of one row per stored
// hash (Names.Hash) even where the dialect keeps them in runs: the
// upgrade sequences at migration 00003, before 00008 made the runs.
func (s *Store) readHashes(ctx context.Context, indexes []int64, oneEach bool) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	if s.q.ReadHashRuns != "" && !oneEach {
		return s.readHashRuns(ctx, indexes)
	}
	q, args := list(s, s.q.ReadHashes, "{ids}", 1, indexes)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.errf("ledger: read hashes: %w", err)
	}
	defer rows.Close()
	got := make(map[int64]tlog.Hash, len(indexes))
	for rows.Next() {
		var idx int64
		var b []byte
		if err := rows.Scan(&idx, &b); err != nil {
			return nil, s.errf("ledger: read hashes: %w", err)
		}
		if len(b) != tlog.HashSize {
			return nil, s.errf("ledger: stored hash %d is %d bytes", idx, len(b))
		}
		got[idx] = tlog.Hash(b)
	}
	if err := rows.Err(); err != nil {
		return nil, s.errf("ledger: read hashes: %w", err)
	}
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		h, ok := got[idx]
		if !ok {
			return nil, fmt.Errorf("%w: stored hash %d is missing", ledger.ErrTampered, idx)
		}
		out[i] = h
	}
	return out, nil
}

// readHashRuns is ReadHashes from runs (Names.HashRun).
func (s *Store) readHashRuns(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	rows, err := s.db.QueryContext(ctx, s.q.ReadHashRuns, indexes)
	if err != nil {
		return nil, s.errf("ledger: read hashes: %w", err)
	}
	defer rows.Close()
	type run struct {
		first  int64
		hashes []byte
	}
	var runs []run
	for rows.Next() {
		var r run
		if err := rows.Scan(&r.first, &r.hashes); err != nil {
			return nil, s.errf("ledger: read hashes: %w", err)
		}
		if len(r.hashes) == 0 || len(r.hashes)%tlog.HashSize != 0 {
			return nil, s.errf("ledger: the run of stored hashes from %d is %d bytes", r.first, len(r.hashes))
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.errf("ledger: read hashes: %w", err)
	}
	slices.SortFunc(runs, func(a, b run) int { return cmp.Compare(a.first, b.first) })
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		// The run with the greatest first index at or below idx.
		j, found := slices.BinarySearchFunc(runs, idx, func(r run, x int64) int { return cmp.Compare(r.first, x) })
		if !found {
			j--
		}
		if j < 0 || idx-runs[j].first >= int64(len(runs[j].hashes)/tlog.HashSize) {
			return nil, fmt.Errorf("%w: stored hash %d is missing", ledger.ErrTampered, idx)
		}
		off := (idx - runs[j].first) * tlog.HashSize
		out[i] = tlog.Hash(runs[j].hashes[off : off+tlog.HashSize])
	}
	return out, nil
}

// hashRun is how many stored hashes a run row holds at most (1,920
// bytes: below PostgreSQL's TOAST threshold).
const hashRun = 60

// insertHashes inserts the stored hashes of an append, from index first
// on: in runs (Queries.InsertHashRuns) or a row each (rows: see
// readHashes).
func (s *Store) insertHashes(ctx context.Context, tx *sql.Tx, first int64, hashes []tlog.Hash, rows bool) error {
	if s.q.InsertHashRuns != "" && !rows {
		n := (len(hashes) + hashRun - 1) / hashRun
		firsts, runs := make([]int64, 0, n), make([][]byte, 0, n)
		buf := make([]byte, 0, len(hashes)*tlog.HashSize)
		for start := 0; start < len(hashes); start += hashRun {
			from := len(buf)
			for _, h := range hashes[start:min(start+hashRun, len(hashes))] {
				buf = append(buf, h[:]...)
			}
			firsts, runs = append(firsts, first+int64(start)), append(runs, buf[from:len(buf):len(buf)])
		}
		_, err := tx.ExecContext(ctx, s.q.InsertHashRuns, firsts, runs)
		return err
	}
	idx := make([]int64, len(hashes))
	raw := make([][]byte, len(hashes))
	for i := range hashes {
		idx[i] = first + int64(i)
		raw[i] = hashes[i][:]
	}
	for start := 0; start < len(idx); start += 1000 {
		end := min(start+1000, len(idx))
		q, args := s.d.HashInsert(s.names.Hash, idx[start:end], raw[start:end])
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// SetStoredHash replaces the stored hash at idx with h, wherever the
// dialect keeps it: for tests that tamper with the log as an attacker
// with write access to the database would.
func (s *Store) SetStoredHash(ctx context.Context, idx int64, h []byte) error {
	q := s.q.SetStoredHash
	if q == "" {
		q = "UPDATE " + s.names.Hash + " SET hash = ?0 WHERE idx = ?1"
	}
	_, err := s.bun.ExecContext(ctx, q, h, idx)
	return err
}

// DeleteStoredHashes deletes the stored hashes from index idx on, as
// SetStoredHash for tests.
func (s *Store) DeleteStoredHashes(ctx context.Context, idx int64) error {
	q := s.q.DeleteStoredHashes
	if q == "" {
		q = "DELETE FROM " + s.names.Hash + " WHERE idx >= ?0"
	}
	_, err := s.bun.ExecContext(ctx, q, idx)
	return err
}

// Append implements core.Store. With a notifying dialect
// (Queries.AppendNotify) the transaction also wakes the relays of every
// process, whose publishers read the positions it gave.
func (s *Store) Append(ctx context.Context, oldSize int64, seqs []int64, hashes []tlog.Hash) error {
	return s.appendAfter(ctx, oldSize, seqs, nil, hashes, nil, false)
}

// AppendAfter implements core.OverlappingAppender. Without
// Dialect.OverlapAppends it waits for prev, then appends.
func (s *Store) AppendAfter(ctx context.Context, oldSize int64, seqs []int64, parts []int, hashes []tlog.Hash, prev func(context.Context) error) error {
	return s.appendAfterRows(ctx, oldSize, seqs, parts, hashes, prev, false)
}

// appendAfterRows is AppendAfter; rows is readHashes' oneEach.
func (s *Store) appendAfterRows(ctx context.Context, oldSize int64, seqs []int64, parts []int, hashes []tlog.Hash, prev func(context.Context) error, rows bool) error {
	if len(parts) != len(seqs) {
		return fmt.Errorf("trustlog: append: %d partitions for %d operations", len(parts), len(seqs))
	}
	if !s.d.OverlapAppends {
		if err := prev(ctx); err != nil {
			return fmt.Errorf("%w: the previous append failed: %w", core.ErrConflict, err)
		}
		return s.appendAfter(ctx, oldSize, seqs, parts, hashes, nil, rows)
	}
	return s.appendAfter(ctx, oldSize, seqs, parts, hashes, prev, rows)
}

// appendAfter is Append. With prev nil it locks the tree's row first, so a
// concurrent Append waits for it before writing anything. With prev set
// it writes the positions and hashes first, then waits for prev (the
// previous batch's append), then locks the row and checks the size: two
// transactions' writes overlap, their commits stay in order. The rows two
// consecutive batches write are disjoint (other seqs, other leaf and hash
// indexes), so neither waits for the other's locks. The sequencer gives
// every batch a prev (the first one's returns nil at once), so all its
// appends take the locks in one order, rows then tree, and racing
// sequencers do not deadlock on them; should a foreign Append wait for
// this one's rows while prev's waits for it, prev's bounded wait (see
// core.OverlappingAppender) ends the cycle.
//
// With parts (one per seq) and a dialect that can use them
// (Queries.SetLeavesParts) the positions take their partitions from parts
// rather than from the operations' rows: on PostgreSQL that lookup was a
// ninth of the database's work per position (BENCHMARKS.md).
func (s *Store) appendAfter(ctx context.Context, oldSize int64, seqs []int64, parts []int, hashes []tlog.Hash, prev func(context.Context) error, rows bool) error {
	if len(seqs) == 0 {
		return nil
	}
	leaves := make([]int64, len(seqs))
	for i := range seqs {
		leaves[i] = oldSize + int64(i)
	}
	first := tlog.StoredHashIndex(0, oldSize)
	defer s.writing()()
	return s.retrying(ctx, func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return s.errf("ledger: append: %w", err)
		}
		defer tx.Rollback()
		checkSize := func() error {
			var size int64
			if err := tx.QueryRowContext(ctx, s.q.TreeSizeLocked).Scan(&size); err != nil {
				return s.errf("ledger: append: %w", err)
			}
			if size != oldSize {
				return fmt.Errorf("%w: tree size is %d, not %d", core.ErrConflict, size, oldSize)
			}
			return nil
		}
		if prev == nil {
			if err := checkSize(); err != nil {
				return err
			}
		}
		// Written before the size check (prev set), a stale append's
		// positions and hashes are the committed leaves'.
		stale := func(err error) error {
			if prev != nil && s.d.UniqueViolation != nil && s.d.UniqueViolation(err) {
				return fmt.Errorf("%w: the positions or hashes from tree size %d are taken: %w", core.ErrConflict, oldSize, err)
			}
			return err
		}
		setLeaves := s.q.SetLeaves
		table, args := "", []any(nil)
		if parts != nil && s.q.SetLeavesParts != "" && s.d.LeafPartTable != nil {
			setLeaves = s.q.SetLeavesParts
			table, args = s.d.LeafPartTable(seqs, leaves, parts)
		} else {
			table, args = s.d.LeafTable(seqs, leaves)
		}
		n, err := execCount(ctx, tx, strings.Replace(setLeaves, "{leaves}", table, 1), args...)
		if err != nil {
			return s.errf("ledger: append: leaves: %w", stale(err))
		}
		if n != len(seqs) {
			return fmt.Errorf("%w: %d of %d operations were still unsequenced", core.ErrConflict, n, len(seqs))
		}
		if err := s.insertHashes(ctx, tx, first, hashes, rows); err != nil {
			return s.errf("ledger: append: hashes: %w", stale(err))
		}
		if prev != nil {
			if err := prev(ctx); err != nil {
				return fmt.Errorf("%w: the previous append failed: %w", core.ErrConflict, err)
			}
			if err := checkSize(); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, s.q.SetTreeSize, oldSize+int64(len(seqs)), oldSize); err != nil {
			return s.errf("ledger: append: tree size: %w", err)
		}
		if s.q.AppendNotify != "" {
			if _, err := tx.ExecContext(ctx, s.q.AppendNotify); err != nil {
				return s.errf("ledger: append: notify: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return s.errf("ledger: append: commit: %w", err)
		}
		return nil
	})
}

// SaveCheckpoint implements ledger.Storage.
func (s *Store) SaveCheckpoint(ctx context.Context, c ledger.StoredCheckpoint) error {
	defer s.writing()()
	_, err := s.db.ExecContext(ctx, s.q.InsertCheckpoint, c.Size, hex.EncodeToString(c.Root[:]), string(c.Note))
	if err != nil {
		return s.errf("ledger: save checkpoint %d: %w", c.Size, err)
	}
	return nil
}

// Checkpoints implements ledger.Storage.
func (s *Store) Checkpoints(ctx context.Context, p ledger.CheckpointQuery) ([]ledger.StoredCheckpoint, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	var rows *sql.Rows
	var err error
	switch {
	case p.Latest:
		rows, err = s.db.QueryContext(ctx, s.q.LatestCheckpoint)
	case p.Unpublished:
		rows, err = s.db.QueryContext(ctx, s.q.UnpublishedCheckpoints, p.AfterSize, limit)
	default:
		rows, err = s.db.QueryContext(ctx, s.q.Checkpoints, p.AfterSize, limit)
	}
	if err != nil {
		return nil, s.errf("ledger: checkpoints: %w", err)
	}
	defer rows.Close()
	var out []ledger.StoredCheckpoint
	for rows.Next() {
		var c ledger.StoredCheckpoint
		var root, note string
		var created, published flexTime
		if err := rows.Scan(&c.Size, &root, &note, &created, &published); err != nil {
			return nil, s.errf("ledger: checkpoints: %w", err)
		}
		b, err := hex.DecodeString(root)
		if err != nil || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("%w: checkpoint %d: root hash %q is not 32 hex bytes", ledger.ErrTampered, c.Size, root)
		}
		c.Root, c.Note, c.CreatedAt, c.PublishedAt = tlog.Hash(b), []byte(note), created.t, published.t
		out = append(out, c)
	}
	return out, rows.Err()
}

// MarkCheckpointPublished implements ledger.Storage.
func (s *Store) MarkCheckpointPublished(ctx context.Context, size int64) error {
	defer s.writing()()
	if _, err := s.db.ExecContext(ctx, s.q.MarkCheckpointPublished, size); err != nil {
		return s.errf("ledger: mark checkpoint %d published: %w", size, err)
	}
	return nil
}
