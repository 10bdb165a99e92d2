package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/witness"
)

// witnessWait polls cond until it holds or ctx ends.
func witnessWait(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s: %v", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// witnessLogKey reads a key pair written by keygen.
func witnessLogKey(t *testing.T, prefix string) (note.Signer, note.Verifier) {
	t.Helper()
	b, err := os.ReadFile(prefix + ".key")
	require.NoError(t, err)
	s, v, err := ledger.ParseKey(string(b))
	require.NoError(t, err)
	return s, v
}

// TestWitnessCLI: keygen → record and sequence a log on SQLite → prove
// --consistency → witness add-checkpoint twice as the log grows → the
// rollback, a fork, a stale old size and a forged checkpoint are each
// rejected with exit 3 and leave the state file as it was → witness
// verify requires K cosignatures.
func TestWitnessCLI(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	store := "sqlite:" + filepath.Join(dir, "log.db")
	logKey, w1, w2 := filepath.Join(dir, "log"), filepath.Join(dir, "w1"), filepath.Join(dir, "w2")
	code, _, errOut := cli(t, ctx, "", "keygen", "--name", "trustlog.test/witnessed", "--out", logKey)
	require.Equal(t, exitOK, code, errOut)
	for _, w := range []struct{ name, out string }{{"witness.test/w1", w1}, {"witness.test/w2", w2}} {
		code, out, errOut := cli(t, ctx, "", "witness", "keygen", "--name", w.name, "--out", w.out)
		require.Equal(t, exitOK, code, errOut)
		assert.Contains(t, out, w.name+"+")
		info, err := os.Stat(w.out + ".key")
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
		assert.NotContains(t, out+errOut, "PRIVATE", "keygen never prints the private key")
	}
	code, _, _ = cli(t, ctx, "", "witness", "keygen", "--name", "x", "--out", w1)
	assert.Equal(t, exitUsage, code, "keygen never overwrites a key")

	code, _, errOut = cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, exitOK, code, errOut)
	s, err := core.OpenStore(ctx, store)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })

	// grow records operations up to size n and sequences them (a relay
	// with --ledger-key-file and no sink only sequences) until the log
	// has a checkpoint of size n, and writes the consistency proof from
	// old to n, in the add-checkpoint request form, to a file.
	next := 0
	grow := func(old int64, n int) string {
		t.Helper()
		var in strings.Builder
		for ; next < n; next++ {
			in.WriteString(opLine(next, fmt.Sprintf("witnessed-%d", next%3)) + "\n")
		}
		code, _, errOut := cli(t, ctx, in.String(), "--store", store, "record")
		require.Equal(t, exitOK, code, errOut)
		rctx, stop := context.WithCancel(ctx)
		done := make(chan int)
		go func() {
			code, _, _ := cli(t, rctx, "", "--store", store, "relay", "--poll", "10ms", "--ledger-key-file", logKey+".key")
			done <- code
		}()
		var p *ledger.ConsistencyProof
		witnessWait(t, ctx, fmt.Sprintf("a checkpoint of size %d", n), func() bool {
			var err error
			p, err = ledger.ProveConsistency(ctx, s, old, int64(n))
			if err != nil && !errors.Is(err, ledger.ErrNotSequenced) {
				require.NoError(t, err)
			}
			return err == nil
		})
		stop()
		require.Equal(t, exitOK, <-done)
		file := filepath.Join(dir, fmt.Sprintf("%d-%d.req", old, n))
		code, _, errOut = cli(t, ctx, "", "--store", store, "prove", "--consistency", fmt.Sprint(old), fmt.Sprint(n), "--out", file)
		require.Equal(t, exitOK, code, errOut)
		written, err := os.ReadFile(file)
		require.NoError(t, err)
		require.Equal(t, string(p.Marshal()), string(written))
		return file
	}
	req5 := grow(0, 5)
	req12 := grow(5, 12)

	state := filepath.Join(dir, "w1.state")
	add := func(stdin, req string, extra ...string) (int, string, string) {
		t.Helper()
		return cli(t, ctx, stdin, append([]string{"witness", "add-checkpoint", req, "--state", state,
			"--witness-key-file", w1 + ".key", "--log-key", logKey + ".pub"}, extra...)...)
	}
	code, _, errOut = add("", req5)
	assert.Equal(t, exitUsage, code, "no state file: never a silent fresh start")
	assert.Contains(t, errOut, "trustlog witness init --state "+state)
	code, _, errOut = cli(t, ctx, "", "witness", "init", "--state", state)
	require.Equal(t, exitOK, code, errOut)
	code, _, _ = cli(t, ctx, "", "witness", "init", "--state", state)
	assert.Equal(t, exitUsage, code, "init never replaces a state")

	cp5 := filepath.Join(dir, "5.cp")
	code, out, errOut := add("", req5, "--out", cp5)
	require.Equal(t, exitOK, code, errOut)
	assert.Empty(t, out)
	code, out, errOut = cli(t, ctx, "", "witness", "verify", cp5, "--log-key", logKey+".pub", "--witness-key", w1+".pub")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "verified: trustlog.test/witnessed at tree size 5, cosigned by 1 of 1 witnesses (1 required)")
	assert.Contains(t, out, "witness.test/w1 at ")

	// The second step, the request on standard input.
	body, err := os.ReadFile(req12)
	require.NoError(t, err)
	code, cosigned, errOut := add(string(body), "-")
	require.Equal(t, exitOK, code, errOut)
	logSigner, logVerifier := witnessLogKey(t, logKey)
	cp, err := ledger.OpenCheckpoint([]byte(cosigned), logVerifier)
	require.NoError(t, err)
	assert.Equal(t, int64(12), cp.Size)
	wb, err := os.ReadFile(w1 + ".pub")
	require.NoError(t, err)
	wv, err := witness.NewVerifier(string(wb))
	require.NoError(t, err)
	require.NoError(t, witness.VerifyCosignatures([]byte(cosigned), []note.Verifier{wv}, 1))
	before, err := os.ReadFile(state)
	require.NoError(t, err)
	assert.Contains(t, string(before), `"size": 12`)

	// Rejections: exit 3, state unchanged.
	req0to12 := filepath.Join(dir, "0-12.req")
	p, err := ledger.ProveConsistency(ctx, s, 0, 12)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(req0to12, p.Marshal(), 0o644))
	otherRoot := cp
	otherRoot.Root = tlog.Hash(sha256.Sum256([]byte("another history")))
	forkedNote, err := ledger.SignCheckpoint(otherRoot, logSigner)
	require.NoError(t, err)
	fork := filepath.Join(dir, "fork.req")
	require.NoError(t, os.WriteFile(fork, append([]byte("old 12\n\n"), forkedNote...), 0o644))
	forger, _, err := core.GenerateEd25519("trustlog.test/witnessed")
	require.NoError(t, err)
	forgerSigner, _, err := ledger.ParseKey(forger)
	require.NoError(t, err)
	forgedNote, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: cp.Origin, Size: 20, Root: cp.Root}, forgerSigner)
	require.NoError(t, err)
	forged := filepath.Join(dir, "forged.req")
	require.NoError(t, os.WriteFile(forged, append([]byte("old 12\n\n"), forgedNote...), 0o644))
	garbage := filepath.Join(dir, "garbage.req")
	require.NoError(t, os.WriteFile(garbage, forgedNote, 0o644))
	for _, c := range []struct{ name, req, want string }{
		{"rollback", req5, "witness: rollback: trustlog.test/witnessed presents a tree of size 5, smaller than the size 12"},
		{"stale old size", req0to12, "prove consistency from 12"},
		{"fork", fork, "witness: fork: trustlog.test/witnessed presents two trees of size 12 with different roots"},
		{"forged checkpoint", forged, "witness: bad log signature"},
		{"not a request", garbage, "witness: malformed request"},
	} {
		code, out, errOut := add("", c.req)
		assert.Equal(t, exitVerifyKO, code, "%s: %s", c.name, errOut)
		assert.Empty(t, out, c.name)
		assert.Contains(t, errOut, c.want, c.name)
		after, err := os.ReadFile(state)
		require.NoError(t, err)
		assert.Equal(t, string(before), string(after), "%s: the state is unchanged", c.name)
	}

	// K of N.
	cosignedFile := filepath.Join(dir, "12.cp")
	require.NoError(t, os.WriteFile(cosignedFile, []byte(cosigned), 0o644))
	verify := func(extra ...string) (int, string, string) {
		return cli(t, ctx, "", append([]string{"witness", "verify", cosignedFile, "--log-key", logKey + ".pub"}, extra...)...)
	}
	code, _, errOut = verify("--witness-key", w1+".pub", "--witness-key", w2+".pub")
	assert.Equal(t, exitVerifyKO, code, "default: every witness")
	assert.Contains(t, errOut, "1 valid of the 2 required (cosigned by witness.test/w1); no cosignature from witness.test/w2")
	code, out, errOut = verify("--witness-key", w1+".pub", "--witness-key", w2+".pub", "--witnesses", "1")
	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "cosigned by 1 of 2 witnesses (1 required)")
	code, _, errOut = verify("--witness-key", w1+".pub", "--witnesses", "3")
	assert.Equal(t, exitUsage, code, errOut)
	code, _, errOut = cli(t, ctx, "", "witness", "verify", cosignedFile, "--log-key", w2+".pub", "--witness-key", w1+".pub")
	assert.Equal(t, exitUsage, code, "a witness key is not a log key: %s", errOut)
	code, _, _ = cli(t, ctx, "", "witness", "verify", fork, "--log-key", logKey+".pub", "--witness-key", w1+".pub")
	assert.Equal(t, exitVerifyKO, code, "not a checkpoint")
	code, _, errOut = cli(t, ctx, string(forkedNote), "witness", "verify", "-", "--log-key", logKey+".pub", "--witness-key", w1+".pub")
	assert.Equal(t, exitVerifyKO, code, "the log signed it, no witness did")
	assert.Contains(t, errOut, "0 valid of the 1 required")

	// trustlog verify: the store against checkpoints the witnesses saw.
	storeVerify := func(extra ...string) (int, string, string) {
		return cli(t, ctx, "", append([]string{"--store", store, "verify", "--key", logKey + ".pub", "--checkpoint-wait", "0"}, extra...)...)
	}
	code, out, errOut = storeVerify("--checkpoint", cosignedFile, "--witness-key", w1+".pub")
	assert.Equal(t, exitOK, code, "cosigned by w1: %s%s", out, errOut)
	assert.Contains(t, out, "trusted checkpoints  1")
	code, _, errOut = storeVerify("--checkpoint", cosignedFile, "--witness-key", w1+".pub", "--witness-key", w2+".pub")
	assert.Equal(t, exitVerifyKO, code, "w2 never cosigned: %s", errOut)
	assert.Contains(t, errOut, "--checkpoint "+cosignedFile+": witness: too few witness cosignatures")
	code, _, errOut = storeVerify("--checkpoint", cosignedFile, "--witness-key", w1+".pub", "--witness-key", w2+".pub", "--witnesses", "1")
	assert.Equal(t, exitOK, code, "one of two suffices with --witnesses 1: %s", errOut)
	uncosigned := filepath.Join(dir, "uncosigned.cp")
	require.NoError(t, os.WriteFile(uncosigned, p.Checkpoint, 0o644))
	code, _, errOut = storeVerify("--checkpoint", uncosigned, "--witness-key", w1+".pub")
	assert.Equal(t, exitVerifyKO, code, "the log's signature alone is not enough: %s", errOut)
	code, _, errOut = storeVerify("--witness-key", w1+".pub")
	assert.Equal(t, exitUsage, code, "--witness-key without a --checkpoint: %s", errOut)
	code, _, errOut = storeVerify("--checkpoint", cosignedFile, "--witnesses", "1")
	assert.Equal(t, exitUsage, code, "--witnesses without --witness-key: %s", errOut)
	code, _, errOut = storeVerify("--checkpoint", cosignedFile, "--witness-key", w1+".pub", "--witnesses", "2")
	assert.Equal(t, exitUsage, code, "2 of 1: %s", errOut)
}

