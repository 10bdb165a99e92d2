package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
)

// archived is one line of a prune archive: the operation with every
// field `record` reads (op_id, created_at, op_hash and any signature
// included), and its place in the store and the log. `record --archive`
// reads it back (decodeArchiveLine).
type archived struct {
	LeafIndex int64 `json:"leaf_index"`
	Seq       int64 `json:"seq"`
	// PublishedAt is read from archives of earlier versions, which wrote
	// it; it is no longer written (publishing is a cursor, not a time).
	PublishedAt *time.Time `json:"published_at,omitempty"`
	*core.Operation
}

func (a *app) pruneCmd() *cobra.Command {
	var olderThan time.Duration
	var batch int
	var archive string
	var dryRun, asJSON bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete published operations older than a retention period",
		Long: `Delete published operations recorded at least --older-than ago (by the
database's clock), keeping the ledger verifiable.

Prune deletes a prefix of the log: from the prune horizon up
to the first operation that is not yet published (or too recent), and never
past the newest signed checkpoint (a leaf no checkpoint covers yet could
never be proven; a log with no checkpoint is not pruned), in
transactions of --batch, each moving the horizon (the store cursor
trustlog.ledger.pruned_below) with its deletion. Leaf hashes, the tree and the
signed checkpoints stay: proofs of the remaining operations and
'trustlog verify' still pass, and verify reports the horizon. Operations not
yet sequenced are never deleted.

--archive appends each batch to a JSON-lines file and syncs it to disk
before the batch is deleted: one operation per line, with all its fields
(op_id, created_at, op_hash and any signature included) plus its
leaf_index and seq. A batch that cannot be written whole is
cut off the file again and not deleted. 'trustlog record --archive'
re-imports such a file into a store as new rows, refusing a line whose
content does not match its op_hash or whose signature does not verify
under an --op-key. A batch whose deletion fails stays in the store and is
archived again by the next prune; record --archive records such a repeat
once. A store whose log is empty is not pruned.`,
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
			opts := ledger.PruneOptions{OlderThan: olderThan, Batch: batch, DryRun: dryRun}
			if archive != "" && !dryRun {
				f, err := os.OpenFile(archive, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
				if err != nil {
					return usagef("--archive: %v", err)
				}
				defer f.Close()
				opts.Archive = func(recs []core.Record) error { return appendArchive(f, recs) }
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
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "retention: delete published operations recorded at least this long ago (e.g. 720h)")
	cmd.Flags().IntVar(&batch, "batch", ledger.PruneBatchDefault, "operations deleted per transaction")
	cmd.Flags().StringVar(&archive, "archive", "", "append the deleted operations to this JSON-lines file first ('record --archive' re-imports it)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be deleted; delete nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// archiveFile is what appendArchive needs of the archive (an *os.File
// opened for appending).
type archiveFile interface {
	io.Writer
	Stat() (os.FileInfo, error)
	Truncate(size int64) error
	Sync() error
}

// appendArchive appends one batch to a prune archive, one line per
// operation, and syncs it to disk. A batch it cannot write whole it cuts
// off again, so that no half-written line precedes the next prune's.
func appendArchive(f archiveFile, recs []core.Record) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range recs {
		r := &recs[i]
		if err := enc.Encode(archived{LeafIndex: r.LeafIndex, Seq: r.Seq, Operation: &r.Op}); err != nil {
			return err
		}
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		if terr := f.Truncate(st.Size()); terr != nil {
			return fmt.Errorf("%w; and cutting the partly written batch off again: %v", err, terr)
		}
		return err
	}
	return f.Sync() // on disk before the rows are deleted
}
