package memstore

import (
	"context"
	"fmt"
	"sort"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
)

// Leaves implements ledger.Storage: the rows at positions from,
// from+1, …, at most limit of them (limit <= 0: ledger.BatchSizeDefault).
func (s *Store) Leaves(ctx context.Context, from int64, limit int) ([]core.Record, error) {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	if limit <= 0 {
		limit = ledger.BatchSizeDefault
	}
	from = max(from, 0)
	if from >= int64(len(d.byPos)) {
		return nil, nil
	}
	rows := d.byPos[from:]
	rows = rows[:min(len(rows), limit)]
	out := make([]core.Record, len(rows))
	for i, r := range rows {
		out[i] = d.record(r, nil)
	}
	return out, nil
}

// SaveCheckpoint implements ledger.Storage. A second checkpoint of the
// same size is refused with ledger.ErrConflict. A zero CreatedAt is set to
// the store's clock.
func (s *Store) SaveCheckpoint(ctx context.Context, c ledger.StoredCheckpoint) error {
	d, now, err := s.lock(ctx, true)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	if _, ok := d.ckpts[c.Size]; ok {
		return fmt.Errorf("%w: a checkpoint of size %d is already stored", ledger.ErrConflict, c.Size)
	}
	c.Note = append([]byte(nil), c.Note...)
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	d.ckpts[c.Size] = &c
	i := sort.Search(len(d.ckptList), func(i int) bool { return d.ckptList[i] > c.Size })
	d.ckptList = append(d.ckptList, 0)
	copy(d.ckptList[i+1:], d.ckptList[i:])
	d.ckptList[i] = c.Size
	return nil
}

// Checkpoints implements ledger.Storage: with Latest, the largest
// checkpoint (none if there is none); otherwise those of a size above
// AfterSize (unpublished ones only with Unpublished), in size order, at
// most Limit (0: all).
func (s *Store) Checkpoints(ctx context.Context, q ledger.CheckpointQuery) ([]ledger.StoredCheckpoint, error) {
	d, _, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	cp := func(c *ledger.StoredCheckpoint) ledger.StoredCheckpoint {
		out := *c
		out.Note = append([]byte(nil), c.Note...)
		return out
	}
	if q.Latest {
		if len(d.ckptList) == 0 {
			return nil, nil
		}
		return []ledger.StoredCheckpoint{cp(d.ckpts[d.ckptList[len(d.ckptList)-1]])}, nil
	}
	var out []ledger.StoredCheckpoint
	for _, size := range d.ckptList[sort.Search(len(d.ckptList), func(i int) bool { return d.ckptList[i] > q.AfterSize }):] {
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
		c := d.ckpts[size]
		if q.Unpublished && !c.PublishedAt.IsZero() {
			continue
		}
		out = append(out, cp(c))
	}
	return out, nil
}

// MarkCheckpointPublished implements ledger.Storage; an unknown size is
// core.ErrNotFound.
func (s *Store) MarkCheckpointPublished(ctx context.Context, size int64) error {
	d, now, err := s.lock(ctx, true)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	c := d.ckpts[size]
	if c == nil {
		return fmt.Errorf("%w: checkpoint of size %d", core.ErrNotFound, size)
	}
	if c.PublishedAt.IsZero() {
		c.PublishedAt = now
	}
	return nil
}
