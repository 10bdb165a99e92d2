package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/ledger"
)

// serveStore makes a store at dir/serve.db with n recorded operations, all
// sequenced and covered by a checkpoint signed with keygen's logKey.key.
func serveStore(t *testing.T, ctx context.Context, dir, logKey string, n int) string {
	t.Helper()
	store := "sqlite:" + filepath.Join(dir, "serve.db")
	code, _, errOut := cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, exitOK, code, errOut)
	var in strings.Builder
	for i := 0; i < n; i++ {
		in.WriteString(opLine(i, fmt.Sprintf("serve-%d", i%3)) + "\n")
	}
	code, _, errOut = cli(t, ctx, in.String(), "--store", store, "record")
	require.Equal(t, exitOK, code, errOut)

	s, err := core.OpenStore(ctx, store)
	require.NoError(t, err)
	defer s.Close()
	got, err := core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	require.Equal(t, n, got)
	skey, err := os.ReadFile(logKey + ".key")
	require.NoError(t, err)
	seq, err := ledger.NewSequencer(ledger.Config{Key: string(skey)})
	require.NoError(t, err)
	cp, err := seq.Checkpoint(ctx, s.(ledger.Storage))
	require.NoError(t, err)
	require.NotNil(t, cp)
	return store
}

// TestServeCommand: `trustlog serve` on 127.0.0.1:0 logs where it
// listens, serves the signed checkpoint (verified with the log's key
// file), the key and /healthz with the security headers, and exits 0 when
// interrupted.
func TestServeCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	logKey := filepath.Join(dir, "log")
	code, _, errOut := cli(t, ctx, "", "keygen", "--name", "trustlog.test/served-log", "--out", logKey)
	require.Equal(t, exitOK, code, errOut)
	store := serveStore(t, ctx, dir, logKey, 5)

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var out, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(sctx, []string{"--log-format", "json", "--store", store, "serve", "--addr", "127.0.0.1:0", "--log-key", logKey + ".pub"},
			strings.NewReader(""), &out, &stderr)
	}()
	// The listening address is in the log line that says it serves.
	var base, origin string
	exited := -1
	require.Eventually(t, func() bool {
		select {
		case exited = <-done:
			return true
		default:
		}
		for _, line := range strings.Split(stderr.String(), "\n") {
			var l struct{ Msg, URL, Origin string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving the public log" {
				base, origin = strings.TrimSuffix(l.URL, "/checkpoint"), l.Origin
				return true
			}
		}
		return false
	}, testenv.Patience(t), 10*time.Millisecond, "serve logs its address")
	require.Equal(t, -1, exited, "serve exited before serving: %s", stderr.String())
	require.True(t, strings.HasPrefix(base, "http://127.0.0.1:"), base)
	assert.Equal(t, "trustlog.test/served-log", origin)

	get := func(method, path string) (*http.Response, string) {
		req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	resp, body := get(http.MethodGet, "/checkpoint")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	pub, err := os.ReadFile(logKey + ".pub")
	require.NoError(t, err)
	v, err := note.NewVerifier(strings.TrimSpace(string(pub)))
	require.NoError(t, err)
	n, err := note.Open([]byte(body), note.VerifierList(v))
	require.NoError(t, err, "the served checkpoint verifies with the log's key file")
	assert.True(t, strings.HasPrefix(n.Text, "trustlog.test/served-log\n5\n"), n.Text)

	resp, body = get(http.MethodGet, "/.well-known/trustlog/log.pub")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, string(pub), body, "the key file, as keygen wrote it")
	resp, body = get(http.MethodGet, "/healthz")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok\n", body)
	// The operation pages keep their own policy through the command's
	// outer handler: their script and style sheet from this origin.
	for path, code := range map[string]int{"/op/not-an-op-id": http.StatusBadRequest, "/op/0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b": http.StatusNotFound} {
		resp, body = get(http.MethodGet, path)
		assert.Equal(t, code, resp.StatusCode, path)
		assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"), path)
		assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "default-src 'none'; script-src 'self'; style-src 'self';"), path)
		assert.Contains(t, body, `<link rel="stylesheet" href="../assets/page.`, path)
	}
	for _, path := range []string{"/healthz", "/checkpoint"} {
		resp, _ = get(http.MethodPost, path)
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, path)
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"), path)
		assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "default-src 'none'"), path)
	}

	stop() // as SIGINT does
	assert.Equal(t, exitOK, <-done, stderr.String())
	assert.Contains(t, stderr.String(), `"msg":"public log server stopped"`)
	assert.NotContains(t, stderr.String(), "PRIVATE+KEY")
	assert.Empty(t, out.String())
}

// TestServeUsage: a missing or wrong key, a bad address and extra
// arguments are usage errors (exit 2) naming what is wrong, before
// anything is served.
func TestServeUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	logKey, other := filepath.Join(dir, "log"), filepath.Join(dir, "other")
	for _, k := range []struct{ name, out string }{{"trustlog.test/usage-log", logKey}, {"trustlog.test/usage-log", other}} {
		code, _, errOut := cli(t, ctx, "", "keygen", "--name", k.name, "--out", k.out)
		require.Equal(t, exitOK, code, errOut)
	}
	store := serveStore(t, ctx, dir, logKey, 2)
	secret, err := os.ReadFile(logKey + ".key")
	require.NoError(t, err)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--store", store, "serve"}, "--log-key"},
		{[]string{"--store", store, "serve", "--log-key", filepath.Join(dir, "none.pub")}, "none.pub"},
		{[]string{"--store", store, "serve", "--log-key", logKey + ".key"}, "not a note-format public key"},
		{[]string{"--store", store, "serve", "--log-key", other + ".pub"}, "does not verify the store's latest checkpoint"},
		{[]string{"--store", store, "serve", "--log-key", logKey + ".pub", "--addr", "127.0.0.1:notaport"}, "--addr"},
		{[]string{"--store", store, "serve", "--log-key", logKey + ".pub", "extra"}, "trustlog serve"},
		{[]string{"serve", "--log-key", logKey + ".pub"}, "no store"},
	} {
		code, out, errOut := cli(t, ctx, "", c.args...)
		assert.Equal(t, exitUsage, code, "%v: %s", c.args, errOut)
		assert.Contains(t, errOut, c.want, c.args)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line on stderr: %q", errOut)
		assert.NotContains(t, out+errOut, strings.TrimSpace(string(secret)), "a private key is never printed")
	}
}
