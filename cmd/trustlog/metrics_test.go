package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// metricsTestAddr returns a local address nothing listens on, for
// --metrics-addr.
func metricsTestAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// metricsTestGet returns the status and body of a GET of url, or 0 when
// nothing answers (yet).
func metricsTestGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// readyzBody decodes a /readyz answer.
func readyzBody(t *testing.T, body string) readiness {
	t.Helper()
	var r readiness
	require.NoError(t, json.Unmarshal([]byte(body), &r), body)
	return r
}

// TestRelayMetricsAndHealth: a relay with --metrics-addr serves latency
// histograms with buckets that fit them (sub-millisecond up, not
// OpenTelemetry's default 0, 5, 10 … 10000), its service name
// ("trustlog", not "unknown_service:trustlog"), the Go runtime's metrics,
// /healthz and /readyz.
func TestRelayMetricsAndHealth(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := migrated(t, "sqlite:"+filepath.Join(t.TempDir(), "metrics.db"))
	var in strings.Builder
	for i := range 20 {
		in.WriteString(opLine(i, fmt.Sprintf("metrics-%d", i%4)) + "\n")
	}
	code, _, errOut := cli(t, ctx, in.String(), "--store", store, "record")
	require.Equal(t, 0, code, errOut)

	addr := metricsTestAddr(t)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		code, _, _ := cli(t, rctx, "", "--store", store, "--sink", "memory://", "relay", "--batch", "5", "--poll", "10ms",
			"--metrics-addr", addr)
		done <- code
	}()
	published := regexp.MustCompile(`(?m)^trustlog_operations_published_total\{[^}]*\} 20$`)
	var metrics string
	require.Eventually(t, func() bool {
		code, body := metricsTestGet(t, "http://"+addr+"/metrics")
		metrics = body
		return code == http.StatusOK && published.MatchString(body)
	}, testenv.Patience(t), 10*time.Millisecond, "the relay publishes the 20 operations")

	for _, h := range []string{"read_duration", "publish_duration", "advance_duration", "commit_to_ack"} {
		assert.Regexp(t, `(?m)^trustlog_`+h+`_seconds_bucket\{[^}]*le="0\.0005"[^}]*\} \d+$`, metrics, "%s has sub-millisecond buckets", h)
		assert.Regexp(t, `(?m)^trustlog_`+h+`_seconds_bucket\{[^}]*le="30"[^}]*\} \d+$`, metrics, h)
		assert.NotRegexp(t, `(?m)^trustlog_`+h+`_seconds_bucket\{[^}]*le="10000"`, metrics, "%s: not the default buckets", h)
	}
	assert.Regexp(t, `(?m)^target_info\{[^}]*service_name="trustlog"[^}]*\} 1$`, metrics)
	assert.NotContains(t, metrics, "unknown_service")
	assert.Regexp(t, `(?m)^go_goroutines \d+$`, metrics, "Go runtime metrics")
	assert.Regexp(t, `(?m)^go_gc_duration_seconds_count \d+$`, metrics)

	code, body := metricsTestGet(t, "http://"+addr+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	code, body = metricsTestGet(t, "http://"+addr+"/readyz")
	assert.Equal(t, http.StatusOK, code, body)
	r := readyzBody(t, body)
	assert.True(t, r.Ready)
	assert.Equal(t, map[string]readyCheck{"store": {State: "ok"}, "schema": {State: "ok"}, "sink": {State: "ok"}}, r.Checks)

	stop()
	assert.Equal(t, 0, <-done)
}

// readyzOf asks h's /readyz.
func readyzOf(t *testing.T, h *relayHealth) (int, readiness) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.readyz(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	return rec.Code, readyzBody(t, rec.Body.String())
}

