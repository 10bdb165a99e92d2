package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun/migrate"

	"github.com/go-trustlog/trustlog/core"
)

// MigrateLease is the named lease Migrate holds, so concurrent migrators
// (several app instances starting at once) run one after the other.
const MigrateLease = "trustlog.migrate"

// Migrate implements core.Store: under the migration lease it runs the
// dialect's BeforeMigrate (adoption of the original SDK's tables) and then
// every bun/migrate migration not yet applied. Every step is idempotent.
func (s *Store) Migrate(ctx context.Context) error {
	return s.MigrateWithProgress(ctx, nil)
}

// Steps MigrateWithProgress reports.
const (
	StepMigrations = "migrations"   // schema migrations applied by this call
	StepAdopted    = "adopted rows" // adopted rows given their op_hash so far
)

// MigrateWithProgress implements core.ProgressMigrator: Migrate, reporting
// the migrations it applied and, on a table adopted from the original SDK,
// the rows whose op_hash it has computed so far (a thousand per
// transaction).
func (s *Store) MigrateWithProgress(ctx context.Context, progress func(step string, done int64)) error {
	if progress == nil {
		progress = func(string, int64) {}
	}
	if s.q.LeaseTable != "" {
		if _, err := s.db.ExecContext(ctx, s.q.LeaseTable); err != nil {
			return s.errf("migrate: lease table: %w", err)
		}
	}
	lease, err := AcquireWait(ctx, s.locker, MigrateLease, 60*time.Second)
	if err != nil {
		return s.errf("migrate: %w", err)
	}
	defer lease.Release(context.WithoutCancel(ctx))
	if s.d.BeforeMigrate != nil {
		if err := s.d.BeforeMigrate(ctx, s); err != nil {
			return s.errf("migrate: %w", err)
		}
	}
	m, err := s.migrator()
	if err != nil {
		return err
	}
	if err := m.Init(ctx); err != nil {
		return s.errf("migrate: init: %w", err)
	}
	group, err := m.Migrate(ctx)
	if err != nil {
		return s.errf("migrate: %w", err)
	}
	progress(StepMigrations, int64(len(group.Migrations)))
	if err := s.backfillHashes(ctx, progress); err != nil {
		return s.errf("migrate: op_hash of adopted rows: %w", err)
	}
	return nil
}

// backfillCursor marks that every adopted row has its op_hash.
const backfillCursor = "trustlog.adopted_op_hash"

// backfillHashes computes op_hash for the rows adopted from the original
// SDK's tables (they carry their own hash in legacy_op_hash), a thousand
// per transaction, in seq order, resumable: a cursor marks completion, so
// later Migrate calls cost two cheap queries.
func (s *Store) backfillHashes(ctx context.Context, progress func(string, int64)) error {
	if _, err := s.db.ExecContext(ctx, "SELECT legacy_op_hash FROM "+s.names.Op+" WHERE 1 = 0"); err != nil {
		return nil // not an adopted table
	}
	if c, err := s.Cursor(ctx, backfillCursor); err == nil && c.Value == "done" {
		return nil
	}
	p := s.d.Placeholder
	sel := "SELECT " + Columns + " FROM " + s.names.Op + " WHERE seq > " + p(1) + " AND op_hash = '' ORDER BY seq LIMIT 1000"
	upd := "UPDATE " + s.names.Op + " SET op_hash = " + p(1) + " WHERE seq = " + p(2) + " AND op_hash = ''"
	var after, done int64
	for {
		recs, err := s.queryRecords(ctx, s.db, sel, after)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return s.SetCursor(ctx, backfillCursor, "done")
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for i := range recs {
			if _, err := tx.ExecContext(ctx, upd, recs[i].Op.ComputeHash(), recs[i].Seq); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		after = recs[len(recs)-1].Seq
		done += int64(len(recs))
		progress(StepAdopted, done)
	}
}

// MigrationStatus implements core.MigrationStatuser.
func (s *Store) MigrationStatus(ctx context.Context) ([]core.MigrationInfo, error) {
	m, err := s.migrator()
	if err != nil {
		return nil, err
	}
	if err := m.Init(ctx); err != nil {
		return nil, s.errf("migrate status: %w", err)
	}
	ms, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, s.errf("migrate status: %w", err)
	}
	out := make([]core.MigrationInfo, len(ms))
	for i, x := range ms {
		out[i] = core.MigrationInfo{Name: x.Name + "_" + x.Comment, Applied: x.IsApplied(), AppliedAt: x.MigratedAt}
	}
	return out, nil
}

func (s *Store) migrator() (*migrate.Migrator, error) {
	ms := migrate.NewMigrations()
	if err := ms.Discover(s.d.Migrations); err != nil {
		return nil, s.errf("migrations: %w", err)
	}
	return migrate.NewMigrator(s.bun, ms,
		migrate.WithTableName(s.names.Migrations),
		migrate.WithLocksTableName(s.names.MigrationLocks),
		migrate.WithTemplateData(s.names),
		migrate.WithMarkAppliedOnSuccess(true),
	), nil
}

// AcquireWait takes a named lease, waiting while another holder has it,
// until ctx ends.
func AcquireWait(ctx context.Context, l core.Locker, name string, ttl time.Duration) (core.Lease, error) {
	delay := 50 * time.Millisecond
	for {
		lease, err := l.TryAcquire(ctx, name, ttl)
		if err == nil {
			return lease, nil
		}
		if !errors.Is(err, core.ErrLeaseHeld) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lease %q: %w", name, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}
