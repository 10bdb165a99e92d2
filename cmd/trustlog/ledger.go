package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
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
			if err := writeNew(out+".key", skey+"\n", 0o600); err != nil {
				return err
			}
			if err := writeNew(out+".pub", vkey+"\n", 0o644); err != nil {
				os.Remove(out + ".key")
				return err
			}
			fmt.Fprintf(a.stdout, "private key: %s.key\npublic key:  %s.pub\n%s\n", out, out, vkey)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "key name: the log's origin, e.g. example.com/trustlog")
	cmd.Flags().StringVar(&out, "out", "", "file name prefix for OUT.key and OUT.pub")
	return cmd
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
	var out []core.Verifier
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, usagef("--op-key: %v", err)
		}
		v, err := core.NewEd25519Verifier(string(b))
		if err != nil {
			return nil, usagef("--op-key %s: %v", p, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (a *app) proveCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "prove <op_id>",
		Short: "Write a self-contained, offline-verifiable proof of an operation",
		Long: `Write the proof that an operation is in the log, in the C2SP tlog-proof format:
its leaf index, the inclusion proof up to the latest signed checkpoint, the
checkpoint, and the operation itself (in the "extra" line). Anyone with the
log's public key checks it with "trustlog verify-proof", or with any C2SP
tlog-proof verifier, without the database.`,
		Example: "  trustlog --store sqlite:app.db prove 0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b --out op.tlog-proof",
		Args:    cobra.MatchAll(cobra.ExactArgs(1), opIDArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			p, err := ledger.Prove(cmd.Context(), s, opIDs(args)[0])
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = a.stdout.Write(p.Marshal())
				return err
			}
			return os.WriteFile(out, p.Marshal(), 0o644)
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the proof to this file (default standard output)")
	return cmd
}

func (a *app) verifyProofCmd() *cobra.Command {
	var key string
	var opKeys []string
	var requireSig bool
	cmd := &cobra.Command{
		Use:   "verify-proof <file>",
		Short: "Check a proof offline, with no database",
		Long: `Check a tlog-proof file with the log's public key alone: the checkpoint's
signature, the inclusion of the operation in the checkpointed tree, the
operation's op_hash, and (with --op-key or --require-signature) its
signature. Prints the operation. Exit code 0 when the proof holds, 3 when it
does not.`,
		Example: "  trustlog verify-proof op.tlog-proof --key trustlog.pub",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, ovs, err := readKeys(key, opKeys)
			if err != nil {
				return err
			}
			text, err := os.ReadFile(args[0])
			if err != nil {
				return usagef("%v", err)
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
	cmd.Flags().StringArrayVar(&opKeys, "op-key", nil, "public key file that signed operations (repeatable)")
	cmd.Flags().BoolVar(&requireSig, "require-signature", false, "an unsigned operation fails the check")
	return cmd
}

func (a *app) verifyCmd() *cobra.Command {
	var key string
	var opKeys []string
	var requireSig, asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Audit the whole store against its Merkle log and signed checkpoints",
		Long: `Audit a store: recompute every leaf from the operation rows, rebuild the tree and
compare every stored hash, check that leaf indices are gapless, check every
signed checkpoint (signature, root, consistency with the previous one) and
that the tree was not rolled back, and check every operation's op_hash and
signature. Names the first bad leaf index and what is wrong.

Exit code 0 when the store is intact, 3 when something was altered,
deleted, reordered or forged.`,
		Example: "  trustlog --store postgres://app@db/app verify --key trustlog.pub --op-key signer.pub --require-signature",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, ovs, err := readKeys(key, opKeys)
			if err != nil {
				return err
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			pr := a.newProgress()
			var leaves int64
			rep, err := ledger.Audit(cmd.Context(), s, ledger.AuditOptions{Log: v, OpVerifiers: ovs, RequireSignature: requireSig,
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
				fmt.Fprintf(w, "leaves audited\t%d\ncheckpoints\t%d\nfindings\t%d\n", rep.Leaves, rep.Checkpoints, len(rep.Findings))
				w.Flush()
				for i, f := range rep.Findings {
					if i == 20 {
						fmt.Fprintf(a.stdout, "  … %d more\n", len(rep.Findings)-20)
						break
					}
					fmt.Fprintf(a.stdout, "  leaf %d: %s\n", f.Index, f.Problem)
				}
			}
			if !rep.OK() {
				f := rep.Findings[0]
				return verifyError{fmt.Errorf("verify: first bad index %d: %s", f.Index, f.Problem)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the log's note-format public key file")
	cmd.Flags().StringArrayVar(&opKeys, "op-key", nil, "public key file that signed operations (repeatable)")
	cmd.Flags().BoolVar(&requireSig, "require-signature", false, "an unsigned operation is a finding")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
