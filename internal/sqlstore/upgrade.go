package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/backoff"
)

// positionsComment names the positions migration ("00003_positions").
const positionsComment = "positions"

// The positions migration is a Go migration that sqlstore registers with
// bun/migrate between two SQL migrations of each driver (see
// Dialect.PositionsMigration): the one before adds the partition column
// and the partition, retry and relay tables; the one after drops the
// operation table's publishing columns (state, attempts, due_at, claim
// tokens, last_error, published_at). In between the store has both, and
// this step carries each operation's publishing state from the old
// columns to the new tables. As a migration it runs once per store, in
// order, under the migration lease, and is recorded as applied only when
// it succeeded, so an interrupted upgrade resumes here; a new store runs
// it too, on an empty table, which costs a few statements. A step in
// MigrateWithProgress keyed on a marker would have needed the marker's
// own bookkeeping and could not have run between two SQL migrations.
//
// Its steps, each idempotent:
//
//  0. Where positions have a table of their own (Queries.AdoptPositions),
//     the positions the operation rows hold move there.
//  1. The op_hash of rows adopted from the original SDK (backfillHashes),
//     since a position is a leaf over the sealed operation, op_hash
//     included.
//  2. The partitions (ensurePartitions), then each row's partition.
//  3. A position for every operation without one, in seq order
//     (core.SequenceAll): the tree grows from the positions and hashes
//     it has, so existing leaves and checkpoints stay valid.
//  4. One transaction that sets each partition's cursor and fills the
//     retry table (moveToRetry).
//
// Relays of the previous version must be stopped first: one still
// claiming and settling during the upgrade could publish an operation
// after its state was carried over, and it would be sent again.

// upgradePositions is the positions migration.
func (s *Store) upgradePositions(ctx context.Context, progress func(string, int64)) error {
	if s.q.AdoptPositions != "" {
		if _, err := s.db.ExecContext(ctx, s.q.AdoptPositions); err != nil {
			return fmt.Errorf("positions the operation rows hold: %w", err)
		}
	}
	if err := s.backfillHashes(ctx, progress); err != nil {
		return fmt.Errorf("op_hash of adopted rows: %w", err)
	}
	parts, err := s.ensurePartitions(ctx)
	if err != nil {
		return err
	}
	if err := s.fillParts(ctx, parts, progress); err != nil {
		return fmt.Errorf("partitions of the operations: %w", err)
	}
	if err := s.sequenceAll(ctx, progress); err != nil {
		return fmt.Errorf("positions of the operations: %w", err)
	}
	if err := s.moveToRetry(ctx, progress); err != nil {
		return fmt.Errorf("retry table: %w", err)
	}
	return nil
}

// fillParts writes every operation's partition, a thousand rows per
// statement, in seq order. The column's default is partition 0, so a
// store of one partition has nothing to write.
func (s *Store) fillParts(ctx context.Context, parts int, progress func(string, int64)) error {
	if parts == 1 {
		return nil
	}
	return s.rewriteParts(ctx, parts, func(done int64) { progress(StepPartition, done) })
}

func (s *Store) seqDOIDs(ctx context.Context, after int64) ([]int64, []string, error) {
	rows, err := s.db.QueryContext(ctx, s.q.Parts, after, 1000)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var seqs []int64
	var doids []string
	for rows.Next() {
		var seq int64
		var doid string
		if err := rows.Scan(&seq, &doid); err != nil {
			return nil, nil, err
		}
		seqs, doids = append(seqs, seq), append(doids, doid)
	}
	return seqs, doids, rows.Err()
}

// progressStore reports every Append that succeeded. It reads and writes
// the stored hashes a row each (Names.Hash): the upgrade runs at
// migration 00003, before PostgreSQL's 00008 moves them to runs.
type progressStore struct {
	*Store
	mu       sync.Mutex // two appends may run (AppendAfter)
	done     int64
	progress func(string, int64)
}

// Append implements core.Store.
func (p *progressStore) Append(ctx context.Context, oldSize int64, seqs []int64, hashes []tlog.Hash) error {
	if err := p.appendAfter(ctx, oldSize, seqs, nil, hashes, nil, true); err != nil {
		return err
	}
	p.report(len(seqs))
	return nil
}

// AppendAfter implements core.OverlappingAppender.
func (p *progressStore) AppendAfter(ctx context.Context, oldSize int64, seqs []int64, parts []int, hashes []tlog.Hash, prev func(context.Context) error) error {
	if err := p.appendAfterRows(ctx, oldSize, seqs, parts, hashes, prev, true); err != nil {
		return err
	}
	p.report(len(seqs))
	return nil
}

// ReadHashes implements core.Store.
func (p *progressStore) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	return p.readHashes(ctx, indexes, true)
}

func (p *progressStore) report(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	p.progress(StepSequence, p.done)
}

// sequenceRetry spaces the upgrade's sequencing attempts while another
// sequencer moves the tree: 50ms, doubling, at most 1s.
var sequenceRetry = backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second}

// sequenceAll gives every operation without a position one. A relay of
// this version sequencing at the same time makes an Append fail with
// core.ErrConflict: it goes on from the tree the other left.
func (s *Store) sequenceAll(ctx context.Context, progress func(string, int64)) error {
	ps := &progressStore{Store: s, progress: progress}
	return backoff.Retry(ctx, sequenceRetry, 0, func(int) error {
		_, err := core.SequenceAll(ctx, ps, 0)
		if err != nil && !errors.Is(err, core.ErrConflict) {
			return backoff.Stop(err)
		}
		return err
	})
}

// moveToRetry, in one transaction, sets each partition's cursor to the
// largest position in it of an operation that is not pending and untried
// (Queries.UpgradeCursors), and moves every pending, in-flight, retrying
// or dead operation at or below its cursor to the retry table
// (Queries.UpgradeRetries). So a published operation stays published
// (at or below the cursor, not in the retry table), a retrying or dead one
// keeps its attempts, last error and due time, an in-flight one is due
// now, and the untried pending ones at the end of each partition stay
// pending, above the cursor, to go out in position order; one among
// earlier published operations is due now from the retry table.
//
// Done once: if a partition has a cursor or the retry table a row, the
// store was carried over before (and may have been published from since),
// and nothing is written.
func (s *Store) moveToRetry(ctx context.Context, progress func(string, int64)) error {
	defer s.writing()()
	var moved int64
	err := s.retrying(ctx, func() error {
		return s.inTx(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, s.q.LockPartitions)
			if err != nil {
				return err
			}
			advanced := 0
			for rows.Next() {
				var cursor int64
				if err := rows.Scan(&cursor); err != nil {
					rows.Close()
					return err
				}
				if cursor != -1 {
					advanced++
				}
			}
			if err := rows.Close(); err != nil {
				return err
			}
			var retries int64
			if err := tx.QueryRowContext(ctx, s.q.RetryRows).Scan(&retries); err != nil {
				return err
			}
			if advanced > 0 || retries > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, s.q.UpgradeCursors); err != nil {
				return err
			}
			r, err := tx.ExecContext(ctx, s.q.UpgradeRetries)
			if err != nil {
				return err
			}
			moved, err = r.RowsAffected()
			return err
		})
	})
	if err != nil {
		return err
	}
	progress(StepRetry, moved)
	return nil
}
