package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
)

// archived is one line of a prune archive: the operation as `record`
// reads it, with its place in the store and the log.
type archived struct {
	LeafIndex   int64     `json:"leaf_index"`
	Seq         int64     `json:"seq"`
	PublishedAt time.Time `json:"published_at"`
	*core.Operation
}

func (a *app) pruneCmd() *cobra.Command {
	var olderThan time.Duration
	var batch int
	var archive string
	var dryRun, withoutLedger, asJSON bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete operations published longer ago than a retention period",
		Long: `Delete operations that the sink accepted at least --older-than ago (by the
database's clock), keeping the ledger verifiable.

With a ledger, prune deletes a prefix of the log: from the prune horizon up
to the first operation that is not yet published (or too recent), in
transactions of --batch, each moving the horizon (the store cursor
trustlog.ledger.pruned_below) with its deletion. Leaf hashes, the tree and the
signed checkpoints stay: proofs of the remaining operations and
'trustlog verify' still pass, and verify reports the horizon. Operations not
yet sequenced are never deleted.

--archive appends each batch to a JSON-lines file (one operation per line, as
'trustlog record' reads it, with leaf_index, seq and published_at) and syncs
it before the batch is deleted. A store whose log is empty is pruned only
with --without-ledger.`,
		Example: `  trustlog --store postgres://app@db/app prune --older-than 2160h --archive ops-2026.jsonl
  trustlog --store sqlite:app.db prune --older-than 720h --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("older-than") {
				return usagef("--older-than (the retention period, e.g. 720h) is required")
			}
			if olderThan < 0 {
				return usagef("--older-than %s: must not be negative", olderThan)
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			opts := ledger.PruneOptions{OlderThan: olderThan, Batch: batch, DryRun: dryRun, WithoutLedger: withoutLedger}
			if archive != "" && !dryRun {
				f, err := os.OpenFile(archive, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
				if err != nil {
					return usagef("--archive: %v", err)
				}
				defer f.Close()
				opts.Archive = func(recs []core.Record) error {
					enc := json.NewEncoder(f)
					for i := range recs {
						r := &recs[i]
						if err := enc.Encode(archived{LeafIndex: r.LeafIndex, Seq: r.Seq, PublishedAt: r.PublishedAt, Operation: &r.Op}); err != nil {
							return err
						}
					}
					return f.Sync() // on disk before the rows are deleted
				}
			}
			pr := a.newProgress()
			res, err := ledger.Prune(cmd.Context(), s, opts)
			pr.done(map[string]int{"deleted": int(res.Deleted)})
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(res)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			verb := "deleted"
			if dryRun {
				verb = "would delete"
			}
			fmt.Fprintf(w, "%s\t%d\n", verb, res.Deleted)
			if res.Below > 0 || res.From > 0 {
				fmt.Fprintf(w, "pruned below leaf\t%d (was %d)\n", res.Below, res.From)
			}
			return w.Flush()
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "retention: delete operations published at least this long ago (e.g. 720h)")
	cmd.Flags().IntVar(&batch, "batch", ledger.PruneBatchDefault, "operations deleted per transaction")
	cmd.Flags().StringVar(&archive, "archive", "", "append the deleted operations to this JSON-lines file first")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be deleted; delete nothing")
	cmd.Flags().BoolVar(&withoutLedger, "without-ledger", false, "prune a store whose log is empty (its published operations are never sequenced)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