// TestWitnessServe: `trustlog witness serve` answers the C2SP tlog-witness
// add-checkpoint API until interrupted.
func TestWitnessServe(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	logKey, w1, state := filepath.Join(dir, "log"), filepath.Join(dir, "w1"), filepath.Join(dir, "w1.state")
	for _, args := range [][]string{
		{"keygen", "--name", "trustlog.test/served", "--out", logKey},
		{"witness", "keygen", "--name", "witness.test/served", "--out", w1},
		{"witness", "init", "--state", state},
	} {
		code, _, errOut := cli(t, ctx, "", args...)
		require.Equal(t, exitOK, code, errOut)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	sctx, stop := context.WithCancel(ctx)
	type result struct {
		code   int
		errOut string
	}
	done := make(chan result)
	go func() {
		code, _, errOut := cli(t, sctx, "", "witness", "serve", "--addr", addr, "--state", state,
			"--witness-key-file", w1+".key", "--log-key", logKey+".pub")
		done <- result{code, errOut}
	}()

	signer, _ := witnessLogKey(t, logKey)
	cp3, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "trustlog.test/served", Size: 3, Root: tlog.Hash(sha256.Sum256([]byte("3")))}, signer)
	require.NoError(t, err)
	post := func(body []byte) (int, string, error) {
		resp, err := http.Post("http://"+addr+"/add-checkpoint", "text/plain", bytes.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	var code int
	var body string
	witnessWait(t, ctx, "the witness to answer", func() bool {
		var err error
		code, body, err = post(append([]byte("old 0\n\n"), cp3...))
		return err == nil
	})
	require.Equal(t, http.StatusOK, code, body)
	assert.True(t, strings.HasPrefix(body, "— witness.test/served "), body)
	code, body, err = post(append([]byte("old 0\n\n"), cp3...))
	require.NoError(t, err)
	assert.Equal(t, http.StatusConflict, code)
	assert.Equal(t, "3\n", body)

	stop()
	r := <-done
	assert.Equal(t, exitOK, r.code, r.errOut)
	assert.Contains(t, r.errOut, `"msg":"witness: serving"`)
	assert.Contains(t, r.errOut, `"msg":"witness: cosigned"`)
	assert.NotContains(t, r.errOut, "PRIVATE+KEY")
}

// TestWitnessUsage: missing flags and bad keys are usage errors (exit 2)
// naming what is wrong.
func TestWitnessUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	logKey, w1, state := filepath.Join(dir, "log"), filepath.Join(dir, "w1"), filepath.Join(dir, "w1.state")
	for _, args := range [][]string{
		{"keygen", "--name", "trustlog.test/usage", "--out", logKey},
		{"witness", "keygen", "--name", "witness.test/usage", "--out", w1},
		{"witness", "init", "--state", state},
	} {
		code, _, errOut := cli(t, ctx, "", args...)
		require.Equal(t, exitOK, code, errOut)
	}
	req := filepath.Join(dir, "x.req")
	require.NoError(t, os.WriteFile(req, []byte("old 0\n\n"), 0o644))
	secret, err := os.ReadFile(w1 + ".key")
	require.NoError(t, err)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"witness"}, "missing subcommand"},
		{[]string{"witness", "add-checkpoint", req, "--witness-key-file", w1 + ".key", "--log-key", logKey + ".pub"}, "--state is required"},
		{[]string{"witness", "add-checkpoint", req, "--state", state, "--log-key", logKey + ".pub"}, "--witness-key-file"},
		{[]string{"witness", "add-checkpoint", req, "--state", state, "--witness-key-file", w1 + ".key"}, "--log-key"},
		{[]string{"witness", "add-checkpoint", req, "--state", state, "--witness-key-file", w1 + ".pub", "--log-key", logKey + ".pub"}, "not a note-format Ed25519 private key"},
		{[]string{"witness", "add-checkpoint", req, "--state", state, "--witness-key-file", w1 + ".key", "--log-key", w1 + ".key"}, "not a note-format public key"},
		{[]string{"witness", "add-checkpoint", filepath.Join(dir, "none.req"), "--state", state, "--witness-key-file", w1 + ".key", "--log-key", logKey + ".pub"}, "none.req"},
		{[]string{"witness", "add-checkpoint", "--state", state}, "accepts 1 arg"},
		{[]string{"witness", "serve", "--state", state, "--witness-key-file", w1 + ".key", "--log-key", logKey + ".pub"}, "--addr is required"},
		{[]string{"witness", "init"}, "--state is required"},
		{[]string{"witness", "keygen", "--name", "a b", "--out", filepath.Join(dir, "x")}, "--name"},
		{[]string{"witness", "verify", req, "--witness-key", w1 + ".pub"}, "--log-key"},
		{[]string{"witness", "verify", req, "--log-key", logKey + ".pub"}, "--witness-key"},
		{[]string{"witness", "verify", req, "--log-key", logKey + ".pub", "--witness-key", w1 + ".key"}, "not a note-format Ed25519 cosignature public key"},
	} {
		code, _, errOut := cli(t, ctx, "", c.args...)
		assert.Equal(t, exitUsage, code, "%v: %s", c.args, errOut)
		assert.Contains(t, errOut, c.want, c.args)
		assert.NotContains(t, errOut, strings.TrimSpace(string(secret)), "a private key is never printed")
	}
}
