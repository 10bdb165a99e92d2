package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/witness"
)

func (a *app) witnessCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "witness",
		Short: "Run a witness: cosign a log's checkpoints only while it provably only grows",
		Long: `A witness detects a split view of a log: a log showing one history to some and
another to others, or rewriting history and signing a new tree. It keeps, per
log, the latest checkpoint it cosigned, in a state file, and cosigns a new
checkpoint only if the log's key signed it and a consistency proof shows it
extends that one (C2SP tlog-witness). It refuses a smaller tree (rollback),
another tree of the same size or one the proof does not tie to the last
(fork), a bad log signature and unknown logs, and then leaves its state as it
was. A verifier that requires cosignatures from witnesses it trusts
("trustlog witness verify") knows they all saw one append-only history.

Cosignatures are C2SP tlog-cosignature Ed25519 cosignature/v1 signature lines;
requests are C2SP tlog-witness add-checkpoint bodies, which
"trustlog prove --consistency" writes. Exit code 3 when the witness rejects a
checkpoint or a verification fails.`,
		Example: `  trustlog witness keygen --name witness.example.com/w1 --out w1
  trustlog witness init --state w1.state
  trustlog --store sqlite:app.db prove --consistency 0 > first.req
  trustlog witness add-checkpoint first.req --state w1.state --witness-key-file w1.key --log-key trustlog.pub > cosigned.cp
  trustlog witness verify cosigned.cp --log-key trustlog.pub --witness-key w1.pub`,
	}
	cmd.AddCommand(a.witnessKeygenCmd(), a.witnessInitCmd(), a.witnessAddCmd(), a.witnessServeCmd(), a.witnessVerifyCmd())
	return cmd
}

func (a *app) witnessKeygenCmd() *cobra.Command {
	var name, out string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Create a witness's Ed25519 cosignature key pair",
		Long: `Create a witness key pair in the signed-note key format with key type 0x04
(Ed25519 cosignature/v1, C2SP tlog-cosignature): OUT.key holds the private key
(mode 0600; --witness-key-file), OUT.pub the public key verifiers configure
(--witness-key). The name identifies the witness, by convention a schema-less
URL. Existing files are never overwritten. A key from "trustlog keygen" works
as a witness key too.`,
		Example: "  trustlog witness keygen --name witness.example.com/w1 --out w1",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || strings.ContainsAny(name, "+ \t\n") {
				return usagef("--name is required and may not contain '+' or spaces")
			}
			if out == "" {
				return usagef("--out is required (files OUT.key and OUT.pub)")
			}
			skey, vkey, err := witness.GenerateKey(rand.Reader, name)
			if err != nil {
				return usagef("--name: %v", err)
			}
			return a.writeKeyPair(out, skey, vkey)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the witness's name, e.g. witness.example.com/w1")
	cmd.Flags().StringVar(&out, "out", "", "file name prefix for OUT.key and OUT.pub")
	return cmd
}

func (a *app) witnessInitCmd() *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a witness's empty state file",
		Long: `Create an empty witness state file. The other witness commands refuse a
missing state file rather than start afresh: a witness that forgot what it
cosigned would accept a fork. An existing file is never replaced.`,
		Example: "  trustlog witness init --state w1.state",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state == "" {
				return usagef("--state is required")
			}
			if err := witness.CreateState(state); err != nil {
				if errors.Is(err, os.ErrExist) {
					return usagef("%v", err)
				}
				return err
			}
			fmt.Fprintf(a.stdout, "witness state: %s\n", state)
			return nil
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "the state file to create")
	return cmd
}

// witnessFlags are the flags of the commands that run a witness.
type witnessFlags struct {
	state, keyFile string
	logKeys        []string
}

func (f *witnessFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.state, "state", "", "the witness's state file (trustlog witness init)")
	cmd.Flags().StringVar(&f.keyFile, "witness-key-file", "", "the witness's private key file (trustlog witness keygen)")
	cmd.Flags().StringArrayVar(&f.logKeys, "log-key", nil, "public key file of a log the witness follows; its name is the log's origin (repeatable)")
}

