package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// Publishing by partition. Every operation has a partition (its "part"
// column) and, once the sequencer took it, a position (leaf_index). A
// partition row holds the position up to which its owner published (the
// cursor), the owner's lease and a generation that fences an earlier
// owner's writes. What the sink refused is in the retry table. Nothing
// per operation is written to publish it.

// maxMember is the longest relay member name the partition and relay
// tables hold.
const maxMember = 255

// ErrNoPartitions is wrapped by the errors of a store whose partition
// table is empty: Migrate has not run (to its end) on it.
var ErrNoPartitions = errors.New("the store has no partitions (run Migrate)")

// partitionCount returns the store's number of partitions, read once.
func (s *Store) partitionCount(ctx context.Context) (int, error) {
	if n := s.parts.Load(); n > 0 {
		return int(n), nil
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, s.q.CountPartitions).Scan(&n); err != nil {
		return 0, fmt.Errorf("partitions: %w", err)
	}
	if n == 0 {
		return 0, ErrNoPartitions
	}
	s.parts.Store(n)
	return int(n), nil
}

func scanPartitions(rows *sql.Rows) ([]core.Partition, error) {
	defer rows.Close()
	var out []core.Partition
	for rows.Next() {
		var p core.Partition
		var exp flexTime
		if err := rows.Scan(&p.Part, &p.Cursor, &p.Generation, &p.Owner, &exp); err != nil {
			return nil, err
		}
		p.Expires = exp.t
		out = append(out, p)
	}
	return out, rows.Err()
}

// Partitions implements core.Store.
func (s *Store) Partitions(ctx context.Context) ([]core.Partition, error) {
	rows, err := s.db.QueryContext(ctx, s.q.Partitions)
	if err != nil {
		return nil, s.errf("partitions: %w", err)
	}
	ps, err := scanPartitions(rows)
	if err != nil {
		return nil, s.errf("partitions: %w", err)
	}
	return ps, nil
}

func (s *Store) checkMember(op, member string, ttl time.Duration) error {
	if member == "" || len(member) > maxMember {
		return s.errf("%s: member name must have 1 to %d bytes", op, maxMember)
	}
	if ttl <= 0 {
		return s.errf("%s: ttl must be positive", op)
	}
	return nil
}

// TakePartition implements core.Store.
func (s *Store) TakePartition(ctx context.Context, part int, member string, ttl time.Duration) (core.Partition, error) {
	if err := s.checkMember("take partition", member, ttl); err != nil {
		return core.Partition{}, err
	}
	defer s.writing()()
	var p core.Partition
	err := s.retrying(ctx, func() error {
		return s.inTx(ctx, func(tx *sql.Tx) error {
			n, err := execCount(ctx, tx, s.q.TakePartition, member, ttl.Microseconds(), part, member)
			if err != nil {
				return err
			}
			rows, err := tx.QueryContext(ctx, s.q.GetPartition, part)
			if err != nil {
				return err
			}
			ps, err := scanPartitions(rows)
			switch {
			case err != nil:
				return err
			case len(ps) == 0:
				return fmt.Errorf("no partition %d", part)
			case n == 0:
				return fmt.Errorf("%w: partition %d is %s's until %s", core.ErrLeaseHeld, part, ps[0].Owner, ps[0].Expires.Format(time.RFC3339Nano))
			}
			p = ps[0]
			return nil
		})
	})
	if err != nil {
		if errors.Is(err, core.ErrLeaseHeld) {
			return core.Partition{}, err
		}
		return core.Partition{}, s.errf("take partition %d: %w", part, err)
	}
	return p, nil
}

