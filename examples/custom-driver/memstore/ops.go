package memstore

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
)

// Insert implements core.Store. Each operation must be valid
// (Operation.Validate; the *core.ValidationError names its index in ops)
// and sealed (op_id, created_at and op_hash set). With ex nil the rows are
// committed at once; otherwise ex must be a transaction (or connection)
// of a memstore database (Store.DB) and the rows commit or roll back with
// it. All or nothing either way.
func (s *Store) Insert(ctx context.Context, ex core.Execer, ops []*core.Operation) error {
	if len(ops) == 0 {
		if s.closed.Load() {
			return core.ErrClosed
		}
		return nil
	}
	if len(ops) > core.MaxBatch {
		return fmt.Errorf("memstore: %d operations in one insert, at most %d", len(ops), core.MaxBatch)
	}
	for i, op := range ops {
		if err := checkSealed(op); err != nil {
			var ve *core.ValidationError
			if errors.As(err, &ve) {
				ve.Index, ve.OpID = i, op.OpID
			}
			return err
		}
	}
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return err
	}
	b := &batch{d: d, rows: make([]*row, len(ops))}
	for i, op := range ops {
		d.nextSeq++                                               // taken now, like an auto-increment column: a late commit keeps its early seq
		b.rows[i] = &row{seq: d.nextSeq, op: copyOp(op), pos: -1} // its partition at commit
	}
	err = d.checkDuplicates(b.rows)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if ex == nil {
		return applyBatches([]*batch{b})
	}
	return execBatch(ctx, ex, b)
}

// checkSealed is Validate plus what sealing fills in.
func checkSealed(op *core.Operation) error {
	if op == nil {
		return &core.ValidationError{Field: "op_id", Reason: "nil operation"}
	}
	if err := op.Validate(); err != nil {
		return err
	}
	switch {
	case op.OpID == "":
		return &core.ValidationError{Field: "op_id", Reason: "must be set (seal the operation first)"}
	case op.OpHash == "":
		return &core.ValidationError{Field: "op_hash", Reason: "must be set (seal the operation first)"}
	case op.CreatedAt.IsZero():
		return &core.ValidationError{Field: "created_at", Reason: "must be set (seal the operation first)"}
	}
	return nil
}

// checkDuplicates refuses op_ids already committed or repeated in rows.
// d.mu is held.
func (d *data) checkDuplicates(rows []*row) error {
	seen := make(map[string]bool, len(rows))
	for _, r := range rows {
		if d.byID[r.op.OpID] != nil || seen[r.op.OpID] {
			return fmt.Errorf("%w: %s", ErrDuplicateOpID, r.op.OpID)
		}
		seen[r.op.OpID] = true
	}
	return nil
}

// commit makes rows visible, each in its DOID's partition under the
// store's number of partitions now (a Repartition may have changed it
// since the insert). d.mu is held and checkDuplicates passed.
func (d *data) commit(rows []*row) {
	now := d.now()
	for _, r := range rows {
		r.recordedAt = now
		r.part = core.PartitionOf(r.op.DOID, len(d.parts))
		d.byID[r.op.OpID] = r
		d.rows = insertBySeq(d.rows, r)
		d.unseq = insertBySeq(d.unseq, r)
		d.maxSeq = max(d.maxSeq, r.seq)
	}
	d.notify()
}

// insertBySeq inserts r into rows (sorted by seq). Rows nearly always come
// last, so this is an append.
func insertBySeq(rows []*row, r *row) []*row {
	i := sort.Search(len(rows), func(i int) bool { return rows[i].seq > r.seq })
	if i == len(rows) {
		return append(rows, r)
	}
	rows = append(rows, nil)
	copy(rows[i+1:], rows[i:])
	rows[i] = r
	return rows
}

// firstAfter returns the index of the first row of rows (sorted by seq) with
// a seq above seq.
func firstAfter(rows []*row, seq int64) int {
	return sort.Search(len(rows), func(i int) bool { return rows[i].seq > seq })
}

// Unsequenced implements core.Store. limit <= 0 means
// core.SequenceBatchDefault.
func (s *Store) Unsequenced(ctx context.Context, afterSeq int64, limit int) ([]core.Record, error) {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	if limit <= 0 {
		limit = core.SequenceBatchDefault
	}
	var out []core.Record
	for _, r := range d.unseq[firstAfter(d.unseq, afterSeq):] {
		if len(out) == limit {
			break
		}
		out = append(out, d.record(r, nil))
	}
	return out, nil
}

// TreeSize implements core.Store.
func (s *Store) TreeSize(ctx context.Context) (int64, error) {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return 0, err
	}
	defer d.mu.Unlock()
	return int64(len(d.byPos)), nil
}

// ReadHashes implements core.Store. An index that is not stored is an
// error.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(d.hashes)) {
			return nil, fmt.Errorf("memstore: stored hash %d not found (the store holds %d)", x, len(d.hashes))
		}
		out[i] = d.hashes[x]
	}
	return out, nil
}

// Append implements core.Store. A stale oldSize, or a seq that is unknown,
// repeated or already sequenced, is core.ErrConflict (checked first: a
// conflict is what a losing sequencer must learn); then a hash count that
// does not fit the tree's growth is an error. Nothing is written then.
func (s *Store) Append(ctx context.Context, oldSize int64, seqs []int64, hashes []tlog.Hash) error {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	if size := int64(len(d.byPos)); size != oldSize {
		return fmt.Errorf("%w: tree size is %d, not %d", core.ErrConflict, size, oldSize)
	}
	rows := make([]*row, len(seqs))
	taken := make(map[int64]bool, len(seqs))
	for i, seq := range seqs {
		j := firstAfter(d.unseq, seq-1)
		if j == len(d.unseq) || d.unseq[j].seq != seq || taken[seq] {
			return fmt.Errorf("%w: seq %d is unknown or already has a position", core.ErrConflict, seq)
		}
		taken[seq] = true
		rows[i] = d.unseq[j]
	}
	newSize := oldSize + int64(len(seqs))
	if want := tlog.StoredHashCount(newSize) - tlog.StoredHashIndex(0, oldSize); int64(len(hashes)) != want {
		return fmt.Errorf("memstore: appending %d leaves to a tree of %d takes %d hashes, got %d", len(seqs), oldSize, want, len(hashes))
	}
	// Every check passed: write.
	for i, r := range rows {
		r.pos = oldSize + int64(i)
		d.byPos = append(d.byPos, r)
		p := d.parts[r.part]
		p.rows = append(p.rows, r) // positions only grow: still in position order
	}
	kept := d.unseq[:0]
	for _, r := range d.unseq {
		if r.pos < 0 {
			kept = append(kept, r)
		}
	}
	clear(d.unseq[len(kept):])
	d.unseq = kept
	d.hashes = append(d.hashes, hashes...)
	d.notify()
	return nil
}
