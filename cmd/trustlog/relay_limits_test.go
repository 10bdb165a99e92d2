package main

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/go-trustlog/trustlog/core"
)

// TestRelayWorkersBounded: --workers above core.MaxWorkers (or below 0)
// is a usage error (exit 2) naming the flag, before the relay opens
// anything or starts a loop. (100,000 workers used to start: 265 MB, 117,014 warning lines
// and 77.6 s to exit after SIGTERM.)
func TestRelayWorkersBounded(t *testing.T) {
	t.Parallel()
	store := "sqlite:" + filepath.Join(t.TempDir(), "relay.db")
	for _, tc := range []struct {
		workers string
		want    string
	}{
		{"100000", "--workers 100000"},
		{strconv.Itoa(core.MaxWorkers + 1), "--workers " + strconv.Itoa(core.MaxWorkers+1)},
		{"-1", "--workers -1"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		type result struct {
			code           int
			stdout, stderr string
		}
		done := make(chan result, 1)
		go func() {
			code, out, errOut := cli(t, ctx, "", "--store", store, "--sink", "memory://", "relay", "--migrate",
				"--workers", tc.workers, "--shutdown-timeout", "1s")
			done <- result{code, out, errOut}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(time.Minute):
			cancel() // it is relaying: stop it, without waiting for it
			t.Fatalf("relay --workers %s started instead of refusing", tc.workers)
		}
		cancel()
		assert.Equal(t, exitUsage, r.code, "--workers %s: %s", tc.workers, r.stderr)
		assert.Contains(t, r.stderr, tc.want)
		assert.Contains(t, r.stderr, strconv.Itoa(core.MaxWorkers), "the error says the bound")
		assert.Empty(t, r.stdout)
	}
}

// TestRelayEngineFlagErrors: an engine setting core rejects is a usage
// error that names the relay's flag, not the Go field.
func TestRelayEngineFlagErrors(t *testing.T) {
	t.Parallel()
	store := "sqlite:" + filepath.Join(t.TempDir(), "relay.db")
	for _, tc := range []struct{ args, want []string }{
		{[]string{"--batch", "20000"}, []string{"--batch 20000", "10000"}},
		{[]string{"--sequence-batch", "200000"}, []string{"--sequence-batch 200000", "100000"}},
		{[]string{"--lease", "10s", "--publish-timeout", "6s"}, []string{"--publish-timeout 6s"}},
		{[]string{"--probe-interval", "-1s"}, []string{"--probe-interval -1s"}},
		{[]string{"--shutdown-timeout", "-1s"}, []string{"--shutdown-timeout -1s"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		code, _, errOut := cli(t, ctx, "", append([]string{"--store", store, "--sink", "memory://", "relay"}, tc.args...)...)
		cancel()
		assert.Equal(t, exitUsage, code, "%v: %s", tc.args, errOut)
		for _, w := range tc.want {
			assert.Contains(t, errOut, w, "%v", tc.args)
		}
		assert.NotContains(t, errOut, "invalid configuration", "%v names the flag, not the field", tc.args)
	}
}
