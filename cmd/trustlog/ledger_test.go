package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/go-trustlog/trustlog/internal/testenv"
)

// TestLedgerRoundTrip: keygen → record → relay (sequencing) → prove →
// verify-proof offline → verify; then a tampered row fails verify.
func TestLedgerRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "ledger.db")
	store := "sqlite:" + dbPath
	logKey, opKey := filepath.Join(dir, "log"), filepath.Join(dir, "signer")
	for _, k := range []struct{ name, out string }{{"trustlog.test/log", logKey}, {"trustlog.test/signer", opKey}} {
		code, out, errOut := cli(t, ctx, "", "keygen", "--name", k.name, "--out", k.out)
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, k.name+"+")
	}
	code, _, _ := cli(t, ctx, "", "keygen", "--name", "x", "--out", logKey)
	assert.Equal(t, exitUsage, code, "keygen never overwrites a key")
	info, err := os.Stat(logKey + ".key")
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	code, _, errOut := cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	var in strings.Builder
	for i := 0; i < 12; i++ {
		in.WriteString(opLine(i, "ledger-obj") + "\n")
	}
	code, out, errOut := cli(t, ctx, in.String(), "--store", store, "--sign-key-file", opKey+".key", "record")
	require.Equal(t, 0, code, errOut)
	var rec map[string]string
	require.NoError(t, json.Unmarshal([]byte(strings.Split(out, "\n")[4]), &rec))

	// relay: publish to memory and sequence, until the proof is available.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan int)
	go func() {
		code, _, _ := cli(t, rctx, "", "--store", store, "--sink", "memory://", "relay", "--poll", "10ms",
			"--ledger-key-file", logKey+".key")
		done <- code
	}()
	proofFile := filepath.Join(dir, "op.tlog-proof")
	deadline := time.Now().Add(testenv.Patience(t))
	for {
		code, _, _ = cli(t, ctx, "", "--store", store, "prove", rec["op_id"], "--out", proofFile)
		if code == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	require.Equal(t, 0, <-done)
	require.Equal(t, 0, code, "prove succeeds once the operation is checkpointed")

	// Offline: no --store.
	code, out, errOut = cli(t, ctx, "", "verify-proof", proofFile, "--key", logKey+".pub", "--op-key", opKey+".pub", "--require-signature")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "verified: leaf 4 of trustlog.test/log")
	assert.Contains(t, out, rec["op_id"])
	code, _, _ = cli(t, ctx, "", "verify-proof", proofFile, "--key", opKey+".pub")
	assert.Equal(t, exitVerifyKO, code, "another key does not verify the checkpoint")
	text, err := os.ReadFile(proofFile)
	require.NoError(t, err)
	bad := filepath.Join(dir, "bad.tlog-proof")
	require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(string(text), "index 4", "index 5", 1)), 0o644))
	code, _, _ = cli(t, ctx, "", "verify-proof", bad, "--key", logKey+".pub")
	assert.Equal(t, exitVerifyKO, code, "a proof moved to another index fails")

	code, out, errOut = cli(t, ctx, "", "--store", store, "verify", "--key", logKey+".pub", "--op-key", opKey+".pub", "--require-signature")
	require.Equal(t, 0, code, out+errOut)
	assert.Regexp(t, `findings +0\n`, out)

	db, err := sql.Open("sqlite", dbPath)
	require.NoError(t, err)
	_, err = db.Exec(`UPDATE operation SET op_actor = 'mallory' WHERE leaf_index = 7`)
	require.NoError(t, err)
	db.Close()
	code, out, errOut = cli(t, ctx, "", "--store", store, "verify", "--key", logKey+".pub", "--json")
	require.Equal(t, exitVerifyKO, code, out+errOut)
	assert.Contains(t, errOut, "first bad index 7")
}
