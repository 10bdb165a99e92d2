package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPruneCLI: record → relay with a ledger → prune with an archive →
// verify still passes and reports the horizon; the archive holds every
// deleted operation.
func TestPruneCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	store := "sqlite:" + filepath.Join(dir, "prune.db")
	logKey := filepath.Join(dir, "log")
	code, _, errOut := cli(t, ctx, "", "keygen", "--name", "trustlog.test/log", "--out", logKey)
	require.Equal(t, 0, code, errOut)
	code, _, errOut = cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	var in strings.Builder
	for i := 0; i < 12; i++ {
		in.WriteString(opLine(i, "prune-obj") + "\n")
	}
	code, _, errOut = cli(t, ctx, in.String(), "--store", store, "record")
	require.Equal(t, 0, code, errOut)

	code, _, _ = cli(t, ctx, "", "--store", store, "prune")
	assert.Equal(t, exitUsage, code, "--older-than is required")
	code, _, errOut = cli(t, ctx, "", "--store", store, "prune", "--older-than", "0s")
	assert.Equal(t, 1, code, "an empty log is not pruned without --without-ledger")
	assert.Contains(t, errOut, "the log is empty")

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan int)
	go func() {
		code, _, _ := cli(t, rctx, "", "--store", store, "--sink", "memory://", "relay", "--poll", "10ms",
			"--ledger-key-file", logKey+".key")
		done <- code
	}()
	require.Eventually(t, func() bool {
		_, out, _ := cli(t, ctx, "", "--store", store, "prune", "--older-than", "0s", "--dry-run", "--json")
		var res struct{ Deleted int }
		return json.Unmarshal([]byte(out), &res) == nil && res.Deleted == 12
	}, 30*time.Second, 50*time.Millisecond, "all published and sequenced")
	cancel()
	require.Equal(t, 0, <-done)

	archive := filepath.Join(dir, "archive.jsonl")
	code, out, errOut := cli(t, ctx, "", "--store", store, "prune", "--older-than", "0s", "--batch", "5", "--archive", archive)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "deleted            12")
	assert.Contains(t, out, "pruned below leaf  12 (was 0)")
	f, err := os.Open(archive)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines := 0
	for ; sc.Scan(); lines++ {
		var a struct {
			LeafIndex int64  `json:"leaf_index"`
			OpID      string `json:"op_id"`
			DOID      string `json:"doid"`
			OpHash    string `json:"op_hash"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &a))
		assert.Equal(t, int64(lines), a.LeafIndex)
		assert.Equal(t, "10.1000/prune-obj", a.DOID)
		assert.NotEmpty(t, a.OpID)
		assert.Len(t, a.OpHash, 64)
	}
	assert.Equal(t, 12, lines)

	code, out, errOut = cli(t, ctx, "", "--store", store, "verify", "--key", logKey+".pub")
	require.Equal(t, 0, code, out+errOut)
	assert.Contains(t, out, "pruned below leaf  12")
	assert.Contains(t, out, "findings           0")
}
