package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/go-trustlog/trustlog/core"
)

func (a *app) statusCmd() *cobra.Command {
	var asJSON, watch bool
	var interval time.Duration
	var count int
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show operations per state, the oldest unsettled one and the lag",
		Long: `Show how many operations are in each state, the low watermark (every
operation at or below this sequence number is published or dead), the newest
sequence number, and the age of the oldest operation not yet settled (the
relay's lag).

With --watch the figures refresh every --interval until interrupted, with
the publish rate since the previous refresh: in place on a terminal, as
successive blocks (or JSON lines with --json) otherwise.`,
		Example: `  trustlog --store sqlite:app.db status
  trustlog --store sqlite:app.db status --json
  trustlog --store postgres://app@db/app status --watch --interval 1s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return usagef("--interval %s: want a positive duration", interval)
			}
			if count < 0 {
				return usagef("--count %d: want 0 (forever) or more", count)
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				if watch && cmd.Context().Err() != nil {
					return nil // interrupted before the first refresh
				}
				return err
			}
			defer s.Close()
			if sp, ok := s.(schemaProblemer); ok {
				problems, err := sp.SchemaProblems(cmd.Context())
				if err != nil {
					return err
				}
				for _, p := range problems {
					fmt.Fprintln(a.stderr, "trustlog status: warning:", p)
				}
			}
			if !watch {
				st, err := s.Stats(cmd.Context())
				if err != nil {
					return err
				}
				return a.printStats(st, asJSON, nil)
			}
			return a.watchStats(cmd.Context(), s, asJSON, interval, count)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "refresh until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "time between refreshes with --watch")
	cmd.Flags().IntVar(&count, "count", 0, "with --watch, stop after this many refreshes (0: until interrupted)")
	return cmd
}

// watchStats prints the stats every interval, with the rate at which
// operations settled since the previous refresh, until ctx ends (exit 0:
// interrupting a watch is how it is meant to stop) or count refreshes.
func (a *app) watchStats(ctx context.Context, s core.Store, asJSON bool, interval time.Duration, count int) error {
	tty := false
	if f, ok := a.stdout.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	var prev *core.Stats
	var prevAt time.Time
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 1; ; n++ {
		st, err := s.Stats(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := time.Now()
		var rate *float64
		if prev != nil {
			settled := func(x core.Stats) int64 { return x.Counts[core.StatePublished] + x.Counts[core.StateDead] }
			r := float64(settled(st)-settled(*prev)) / now.Sub(prevAt).Seconds()
			rate = &r
		}
		switch {
		case tty && !asJSON:
			fmt.Fprint(a.stdout, "\033[H\033[2J")
			fmt.Fprintf(a.stdout, "every %s, %s (Ctrl-C to stop)\n\n", interval, now.Format(time.TimeOnly))
		case n > 1 && !asJSON:
			fmt.Fprintln(a.stdout)
		}
		if err := a.printStats(st, asJSON, rate); err != nil {
			return err
		}
		prev, prevAt = &st, now
		if count > 0 && n >= count {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// printStats prints one snapshot; rate, when known, is the number of
// operations settled per second since the previous snapshot.
func (a *app) printStats(st core.Stats, asJSON bool, rate *float64) error {
	lag := time.Duration(0)
	if !st.OldestUnsettled.IsZero() {
		lag = time.Since(st.OldestUnsettled)
	}
	if asJSON {
		counts := map[string]int64{}
		for s, n := range st.Counts {
			counts[s.String()] = n
		}
		parts := make([]map[string]any, len(st.Partitions))
		for i, p := range st.Partitions {
			parts[i] = map[string]any{"partition": p.Part, "cursor": p.Cursor, "backlog": p.Backlog, "generation": p.Generation, "owner": p.Owner}
		}
		doc := map[string]any{
			"counts": counts, "max_seq": st.MaxSeq, "tree_size": st.TreeSize, "lag_seconds": lag.Seconds(), "partitions": parts,
		}
		if !st.OldestUnsettled.IsZero() { // nothing unsettled: no such time
			doc["oldest_unsettled"] = st.OldestUnsettled
		}
		if rate != nil {
			doc["settled_per_second"] = *rate
		}
		return json.NewEncoder(a.stdout).Encode(doc)
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for _, s := range core.States {
		fmt.Fprintf(w, "%s\t%d\t(%s)\n", s, st.Counts[s], s.Status())
	}
	fmt.Fprintf(w, "max seq\t%d\t\n", st.MaxSeq)
	fmt.Fprintf(w, "positions\t%d\t(operations the sequencer has placed in the log)\n", st.TreeSize)
	owned := 0
	for _, p := range st.Partitions {
		if p.Owner != "" && p.Expires.After(time.Now()) {
			owned++
		}
	}
	fmt.Fprintf(w, "partitions\t%d\t(%d owned by a live relay; `trustlog cursor status` lists them)\n", len(st.Partitions), owned)
	if rate != nil {
		fmt.Fprintf(w, "rate\t%.0f/s\t(published or dead since the previous refresh)\n", *rate)
	}
	if st.OldestUnsettled.IsZero() {
		fmt.Fprintf(w, "lag\t0s\t(nothing unsettled)\n")
	} else {
		fmt.Fprintf(w, "lag\t%s\t(oldest unsettled recorded %s)\n", lag.Round(time.Millisecond), st.OldestUnsettled.Format(time.RFC3339))
	}
	return w.Flush()
}

func (a *app) cursorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cursor",
		Short: "Inspect the partitions' cursors",
		Long: `Every partition of the store has a cursor: the position of the last operation
its relay published (or moved to the retry table). Operations above it are
pending; the relay reads them by position, so a late commit is never skipped
(it gets a later position). The original SDK's scan cursor is gone.`,
		Example: "  trustlog --store sqlite:app.db cursor status",
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show each partition's cursor, backlog, generation and owner",
		Long: `Show each partition's cursor, its backlog (operations with a position above
the cursor: sequenced, not yet published or sent to the retry table;
operations the sequencer has not placed yet count in no partition), its
lease generation and its owner.`,
		Example: "  trustlog --store sqlite:app.db cursor status",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := s.Stats(cmd.Context())
			if err != nil {
				return err
			}
			parts := st.Partitions
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "partition\tcursor\tbacklog\tgeneration\towner")
			now := time.Now()
			for _, p := range parts {
				owner := p.Owner
				switch {
				case owner == "":
					owner = "-"
				case !p.Expires.After(now):
					owner += " (lease expired)"
				}
				fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%s\n", p.Part, p.Cursor, p.Backlog, p.Generation, owner)
			}
			return w.Flush()
		},
	}
	cmd.AddCommand(status)
	return cmd
}