// TestReadyzStore: /readyz is 503, naming the check that fails, until the
// relay has opened its store and sink, on a store never migrated (without
// creating anything in it), on one with a migration not applied and on a
// store that does not answer (closed); 200 on a migrated one.
func TestReadyzStore(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	code, r := readyzOf(t, &relayHealth{})
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.False(t, r.Ready)
	for _, name := range []string{"store", "schema", "sink"} {
		assert.Equal(t, "unknown", r.Checks[name].State, name)
	}
	rec := httptest.NewRecorder()
	(&relayHealth{}).healthz(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusOK, rec.Code, "alive, if not ready")
	assert.Equal(t, "ok\n", rec.Body.String())

	open := func(name string, migrate bool) (core.Store, *relayHealth) {
		store, err := core.OpenStore(ctx, "sqlite:"+filepath.Join(t.TempDir(), name))
		require.NoError(t, err)
		t.Cleanup(func() { store.Close() })
		if migrate {
			require.NoError(t, store.Migrate(ctx))
		}
		sink := memory.New(memory.Faults{})
		c, err := core.NewClient(store, sink, core.Config{})
		require.NoError(t, err)
		e, err := c.Engine()
		require.NoError(t, err)
		h := &relayHealth{}
		h.attach(store, sink, e)
		return store, h
	}
	tables := func(store core.Store) []string {
		rows, err := store.(interface{ DB() *sql.DB }).DB().QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
		require.NoError(t, err)
		defer rows.Close()
		var names []string
		for rows.Next() {
			var n string
			require.NoError(t, rows.Scan(&n))
			names = append(names, n)
		}
		require.NoError(t, rows.Err())
		return names
	}

	// Never migrated.
	store, h := open("never.db", false)
	code, r = readyzOf(t, h)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.False(t, r.Ready)
	assert.Equal(t, "ok", r.Checks["store"].State)
	assert.Equal(t, "fail", r.Checks["schema"].State)
	assert.Contains(t, r.Checks["schema"].Error, "migrate up")
	assert.Equal(t, "ok", r.Checks["sink"].State)
	assert.Empty(t, tables(store), "the check created nothing")

	// Migrated: ready. Then a migration undone behind the relay's back.
	store, h = open("migrated.db", true)
	code, r = readyzOf(t, h)
	assert.Equal(t, http.StatusOK, code, r)
	assert.True(t, r.Ready)
	ns := store.(interface{ Names() sqlstore.Names }).Names()
	db := store.(interface{ DB() *sql.DB }).DB()
	var last string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT name FROM `+ns.Migrations+` ORDER BY id DESC LIMIT 1`).Scan(&last))
	_, err := db.ExecContext(ctx, `DELETE FROM `+ns.Migrations+` WHERE name = ?`, last)
	require.NoError(t, err)
	h = &relayHealth{}
	h.attach(store, memory.New(memory.Faults{}), nil)
	code, r = readyzOf(t, h)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "fail", r.Checks["schema"].State)
	assert.Contains(t, r.Checks["schema"].Error, last, "names the migration not applied")
	assert.Equal(t, "unknown", r.Checks["sink"].State, "no engine yet")

	// Closed: the store does not answer.
	store, h = open("closed.db", true)
	code, _ = readyzOf(t, h)
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, store.Close())
	code, r = readyzOf(t, h)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.False(t, r.Ready)
	assert.Equal(t, "fail", r.Checks["store"].State)
	assert.Contains(t, r.Checks["store"].Error, "closed")
	assert.Equal(t, "unknown", r.Checks["schema"].State)
}

// TestReadyzSinkOutage: /readyz is 503 while the engine holds its sink
// to be unavailable, saying since when, and 200 once the sink is back.
func TestReadyzSinkOutage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := core.OpenStore(ctx, "sqlite:"+filepath.Join(t.TempDir(), "outage.db"))
	require.NoError(t, err)
	defer store.Close()
	require.NoError(t, store.Migrate(ctx))
	sink := memory.New(memory.Faults{FailUntil: time.Now().Add(time.Hour)})
	c, err := core.NewClient(store, sink, core.Config{Engine: core.EngineConfig{
		PollInterval: 10 * time.Millisecond, ProbeInterval: 50 * time.Millisecond}})
	require.NoError(t, err)
	e, err := c.Engine()
	require.NoError(t, err)
	h := &relayHealth{}
	h.attach(store, sink, e)
	code, r := readyzOf(t, h)
	require.Equal(t, http.StatusOK, code, r)

	require.NoError(t, c.Record(ctx, conformance.NewOp("readyz-outage", 1)))
	require.NoError(t, e.Start(ctx))
	defer e.Stop(ctx)
	require.Eventually(t, func() bool { code, r = readyzOf(t, h); return code == http.StatusServiceUnavailable },
		30*time.Second, 5*time.Millisecond)
	assert.False(t, r.Ready)
	assert.Equal(t, "fail", r.Checks["sink"].State)
	assert.Contains(t, r.Checks["sink"].Error, "unavailable")
	require.NotNil(t, r.Checks["sink"].Since)
	assert.Equal(t, "ok", r.Checks["store"].State)
	assert.Equal(t, "ok", r.Checks["schema"].State)

	sink.SetFaults(memory.Faults{})
	require.Eventually(t, func() bool { code, r = readyzOf(t, h); return code == http.StatusOK },
		30*time.Second, 5*time.Millisecond)
	assert.True(t, r.Ready)
	require.Eventually(t, func() bool { return e.Stats().Published == 1 }, testenv.Patience(t), 5*time.Millisecond)
}

// TestReadyzQueueTrigger: on PostgreSQL a relay whose store's queue
// trigger is disabled is not ready, the schema check saying why, and
// `trustlog status` warns; both are clear again once it is enabled.
func TestReadyzQueueTrigger(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := postgrestest.NewSchema(t)
	store, err := core.OpenStore(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	require.NoError(t, store.Migrate(ctx))
	ns := store.(interface{ Names() sqlstore.Names }).Names()
	db := store.(interface{ DB() *sql.DB }).DB()
	trigger := func(state string) {
		_, err := db.ExecContext(ctx, `ALTER TABLE `+ns.Op+` `+state+` TRIGGER `+ns.Prefix+`trustlog_queue`)
		require.NoError(t, err)
	}
	check := func() (int, readiness) {
		h := &relayHealth{}
		h.attach(store, memory.New(memory.Faults{}), nil)
		return readyzOf(t, h)
	}

	trigger("DISABLE")
	code, r := check()
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "fail", r.Checks["schema"].State)
	assert.Contains(t, r.Checks["schema"].Error, "trustlog_queue is disabled")
	code, out, errOut := cli(t, ctx, "", "--store", url, "status")
	require.Equal(t, 0, code, out+errOut)
	assert.Contains(t, errOut, "trustlog status: warning: the operation table's insert trigger trustlog_queue is disabled")

	trigger("ENABLE")
	_, r = check()
	assert.Equal(t, "ok", r.Checks["schema"].State)
	code, out, errOut = cli(t, ctx, "", "--store", url, "status")
	require.Equal(t, 0, code, out+errOut)
	assert.NotContains(t, errOut, "warning")
}
