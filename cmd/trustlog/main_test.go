package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// cli runs the command line in-process and returns its exit code, standard
// output and standard error.
func cli(t *testing.T, ctx context.Context, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(ctx, append([]string{"--log-format", "json"}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func opLine(i int, doid string) string {
	return fmt.Sprintf(`{"op_source":"DOIP","op_type":"Op.Create","doid":"10.1000/%s","do_prefix":"10.1000","op_actor":"alice","producer_id":"cli-test","request_body_hash":"%064x"}`, doid, i)
}

func TestDemo(t *testing.T) {
	t.Parallel()
	code, out, errOut := cli(t, context.Background(), "", "demo", "-n", "300", "--rollback-every", "3")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "committed and published:             200 of 200")
	assert.Contains(t, out, "rolled back and never published:     100 of 100")
	assert.Contains(t, out, "messages with a valid hash and signature: 200 of 200")
	// Off a terminal, the progress counters end as log lines.
	assert.Contains(t, errOut, `"msg":"progress","phase":"recorded","done":200`)
	assert.Contains(t, errOut, `"msg":"progress","phase":"relayed","done":200`)
}

func TestRecordRelayStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := "sqlite:" + filepath.Join(t.TempDir(), "cli.db")
	code, _, errOut := cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `"msg":"progress","phase":"migrations","done":[1-9]`, errOut)
	code, out, _ := cli(t, ctx, "", "--store", store, "migrate", "status")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "applied")
	code, _, errOut = cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, `"msg":"progress","phase":"migrations","done":0`, "nothing left to apply")

	var in strings.Builder
	for i := 0; i < 50; i++ {
		in.WriteString(opLine(i, fmt.Sprintf("obj-%d", i%5)) + "\n")
	}
	in.WriteString("# comments and blank lines are skipped\n\n")
	code, out, errOut = cli(t, ctx, in.String(), "--store", store, "record", "--batch", "7")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 50)
	var first map[string]string
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
	assert.Len(t, first["op_id"], 36)
	assert.Len(t, first["op_hash"], 64)

	// One bad line anywhere: nothing is recorded, the error names it.
	bad := opLine(100, "ok") + "\n" + strings.Replace(opLine(101, "x"), `"do_prefix":"10.1000"`, `"do_prefix":"10.2000"`, 1) + "\n"
	code, _, errOut = cli(t, ctx, bad, "--store", store, "record")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "line 2: doid")
	code, _, errOut = cli(t, ctx, `{"op_source":"DOIP","surprise":1}`, "--store", store, "record")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `unknown field "surprise"`)

	code, out, _ = cli(t, ctx, "", "--store", store, "status", "--json")
	require.Equal(t, 0, code)
	var st struct{ Counts map[string]int64 }
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, int64(50), st.Counts["pending"], "the bad input added nothing")

	// Sequenced, not yet published: the partitions' backlogs hold them all.
	sst, err := core.OpenStore(ctx, store)
	require.NoError(t, err)
	_, err = core.SequenceAll(ctx, sst, 0)
	require.NoError(t, err)
	require.NoError(t, sst.Close())
	code, out, _ = cli(t, ctx, "", "--store", store, "status", "--json")
	require.Equal(t, 0, code)
	var bl struct{ Partitions []struct{ Backlog int64 } }
	require.NoError(t, json.Unmarshal([]byte(out), &bl))
	assert.Equal(t, int64(50), backlogSum(t, bl.Partitions), "status --json: a backlog per partition")
	code, out, _ = cli(t, ctx, "", "--store", store, "cursor", "status")
	require.Equal(t, 0, code)
	assert.Equal(t, int64(50), backlogColumn(t, out), "cursor status: a backlog column")

	// relay runs until its context ends (SIGINT/SIGTERM in main).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	metricsAddr := ln.Addr().String()
	ln.Close()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan int)
	go func() {
		code, _, _ := cli(t, rctx, "", "--store", store, "--sink", "memory://", "relay", "--batch", "10", "--poll", "10ms",
			"--metrics-addr", metricsAddr)
		done <- code
	}()
	deadline := time.Now().Add(testenv.Patience(t))
	for {
		_, out, _ = cli(t, ctx, "", "--store", store, "status", "--json")
		require.NoError(t, json.Unmarshal([]byte(out), &st))
		if st.Counts["published"] == 50 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), "trustlog_operations_published_total", "--metrics-addr serves Prometheus metrics")
	cancel()
	assert.Equal(t, 0, <-done, "a signalled relay exits 0")
	assert.Equal(t, int64(50), st.Counts["published"])

	code, out, _ = cli(t, ctx, "", "--store", store, "cursor", "status")
	require.Equal(t, 0, code)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	assert.Len(t, lines, 1+16, "a header and one line per partition: %s", out)
	assert.Contains(t, lines[0], "cursor")
	assert.Contains(t, out, "-", "the stopped relay gave its partitions back")
	assert.Zero(t, backlogColumn(t, out), "everything published: no backlog")
	code, out, _ = cli(t, ctx, "", "--store", store, "dead", "list")
	require.Equal(t, 0, code)
	assert.Equal(t, 1, strings.Count(out, "\n"), "only the header: nothing is dead")
	code, _, _ = cli(t, ctx, "", "--store", store, "dead", "requeue")
	assert.Equal(t, exitUsage, code)
	code, out, _ = cli(t, ctx, "", "--store", store, "dead", "requeue", "--all")
	require.Equal(t, 0, code)
	assert.Equal(t, "requeued 0 operation(s)\n", out)
}

