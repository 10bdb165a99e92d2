package sqlstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"text/template"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/backoff"
)

// MigrateLease is the named lease Migrate holds, so concurrent migrators
// (several app instances starting at once) run one after the other.
const MigrateLease = "trustlog.migrate"

// Migrate implements core.Store: under the migration lease it runs the
// dialect's BeforeMigrate (adoption of the original SDK's tables), every
// bun/migrate migration not yet applied (among them the positions
// migration, see upgradePositions), then creates the partitions and the
// log identity if missing. Every step is idempotent.
func (s *Store) Migrate(ctx context.Context) error {
	return s.MigrateWithProgress(ctx, nil)
}

// Steps MigrateWithProgress reports.
const (
	StepMigrations = "migrations"   // schema migrations applied by this call
	StepAdopted    = "adopted rows" // adopted rows given their op_hash so far
	StepPartition  = "partition"    // operations given their partition so far
	StepSequence   = "sequence"     // operations given their position so far
	StepRetry      = "retry"        // operations moved to the retry table
)

// MigrateWithProgress implements core.ProgressMigrator: Migrate, reporting
// the migrations it applied and, when it upgrades a store, its progress
// through the rows: adopted from the original SDK (op_hash computed, a
// thousand per transaction), given their partition, sequenced, moved to
// the retry table.
func (s *Store) MigrateWithProgress(ctx context.Context, progress func(step string, done int64)) error {
	if progress == nil {
		progress = func(string, int64) {}
	}
	release, err := s.beginMigrate(ctx)
	if err != nil {
		return err
	}
	defer release()
	m, err := s.migrator(progress)
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
	if _, err := s.ensurePartitions(ctx); err != nil {
		return s.errf("migrate: %w", err)
	}
	if err := s.ensureLogID(ctx); err != nil {
		return s.errf("migrate: log id: %w", err)
	}
	return nil
}

// beginMigrate takes the migration lease (creating the lease table
// first where the dialect keeps one) and runs the dialect's
// BeforeMigrate; release gives the lease back.
func (s *Store) beginMigrate(ctx context.Context) (release func(), err error) {
	if s.q.LeaseTable != "" {
		if _, err := s.db.ExecContext(ctx, s.q.LeaseTable); err != nil {
			return nil, s.errf("migrate: lease table: %w", err)
		}
	}
	lease, err := AcquireWait(ctx, s.locker, MigrateLease, 60*time.Second)
	if err != nil {
		return nil, s.errf("migrate: %w", err)
	}
	release = func() { lease.Release(context.WithoutCancel(ctx)) }
	if s.d.BeforeMigrate != nil {
		if err := s.d.BeforeMigrate(ctx, s); err != nil {
			release()
			return nil, s.errf("migrate: %w", err)
		}
	}
	return release, nil
}

// MigrateUpTo runs the dialect's BeforeMigrate and applies the
// migrations not yet applied up to version (included, "00001"), under the
// migration lease, and nothing else: no partitions, no log identity. It
// leaves a store in the schema of an earlier release, for tests of
// upgrades.
func (s *Store) MigrateUpTo(ctx context.Context, version string) error {
	release, err := s.beginMigrate(ctx)
	if err != nil {
		return err
	}
	defer release()
	all, err := s.migrations(nil)
	if err != nil {
		return err
	}
	ms := migrate.NewMigrations()
	for _, x := range all.Sorted() {
		if x.Name <= version {
			ms.Add(x)
		}
	}
	m := migrate.NewMigrator(s.bun, ms, migrate.WithTableName(s.names.Migrations),
		migrate.WithLocksTableName(s.names.MigrationLocks), migrate.WithTemplateData(s.names),
		migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		return s.errf("migrate: init: %w", err)
	}
	if _, err := m.Migrate(ctx); err != nil {
		return s.errf("migrate: %w", err)
	}
	return nil
}

