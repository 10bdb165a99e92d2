package memstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// Partitions implements core.Store.
func (s *Store) Partitions(ctx context.Context) ([]core.Partition, error) {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	return d.partitions(), nil
}

func (d *data) partitions() []core.Partition {
	out := make([]core.Partition, len(d.parts))
	for i, p := range d.parts {
		out[i] = p.Partition
	}
	return out
}

// part returns partition i or an error. d.mu is held.
func (d *data) part(i int) (*partition, error) {
	if i < 0 || i >= len(d.parts) {
		return nil, fmt.Errorf("memstore: no partition %d (the store has %d)", i, len(d.parts))
	}
	return d.parts[i], nil
}

// TakePartition implements core.Store: the lease is free if it has no
// owner or its expiry is not after now.
func (s *Store) TakePartition(ctx context.Context, part int, member string, ttl time.Duration) (core.Partition, error) {
	d, now, err := s.lock(ctx, true)
	if err != nil {
		return core.Partition{}, err
	}
	defer d.mu.Unlock()
	if member == "" {
		return core.Partition{}, fmt.Errorf("memstore: TakePartition needs a member name")
	}
	p, err := d.part(part)
	if err != nil {
		return core.Partition{}, err
	}
	if p.Owner != "" && p.Owner != member && p.Expires.After(now) {
		return core.Partition{}, fmt.Errorf("%w: partition %d is held by %s", core.ErrLeaseHeld, part, p.Owner)
	}
	p.Owner, p.Expires = member, now.Add(dur(ttl))
	p.Generation++
	return p.Partition, nil
}

// RenewPartitions implements core.Store. A partition still owned by member
// is renewed even if its lease ran out: nobody took it, so its generation
// (what fences writes) has not moved.
func (s *Store) RenewPartitions(ctx context.Context, member string, ttl time.Duration) ([]core.Partition, error) {
	d, now, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	var out []core.Partition
	for _, p := range d.parts {
		if p.Owner == member && member != "" {
			p.Expires = now.Add(dur(ttl))
			out = append(out, p.Partition)
		}
	}
	return out, nil
}

// ReleasePartition implements core.Store. At another generation it does
// nothing and returns nil: the partition is no longer the caller's to
// give.
func (s *Store) ReleasePartition(ctx context.Context, part int, gen int64) error {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	p, err := d.part(part)
	if err != nil {
		return err
	}
	if p.Generation == gen {
		p.Owner, p.Expires = "", time.Time{}
	}
	return nil
}

// Heartbeat implements core.Store.
func (s *Store) Heartbeat(ctx context.Context, member string, ttl time.Duration) ([]string, error) {
	d, now, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	if member == "" {
		return nil, fmt.Errorf("memstore: Heartbeat needs a member name")
	}
	d.members[member] = now.Add(dur(ttl))
	out := make([]string, 0, len(d.members))
	for m, until := range d.members {
		if !until.After(now) {
			delete(d.members, m)
			continue
		}
		out = append(out, m)
	}
	sort.Strings(out)
	return out, nil
}

// Leave implements core.Store.
func (s *Store) Leave(ctx context.Context, member string) error {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	delete(d.members, member)
	return nil
}

// ReadPartition implements core.Store: a binary search in the partition's
// rows (kept in position order) and a copy of at most p.Limit of them.
func (s *Store) ReadPartition(ctx context.Context, p core.ReadParams) ([]core.Record, error) {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	pt, err := d.part(p.Part)
	if err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, fmt.Errorf("memstore: ReadPartition limit must be positive, got %d", p.Limit)
	}
	rows := pt.rows[sort.Search(len(pt.rows), func(i int) bool { return pt.rows[i].pos > p.After }):]
	rows = rows[:min(len(rows), p.Limit)]
	var held map[string]int64
	if p.Strict {
		held = d.heldDOIDs(p.Part)
	}
	out := make([]core.Record, len(rows))
	for i, r := range rows {
		out[i] = d.record(r, held)
	}
	return out, nil
}

// heldDOIDs maps each DOID of partition part that has an operation in the
// retry table, not dead, to the lowest such position. d.mu is held.
func (d *data) heldDOIDs(part int) map[string]int64 {
	held := map[string]int64{}
	for _, rr := range d.retry {
		if rr.r.part != part || rr.dead {
			continue
		}
		if pos, ok := held[rr.r.op.DOID]; !ok || rr.r.pos < pos {
			held[rr.r.op.DOID] = rr.r.pos
		}
	}
	return held
}

