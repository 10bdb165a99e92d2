package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

// schemaChecker, migrationLister and downMigrator are what the SQL stores
// (internal/sqlstore) offer beyond core.Store.
type (
	schemaChecker   interface{ CheckSchema(context.Context) error }
	migrationLister interface {
		MigrationList(context.Context) ([]sqlstore.MigrationDetail, error)
	}
	downMigrator interface {
		MigrateDown(context.Context) ([]string, error)
	}
	schemaProblemer interface {
		SchemaProblems(context.Context) ([]string, error)
	}
)

// requireSchema refuses, as a usage error, a store without trustlog's
// schema, or with a schema older than this build's: every command but
// migrate would fail on its first statement with the database's "no such
// table" or "no such column" (and a relay would retry it forever). hint
// follows the advice to migrate. Two queries, at open.
func requireSchema(ctx context.Context, s core.Store, hint string) error {
	sc, ok := s.(schemaChecker)
	if !ok {
		return nil
	}
	err := sc.CheckSchema(ctx)
	if errors.Is(err, sqlstore.ErrNoSchema) {
		return usagef("%s: run `trustlog migrate up`%s", sqlstore.ErrNoSchema, hint)
	}
	if err != nil {
		return err
	}
	pending, err := pendingMigrations(ctx, s)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return usagef("%s (not applied: %s): run `trustlog migrate up`%s", errSchemaOlder, strings.Join(pending, ", "), hint)
	}
	return nil
}

// pendingMigrations names the migrations of this build that the store has
// not applied (none for a store that cannot list them).
func pendingMigrations(ctx context.Context, s core.Store) ([]string, error) {
	ms, ok := s.(core.MigrationStatuser)
	if !ok {
		return nil, nil
	}
	list, err := ms.MigrationStatus(ctx)
	if err != nil {
		return nil, err
	}
	var pending []string
	for _, m := range list {
		if !m.Applied {
			pending = append(pending, m.Name)
		}
	}
	return pending, nil
}

// errSchemaOlder: the store's schema lacks migrations this build has.
var errSchemaOlder = errors.New("the store's schema is older than this trustlog")