// ensurePartitions creates partitions 0..P-1 in a store that has none (P
// from the driver's URL, core.PartitionsDefault if it said nothing) and
// returns the store's number of partitions. An existing store keeps its
// own: asking for another number is an error.
func (s *Store) ensurePartitions(ctx context.Context) (int, error) {
	want := s.d.Partitions
	if want < 0 || want > core.MaxPartitions {
		return 0, fmt.Errorf("partitions must be 1 to %d, not %d", core.MaxPartitions, want)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, s.q.CountPartitions).Scan(&n); err != nil {
		return 0, fmt.Errorf("partitions: %w", err)
	}
	if n == 0 {
		n = want
		if n == 0 {
			n = core.PartitionsDefault
		}
		defer s.writing()()
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			for part := 0; part < n; part++ {
				if _, err := tx.ExecContext(ctx, s.q.CreatePartition, part); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("create %d partitions: %w", n, err)
		}
	} else if want != 0 && want != n {
		return 0, fmt.Errorf("the store has %d partitions and the URL asks for %d: "+
			"migrate does not change it (leave the partitions parameter out, or set it to %d; `trustlog partitions set %d` changes it, with every relay stopped)", n, want, n, want)
	}
	s.parts.Store(int64(n))
	return n, nil
}

// ensureLogID writes the store's log identity (core.LogIDCursor), a
// random 16-hex-digit name, unless it has one: an insert that does
// nothing if the cursor exists, so concurrent migrators agree on one.
func (s *Store) ensureLogID(ctx context.Context) error {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	defer s.writing()()
	_, err := s.db.ExecContext(ctx, s.q.CreateCursor, core.LogIDCursor, hex.EncodeToString(b[:]))
	return err
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
	sel, err := s.Render("SELECT " + Columns + RecordFrom + " WHERE o.seq > " + p(1) + " AND o.op_hash = '' ORDER BY o.seq LIMIT 1000")
	if err != nil {
		return err
	}
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

// MigrationStatus implements core.MigrationStatuser. It creates nothing:
// on a database never migrated every migration is pending.
func (s *Store) MigrationStatus(ctx context.Context) ([]core.MigrationInfo, error) {
	m, err := s.migrator(nil)
	if err != nil {
		return nil, err
	}
	ms, err := s.migrationsWithStatus(ctx, m)
	if err != nil {
		return nil, s.errf("migrate status: %w", err)
	}
	out := make([]core.MigrationInfo, len(ms))
	for i, x := range ms {
		out[i] = core.MigrationInfo{Name: x.Name + "_" + x.Comment, Applied: x.IsApplied(), AppliedAt: x.MigratedAt}
	}
	return out, nil
}

// migrationsWithStatus lists the migrations and which are applied, without
// creating bun's tables where they are missing (then none is applied).
func (s *Store) migrationsWithStatus(ctx context.Context, m *migrate.Migrator) (migrate.MigrationSlice, error) {
	exists, _, err := s.migrationTable(ctx)
	if err != nil {
		return nil, err
	}
	if !exists {
		ms, err := s.migrations(nil)
		if err != nil {
			return nil, err
		}
		return ms.Sorted(), nil
	}
	return m.MigrationsWithStatus(ctx)
}

// migrations are the driver's SQL migrations and the positions migration
// (Dialect.PositionsMigration), which reports to progress (nil: to
// nobody).
func (s *Store) migrations(progress func(string, int64)) (*migrate.Migrations, error) {
	ms := migrate.NewMigrations()
	if err := ms.Discover(s.d.Migrations); err != nil {
		return nil, s.errf("migrations: %w", err)
	}
	if v := s.d.PositionsMigration; v != "" {
		if progress == nil {
			progress = func(string, int64) {}
		}
		// Up and Down are assigned function literals: bun's type for them
		// is unexported, and its Register would name the migration after
		// the caller's file.
		ms.Add(migrate.Migration{
			Name: v, Comment: positionsComment,
			Up: func(ctx context.Context, _ *migrate.Migrator, _ *migrate.Migration) error {
				return s.upgradePositions(ctx, progress)
			},
			// Undone by the SQL migrations around it.
			Down: func(context.Context, *migrate.Migrator, *migrate.Migration) error { return nil },
		})
	}
	return ms, nil
}

func (s *Store) migrator(progress func(string, int64), opts ...migrate.MigratorOption) (*migrate.Migrator, error) {
	ms, err := s.migrations(progress)
	if err != nil {
		return nil, err
	}
	return migrate.NewMigrator(s.bun, ms, append([]migrate.MigratorOption{
		migrate.WithTableName(s.names.Migrations),
		migrate.WithLocksTableName(s.names.MigrationLocks),
		migrate.WithTemplateData(s.names),
		migrate.WithMarkAppliedOnSuccess(true),
	}, opts...)...), nil
}

// ErrNoSchema is returned by CheckSchema for a database that has no
// trustlog schema: Migrate never ran there (or every migration was rolled
// back), so any statement would fail with the database's "no such table".
var ErrNoSchema = errors.New("the store has no trustlog schema")

// CheckSchema returns an error wrapping ErrNoSchema if no migration is
// applied to the store's database. It costs one query; run it once, when
// the store is opened for use without Migrate, rather than per statement.
// A database that cannot be queried returns that error instead.
func (s *Store) CheckSchema(ctx context.Context) error {
	exists, applied, err := s.migrationTable(ctx)
	if err != nil {
		return s.errf("schema check: %w", err)
	}
	if !exists || applied == 0 {
		return s.errf("%w: run Migrate (`trustlog migrate up`) first", ErrNoSchema)
	}
	return nil
}

// SchemaProblems returns what is wrong with the store's schema that its
// migrations table cannot show (Queries.SchemaProblems): on PostgreSQL,
// the insert trigger that queues operations for the sequencer dropped or
// disabled, when an operation another writer inserts meanwhile never
// gets a position (trustlog's own INSERT queues its operations itself).
// Nil: nothing found. A relay's readiness and `trustlog status` report
// them.
func (s *Store) SchemaProblems(ctx context.Context) ([]string, error) {
	if s.q.SchemaProblems == "" {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, s.q.SchemaProblems)
	if err != nil {
		return nil, s.errf("schema check: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, s.errf("schema check: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, s.errf("schema check: %w", err)
	}
	return out, nil
}

// migrationTable reports whether bun's migrations table exists and, if
// so, how many migrations it records as applied.
func (s *Store) migrationTable(ctx context.Context) (exists bool, applied int64, err error) {
	err = s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+s.names.Migrations).Scan(&applied)
	switch {
	case err == nil:
		return true, applied, nil
	case missingTable(err):
		return false, 0, nil
	}
	return false, 0, err
}

// missingTable reports whether err is a database's "no such table" (or,
// on PostgreSQL, "no such schema").
func missingTable(err error) bool {
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		switch state.SQLState() {
		case "42P01", "3F000": // PostgreSQL: undefined_table, invalid_schema_name
			return true
		}
	}
	msg := err.Error()
	return strings.Contains(msg, "no such table") || // SQLite
		strings.Contains(msg, "Error 1146 (42S02)") // MySQL, MariaDB: ER_NO_SUCH_TABLE
}

