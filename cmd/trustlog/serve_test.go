package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
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

// startServe runs `trustlog serve` with args on 127.0.0.1:0 until the
// test ends and returns its base URL, the log line that says it serves,
// its stderr and a function that stops it and returns its exit code.
func startServe(t *testing.T, ctx context.Context, args ...string) (string, serveLine, *testenv.Buffer, func() int) {
	t.Helper()
	sctx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	var out, stderr testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(sctx, append(args, "--addr", "127.0.0.1:0"), strings.NewReader(""), &out, &stderr)
	}()
	var l serveLine
	exited := -1
	require.Eventually(t, func() bool {
		select {
		case exited = <-done:
			return true
		default:
		}
		for _, line := range strings.Split(stderr.String(), "\n") {
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving" {
				return true
			}
		}
		return false
	}, testenv.Patience(t), 10*time.Millisecond, "serve logs its address")
	require.Equal(t, -1, exited, "serve exited before serving: %s", stderr.String())
	base := strings.TrimSuffix(l.Console, "/console/")
	require.True(t, strings.HasPrefix(base, "http://127.0.0.1:"), base)
	return base, l, &stderr, func() int {
		stop() // as SIGINT does
		code := <-done
		assert.Empty(t, out.String())
		return code
	}
}

// serveLine is the log line of `trustlog serve` that says where it
// serves.
type serveLine struct {
	Msg, Console, Checkpoint, Origin string
	PublicLog                        string `json:"public_log"`
	Writes                           bool
}

// httpGet sends method to url and returns the response and its body.
func httpDo(t *testing.T, ctx context.Context, method, url, auth string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// keyedServeStore makes the log's key pair dir/log.key and dir/log.pub
// (trustlog keygen, named name) and returns serveStore's store of n
// operations signed with it, and the keys' path without extension.
func keyedServeStore(t *testing.T, ctx context.Context, dir, name string, n int) (store, logKey string) {
	t.Helper()
	logKey = filepath.Join(dir, "log")
	code, _, errOut := cli(t, ctx, "", "keygen", "--name", name, "--out", logKey)
	require.Equal(t, exitOK, code, errOut)
	return serveStore(t, ctx, dir, logKey, n), logKey
}

// TestServeCommand: `trustlog serve` on 127.0.0.1:0 logs where it
// listens, serves the signed checkpoint (verified with the log's key
// file), the key, the console, /metrics, /healthz and /readyz with the
// security headers, and exits 0 when interrupted.
func TestServeCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	store, logKey := keyedServeStore(t, ctx, dir, "trustlog.test/served-log", 5)

	base, l, stderr, stop := startServe(t, ctx, "--log-format", "json", "--store", store, "serve", "--log-key", logKey+".pub")
	assert.Equal(t, "trustlog.test/served-log", l.Origin)
	assert.Equal(t, base+"/checkpoint", l.Checkpoint)
	assert.False(t, l.Writes, "no admin token: read-only")
	get := func(method, path string) (*http.Response, string) { return httpDo(t, ctx, method, base+path, "") }

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
	resp, body = get(http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Contains(t, body, `"ready":true`)
	resp, body = get(http.MethodGet, "/metrics")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "go_goroutines")
	resp, _ = get(http.MethodGet, "/")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/console/", resp.Header.Get("Location"))
	resp, body = get(http.MethodGet, "/console/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, `id="count-pending">5<`, "the console's overview: nothing relayed")
	assert.Contains(t, body, `id="tree-size">5<`, "all sequenced")
	assert.Contains(t, body, "read-only")
	// The operation pages keep their own policy through the command's
	// outer handler: their script and style sheet from this origin.
	for path, code := range map[string]int{"/op/not-an-op-id": http.StatusBadRequest, "/op/0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b": http.StatusNotFound} {
		resp, body = get(http.MethodGet, path)
		assert.Equal(t, code, resp.StatusCode, path)
		assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"), path)
		assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "default-src 'none'; script-src 'self'; style-src 'self';"), path)
		assert.Contains(t, body, `<link rel="stylesheet" href="../assets/page.`, path)
	}
	for _, path := range []string{"/healthz", "/checkpoint", "/metrics"} {
		resp, _ = get(http.MethodPost, path)
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, path)
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"), path)
		assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "default-src 'none'"), path)
	}
	resp, _ = get(http.MethodPost, "/console/requeue")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "no writes without --admin-token-file")

	assert.Equal(t, exitOK, stop(), stderr.String())
	assert.Contains(t, stderr.String(), `"msg":"server stopped"`)
	assert.NotContains(t, stderr.String(), "PRIVATE+KEY")
}

