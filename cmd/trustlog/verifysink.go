package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sinkcheck"
)

func (a *app) verifySinkCmd() *cobra.Command {
	var since string
	var keys []string
	var opts sinkcheck.Options
	var failDup, asJSON bool
	cmd := &cobra.Command{
		Use:   "verify-sink",
		Short: "Check that the sink holds exactly what the store published",
		Long: `Read the sink's topic from the beginning (or from --since) through the broker's
consumer and compare it with the store: every published operation must be
there; every message must be a well-formed sealed operation whose op_hash and
signature hold, whose headers match it, and whose bytes equal the store's;
no message may be unknown to the store. Duplicates (bounded, keyed by op_id)
are reported and fail the check only with --fail-on-duplicates.

The sink must outlive the relay: Kafka or Pulsar. A memory:// sink exists only
inside the process that relayed to it, so verify-sink (a new process, which
could only read it empty) refuses it with exit code 2.

Exit code 0 when the check passes, 3 when it finds a problem.`,
		Example: `  trustlog --store postgres://app@db/app --sink kafka://k1:9092/trustlog.ops verify-sink
  trustlog --store sqlite:app.db --sink kafka://k1:9092/ops verify-sink --since 24h --key log.pub --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := refuseMemorySink(cmd, a.sinkURL); err != nil {
				return err
			}
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return usagef("--since %q: want an RFC 3339 time or a duration like 24h", since)
				}
				opts.Since = t
			}
			for _, k := range keys {
				b, err := os.ReadFile(k)
				if err != nil {
					return usagef("--key: %v", err)
				}
				v, err := core.NewEd25519Verifier(string(b))
				if err != nil {
					return usagef("--key %s: %v", k, err)
				}
				opts.Verifiers = append(opts.Verifiers, v)
			}
			store, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer store.Close()
			if a.sinkURL == "" {
				return usagef("no sink: give --sink or set TRUSTLOG_SINK")
			}
			rp, err := core.OpenReplayer(core.ContextWithLogger(ctx, a.log), a.sinkURL)
			if errors.Is(err, core.ErrNoReplay) {
				return usagef("the %s sink cannot be read back", core.Scheme(a.sinkURL))
			}
			if err != nil {
				return err
			}
			defer rp.Close()
			pr := a.newProgress()
			opts.Progress = pr.set
			rep, err := sinkcheck.Check(ctx, store, rp, opts)
			pr.done(map[string]int{"sink": rep.SinkMessages, "store": rep.StorePublished})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printReport(a, rep)
			}
			if !rep.OK(failDup) {
				return verifyError{fmt.Errorf("verify-sink: %d missing, %d mismatched, %d unknown, %d duplicated",
					rep.MissingN, rep.MismatchedN, rep.UnknownN, rep.DuplicatedN)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "check only what was published since this RFC 3339 time or this long ago (e.g. 24h)")
	f.StringArrayVar(&keys, "key", nil, "note-format public key file to check signatures with (repeatable)")
	f.BoolVar(&opts.RequireSignature, "require-signature", false, "an unsigned operation is a problem")
	f.BoolVar(&failDup, "fail-on-duplicates", false, "duplicates fail the check too")
	f.IntVar(&opts.MaxExamples, "max-examples", 20, "problems listed per kind (counts are always exact)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// refuseMemorySink refuses a memory:// sink to a command that reads back
// what another process published: the memory sink lives and dies with the
// process that opened it, so a new one only ever sees it empty (and
// verify-sink would report every published operation missing).
func refuseMemorySink(cmd *cobra.Command, sinkURL string) error {
	if core.Scheme(sinkURL) != "memory" {
		return nil
	}
	return usagef("%s: a memory:// sink lives only inside the process that relayed to it; this new process "+
		"would read it empty and report every published operation missing: verify a Kafka or Pulsar sink "+
		"(--sink kafka://… or pulsar://…), or run `trustlog demo`, which relays to memory:// and checks it in one process",
		cmd.CommandPath())
}

func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Parse(time.RFC3339, s)
}

func printReport(a *app, r *sinkcheck.Report) {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "messages in the sink\t%d\n", r.SinkMessages)
	fmt.Fprintf(w, "published in the store\t%d\n", r.StorePublished)
	fmt.Fprintf(w, "verified\t%d\n", r.Verified)
	fmt.Fprintf(w, "not yet settled\t%d\n", r.Unsettled)
	fmt.Fprintf(w, "missing\t%d\n", r.MissingN)
	fmt.Fprintf(w, "mismatched\t%d\n", r.MismatchedN)
	fmt.Fprintf(w, "unknown\t%d\n", r.UnknownN)
	fmt.Fprintf(w, "duplicated\t%d\n", r.DuplicatedN)
	w.Flush()
	for _, l := range []struct {
		name string
		ps   []sinkcheck.Problem
	}{{"missing", r.Missing}, {"mismatched", r.Mismatched}, {"unknown", r.Unknown}, {"duplicated", r.Duplicated}} {
		if len(l.ps) == 0 {
			continue
		}
		fmt.Fprintf(a.stdout, "\n%s:\n", l.name)
		for _, p := range l.ps {
			fmt.Fprintf(a.stdout, "  %s %s %s\n", p.OpID, strings.TrimSpace(p.Position), p.Reason)
		}
	}
}