// MigrationDetail is one migration as `trustlog migrate list` shows it.
type MigrationDetail struct {
	// Name is version_comment, as in core.MigrationInfo.
	Name      string
	Applied   bool
	AppliedAt time.Time
	// Group is the run of Migrate that applied it (0: not applied);
	// MigrateDown undoes the last group.
	Group int64
	// Reversible: MigrateDown could undo it now. Otherwise Reason says
	// why not: it has no down migration, or undoing it would lose data
	// the store holds.
	Reversible bool
	Reason     string
}

// MigrationList lists every migration: applied or not, and whether it can
// be rolled back (for an applied one: now, given what the store holds).
// It changes nothing.
func (s *Store) MigrationList(ctx context.Context) ([]MigrationDetail, error) {
	m, err := s.migrator(nil)
	if err != nil {
		return nil, err
	}
	ms, err := s.migrationsWithStatus(ctx, m)
	if err != nil {
		return nil, s.errf("migrate list: %w", err)
	}
	out := make([]MigrationDetail, len(ms))
	for i := range ms {
		x := &ms[i]
		d := MigrationDetail{Name: x.String(), Applied: x.IsApplied(), AppliedAt: x.MigratedAt, Group: x.GroupID}
		reason, err := s.downRefusal(ctx, x)
		if err != nil {
			return nil, s.errf("migrate list: %s: %w", x, err)
		}
		d.Reversible, d.Reason = reason == "", reason
		out[i] = d
	}
	return out, nil
}

