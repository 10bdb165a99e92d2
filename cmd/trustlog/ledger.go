package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/witness"
)

func (a *app) keygenCmd() *cobra.Command {
	var name, out string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Create an Ed25519 key pair in note format",
		Long: `Create an Ed25519 key pair in the signed-note format of golang.org/x/mod/sumdb/note:
OUT.key holds the private key (mode 0600; it signs operations with
--sign-key-file and checkpoints with --ledger-key-file), OUT.pub the public key
that verifies them. The key name is the log's origin, by convention the
schema-less URL of the log (example.com/trustlog). Existing files are never
overwritten.`,
		Example: "  trustlog keygen --name example.com/trustlog --out trustlog",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || strings.ContainsAny(name, "+ \t\n") {
				return usagef("--name is required and may not contain '+' or spaces")
			}
			if out == "" {
				return usagef("--out is required (files OUT.key and OUT.pub)")
			}
			skey, vkey, err := core.GenerateEd25519(name)
			if err != nil {
				return err
			}
			return a.writeKeyPair(out, skey, vkey)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "key name: the log's origin, e.g. example.com/trustlog")
	cmd.Flags().StringVar(&out, "out", "", "file name prefix for OUT.key and OUT.pub")
	return cmd
}

// writeKeyPair writes OUT.key (private, mode 0600) and OUT.pub, never
// over an existing file and never one without the other, and prints where
// they went and the public key.
func (a *app) writeKeyPair(out, skey, vkey string) error {
	if err := writeNew(out+".key", skey+"\n", 0o600); err != nil {
		return err
	}
	if err := writeNew(out+".pub", vkey+"\n", 0o644); err != nil {
		os.Remove(out + ".key")
		return err
	}
	fmt.Fprintf(a.stdout, "private key: %s.key\npublic key:  %s.pub\n%s\n", out, out, vkey)
	return nil
}

func writeNew(path, content string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return usagef("%s exists; not overwriting a key", path)
		}
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readVerifier reads a note-format public key file.
func readVerifier(flag, path string) (note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, usagef("%s %s: not a note-format public key", flag, path)
	}
	return v, nil
}

// readKeys reads the required --key (the log's public key) and the
// --op-key files, for the commands that verify.
func readKeys(key string, opKeys []string) (note.Verifier, []core.Verifier, error) {
	if key == "" {
		return nil, nil, usagef("--key (the log's public key file) is required")
	}
	v, err := readVerifier("--key", key)
	if err != nil {
		return nil, nil, err
	}
	ovs, err := readOpVerifiers(opKeys)
	if err != nil {
		return nil, nil, err
	}
	return v, ovs, nil
}

// readOpVerifiers reads --op-key files.
func readOpVerifiers(paths []string) ([]core.Verifier, error) {
	return readKeyFiles("--op-key", paths, core.NewEd25519Verifier)
}