// open builds the witness the flags describe.
func (f *witnessFlags) open() (*witness.Witness, error) {
	switch {
	case f.state == "":
		return nil, usagef("--state is required (create one with trustlog witness init)")
	case f.keyFile == "":
		return nil, usagef("--witness-key-file (the witness's private key) is required")
	case len(f.logKeys) == 0:
		return nil, usagef("--log-key (the public key of a log to witness) is required")
	}
	b, err := os.ReadFile(f.keyFile)
	if err != nil {
		return nil, usagef("--witness-key-file: %v", err)
	}
	key, err := witness.NewSigner(string(b))
	if err != nil {
		return nil, usagef("--witness-key-file %s: %v", f.keyFile, err)
	}
	logs, err := readLogKeys(f.logKeys)
	if err != nil {
		return nil, err
	}
	w, err := witness.New(witness.Config{State: f.state, Key: key, Logs: logs})
	if errors.Is(err, witness.ErrNoState) {
		return nil, usageError{err}
	}
	return w, err
}

// readLogKeys reads --log-key files.
func readLogKeys(paths []string) ([]note.Verifier, error) {
	var out []note.Verifier
	for _, p := range paths {
		v, err := readVerifier("--log-key", p)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// readInput reads a file argument, "-" being standard input.
func (a *app) readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(a.stdin)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return b, nil
}

// witnessError makes a rejection a verification finding (exit 3).
func witnessError(err error) error {
	var re *witness.RejectError
	if errors.As(err, &re) {
		return verifyError{err}
	}
	return err
}

func (a *app) witnessAddCmd() *cobra.Command {
	var wf witnessFlags
	var out string
	cmd := &cobra.Command{
		Use:   "add-checkpoint <request-file>",
		Short: "Verify a checkpoint against the witness's state and cosign it",
		Long: `Check a C2SP tlog-witness add-checkpoint request and, if it holds, cosign its
checkpoint and record it as the log's latest in the state file (atomically,
before printing anything). The request ("-" for standard input) is what
"trustlog prove --consistency OLD" writes:

  old <size of the latest checkpoint the witness cosigned, 0 at first>
  <consistency proof: one base64 hash per line>
  <empty line>
  <the log's signed checkpoint>

The checkpoint's origin must be the name of a --log-key, whose key must have
signed it; the old size must be the witness's latest size for that log (the
error names it otherwise: prove from there); the proof must show that the new
tree extends the one cosigned. Prints the checkpoint with the witness's
cosignature line added (C2SP tlog-cosignature, Ed25519 cosignature/v1).

Exit code 3 when the witness rejects the checkpoint (rollback, fork, bad log
signature, unknown log, stale old size, malformed request), leaving its state
unchanged.`,
		Example: `  trustlog witness add-checkpoint next.req --state w1.state --witness-key-file w1.key --log-key trustlog.pub --out cosigned.cp`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := wf.open()
			if err != nil {
				return err
			}
			body, err := a.readInput(args[0])
			if err != nil {
				return err
			}
			req, err := ledger.ParseConsistencyProof(body)
			if err != nil {
				return verifyError{fmt.Errorf("%w: %s: %v", witness.ErrMalformed, args[0], err)}
			}
			c, err := w.AddCheckpoint(req.OldSize, req.Hashes, req.Checkpoint)
			if err != nil {
				return witnessError(err)
			}
			a.log.Info("witness: cosigned", "witness", w.Name(), "origin", c.Checkpoint.Origin, "size", c.Checkpoint.Size, "old", req.OldSize)
			if out == "" || out == "-" {
				_, err = a.stdout.Write(c.Note)
				return err
			}
			return os.WriteFile(out, c.Note, 0o644)
		},
	}
	wf.register(cmd)
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the cosigned checkpoint to this file (default standard output)")
	return cmd
}