// ErrDownRefused is wrapped by the *DownRefusedError of MigrateDown.
var ErrDownRefused = errors.New("migrate down refused")

// DownRefusedError is MigrateDown refusing to roll back a migration: it
// has no down migration, or undoing it would lose data. Nothing was
// changed.
type DownRefusedError struct {
	Migration string
	Reason    string
	// RolledBack, normally empty, are the migrations of the group rolled
	// back before a check made in the down migration's own transaction
	// refused (the store changed between the first checks and it).
	RolledBack []string
}

// Error implements error.
func (e *DownRefusedError) Error() string {
	msg := "migrate down: " + e.Migration + ": refused: " + e.Reason
	if len(e.RolledBack) == 0 {
		return msg + "; nothing was changed"
	}
	return msg + "; rolled back before it: " + strings.Join(e.RolledBack, ", ")
}

// Unwrap returns ErrDownRefused.
func (e *DownRefusedError) Unwrap() error { return ErrDownRefused }

// MigrateDown rolls back the last group of migrations Migrate applied, the
// newest first, under the migration lease, and returns their names (none
// when no migration is applied). Before changing anything it checks every
// migration of the group: one without a down migration, or whose down
// migration's checks find data it would lose (see downChecks), refuses the
// whole rollback with a *DownRefusedError. The checks run again in the
// down migration's own transaction where it has one (SQLite, PostgreSQL),
// so an operation recorded in between is not dropped either.
func (s *Store) MigrateDown(ctx context.Context) ([]string, error) {
	exists, applied, err := s.migrationTable(ctx)
	if err != nil {
		return nil, s.errf("migrate down: %w", err)
	}
	if !exists || applied == 0 {
		return nil, nil
	}
	if s.q.LeaseTable != "" {
		if _, err := s.db.ExecContext(ctx, s.q.LeaseTable); err != nil {
			return nil, s.errf("migrate down: lease table: %w", err)
		}
	}
	lease, err := AcquireWait(ctx, s.locker, MigrateLease, 60*time.Second)
	if err != nil {
		return nil, s.errf("migrate down: %w", err)
	}
	defer lease.Release(context.WithoutCancel(ctx))
	m, err := s.migrator(nil, migrate.BeforeMigration(func(ctx context.Context, db bun.IConn, x *migrate.Migration) error {
		c, err := s.downChecks(x)
		if err != nil {
			return err
		}
		if c == nil {
			return nil // an up migration
		}
		for _, q := range c.locks {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		reason, err := c.run(ctx, db)
		if err != nil {
			return err
		}
		if reason != "" {
			return &DownRefusedError{Migration: x.String(), Reason: reason}
		}
		return nil
	}))
	if err != nil {
		return nil, err
	}
	ms, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, s.errf("migrate down: %w", err)
	}
	group := ms.LastGroup().Migrations
	for i := len(group) - 1; i >= 0; i-- {
		reason, err := s.downRefusal(ctx, &group[i])
		if err != nil {
			return nil, s.errf("migrate down: %s: %w", group[i].String(), err)
		}
		if reason != "" {
			return nil, &DownRefusedError{Migration: group[i].String(), Reason: reason}
		}
	}
	var names []string
	for i := len(group) - 1; i >= 0; i-- {
		names = append(names, group[i].String())
	}
	if _, err := m.Rollback(ctx); err != nil {
		var refused *DownRefusedError
		if errors.As(err, &refused) {
			// Which of the group were undone before the refusal.
			if now, serr := m.MigrationsWithStatus(ctx); serr == nil {
				for _, x := range now {
					for _, g := range group {
						if x.Name == g.Name && !x.IsApplied() {
							refused.RolledBack = append(refused.RolledBack, x.String())
						}
					}
				}
			}
			return nil, refused
		}
		return nil, s.errf("migrate down: %w", err)
	}
	return names, nil
}