// backlogSum adds up the partitions' backlogs of status --json.
func backlogSum(t *testing.T, parts []struct{ Backlog int64 }) int64 {
	t.Helper()
	require.Len(t, parts, 16)
	var n int64
	for _, p := range parts {
		n += p.Backlog
	}
	return n
}

// backlogColumn adds up the backlog column of cursor status.
func backlogColumn(t *testing.T, out string) int64 {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Equal(t, []string{"partition", "cursor", "backlog", "generation", "owner"}, strings.Fields(lines[0]))
	var n int64
	for _, l := range lines[1:] {
		v, err := strconv.ParseInt(strings.Fields(l)[2], 10, 64)
		require.NoError(t, err, l)
		n += v
	}
	return n
}

func TestEnvironmentAndUsage(t *testing.T) {
	ctx := context.Background()
	store := "sqlite:" + filepath.Join(t.TempDir(), "env.db")
	t.Setenv("TRUSTLOG_STORE", store)
	code, _, errOut := cli(t, ctx, "", "migrate", "up")
	require.Equal(t, 0, code, errOut)
	code, _, errOut = cli(t, ctx, "", "--store", "nosuch://x", "status")
	assert.Equal(t, exitUsage, code, "the flag wins over the environment")
	assert.Contains(t, errOut, "registered: file, mariadb, mysql, postgres, postgresql, sqlite")
	code, _, _ = cli(t, ctx, "", "--log-level", "loud", "status")
	assert.Equal(t, exitUsage, code)
	t.Setenv("TRUSTLOG_STORE", "")
	code, _, errOut = cli(t, ctx, "", "status")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "no store")
}

func TestSecretsStayOutOfOutput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const secret = "s3cr3t-Pa55"
	for _, args := range [][]string{
		{"--store", "postgresx://app:" + secret + "@localhost/db", "status"},
		{"--store", "sqlite:" + filepath.Join(t.TempDir(), "x.db") + "?password=" + secret, "status"},
		{"--log-level", "debug", "--store", "sqlite:" + filepath.Join(t.TempDir(), "y.db"), "--sink", "memory://?token=" + secret, "relay"},
	} {
		code, out, errOut := cli(t, ctx, "", args...)
		assert.NotEqual(t, 0, code, "%v", args)
		assert.NotContains(t, out+errOut, secret, "%v", args)
	}
	key := filepath.Join(t.TempDir(), "bad.key")
	require.NoError(t, os.WriteFile(key, []byte("PRIVATE+KEY+x+00000000+"+secret), 0o600))
	code, out, errOut := cli(t, ctx, "", "--sign-key-file", key, "--store", "sqlite:"+filepath.Join(t.TempDir(), "z.db"), "record")
	assert.Equal(t, exitUsage, code)
	assert.NotContains(t, out+errOut, secret)
}

func TestHelpReadsWell(t *testing.T) {
	t.Parallel()
	root := (&app{}).rootCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" || c.Name() == "help" {
			continue // cobra's own
		}
		for _, sub := range append(c.Commands(), c) {
			assert.NotEmpty(t, sub.Short, sub.CommandPath())
			assert.NotEmpty(t, sub.Example, "%s has an example", sub.CommandPath())
		}
	}
	code, out, _ := cli(t, context.Background(), "", "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "Exit codes")
}

// TestMain lets the test binary stand in for the trustlog binary when a
// command under test starts a copy of itself (bench starts relays).
func TestMain(m *testing.M) {
	if os.Getenv(cliChildEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// relayUntilPublished runs `trustlog --store store args…` (a relay) until
// status counts published operations, stops it as a signal would, and
// returns its exit code and standard error.
func relayUntilPublished(t *testing.T, ctx context.Context, store string, published int64, args ...string) (int, string) {
	t.Helper()
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, _, errOut := cli(t, rctx, "", append([]string{"--store", store}, args...)...)
		done <- result{code, errOut}
	}()
	require.Eventually(t, func() bool {
		_, out, _ := cli(t, ctx, "", "--store", store, "status", "--json")
		var st struct{ Counts map[string]int64 }
		return json.Unmarshal([]byte(out), &st) == nil && st.Counts["published"] == published
	}, testenv.Patience(t), 20*time.Millisecond, "%d operations published", published)
	stop()
	r := <-done
	return r.code, r.stderr
}