// readKeyFiles reads one public key file per path with parse, for the
// repeatable key flag named flag. An unreadable or malformed file is a
// usage error naming it.
func readKeyFiles[T any](flag string, paths []string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, usagef("%s: %v", flag, err)
		}
		v, err := parse(string(b))
		if err != nil {
			return nil, usagef("%s %s: %v", flag, p, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (a *app) proveCmd() *cobra.Command {
	var out string
	var consistency bool
	cmd := &cobra.Command{
		Use:   "prove <op_id>",
		Short: "Write a self-contained, offline-verifiable proof of an operation, or of the log's consistency",
		Long: `Write the proof that an operation is in the log, in the C2SP tlog-proof format:
its leaf index, the inclusion proof up to the latest signed checkpoint, the
checkpoint, and the operation itself (in the "extra" line). Anyone with the
log's public key checks it with "trustlog verify-proof", or with any C2SP
tlog-proof verifier, without the database.

With --consistency OLD_SIZE [NEW_SIZE], write instead the proof that the
log's tree at the signed checkpoint of NEW_SIZE (default: the latest one)
extends its tree at OLD_SIZE: nothing of it was changed, dropped or
reordered. The proof is the body of a C2SP tlog-witness add-checkpoint
request: a line "old OLD_SIZE", the RFC 6962 consistency proof hashes in
base64, one per line, an empty line, and the signed checkpoint of the new
tree. "trustlog verify-proof --old-checkpoint" checks it against a
checkpoint of OLD_SIZE kept from before.`,
		Example: `  trustlog --store sqlite:app.db prove 0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b --out op.tlog-proof
  trustlog --store sqlite:app.db prove --consistency 10523 --out since-10523.txt`,
		Args: func(cmd *cobra.Command, args []string) error {
			if !consistency {
				return cobra.MatchAll(cobra.ExactArgs(1), opIDArgs)(cmd, args)
			}
			if len(args) < 1 || len(args) > 2 {
				return usagef("prove --consistency takes OLD_SIZE and an optional NEW_SIZE, not %d arguments", len(args))
			}
			_, _, err := consistencySizes(args)
			return err
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			var text []byte
			if consistency {
				oldSize, newSize, _ := consistencySizes(args)
				p, err := ledger.ProveConsistency(cmd.Context(), s, oldSize, newSize)
				if err != nil {
					return err
				}
				text = p.Marshal()
			} else {
				p, err := ledger.Prove(cmd.Context(), s, opIDs(args)[0])
				if err != nil {
					return err
				}
				text = p.Marshal()
			}
			if out == "" || out == "-" {
				_, err = a.stdout.Write(text)
				return err
			}
			return os.WriteFile(out, text, 0o644)
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the proof to this file (default standard output)")
	cmd.Flags().BoolVar(&consistency, "consistency", false, "prove that the tree extends its tree at OLD_SIZE (arguments OLD_SIZE [NEW_SIZE]) instead of an operation's inclusion")
	return cmd
}

// consistencySizes parses prove --consistency's OLD_SIZE [NEW_SIZE]; a
// missing NEW_SIZE is 0, the latest checkpoint.
func consistencySizes(args []string) (oldSize, newSize int64, err error) {
	parse := func(name, s string, least int64) (int64, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < least {
			return 0, usagef("prove --consistency: %s %q is not a tree size (an integer >= %d)", name, s, least)
		}
		return n, nil
	}
	if oldSize, err = parse("OLD_SIZE", args[0], 0); err != nil {
		return 0, 0, err
	}
	if len(args) == 2 {
		if newSize, err = parse("NEW_SIZE", args[1], 1); err != nil {
			return 0, 0, err
		}
		if oldSize > newSize {
			return 0, 0, usagef("prove --consistency: OLD_SIZE %d is larger than NEW_SIZE %d", oldSize, newSize)
		}
	}
	return oldSize, newSize, nil
}

// readTrustedCheckpoint reads a signed checkpoint from a file: a checkpoint
// note, or the checkpoint of a tlog-proof or consistency proof file. Its
// signature is the caller's to check.
func readTrustedCheckpoint(flag, path string) ([]byte, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	note, err := ledger.CheckpointNote(text)
	if err != nil {
		return nil, usagef("%s %s: %v", flag, path, err)
	}
	return note, nil
}

func (a *app) verifyProofCmd() *cobra.Command {
	var key, oldCheckpoint string
	var opKeys []string
	var requireSig bool
	cmd := &cobra.Command{
		Use:   "verify-proof <file>",
		Short: "Check a proof offline, with no database",
		Long: `Check a tlog-proof file with the log's public key alone: the checkpoint's
signature, the inclusion of the operation in the checkpointed tree, the
operation's op_hash, and (with --op-key or --require-signature) its
signature. Prints the operation.

A consistency proof ("trustlog prove --consistency") is checked against the
older checkpoint given with --old-checkpoint (a checkpoint file, or a proof
file whose checkpoint it is): both checkpoints' signatures, that the proof
starts at the old checkpoint's size, and that the new tree extends the old
one.

Exit code 0 when the proof holds, 3 when it does not.`,
		Example: `  trustlog verify-proof op.tlog-proof --key trustlog.pub
  trustlog verify-proof since-10523.txt --old-checkpoint checkpoint-10523.txt --key trustlog.pub`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, ovs, err := readKeys(key, opKeys)
			if err != nil {
				return err
			}
			text, err := os.ReadFile(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			if strings.HasPrefix(string(text), "old ") {
				if oldCheckpoint == "" {
					return usagef("%s is a consistency proof: give the older checkpoint with --old-checkpoint", args[0])
				}
				old, err := readTrustedCheckpoint("--old-checkpoint", oldCheckpoint)
				if err != nil {
					return err
				}
				p, err := ledger.ParseConsistencyProof(text)
				if err != nil {
					return verifyError{err}
				}
				older, newer, err := p.Verify(v, old)
				if err != nil {
					return verifyError{err}
				}
				fmt.Fprintf(a.stdout, "verified: the tree of %s at size %d extends its tree at size %d\nold root %s\nnew root %s\n",
					newer.Origin, newer.Size, older.Size, rootBase64(older.Root[:]), rootBase64(newer.Root[:]))
				return nil
			}
			if oldCheckpoint != "" {
				return usagef("--old-checkpoint is for consistency proofs; %s is not one", args[0])
			}
			p, err := ledger.ParseProof(text)
			if err != nil {
				return verifyError{err}
			}
			op, cp, err := p.Verify(v, requireSig, ovs...)
			if err != nil {
				return verifyError{err}
			}
			fmt.Fprintf(a.stdout, "verified: leaf %d of %s at tree size %d\n", p.Index, cp.Origin, cp.Size)
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(op)
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the log's note-format public key file")
	cmd.Flags().StringVar(&oldCheckpoint, "old-checkpoint", "", "for a consistency proof: the older signed checkpoint (a checkpoint or proof file) it must extend")
	cmd.Flags().StringArrayVar(&opKeys, "op-key", nil, "public key file that signed operations (repeatable)")
	cmd.Flags().BoolVar(&requireSig, "require-signature", false, "an unsigned operation fails the check")
	return cmd
}

func rootBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func (a *app) verifyCmd() *cobra.Command {
	var key string
	var opKeys, checkpoints, witnessKeys []string
	var requireSig, fromSink, asJSON bool
	var wait time.Duration
	var quorum int
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Audit the whole store against its Merkle log and signed checkpoints",
		Long: `Audit a store: recompute every leaf from the operation rows, rebuild the tree and
compare every stored hash, check that leaf indices are gapless, check every
signed checkpoint (signature, root, consistency with the previous one), that
the tree was not rolled back and that a checkpoint covers every sequenced
leaf, and check every operation's op_hash and signature, sequenced or not.
Names the first bad leaf index and what is wrong.

A store rewritten or truncated together with its hashes and checkpoints
looks like a smaller, intact log from the inside. Checkpoints kept outside
the database show it: --checkpoint FILE (a checkpoint you saved, or any
proof file, whose checkpoint it takes) and --sink-checkpoints (every
checkpoint the relay published to the --sink topic, read back). For each,
verify proves that the store's tree extends it and that the store still
holds it.

With --witness-key (repeatable) every --checkpoint must also carry
cosignatures (C2SP tlog-cosignature, "trustlog witness add-checkpoint") from
--witnesses of those witnesses (default: all): the checkpoint you compare
with is then one your witnesses saw, not a view shown to you alone.

Exit code 0 when the store is intact, 3 when something was altered,
deleted, reordered or forged.`,
		Example: `  trustlog --store postgres://app@db/app verify --key trustlog.pub --op-key signer.pub --require-signature
  trustlog --store postgres://app@db/app --sink kafka://k1:9092/ops verify --key trustlog.pub --sink-checkpoints --checkpoint saved.tlog-proof`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			v, ovs, err := readKeys(key, opKeys)
			if err != nil {
				return err
			}
			if wait < 0 {
				return usagef("--checkpoint-wait must not be negative")
			}
			ws, err := readWitnessKeys(witnessKeys)
			if err != nil {
				return err
			}
			switch {
			case len(ws) == 0 && quorum != 0:
				return usagef("--witnesses needs --witness-key")
			case len(ws) > 0 && len(checkpoints) == 0:
				return usagef("--witness-key checks the cosignatures of --checkpoint files: give at least one")
			case quorum == 0:
				quorum = len(ws)
			}
			var trusted []ledger.TrustedCheckpoint
			for _, path := range checkpoints {
				n, err := readTrustedCheckpoint("--checkpoint", path)
				if err != nil {
					return err
				}
				if len(ws) > 0 {
					if err := witness.VerifyCosignatures(n, ws, quorum); errors.Is(err, witness.ErrPolicy) {
						return usagef("--witnesses: %v", err)
					} else if err != nil {
						return verifyError{fmt.Errorf("verify: --checkpoint %s: %w", path, err)}
					}
				}
				trusted = append(trusted, ledger.TrustedCheckpoint{Source: "file " + path, Note: n})
			}
			if fromSink && a.sinkURL == "" {
				return usagef("--sink-checkpoints reads the checkpoints back from the sink: give --sink or set TRUSTLOG_SINK")
			}
			s, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			fromSinkN := 0
			if fromSink {
				rp, err := core.OpenReplayer(core.ContextWithLogger(ctx, a.log), a.sinkURL)
				if errors.Is(err, core.ErrNoReplay) {
					return usagef("--sink-checkpoints: the %s sink cannot be read back", core.Scheme(a.sinkURL))
				}
				if err != nil {
					return err
				}
				cs, err := ledger.PublishedCheckpoints(ctx, rp, v.Name())
				rp.Close()
				if err != nil {
					return err
				}
				fromSinkN = len(cs)
				trusted = append(trusted, cs...)
			}
			pr := a.newProgress()
			var leaves int64
			rep, err := ledger.Audit(ctx, s, ledger.AuditOptions{Log: v, OpVerifiers: ovs, RequireSignature: requireSig,
				Trusted: trusted, CheckpointWait: wait,
				Progress: func(n int64) { leaves = n; pr.set("leaves", int(n)) }})
			pr.done(map[string]int{"leaves": int(leaves)})
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
				w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(w, "tree size\t%d\n", rep.TreeSize)
				if rep.PrunedBelow > 0 {
					fmt.Fprintf(w, "pruned below leaf\t%d\n", rep.PrunedBelow)
				}
				fmt.Fprintf(w, "leaves audited\t%d\nunsequenced audited\t%d\ncheckpoints\t%d\n", rep.Leaves, rep.Unsequenced, rep.Checkpoints)
				if len(trusted) > 0 {
					fmt.Fprintf(w, "trusted checkpoints\t%d (%d from files, %d from the sink)\n", rep.Trusted, len(checkpoints), fromSinkN)
				}
				fmt.Fprintf(w, "findings\t%d\n", len(rep.Findings))
				w.Flush()
				for i, f := range rep.Findings {
					if i == 20 {
						fmt.Fprintf(a.stdout, "  … %d more\n", len(rep.Findings)-20)
						break
					}
					fmt.Fprintf(a.stdout, "  %s\n", findingText(f))
				}
			}
			if !rep.OK() {
				f := rep.Findings[0]
				if f.Index < 0 {
					return verifyError{fmt.Errorf("verify: %s", findingText(f))}
				}
				return verifyError{fmt.Errorf("verify: first bad index %d: %s", f.Index, f.Problem)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&key, "key", "", "the log's note-format public key file")
	f.StringArrayVar(&opKeys, "op-key", nil, "public key file that signed operations (repeatable)")
	f.BoolVar(&requireSig, "require-signature", false, "an unsigned operation is a finding")
	f.StringArrayVar(&checkpoints, "checkpoint", nil, "a signed checkpoint kept outside the store (a checkpoint or proof file) that the store's tree must extend (repeatable)")
	f.StringArrayVar(&witnessKeys, "witness-key", nil, "a trusted witness's cosignature public key file: every --checkpoint must be cosigned by --witnesses of them (repeatable)")
	f.IntVar(&quorum, "witnesses", 0, "how many of the --witness-key witnesses must have cosigned each --checkpoint (default all)")
	f.BoolVar(&fromSink, "sink-checkpoints", false, "also trust every checkpoint the relay published to the --sink topic, read back from the broker")
	f.DurationVar(&wait, "checkpoint-wait", ledger.LeaseTTLDefault+5*time.Second, "how long to wait for a sequencer to sign a checkpoint over leaves past the newest one before reporting them (longer than the sequencer lease, so that a crashed leader's successor can sign)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// findingText is a finding as verify prints it.
func findingText(f ledger.Finding) string {
	switch {
	case f.Index >= 0:
		return fmt.Sprintf("leaf %d: %s", f.Index, f.Problem)
	case f.Seq > 0:
		return fmt.Sprintf("seq %d: %s", f.Seq, f.Problem)
	}
	return f.Problem
}
