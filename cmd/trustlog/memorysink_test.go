package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVerifySinkRefusesMemory: verify-sink is a new process, and a
// memory:// sink lives only in the process that relayed to it, so the
// check could only report everything missing. It is a usage error (exit
// 2, one line) that says why and what to use instead, before the store is
// even opened, whichever way the sink URL is given.
func TestVerifySinkRefusesMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := "sqlite:" + filepath.Join(t.TempDir(), "vs.db")
	code, _, errOut := cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, exitOK, code, errOut)
	config := filepath.Join(t.TempDir(), "trustlog.yaml")
	require.NoError(t, os.WriteFile(config, []byte("sink: memory://\n"), 0o600))

	for name, args := range map[string][]string{
		"flag":            {"--store", store, "--sink", "memory://", "verify-sink"},
		"with options":    {"--store", store, "--sink", "memory://?latency=1ms", "verify-sink", "--json"},
		"upper case":      {"--store", store, "--sink", "MEMORY://", "verify-sink"},
		"config file":     {"--store", store, "--config", config, "verify-sink"},
		"store not found": {"--store", "sqlite:" + filepath.Join(t.TempDir(), "none", "x.db"), "--sink", "memory://", "verify-sink"},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := cli(t, ctx, "", args...)
			assert.Equal(t, exitUsage, code, errOut)
			assert.Empty(t, out)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line on stderr: %q", errOut)
			assert.True(t, strings.HasPrefix(errOut, "trustlog verify-sink: a memory:// sink lives only inside the process that relayed to it"), errOut)
			assert.Contains(t, errOut, "report every published operation missing", "why")
			assert.Contains(t, errOut, "verify a Kafka or Pulsar sink", "what to use instead")
		})
	}

	// Any other sink gets past the check: an unknown scheme is its own
	// usage error, a sink that cannot be read back is refused as before.
	code, _, errOut = cli(t, ctx, "", "--store", store, "--sink", "nosuch://x", "verify-sink")
	assert.Equal(t, exitUsage, code, errOut)
	assert.NotContains(t, errOut, "memory://")
}

// TestVerifySinkRefusesMemoryFromEnv: TRUSTLOG_SINK=memory:// is refused
// the same way (not parallel: it sets the environment).
func TestVerifySinkRefusesMemoryFromEnv(t *testing.T) {
	store := "sqlite:" + filepath.Join(t.TempDir(), "vsenv.db")
	code, _, errOut := cli(t, context.Background(), "", "--store", store, "migrate", "up")
	require.Equal(t, exitOK, code, errOut)
	t.Setenv("TRUSTLOG_SINK", "memory://")
	code, out, errOut := cli(t, context.Background(), "", "--store", store, "verify-sink")
	assert.Equal(t, exitUsage, code, errOut)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "trustlog verify-sink: a memory:// sink lives only inside the process")
}

// TestRelayWarnsOfMemorySink: a relay to memory:// still runs and
// publishes (the demo and the tests use it) but says once, at start, as a
// warning, that nothing it publishes outlives the process; a relay to any
// other sink does not.
func TestRelayWarnsOfMemorySink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := "sqlite:" + filepath.Join(t.TempDir(), "warn.db")
	code, _, errOut := cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, exitOK, code, errOut)
	var in strings.Builder
	for i := range 20 {
		in.WriteString(opLine(i, fmt.Sprintf("warn-%d", i%3)) + "\n")
	}
	code, _, errOut = cli(t, ctx, in.String(), "--store", store, "record")
	require.Equal(t, exitOK, code, errOut)

	code, stderr := relayUntilPublished(t, ctx, store, 20, "--sink", "memory://", "relay", "--batch", "5", "--poll", "10ms")
	assert.Equal(t, exitOK, code, stderr)
	assert.Equal(t, 1, strings.Count(stderr, memorySinkWarning), "one warning: %s", stderr)
	first := strings.SplitN(stderr, "\n", 2)[0]
	var line struct{ Level, Msg string }
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, memorySinkWarning) {
			require.NoError(t, json.Unmarshal([]byte(l), &line), l)
		}
	}
	assert.Equal(t, "WARN", line.Level)
	assert.Equal(t, memorySinkWarning, line.Msg)
	assert.Contains(t, first, memorySinkWarning, "logged at start, before anything else")
	assert.Contains(t, memorySinkWarning, "nothing outlives it")

	// Another sink: no such warning (the relay stops at once on a
	// context that has ended).
	stopped, stop := context.WithCancel(ctx)
	stop()
	code, _, errOut = cli(t, stopped, "", "--store", store, "--sink", "kafka://127.0.0.1:1/warn", "relay")
	assert.Equal(t, exitOK, code, errOut)
	assert.NotContains(t, errOut, "memory://")
}
