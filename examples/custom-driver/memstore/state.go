package memstore

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/go-trustlog/trustlog/core"
)

// state derives a row's state (core.State): its retry row if it has one,
// else published at or below its partition's cursor, else pending. d.mu
// is held.
func (d *data) state(r *row) (core.State, *retryRow) {
	if rr := d.retry[r.seq]; rr != nil {
		if rr.dead {
			return core.StateDead, rr
		}
		return core.StateRetrying, rr
	}
	if r.pos >= 0 && r.pos <= d.parts[r.part].Cursor {
		return core.StatePublished, nil
	}
	return core.StatePending, nil
}

// record builds the core.Record of r. With held (a strict read), Held is
// set when an earlier operation of r's DOID is alive in the retry table.
// d.mu is held.
func (d *data) record(r *row, held map[string]int64) core.Record {
	st, rr := d.state(r)
	rec := core.Record{
		Seq:       r.seq,
		Op:        copyOp(&r.op),
		Part:      r.part,
		State:     st,
		UpdatedAt: r.recordedAt,
		LeafIndex: r.pos,
	}
	if rr != nil {
		rec.Attempts = rr.attempts
		rec.LastError = rr.lastError
		rec.UpdatedAt = rr.updatedAt
		if !rr.dead {
			rec.DueAt = rr.dueAt
		}
	}
	if held != nil {
		if pos, ok := held[r.op.DOID]; ok && r.pos >= 0 && pos < r.pos {
			rec.Held = true
		}
	}
	return rec
}

// ListDead implements core.Store. Limit defaults to 100.
func (s *Store) ListDead(ctx context.Context, p core.ListParams) ([]core.Record, error) {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	if p.Limit <= 0 {
		p.Limit = 100
	}
	var out []core.Record
	for _, r := range d.rows[firstAfter(d.rows, p.AfterSeq):] {
		if len(out) == p.Limit {
			break
		}
		if rr := d.retry[r.seq]; rr != nil && rr.dead {
			out = append(out, d.record(r, nil))
		}
	}
	return out, nil
}

// Requeue implements core.Store: each dead operation named (or every one,
// with All) becomes due now with no attempts, keeping its last error.
// Op_ids that are unknown or not dead are skipped; the count is of those
// requeued.
func (s *Store) Requeue(ctx context.Context, p core.RequeueParams) (int, error) {
	d, now, err := s.lock(ctx, true)
	if err != nil {
		return 0, err
	}
	defer d.mu.Unlock()
	requeue := func(rr *retryRow) int {
		if rr == nil || !rr.dead {
			return 0
		}
		rr.dead, rr.held, rr.attempts = false, false, 0
		rr.dueAt, rr.updatedAt = now, now
		return 1
	}
	n := 0
	switch {
	case len(p.OpIDs) > 0:
		seen := map[string]bool{}
		for _, id := range p.OpIDs {
			if r := d.byID[id]; r != nil && !seen[id] {
				seen[id] = true
				n += requeue(d.retry[r.seq])
			}
		}
	case p.All:
		for _, rr := range d.retry {
			n += requeue(rr)
		}
	}
	return n, nil
}

// Scan implements core.Store. Limit defaults to 1000.
func (s *Store) Scan(ctx context.Context, p core.ScanParams) ([]core.Record, error) {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	if p.Limit <= 0 {
		p.Limit = 1000
	}
	rows := d.rows[firstAfter(d.rows, p.AfterSeq):]
	rows = rows[:min(len(rows), p.Limit)]
	out := make([]core.Record, len(rows))
	for i, r := range rows {
		out[i] = d.record(r, nil)
	}
	return out, nil
}

// Get implements core.Store. op_ids are compared byte for byte.
func (s *Store) Get(ctx context.Context, opID string) (core.Record, error) {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return core.Record{}, err
	}
	defer d.mu.Unlock()
	r := d.byID[opID]
	if r == nil {
		return core.Record{}, core.ErrNotFound
	}
	return d.record(r, nil), nil
}

// Stats implements core.Store: one pass over the rows, deriving each
// state. Counts has an entry for every state, zero included. Each
// partition's backlog is its sequenced rows above its cursor (a binary
// search in its rows, which are in position order).
func (s *Store) Stats(ctx context.Context) (core.Stats, error) {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return core.Stats{}, err
	}
	defer d.mu.Unlock()
	st := core.Stats{
		Counts:     make(map[core.State]int64, len(core.States)),
		MaxSeq:     d.maxSeq,
		TreeSize:   int64(len(d.byPos)),
		Partitions: d.partitions(),
	}
	for _, state := range core.States {
		st.Counts[state] = 0
	}
	for i, p := range d.parts {
		// The partition's rows above its cursor, in position order.
		n, _ := slices.BinarySearchFunc(p.rows, p.Cursor, func(r *row, c int64) int { return cmp.Compare(r.pos, c+1) })
		st.Partitions[i].Backlog = int64(len(p.rows) - n)
	}
	for _, r := range d.rows {
		state, _ := d.state(r)
		st.Counts[state]++
		if !state.Settled() && (st.OldestUnsettled.IsZero() || r.op.CreatedAt.Before(st.OldestUnsettled)) {
			st.OldestUnsettled = r.op.CreatedAt
		}
	}
	return st, nil
}

// Cursor implements core.Store.
func (s *Store) Cursor(ctx context.Context, name string) (core.Cursor, error) {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return core.Cursor{}, err
	}
	defer d.mu.Unlock()
	c, ok := d.cursors[name]
	if !ok {
		return core.Cursor{}, core.ErrNotFound
	}
	return c, nil
}

// SetCursor implements core.Store. A cursor needs a name.
func (s *Store) SetCursor(ctx context.Context, name, value string) error {
	if name == "" {
		return errors.New("memstore: a cursor needs a name")
	}
	d, now, err := s.lock(ctx, true)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	d.cursors[name] = core.Cursor{Name: name, Value: value, UpdatedAt: now}
	return nil
}
