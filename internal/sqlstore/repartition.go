package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

var (
	_ core.Repartitioner = (*Store)(nil)
	_ core.Placer        = (*Store)(nil)
)

// repartitionLease is how long the sequencer's lease Repartition holds
// lasts between renewals (the locker renews it while it is held).
const repartitionLease = time.Minute

// Repartition implements core.Repartitioner: refusals first, then the
// partition rows in one transaction (every cursor at the tree's last
// position, so that nothing with a position is published again whatever
// partition it ends up in), then every operation's partition in batches
// of a thousand (the upgrade's fillParts), then the retry table's.
func (s *Store) Repartition(ctx context.Context, n int, progress func(rewritten int64)) error {
	if n < 1 || n > core.MaxPartitions {
		return &core.ConfigError{Field: "partitions", Reason: fmt.Sprintf("must be 1 to %d, not %d", core.MaxPartitions, n)}
	}
	if progress == nil {
		progress = func(int64) {}
	}
	migrating, err := AcquireWait(ctx, s.locker, MigrateLease, 60*time.Second)
	if err != nil {
		return s.errf("repartition: %w", err)
	}
	defer migrating.Release(context.WithoutCancel(ctx))
	seqLease, err := s.locker.TryAcquire(ctx, core.SequencerLease, repartitionLease)
	if err != nil {
		if errors.Is(err, core.ErrLeaseHeld) {
			return &core.RepartitionError{Reason: "a relay's sequencer is running", Fix: "stop every relay first"}
		}
		return s.errf("repartition: %w", err)
	}
	defer seqLease.Release(context.WithoutCancel(ctx))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-seqLease.Lost():
			cancel()
		case <-ctx.Done():
		}
	}()

	st, err := s.refuseRepartition(ctx)
	if err != nil {
		return err
	}
	if len(st.Partitions) != n {
		if err := s.replacePartitions(ctx, n, st); err != nil {
			return s.errf("repartition: partition rows: %w", err)
		}
	}
	s.parts.Store(int64(n))
	if err := s.rewriteParts(ctx, n, progress); err != nil {
		return s.errf("repartition: partitions of the operations: %w", err)
	}
	unlock := s.writing()
	_, err = s.db.ExecContext(ctx, s.q.RetryParts)
	unlock()
	if err != nil {
		return s.errf("repartition: partitions of the retry table: %w", err)
	}
	return nil
}

// refuseRepartition returns a *core.RepartitionError while a relay is
// live or a partition has operations to publish, and the store's Stats
// otherwise.
func (s *Store) refuseRepartition(ctx context.Context) (core.Stats, error) {
	relays, err := s.Relays(ctx)
	if err != nil {
		return core.Stats{}, err
	}
	if len(relays) > 0 {
		return core.Stats{}, &core.RepartitionError{Reason: "relays are running (" + strings.Join(relays, ", ") + ")",
			Fix: "stop every relay first (a killed relay counts until its heartbeat runs out)"}
	}
	st, err := s.Stats(ctx)
	if err != nil {
		return st, err
	}
	now := time.Now()
	var held, behind []string
	var backlog int64
	for _, p := range st.Partitions {
		if p.Owner != "" && p.Expires.After(now) {
			held = append(held, fmt.Sprintf("%d (%s)", p.Part, p.Owner))
		}
		if p.Backlog > 0 {
			behind = append(behind, fmt.Sprint(p.Part))
			backlog += p.Backlog
		}
	}
	if len(held) > 0 {
		return st, &core.RepartitionError{Reason: "partitions are leased: " + strings.Join(held, ", "),
			Fix: "stop every relay first (a killed relay's leases run out after --lease)"}
	}
	if backlog > 0 {
		return st, &core.RepartitionError{
			Reason: fmt.Sprintf("%d operations with a position are not published yet (partitions %s)", backlog, strings.Join(behind, ", ")),
			Fix:    "run the relays until `trustlog cursor status` shows no backlog, stop them, then try again"}
	}
	return st, nil
}

// replacePartitions makes the partition rows 0..n-1, each with its
// cursor at the tree's last position, a generation above every earlier
// one (a relay that held a partition before cannot move its cursor) and
// no owner.
func (s *Store) replacePartitions(ctx context.Context, n int, st core.Stats) error {
	var gen int64
	for _, p := range st.Partitions {
		gen = max(gen, p.Generation)
	}
	defer s.writing()()
	return s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.q.LockPartitions)
		if err != nil {
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
		var size int64
		if err := tx.QueryRowContext(ctx, s.q.TreeSize).Scan(&size); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q.DropPartitions, n); err != nil {
			return err
		}
		for part := 0; part < n; part++ {
			if _, err := tx.ExecContext(ctx, s.q.CreatePartition, part); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, s.q.ResetPartitions, size-1, gen+1)
		return err
	})
}

// rewriteParts gives every operation its partition under n, a thousand
// per statement in seq order (only rows whose partition changes are
// written).
func (s *Store) rewriteParts(ctx context.Context, n int, progress func(int64)) error {
	var after, done int64
	for {
		seqs, doids, err := s.seqDOIDs(ctx, after)
		if err != nil || len(seqs) == 0 {
			return err
		}
		ps := make([]int64, len(seqs))
		for i, d := range doids {
			ps[i] = int64(core.PartitionOf(d, n))
		}
		if err := s.setParts(ctx, seqs, ps); err != nil {
			return err
		}
		after = seqs[len(seqs)-1]
		done += int64(len(seqs))
		progress(done)
	}
}

func (s *Store) setParts(ctx context.Context, seqs, parts []int64) error {
	table, args := s.d.LeafTable(seqs, parts)
	defer s.writing()()
	_, err := s.db.ExecContext(ctx, strings.Replace(s.q.SetParts, "{leaves}", table, 1), args...)
	return err
}

// Place implements core.Placer. The store's number of partitions is read
// once; a record that disagrees with it makes the store read it again
// (this process may be the one that missed a change), and only what
// still disagrees is rewritten.
func (s *Store) Place(ctx context.Context, recs []core.Record) error {
	if len(recs) == 0 {
		return nil
	}
	n, err := s.partitionCount(ctx)
	if err != nil {
		return s.errf("place: %w", err)
	}
	if misplaced(recs, n) == nil {
		return nil
	}
	var fresh int64
	if err := s.db.QueryRowContext(ctx, s.q.CountPartitions).Scan(&fresh); err != nil {
		return s.errf("place: partitions: %w", err)
	}
	if fresh < 1 {
		return s.errf("place: %w", ErrNoPartitions)
	}
	s.parts.Store(fresh)
	idx := misplaced(recs, int(fresh))
	if idx == nil {
		return nil
	}
	seqs, parts := make([]int64, len(idx)), make([]int64, len(idx))
	for k, i := range idx {
		seqs[k], parts[k] = recs[i].Seq, int64(core.PartitionOf(recs[i].Op.DOID, int(fresh)))
	}
	if err := s.setParts(ctx, seqs, parts); err != nil {
		return s.errf("place: %w", err)
	}
	for k, i := range idx {
		recs[i].Part = int(parts[k])
	}
	return nil
}

// misplaced returns the indexes of the records whose Part is not their
// DOID's partition among n.
func misplaced(recs []core.Record, n int) []int {
	var idx []int
	for i := range recs {
		if recs[i].Part != core.PartitionOf(recs[i].Op.DOID, n) {
			idx = append(idx, i)
		}
	}
	return idx
}
