package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-trustlog/trustlog/ledger"
)

var _ ledger.Pruner = (*Store)(nil)

// PruneHorizon implements ledger.Pruner: an operation is prunable once it
// is published (at or below its partition's cursor and not in the retry
// table) and was recorded (created_at) at least age ago by the database's
// clock. Every operation has a position, so retention always goes through
// the log.
func (s *Store) PruneHorizon(ctx context.Context, from, upTo int64, age time.Duration) (int64, error) {
	var h sql.NullInt64
	if err := s.db.QueryRowContext(ctx, s.q.PruneHorizon, from, upTo, age.Microseconds()).Scan(&h); err != nil {
		return 0, s.errf("ledger: prune horizon: %w", err)
	}
	if !h.Valid {
		return upTo, nil
	}
	return h.Int64, nil
}

// PruneLeaves implements ledger.Pruner.
func (s *Store) PruneLeaves(ctx context.Context, from, below int64, age time.Duration) (int64, error) {
	if below <= from {
		return 0, nil
	}
	defer s.writing()()
	var deleted int64
	err := s.retrying(ctx, func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return s.errf("ledger: prune: %w", err)
		}
		defer tx.Rollback()
		// The tree row serialises prunes with each other and with the
		// sequencer.
		var size int64
		if err := tx.QueryRowContext(ctx, s.q.TreeSizeLocked).Scan(&size); err != nil {
			return s.errf("ledger: prune: %w", err)
		}
		if below > size {
			return fmt.Errorf("%w: prune below %d beyond the tree size %d", ledger.ErrConflict, below, size)
		}
		var cur string
		switch err := tx.QueryRowContext(ctx, s.q.GetCursor, ledger.PrunedCursor).Scan(&cur, new(flexTime)); {
		case errors.Is(err, sql.ErrNoRows):
			cur = "0"
		case err != nil:
			return s.errf("ledger: prune: %w", err)
		}
		if cur != strconv.FormatInt(from, 10) {
			return fmt.Errorf("%w: pruned below %s, not %d", ledger.ErrConflict, cur, from)
		}
		var h sql.NullInt64
		if err := tx.QueryRowContext(ctx, s.q.PruneHorizon, from, below, age.Microseconds()).Scan(&h); err != nil {
			return s.errf("ledger: prune: %w", err)
		}
		if h.Valid {
			return fmt.Errorf("%w: leaf %d is not prunable", ledger.ErrConflict, h.Int64)
		}
		r, err := tx.ExecContext(ctx, s.q.PruneLeaves, from, below)
		if err != nil {
			return s.errf("ledger: prune: delete: %w", err)
		}
		if deleted, err = r.RowsAffected(); err != nil {
			return s.errf("ledger: prune: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q.SetCursor, ledger.PrunedCursor, strconv.FormatInt(below, 10)); err != nil {
			return s.errf("ledger: prune: horizon: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return s.errf("ledger: prune: commit: %w", err)
		}
		return nil
	})
	return deleted, err
}
