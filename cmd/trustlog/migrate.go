package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/go-trustlog/trustlog/core"
)

func (a *app) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the store's schema",
		Long: `Create or upgrade the store's schema. Migrations are idempotent and
serialised by a lease, so several processes may run them at once. On a
database that has the original SDK's tables (operation with trustlog_status,
trustlog_cursor, trustlog_retry) "migrate up" upgrades them in place, keeping
every row, and shows its progress: migrations applied, then adopted rows
given their hash (on a terminal as counters, otherwise as log lines).`,
		Example: "  trustlog --store sqlite:app.db migrate up\n  trustlog --store sqlite:app.db migrate status",
	}
	up := &cobra.Command{
		Use:     "up",
		Short:   "Apply every migration not yet applied",
		Example: "  trustlog --store postgres://app@localhost/app migrate up",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			migrate := func(ctx context.Context, _ func(string, int64)) error { return s.Migrate(ctx) }
			if pm, ok := s.(core.ProgressMigrator); ok {
				migrate = pm.MigrateWithProgress
			}
			pr, totals := a.newProgress(), map[string]int{}
			err = migrate(cmd.Context(), func(step string, done int64) {
				totals[step] = int(done)
				pr.set(step, int(done))
			})
			pr.done(totals)
			if err != nil {
				return err
			}
			a.log.Info("schema is up to date")
			return nil
		},
	}
	status := &cobra.Command{
		Use:     "status",
		Short:   "List migrations and whether each is applied",
		Example: "  trustlog --store sqlite:app.db migrate status",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
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
		},
	}
	cmd.AddCommand(up, status)
	return cmd
}