// downRefusal says why migration x cannot be rolled back now ("" if it
// can): it has no down migration, or, if it is applied, a check of its
// down migration finds data that undoing it would lose. It changes
// nothing (the checks run in a transaction rolled back).
func (s *Store) downRefusal(ctx context.Context, x *migrate.Migration) (string, error) {
	c, err := s.downChecks(x)
	if err != nil {
		return "", err
	}
	if c == nil {
		return "it has no down migration, so it cannot be undone", nil
	}
	if !x.IsApplied() || len(c.refuseIf) == 0 {
		return "", nil
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: s.d.Name != "sqlite"})
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	return c.run(ctx, tx)
}

// Directives of a down migration, SQL comment lines (a space after the
// dashes, as MySQL wants) that run, in order, before its statements:
//
//	-- trustlog:lock <statement>      only in the down migration's own
//	                                  transaction or connection: lock what
//	                                  the checks read against writers
//	-- trustlog:refuse-if <query>     a row the query returns is a reason
//	                                  (its first column) to refuse the
//	                                  rollback: it would lose that data
//
// Each is one line, rendered with the store's Names like the rest of the
// file. A migration with no down file cannot be rolled back.
const (
	lockDirective     = "-- trustlog:lock "
	refuseIfDirective = "-- trustlog:refuse-if "
)

type downChecks struct {
	locks, refuseIf []string
}

// downChecks reads the directives of x's down migration; nil: it has none.
// A Go migration with a down function has no directives.
func (s *Store) downChecks(x *migrate.Migration) (*downChecks, error) {
	if x.Name == s.d.PositionsMigration && x.Down != nil {
		return &downChecks{}, nil
	}
	base := x.Name + "_" + x.Comment
	for _, name := range []string{base + ".tx.down.sql", base + ".down.sql"} {
		b, err := fs.ReadFile(s.d.Migrations, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		t, err := template.New(name).Parse(string(b))
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		if err := t.Execute(&out, s.names); err != nil {
			return nil, err
		}
		c := &downChecks{}
		for _, line := range strings.Split(out.String(), "\n") {
			line = strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(line, lockDirective):
				c.locks = append(c.locks, strings.TrimPrefix(line, lockDirective))
			case strings.HasPrefix(line, refuseIfDirective):
				c.refuseIf = append(c.refuseIf, strings.TrimPrefix(line, refuseIfDirective))
			case strings.HasPrefix(line, "-- trustlog:"):
				return nil, fmt.Errorf("%s: unknown directive %q", name, line)
			}
		}
		return c, nil
	}
	return nil, nil
}

// run runs the refuse-if checks on db and returns the first reason found.
func (c *downChecks) run(ctx context.Context, db interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}) (string, error) {
	for _, q := range c.refuseIf {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return "", fmt.Errorf("check %q: %w", q, err)
		}
		var reason string
		found := rows.Next()
		if found {
			err = rows.Scan(&reason)
		}
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return "", fmt.Errorf("check %q: %w", q, err)
		}
		if found {
			return reason, nil
		}
	}
	return "", nil
}

// leaseWait spaces AcquireWait's tries: 50ms, doubling, at most 1s.
var leaseWait = backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second}

// AcquireWait takes a named lease, waiting while another holder has it,
// until ctx ends.
func AcquireWait(ctx context.Context, l core.Locker, name string, ttl time.Duration) (core.Lease, error) {
	return acquireWait(ctx, l, name, ttl, leaseWait)
}

// acquireWait is AcquireWait, trying again after p's delays.
func acquireWait(ctx context.Context, l core.Locker, name string, ttl time.Duration, p backoff.Policy) (core.Lease, error) {
	var lease core.Lease
	err := backoff.Retry(ctx, p, 0, func(int) error {
		var err error
		lease, err = l.TryAcquire(ctx, name, ttl)
		if err != nil && !errors.Is(err, core.ErrLeaseHeld) {
			return backoff.Stop(err)
		}
		return err
	})
	switch {
	case err == nil:
		return lease, nil
	case errors.Is(err, core.ErrLeaseHeld): // ctx ended while another held it
		return nil, fmt.Errorf("waiting for lease %q: %w", name, ctx.Err())
	default:
		return nil, err
	}
}