func (a *app) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the store's schema",
		Long: `Create or upgrade the store's schema. Migrations are idempotent and
serialised by a lease, so several processes may run them at once. On a
database that has the original SDK's tables (operation with trustlog_status,
trustlog_cursor, trustlog_retry) "migrate up" upgrades them in place, keeping
every row, and shows its progress: migrations applied, then adopted rows
given their hash (on a terminal as counters, otherwise as log lines).

"migrate down" rolls back the last group of migrations "migrate up" applied,
where that loses nothing: it refuses (exit 2, with the reason, changing
nothing) a migration without a down step, or one whose undoing would drop
data the store holds (the initial schema while any operation, cursor or
Merkle log entry is stored). "migrate list" shows every migration, whether it
is applied and whether it can be rolled back now.`,
		Example: "  trustlog --store sqlite:app.db migrate up\n  trustlog --store sqlite:app.db migrate status\n  trustlog --store sqlite:app.db migrate list\n  trustlog --store sqlite:app.db migrate down",
	}
	up := &cobra.Command{
		Use:     "up",
		Short:   "Apply every migration not yet applied",
		Example: "  trustlog --store postgres://app@localhost/app migrate up",
		Args:    cobra.NoArgs,
		RunE: a.withStore(func(cmd *cobra.Command, s core.Store) error {
			before := appliedCount(cmd.Context(), s)
			migrate := func(ctx context.Context, _ func(string, int64)) error { return s.Migrate(ctx) }
			if pm, ok := s.(core.ProgressMigrator); ok {
				migrate = pm.MigrateWithProgress
			}
			pr, totals := a.newProgress(), map[string]int{}
			err := migrate(cmd.Context(), func(step string, done int64) {
				totals[step] = int(done)
				pr.set(step, int(done))
			})
			pr.done(totals)
			if err != nil {
				return err
			}
			switch after := appliedCount(cmd.Context(), s); {
			case before >= 0 && after > before:
				a.log.Info("schema migrated", "applied", after-before)
			case before >= 0 && after == before:
				a.log.Info("schema is up to date; nothing to apply")
			default:
				a.log.Info("schema migrated")
			}
			return nil
		}),
	}
	status := &cobra.Command{
		Use:     "status",
		Short:   "List migrations and whether each is applied",
		Example: "  trustlog --store sqlite:app.db migrate status",
		Args:    cobra.NoArgs,
		RunE: a.withStore(func(cmd *cobra.Command, s core.Store) error {
			ms, ok := s.(core.MigrationStatuser)
			if !ok {
				return fmt.Errorf("this store cannot list its migrations")
			}
			list, err := ms.MigrationStatus(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MIGRATION\tSTATUS\tAPPLIED AT")
			for _, m := range list {
				state, at := "pending", ""
				if m.Applied {
					state, at = "applied", m.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", m.Name, state, at)
			}
			return w.Flush()
		}),
	}
	down := &cobra.Command{
		Use:   "down",
		Short: "Roll back the last group of applied migrations, if that loses no data",
		Long: `Roll back the last group of migrations "migrate up" applied, newest first.
Every migration of the group is checked first: one without a down step, or
whose undoing would drop data the store holds, refuses the whole rollback
(exit 2, with the reason), and nothing is changed. Stop applications and
relays first. Prints each migration rolled back.`,
		Example: "  trustlog --store sqlite:app.db migrate down",
		Args:    cobra.NoArgs,
		RunE: a.withStore(func(cmd *cobra.Command, s core.Store) error {
			dm, ok := s.(downMigrator)
			if !ok {
				return usagef("this store cannot roll back its migrations")
			}
			names, err := dm.MigrateDown(cmd.Context())
			var refused *sqlstore.DownRefusedError
			if errors.As(err, &refused) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			if len(names) == 0 {
				fmt.Fprintln(a.stdout, "no migration is applied: nothing to roll back")
				return nil
			}
			for _, n := range names {
				fmt.Fprintf(a.stdout, "rolled back %s\n", n)
			}
			return nil
		}),
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List every migration: applied or not, and whether it can be rolled back",
		Example: "  trustlog --store sqlite:app.db migrate list",
		Args:    cobra.NoArgs,
		RunE: a.withStore(func(cmd *cobra.Command, s core.Store) error {
			ml, ok := s.(migrationLister)
			if !ok {
				return usagef("this store cannot list its migrations")
			}
			list, err := ml.MigrationList(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MIGRATION\tSTATUS\tREVERSIBLE\tGROUP\tAPPLIED AT")
			for _, m := range list {
				state, group, at := "pending", "", ""
				if m.Applied {
					state, group, at = "applied", fmt.Sprint(m.Group), m.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
				}
				rev := "yes"
				if !m.Reversible {
					rev = "no: " + m.Reason
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.Name, state, rev, group, at)
			}
			return w.Flush()
		}),
	}
	cmd.AddCommand(up, status, down, list)
	return cmd
}

// withStore runs a migrate subcommand on --store opened as it is (no
// schema check: these commands make or inspect the schema), closing it
// afterwards.
func (a *app) withStore(run func(cmd *cobra.Command, s core.Store) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		s, err := a.openStoreUnchecked(cmd.Context())
		if err != nil {
			return err
		}
		defer s.Close()
		return run(cmd, s)
	}
}

// appliedCount is how many migrations s has applied, or -1 if it cannot
// say.
func appliedCount(ctx context.Context, s core.Store) int {
	ms, ok := s.(core.MigrationStatuser)
	if !ok {
		return -1
	}
	list, err := ms.MigrationStatus(ctx)
	if err != nil {
		return -1
	}
	n := 0
	for _, m := range list {
		if m.Applied {
			n++
		}
	}
	return n
}