func (a *app) deadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead",
		Short: "List or requeue dead operations",
		Long: `Operations the sink rejected --max-attempts times, or for good, are dead:
the relay stops trying them. List them, fix the cause, and requeue them; a
requeued operation is pending again with its attempts reset.`,
		Example: "  trustlog --store sqlite:app.db dead list\n  trustlog --store sqlite:app.db dead requeue --all",
	}
	var limit int
	var after int64
	list := &cobra.Command{
		Use:     "list",
		Short:   "List dead operations with their last error",
		Example: "  trustlog --store sqlite:app.db dead list --limit 20",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return usagef("--limit %d: want 1 or more", limit)
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			recs, err := s.ListDead(cmd.Context(), core.ListParams{AfterSeq: after, Limit: limit})
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SEQ\tOP_ID\tDOID\tATTEMPTS\tLAST ERROR")
			for _, r := range recs {
				fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\n", r.Seq, r.Op.OpID, r.Op.DOID, r.Attempts, r.LastError)
			}
			return w.Flush()
		},
	}
	list.Flags().IntVar(&limit, "limit", 100, "most operations to list")
	list.Flags().Int64Var(&after, "after", 0, "list operations after this sequence number (paging)")
	var all bool
	requeue := &cobra.Command{
		Use:     "requeue [op_id...]",
		Short:   "Move dead operations back to pending with fresh attempts",
		Example: "  trustlog --store sqlite:app.db dead requeue 0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b\n  trustlog --store sqlite:app.db dead requeue --all",
		Args:    opIDArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return usagef("give op_ids or --all")
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			n, err := s.Requeue(cmd.Context(), core.RequeueParams{OpIDs: opIDs(args), All: all})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "requeued %d operation(s)\n", n)
			return nil
		},
	}
	requeue.Flags().BoolVar(&all, "all", false, "requeue every dead operation")
	cmd.AddCommand(list, requeue)
	return cmd
}