// RenewPartitions implements core.Store. A lease that expired but that
// nobody took is renewed too: its generation did not move, so nothing
// its owner writes was fenced.
func (s *Store) RenewPartitions(ctx context.Context, member string, ttl time.Duration) ([]core.Partition, error) {
	if err := s.checkMember("renew partitions", member, ttl); err != nil {
		return nil, err
	}
	unlock := s.writing()
	err := s.retrying(ctx, func() error {
		_, err := s.db.ExecContext(ctx, s.q.RenewPartitions, ttl.Microseconds(), member)
		return err
	})
	unlock()
	if err != nil {
		return nil, s.errf("renew partitions: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.q.OwnedPartitions, member)
	if err != nil {
		return nil, s.errf("renew partitions: %w", err)
	}
	ps, err := scanPartitions(rows)
	if err != nil {
		return nil, s.errf("renew partitions: %w", err)
	}
	return ps, nil
}

// ReleasePartition implements core.Store.
func (s *Store) ReleasePartition(ctx context.Context, part int, gen int64) error {
	defer s.writing()()
	err := s.retrying(ctx, func() error {
		_, err := s.db.ExecContext(ctx, s.q.ReleasePartition, part, gen)
		return err
	})
	if err != nil {
		return s.errf("release partition %d: %w", part, err)
	}
	return nil
}

// Heartbeat implements core.Store. Members are sorted byte-wise, the
// same on every database.
func (s *Store) Heartbeat(ctx context.Context, member string, ttl time.Duration) ([]string, error) {
	if err := s.checkMember("heartbeat", member, ttl); err != nil {
		return nil, err
	}
	unlock := s.writing()
	err := s.retrying(ctx, func() error {
		if _, err := s.db.ExecContext(ctx, s.q.Heartbeat, member, ttl.Microseconds()); err != nil {
			return err
		}
		_, err := s.db.ExecContext(ctx, s.q.ForgetMembers)
		return err
	})
	unlock()
	if err != nil {
		return nil, s.errf("heartbeat: %w", err)
	}
	members, err := s.members(ctx)
	if err != nil {
		return nil, s.errf("heartbeat: %w", err)
	}
	return members, nil
}

// Leave implements core.Store.
func (s *Store) Leave(ctx context.Context, member string) error {
	defer s.writing()()
	if _, err := s.db.ExecContext(ctx, s.q.Leave, member); err != nil {
		return s.errf("leave: %w", err)
	}
	return nil
}

// ReadPartition implements core.Store.
func (s *Store) ReadPartition(ctx context.Context, p core.ReadParams) ([]core.Record, error) {
	if p.Limit <= 0 {
		return nil, s.errf("read partition: Limit must be positive")
	}
	q := s.q.ReadPartition
	if p.Strict {
		q = s.q.ReadPartitionStrict
	}
	recs, err := s.scanRecords(ctx, s.db, true, q, p.Part, p.After, p.Limit)
	if err != nil {
		return nil, s.errf("read partition %d: %w", p.Part, err)
	}
	return recs, nil
}

// failures renders q's failure table for f, followed by extra
// parameters named {arg1}, {arg2}, … in q.
func (s *Store) failures(q string, f []core.Failure, extra ...any) (string, []any) {
	table, args := s.d.FailureTable(1, f)
	q = strings.Replace(q, "{failures}", table, 1)
	for i, a := range extra {
		args = append(args, a)
		q = strings.ReplaceAll(q, "{arg"+strconv.Itoa(i+1)+"}", s.d.Placeholder(len(args)))
	}
	return q, args
}

// Advance implements core.Store.
func (s *Store) Advance(ctx context.Context, p core.AdvanceParams) error {
	if p.To <= p.From {
		return s.errf("advance partition %d: To (%d) must be above From (%d)", p.Part, p.To, p.From)
	}
	defer s.writing()()
	if len(p.Failed) == 0 {
		// The common case, one compare-and-set statement in its own
		// transaction: no BEGIN and COMMIT round trips.
		err := s.retrying(ctx, func() error {
			n, err := execCount(ctx, s.db, s.q.AdvanceCursor, p.To, p.Part, p.Generation, p.From)
			if err == nil && n != 1 {
				err = fmt.Errorf("%w: partition %d is no longer at generation %d and cursor %d", core.ErrFenced, p.Part, p.Generation, p.From)
			}
			return err
		})
		if err != nil && !errors.Is(err, core.ErrFenced) {
			err = s.errf("advance partition %d: %w", p.Part, err)
		}
		return err
	}
	err := s.retrying(ctx, func() error {
		return s.inTx(ctx, func(tx *sql.Tx) error {
			n, err := execCount(ctx, tx, s.q.AdvanceCursor, p.To, p.Part, p.Generation, p.From)
			if err != nil {
				return err
			}
			if n != 1 {
				return fmt.Errorf("%w: partition %d is no longer at generation %d and cursor %d", core.ErrFenced, p.Part, p.Generation, p.From)
			}
			if len(p.Failed) == 0 {
				return nil
			}
			q, args := s.failures(s.q.InsertFailures, p.Failed, p.Part, p.From, p.To)
			if n, err = execCount(ctx, tx, q, args...); err != nil {
				return err
			}
			if n != len(p.Failed) {
				return fmt.Errorf("%d of the %d failed operations have no position in (%d, %d] of partition %d", len(p.Failed)-n, len(p.Failed), p.From, p.To, p.Part)
			}
			return nil
		})
	})
	if err != nil {
		if errors.Is(err, core.ErrFenced) {
			return err
		}
		return s.errf("advance partition %d: %w", p.Part, err)
	}
	return nil
}

// DueRetries implements core.Store.
func (s *Store) DueRetries(ctx context.Context, p core.DueParams) ([]core.Record, error) {
	if p.Limit <= 0 {
		return nil, s.errf("due retries: Limit must be positive")
	}
	q := s.q.DueRetries
	if p.Strict {
		q = s.q.DueRetriesStrict
	}
	recs, err := s.queryRecords(ctx, s.db, q, p.Part, p.Limit)
	if err != nil {
		return nil, s.errf("due retries of partition %d: %w", p.Part, err)
	}
	return recs, nil
}

// SettleRetries implements core.Store. The partition's row is locked
// first, as Advance locks it, so a new owner's take waits for the settle
// and the settle sees the take.
func (s *Store) SettleRetries(ctx context.Context, p core.SettleParams) error {
	if len(p.Published) == 0 && len(p.Failed) == 0 {
		return nil
	}
	defer s.writing()()
	err := s.retrying(ctx, func() error {
		return s.inTx(ctx, func(tx *sql.Tx) error {
			var gen int64
			err := tx.QueryRowContext(ctx, s.q.PartitionGeneration, p.Part).Scan(&gen)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if err != nil || gen != p.Generation {
				return fmt.Errorf("%w: partition %d is no longer at generation %d", core.ErrFenced, p.Part, p.Generation)
			}
			if len(p.Published) > 0 {
				q, args := s.list(s.q.DeleteRetries, "{seqs}", 2, p.Published)
				if _, err := tx.ExecContext(ctx, q, append([]any{p.Part}, args...)...); err != nil {
					return err
				}
			}
			if len(p.Failed) > 0 {
				q, args := s.failures(s.q.SettleFailures, p.Failed, p.Part)
				if _, err := tx.ExecContext(ctx, q, args...); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		if errors.Is(err, core.ErrFenced) {
			return err
		}
		return s.errf("settle retries of partition %d: %w", p.Part, err)
	}
	return nil
}

// inTx runs fn in a write transaction (Dialect.WriteTx) and commits it
// if fn succeeds.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, s.d.WriteTx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
