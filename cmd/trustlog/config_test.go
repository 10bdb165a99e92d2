package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "trustlog.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// migratedStore returns a migrated SQLite store URL.
func migratedStore(t *testing.T) string {
	t.Helper()
	store := "sqlite:" + filepath.Join(t.TempDir(), "cfg.db")
	code, _, errOut := cli(t, context.Background(), "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	return store
}

// TestConfigPrecedence: flags win over the environment, the environment
// over the file; a command's section applies to that command.
func TestConfigPrecedence(t *testing.T) {
	ctx := context.Background()
	fromFile, fromEnv, fromFlag := migratedStore(t), migratedStore(t), migratedStore(t)
	// Tell the three stores apart by how many operations each holds.
	for i, store := range []string{fromFile, fromEnv, fromFlag} {
		var in strings.Builder
		for j := 0; j <= i; j++ {
			in.WriteString(opLine(j, "cfg") + "\n")
		}
		code, _, errOut := cli(t, ctx, in.String(), "--store", store, "record")
		require.Equal(t, 0, code, errOut)
	}
	maxSeq := func(args ...string) float64 {
		t.Helper()
		code, out, errOut := cli(t, ctx, "", append(args, "status", "--json")...)
		require.Equal(t, 0, code, errOut)
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
		return doc["max_seq"].(float64)
	}
	cfg := writeConfig(t, "store: "+fromFile+"\nlog-level: warn\n")

	assert.Equal(t, 1.0, maxSeq("--config", cfg), "the file alone")
	t.Setenv("TRUSTLOG_STORE", fromEnv)
	assert.Equal(t, 2.0, maxSeq("--config", cfg), "the environment over the file")
	assert.Equal(t, 3.0, maxSeq("--config", cfg, "--store", fromFlag), "a flag over both")
	t.Setenv("TRUSTLOG_STORE", "")
	os.Unsetenv("TRUSTLOG_STORE")
	t.Setenv("TRUSTLOG_CONFIG", cfg)
	assert.Equal(t, 1.0, maxSeq(), "TRUSTLOG_CONFIG names the file")

	// A section applies to its command: dead list --limit from the file.
	cfg = writeConfig(t, "store: "+fromFile+"\ndead:\n  list:\n    limit: 0\n")
	code, _, errOut := cli(t, ctx, "", "--config", cfg, "dead", "list")
	require.Equal(t, 2, code, "limit 0 from the file must reach dead list")
	assert.Contains(t, errOut, "limit")
	code, _, errOut = cli(t, ctx, "", "--config", cfg, "dead", "list", "--limit", "5")
	assert.Equal(t, 0, code, "the flag wins over the section: %s", errOut)
	code, _, errOut = cli(t, ctx, "", "--config", cfg, "status")
	assert.Equal(t, 0, code, "a section for another command does not apply: %s", errOut)
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct{ name, body, want string }{
		{"unknown top-level key", "stor: sqlite:x.db\n", `unknown key "stor"`},
		{"unknown section", "relai:\n  batch: 5\n", `"relai" is not a command`},
		{"unknown key in a section", "relay:\n  bacth: 5\n", `unknown key "relay.bacth"`},
		{"a command flag at the top", "batch: 5\n", `unknown key "batch"`},
		{"bad value", "relay:\n  lease: soon\n", "relay.lease"},
		{"not YAML", "store: [unclosed\n", "config file"},
		{"empty value", "store:\n", "store: no value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, tc.body)
			code, _, errOut := cli(t, ctx, "", "--config", cfg, "relay")
			assert.Equal(t, 2, code, errOut)
			assert.Contains(t, errOut, tc.want)
		})
	}
	code, _, errOut := cli(t, ctx, "", "--config", filepath.Join(t.TempDir(), "missing.yaml"), "status")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "missing.yaml")

	// An empty file is no configuration at all.
	code, _, errOut = cli(t, ctx, "", "--config", writeConfig(t, ""), "status")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "no store", "an empty file sets nothing: %s", errOut)
}

// TestStatusWatch refreshes a given number of times, as text blocks and as
// JSON lines with the settle rate from the second refresh on.
func TestStatusWatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := migratedStore(t)
	code, out, errOut := cli(t, ctx, "", "--store", store, "status", "--watch", "--interval", "10ms", "--count", "3", "--json")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	for i, l := range lines {
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &doc), l)
		_, hasRate := doc["settled_per_second"]
		assert.Equal(t, i > 0, hasRate, "line %d: %s", i, l)
	}
	code, out, errOut = cli(t, ctx, "", "--store", store, "status", "-w", "--interval", "10ms", "--count", "2")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, 2, strings.Count(out, "positions"), out)
	assert.Equal(t, 1, strings.Count(out, "rate"), out)

	// Interrupting a watch is its normal end.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan int)
	go func() {
		code, _, _ := cli(t, cctx, "", "--store", store, "status", "--watch", "--interval", "10ms")
		done <- code
	}()
	cancel()
	assert.Equal(t, 0, <-done)

	code, _, errOut = cli(t, ctx, "", "--store", store, "status", "--watch", "--interval", "0s")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--interval")
}