// Advance implements core.Store. The compare-and-set on generation and
// cursor, and the checks of p.Failed, all come before the first write.
func (s *Store) Advance(ctx context.Context, p core.AdvanceParams) error {
	d, now, err := s.lock(ctx, true)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	pt, err := d.part(p.Part)
	if err != nil {
		return err
	}
	if pt.Generation != p.Generation || pt.Cursor != p.From {
		return fmt.Errorf("%w: partition %d is at generation %d, cursor %d (the caller had %d, %d)",
			core.ErrFenced, p.Part, pt.Generation, pt.Cursor, p.Generation, p.From)
	}
	if p.To <= p.From {
		return fmt.Errorf("memstore: Advance of partition %d from %d to %d does not move forward", p.Part, p.From, p.To)
	}
	rows, err := d.failedRows(p.Part, p.Failed, func(r *row) bool { return r.pos > p.From && r.pos <= p.To })
	if err != nil {
		return err
	}
	pt.Cursor = p.To
	for i, f := range p.Failed {
		rr := &retryRow{r: rows[i], held: f.Held}
		if !f.Held {
			rr.attempts = 1
		}
		rr.fail(f, now)
		d.retry[f.Seq] = rr
	}
	return nil
}

// failedRows finds the rows of fs, which must be operations of partition
// part that satisfy ok. d.mu is held.
func (d *data) failedRows(part int, fs []core.Failure, ok func(*row) bool) ([]*row, error) {
	rows := make([]*row, len(fs))
	for i, f := range fs {
		j := firstAfter(d.rows, f.Seq-1)
		if j == len(d.rows) || d.rows[j].seq != f.Seq {
			return nil, fmt.Errorf("memstore: no operation with seq %d", f.Seq)
		}
		r := d.rows[j]
		if r.part != part || r.pos < 0 || !ok(r) {
			return nil, fmt.Errorf("memstore: seq %d (partition %d, position %d) is not a failure this call may record in partition %d", f.Seq, r.part, r.pos, part)
		}
		rows[i] = r
	}
	return rows, nil
}

// fail records a failure's outcome on a retry row.
func (rr *retryRow) fail(f core.Failure, now time.Time) {
	rr.lastError = f.Err
	rr.dead = f.Dead
	rr.held = f.Held
	rr.dueAt = now.Add(dur(f.Delay))
	rr.updatedAt = now
}

// DueRetries implements core.Store. Rows are ordered by position; in
// strict mode a row is returned only if no earlier row of its DOID in the
// table is alive (due or not).
func (s *Store) DueRetries(ctx context.Context, p core.DueParams) ([]core.Record, error) {
	d, now, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	if _, err := d.part(p.Part); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, fmt.Errorf("memstore: DueRetries limit must be positive, got %d", p.Limit)
	}
	var rows []*retryRow
	for _, rr := range d.retry {
		if rr.r.part == p.Part && !rr.dead {
			rows = append(rows, rr)
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].r.pos < rows[j].r.pos })
	blocked := map[string]bool{}
	var out []core.Record
	for _, rr := range rows {
		if len(out) == p.Limit {
			break
		}
		doid := rr.r.op.DOID
		first := !blocked[doid]
		blocked[doid] = true
		if p.Strict && !first {
			continue
		}
		if rr.dueAt.After(now) {
			continue
		}
		out = append(out, d.record(rr.r, nil))
	}
	return out, nil
}

// SettleRetries implements core.Store. A published seq that is no longer
// in the retry table is ignored (settling twice changes nothing); a failed
// one must still be there.
func (s *Store) SettleRetries(ctx context.Context, p core.SettleParams) error {
	d, now, err := s.lock(ctx, true)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	pt, err := d.part(p.Part)
	if err != nil {
		return err
	}
	if pt.Generation != p.Generation {
		return fmt.Errorf("%w: partition %d is at generation %d (the caller had %d)", core.ErrFenced, p.Part, pt.Generation, p.Generation)
	}
	for _, seq := range p.Published {
		if rr := d.retry[seq]; rr != nil && rr.r.part != p.Part {
			return fmt.Errorf("memstore: seq %d is in partition %d, not %d", seq, rr.r.part, p.Part)
		}
	}
	for _, f := range p.Failed {
		rr := d.retry[f.Seq]
		if rr == nil || rr.r.part != p.Part {
			return fmt.Errorf("memstore: seq %d is not in partition %d's retry table", f.Seq, p.Part)
		}
	}
	for _, seq := range p.Published {
		delete(d.retry, seq)
	}
	for _, f := range p.Failed {
		rr := d.retry[f.Seq]
		if rr == nil { // also listed as published
			continue
		}
		if !f.Held {
			rr.attempts++
		}
		rr.fail(f, now)
	}
	return nil
}