func (a *app) witnessServeCmd() *cobra.Command {
	var wf witnessFlags
	var addr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the C2SP tlog-witness HTTP API",
		Long: `Serve the witness over HTTP, as C2SP tlog-witness specifies: POST
/add-checkpoint with an add-checkpoint request body answers 200 and the
cosignature line, 409 (body: the witness's latest size) when the old size is
stale or the same size has another root, 422 when the consistency proof
does not verify, 403 for a bad log signature, 404 for an unknown log, 400 for a
malformed request. Runs until interrupted. Several witness processes may share
a state file: updates are serialized by a lock (STATE.lock).`,
		Example: `  trustlog witness serve --addr 127.0.0.1:7380 --state w1.state --witness-key-file w1.key --log-key trustlog.pub`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w, err := wf.open()
			if err != nil {
				return err
			}
			if addr == "" {
				return usagef("--addr is required (e.g. 127.0.0.1:7380)")
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return usagef("--addr %s: %v", addr, err)
			}
			srv := &http.Server{Handler: w.Handler(a.log), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
			a.log.Info("witness: serving", "witness", w.Name(), "url", fmt.Sprintf("http://%s/add-checkpoint", ln.Addr()))
			return serveUntilDone(cmd.Context(), srv, ln)
		},
	}
	wf.register(cmd)
	cmd.Flags().StringVar(&addr, "addr", "", "listen address, e.g. 127.0.0.1:7380")
	return cmd
}

func (a *app) witnessVerifyCmd() *cobra.Command {
	var logKeys, witnessKeys []string
	var k int
	cmd := &cobra.Command{
		Use:   "verify <checkpoint-file>",
		Short: "Check a checkpoint's log signature and its witness cosignatures",
		Long: `Check a cosigned checkpoint ("-" for standard input) offline: the log's
signature (a --log-key whose name is the checkpoint's origin), then at least
--witnesses valid cosignatures from different --witness-key witnesses (default:
all of them). Signatures of other keys are ignored; a line under a given
witness's key that does not verify fails the check. Exit code 3 when the
check fails.`,
		Example: `  trustlog witness verify cosigned.cp --log-key trustlog.pub --witness-key w1.pub --witness-key w2.pub --witness-key w3.pub --witnesses 2`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(logKeys) == 0 {
				return usagef("--log-key (the log's public key file) is required")
			}
			if len(witnessKeys) == 0 {
				return usagef("--witness-key (a witness's public key file) is required")
			}
			logs, err := readLogKeys(logKeys)
			if err != nil {
				return err
			}
			ws, err := readWitnessKeys(witnessKeys)
			if err != nil {
				return err
			}
			if k == 0 {
				k = len(ws)
			}
			msg, err := a.readInput(args[0])
			if err != nil {
				return err
			}
			cp, err := openWithAny(msg, logs)
			if err != nil {
				return verifyError{err}
			}
			if err := witness.VerifyCosignatures(msg, ws, k); err != nil {
				if errors.Is(err, witness.ErrPolicy) {
					return usagef("--witnesses: %v", err)
				}
				return verifyError{err}
			}
			sigs, err := witness.Cosignatures(msg, ws)
			if err != nil {
				return verifyError{err}
			}
			fmt.Fprintf(a.stdout, "verified: %s at tree size %d, cosigned by %d of %d witnesses (%d required)\n", cp.Origin, cp.Size, len(sigs), len(ws), k)
			for _, s := range sigs {
				fmt.Fprintf(a.stdout, "  %s at %s\n", s.Name, s.Time.Format(time.RFC3339))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&logKeys, "log-key", nil, "the log's public key file (repeatable: the checkpoint's origin picks)")
	cmd.Flags().StringArrayVar(&witnessKeys, "witness-key", nil, "a trusted witness's public key file (repeatable)")
	cmd.Flags().IntVar(&k, "witnesses", 0, "how many of the --witness-key witnesses must have cosigned (default all)")
	return cmd
}

// openWithAny verifies a checkpoint with a log key whose name is its
// origin.
func openWithAny(msg []byte, logs []note.Verifier) (ledger.Checkpoint, error) {
	err := fmt.Errorf("%w: no --log-key verifies the checkpoint", ledger.ErrTampered)
	for _, v := range logs {
		cp, oerr := ledger.OpenCheckpoint(msg, v)
		if oerr == nil {
			return cp, nil
		}
		if len(logs) == 1 || strings.HasPrefix(string(msg), v.Name()+"\n") {
			err = oerr // the key of the checkpoint's origin: its error says most
		}
	}
	return ledger.Checkpoint{}, err
}

// readWitnessKeys reads --witness-key files: cosignature public keys
// (trustlog witness keygen). An unreadable or malformed one is a usage
// error naming the file.
func readWitnessKeys(paths []string) ([]note.Verifier, error) {
	return readKeyFiles("--witness-key", paths, witness.NewVerifier)
}