// TestServeAdminToken: with --admin-token-file (or its environment
// variable) the console takes writes from the token's holder, and
// without --log-key it serves the console alone.
func TestServeAdminToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	store, _ := keyedServeStore(t, ctx, dir, "trustlog.test/admin-log", 3)
	token := "serve-admin-token-0123456789abcdef"
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))

	base, l, stderr, stop := startServe(t, ctx, "--log-format", "json", "--store", store, "serve", "--admin-token-file", tokenFile)
	assert.True(t, l.Writes)
	assert.Equal(t, "off (no --log-key)", l.PublicLog)
	resp, _ := httpDo(t, ctx, http.MethodGet, base+"/checkpoint", "")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "no public log without --log-key")
	resp, body := httpDo(t, ctx, http.MethodGet, base+"/console/", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, `id="login"`)
	resp, _ = httpDo(t, ctx, http.MethodPost, base+"/console/requeue?op_id=x", "Bearer wrong-token")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, body = httpDo(t, ctx, http.MethodPost, base+"/console/requeue", "Bearer "+token)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "the token is accepted; the request names no operation")
	assert.Contains(t, body, "op_id")
	assert.Equal(t, exitOK, stop(), stderr.String())
	assert.Contains(t, stderr.String(), "wrong bearer token")
	assert.NotContains(t, stderr.String(), token, "the token never reaches a log")
}

// TestServeUsage: a missing or wrong key or token file, a bad address and extra
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
	short := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("too-short\n"), 0o600))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--store", store, "serve", "--admin-token-file", filepath.Join(dir, "none")}, "--admin-token-file"},
		{[]string{"--store", store, "serve", "--admin-token-file", short}, "at least 16 characters"},
		{[]string{"--store", store, "serve", "--sample-every", "10ms"}, "--sample-every"},
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

// TestServeDemoStore: the store `trustlog demo --keep` leaves is served
// as the demo says: the console shows what the demo relayed and the
// public log serves its signed checkpoint and proofs.
func TestServeDemoStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	code, out, errOut := cli(t, ctx, "", "demo", "-n", "60", "--keep")
	require.Equal(t, exitOK, code, errOut)
	m := regexp.MustCompile(`trustlog --store (\S+) serve --log-key (\S+)\n`).FindStringSubmatch(out)
	require.NotNil(t, m, "the demo prints the serve command: %s", out)
	store, pub := m[1], m[2]
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(pub)) })
	committed := regexp.MustCompile(`committed and published: +(\d+) of`).FindStringSubmatch(out)
	require.NotNil(t, committed, out)

	base, l, stderr, stop := startServe(t, ctx, "--log-format", "json", "--store", store, "serve", "--log-key", pub)
	assert.Equal(t, "demo.trustlog.example/log", l.Origin)
	_, body := httpDo(t, ctx, http.MethodGet, base+"/console/", "")
	assert.Contains(t, body, `id="count-published">`+committed[1]+`<`, "the console shows what the demo published")
	resp, body := httpDo(t, ctx, http.MethodGet, base+"/checkpoint", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.True(t, strings.HasPrefix(body, "demo.trustlog.example/log\n"+committed[1]+"\n"), body)
	id := regexp.MustCompile(`op_id (\S+) `).FindStringSubmatch(out)
	require.NotNil(t, id, out)
	resp, body = httpDo(t, ctx, http.MethodGet, base+"/proof/"+id[1], "")
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.True(t, strings.HasPrefix(body, "c2sp.org/tlog-proof@v1\n"), body)
	assert.Equal(t, exitOK, stop(), stderr.String())
}
