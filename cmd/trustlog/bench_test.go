package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-trustlog/trustlog/internal/testenv"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/benchplot"
)

// tinyBench are flags that make every workload finish in seconds.
var tinyBench = []string{"--n", "600", "--engines", "1,2", "--batches", "100", "--write-txs", "20", "--rate", "200",
	"--duration", "500ms", "--backlogs", "1000,3000", "--sink-n", "500", "--ledger-n", "400", "--json"}

// runBench runs every workload on store ("" for the SQLite default) and
// checks the report: every section filled with real measurements, and the
// scratch places dropped.
func runBench(t *testing.T, store string) {
	t.Helper()
	args := []string{"bench"}
	if store != "" {
		args = append([]string{"--store", store}, args...)
	}
	code, out, errOut := cli(t, context.Background(), "", append(args, tinyBench...)...)
	require.Equal(t, 0, code, errOut)
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)

	require.Len(t, rep.Write, 2)
	for _, w := range rep.Write {
		assert.Positive(t, w.PlainRate)
		assert.Positive(t, w.RecordRate)
		assert.InDelta(t, w.PlainRate/w.RecordRate, w.Overhead, 1e-9)
	}
	require.Len(t, rep.Drain, 2)
	for _, d := range rep.Drain {
		assert.Equal(t, 600, d.N)
		assert.Positive(t, d.RawRate)
		assert.Positive(t, d.Rate)
		assert.InDelta(t, d.Rate/d.RawRate, d.Ratio, 1e-9)
	}
	require.NotEmpty(t, rep.Latency)
	for _, l := range rep.Latency {
		assert.Positive(t, l.N)
		assert.LessOrEqual(t, l.P50, l.P90)
		assert.LessOrEqual(t, l.P90, l.P99)
		assert.LessOrEqual(t, l.P99, l.Max)
	}
	require.Len(t, rep.Backlog, 2)
	for _, b := range rep.Backlog {
		assert.Positive(t, b.Rate)
		assert.Positive(t, b.RawRate)
		assert.Positive(t, b.PeakMB, "the relay process's peak RSS")
	}
	require.Len(t, rep.Sinks, 3)
	for _, s := range rep.Sinks {
		assert.Positive(t, s.Rate, s.Sink)
	}
	require.NotNil(t, rep.Ledger)
	assert.Positive(t, rep.Ledger.Rate)

	// The run draws (go run ./internal/tools/benchplot FILE.json).
	saved, plot := filepath.Join(t.TempDir(), "run.json"), filepath.Join(t.TempDir(), "run.png")
	require.NoError(t, os.WriteFile(saved, []byte(out), 0o600))
	plotted, err := benchplot.ReadReport(saved)
	require.NoError(t, err)
	require.NoError(t, benchplot.WriteReport(plot, plotted))
	png, err := os.ReadFile(plot)
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "a PNG file")
}

func TestBenchSQLite(t *testing.T) {
	testenv.Long(t)
	t.Parallel()
	runBench(t, "")
}

func TestBenchPostgres(t *testing.T) {
	testenv.Long(t)
	dsn := postgrestest.Server.Need(t)
	t.Parallel()
	scratch := func() (n int) {
		require.NoError(t, postgrestest.DB(t).QueryRow(`SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'tlbench_%'`).Scan(&n))
		return n
	}
	before := scratch()
	runBench(t, dsn)
	assert.Equal(t, before, scratch(), "scratch schemas left behind")
}

func TestBenchMySQL(t *testing.T) {
	testenv.Long(t)
	url := mysqltest.NewDatabase(t)
	t.Parallel()
	runBench(t, url)
	var n int
	require.NoError(t, mysqltest.DB(t, url).QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()`).Scan(&n))
	assert.Zero(t, n, "scratch tables left behind")
}

func TestBenchTables(t *testing.T) {
	t.Parallel()
	code, out, errOut := cli(t, context.Background(), "", "bench", "write", "ledger", "--write-txs", "10", "--ledger-n", "100")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "RecordTx time / plain")
	assert.Contains(t, out, "leaves/s")
	assert.NotContains(t, out, "drain:", "only the named workloads run")
}

func TestBenchBadInput(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"bench", "drian"},
		{"bench", "--n", "0"},
		{"bench", "--engines", "1,0"},
		{"bench", "--batches", "100000"},
		{"bench", "--duration", "-1s"},
		{"--store", "redis://127.0.0.1/0", "bench", "write"},
	} {
		code, _, errOut := cli(t, context.Background(), "", args...)
		assert.Equal(t, 2, code, "%v: %s", args, errOut)
	}
}

// TestBenchFrom re-reports a saved run: the same tables, and a
// clear error for a file that is not a bench report.
func TestBenchFrom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	code, out, errOut := cli(t, ctx, "", "bench", "ledger", "--ledger-n", "100", "--json")
	require.Equal(t, 0, code, errOut)
	saved := filepath.Join(t.TempDir(), "run.json")
	require.NoError(t, os.WriteFile(saved, []byte(out), 0o600))
	code, out, errOut = cli(t, ctx, "", "bench", "--from", saved)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "leaves/s")

	notJSON := filepath.Join(t.TempDir(), "x.json")
	require.NoError(t, os.WriteFile(notJSON, []byte("hello"), 0o600))
	code, _, errOut = cli(t, ctx, "", "bench", "--from", notJSON)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "not the JSON of trustlog bench")
}

// fabricatedBench is a report with rows on both sides of every target.
func fabricatedBench() *benchReport {
	return &benchReport{
		Store: "postgres://app@db/app", Go: "go1.26.0", CPUs: 2,
		Write: []benchWrite{
			{PerTx: 1, Txs: 1000, PlainRate: 10600, RecordRate: 10000, Overhead: 1.06},
			{PerTx: 100, Txs: 500, PlainRate: 126000, RecordRate: 100000, Overhead: 1.26},
			{PerTx: 100, Txs: 500, PlainRate: 110400, RecordRate: 100000, Overhead: 1.104}, // prints 1.10: met
		},
		Drain: []benchDrain{
			{Batch: 1000, Engines: 1, N: 200000, RawRate: 200000, Rate: 18200, Ratio: 0.091},
			{Batch: 1000, Engines: 2, N: 200000, RawRate: 200000, Rate: 18500, Ratio: 0.0925},
			{Batch: 1000, Engines: 4, N: 200000, RawRate: 200000, Rate: 13200, Ratio: 0.066},
		},
		Latency: []benchLatency{
			{Mode: "notify", N: 5000, Rate: 1000, Achieved: 465, P50: 1.5, P90: 2.9, P99: 39.1, Max: 80},
			{Mode: "poll", N: 5000, Rate: 1000, Achieved: 990, P50: 52.8, P90: 95.7, P99: 106.2, Max: 114.3},
		},
		Backlog: []benchBacklog{
			{Pending: 10000, RawRate: 21000, Rate: 18800, Ratio: 0.9, PeakMB: 90},
			{Pending: 100000, RawRate: 20000, Rate: 18000, Ratio: 0.9, PeakMB: 95},
			{Pending: 1000000, RawRate: 7100, Rate: 7100, Ratio: 1, PeakMB: 120.4},
		},
		Sinks:  []benchSink{{Sink: "memory", N: 50000, Rate: 30000, Ratio: 1}},
		Ledger: &benchLedger{N: 50000, Rate: 31822},
	}
}

// TestBenchTargetsMet: every row with a target says whether this run met
// it, with its figure against the target, in the tables and in the JSON;
// rows without one (polling latency, sinks, ledger) say nothing of it.
func TestBenchTargetsMet(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	a := &app{stdout: &out}
	require.NoError(t, a.report(fabricatedBench(), benchOpts{}))
	text := out.String()
	row := func(prefix string) string { // the line whose first fields are prefix's
		t.Helper()
		want := strings.Fields(prefix)
		for _, l := range strings.Split(text, "\n") {
			if f := strings.Fields(l); len(f) >= len(want) && slices.Equal(f[:len(want)], want) {
				return l
			}
		}
		t.Fatalf("no row %q in:\n%s", prefix, text)
		return ""
	}
	for _, tc := range []struct{ row, verdict string }{
		{"1 1000", "met (1.06 ≤ 1.10)"},
		{"100 500 126000", "NOT MET (1.26 > 1.10)"},
		{"100 500 110400", "met (1.10 ≤ 1.10)"},
		{"1000 1", "- none"},
		{"1000 2", "1.02 met (1.02 ≥ 1.00)"},
		{"1000 4", "0.73 NOT MET (0.73 < 1.00)"},
		{"notify", "NOT MET (39.1 ≥ 25.0)"},
		{"poll", "none"},
		{"10000", "- none"},
		{"100000", "1.06 met (1.06 ≤ 1.10)"},
		{"1000000", "1.34 NOT MET (1.34 > 1.10)"},
		{"50000 31822", "NOT MET (31822 < 50000)"},
	} {
		got, want := strings.Fields(row(tc.row)), strings.Fields(tc.verdict)
		assert.True(t, len(got) >= len(want) && slices.Equal(got[len(got)-len(want):], want), "row %q: want %q in\n%s", tc.row, tc.verdict, text)
	}
	for _, header := range []string{"ops/tx", "batch", "wake-up", "pending", "leaves"} {
		assert.True(t, strings.HasSuffix(row(header), "  vs target"), "a column per table with targets: %q", row(header))
	}
	assert.Contains(t, text, "(target: time ≤ 1.1 × plain)")
	assert.Contains(t, text, "(target with wake-on-commit: p99 < 25 ms")
	assert.Contains(t, text, "(target: N engines ≥ 1.0 × one)")
	assert.NotContains(t, row("memory"), "met", "the sinks rows have no target")
	assert.True(t, strings.HasSuffix(text, "\ntargets: 4 of 9 rows with a target met; 5 NOT MET\n"), text)

	out.Reset()
	require.NoError(t, a.report(fabricatedBench(), benchOpts{asJSON: true}))
	var rep struct {
		Write   []struct{ Target *benchTarget }
		Drain   []struct{ Target *benchTarget }
		Latency []struct{ Target *benchTarget }
		Backlog []struct{ Target *benchTarget }
		Ledger  struct{ Target *benchTarget }
		Sinks   []map[string]any
		Targets benchTally
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	assert.Equal(t, benchTarget{Metric: "record_tx_time_over_plain", Op: "<=", Value: 1.1, Measured: 1.26, Met: false}, *rep.Write[1].Target)
	assert.Equal(t, benchTarget{Metric: "record_tx_time_over_plain", Op: "<=", Value: 1.1, Measured: 1.1, Met: true}, *rep.Write[2].Target)
	assert.Nil(t, rep.Drain[0].Target, "one engine is the baseline")
	assert.Equal(t, benchTarget{Metric: "relay_over_one_engine", Op: ">=", Value: 1, Measured: 0.73, Met: false}, *rep.Drain[2].Target)
	assert.Equal(t, benchTarget{Metric: "p99_ms", Op: "<", Value: 25, Measured: 39.1, Met: false}, *rep.Latency[0].Target)
	assert.Nil(t, rep.Latency[1].Target, "polling has no target")
	assert.Nil(t, rep.Backlog[0].Target, "the smallest backlog is the baseline")
	assert.Equal(t, benchTarget{Metric: "relay_peak_rss_over_smallest", Op: "<=", Value: 1.1, Measured: 1.34, Met: false}, *rep.Backlog[2].Target)
	assert.Equal(t, benchTarget{Metric: "leaves_per_s", Op: ">=", Value: 50000, Measured: 31822, Met: false}, *rep.Ledger.Target)
	assert.NotContains(t, rep.Sinks[0], "target")
	assert.Equal(t, benchTally{Met: 4, NotMet: 5}, rep.Targets)
	assert.Contains(t, out.String(), `"target": {`+"\n"+`        "metric": "relay_over_one_engine",`)

	// A saved report is judged again: verdicts it holds do not count.
	stale := fabricatedBench()
	stale.Drain[2].Target = &benchTarget{Metric: "relay_over_bare", Op: ">=", Value: 0.5, Measured: 0.66, Met: true}
	stale.Targets = &benchTally{Met: 9}
	saved, err := json.Marshal(stale)
	require.NoError(t, err)
	from := filepath.Join(t.TempDir(), "saved.json")
	require.NoError(t, os.WriteFile(from, saved, 0o600))
	out.Reset()
	require.NoError(t, a.benchFrom(benchOpts{from: from}))
	assert.Contains(t, out.String(), "NOT MET (0.73 < 1.00)")
	assert.Contains(t, out.String(), "targets: 4 of 9 rows with a target met; 5 NOT MET")

	// Only SQLite: no sequencer target.
	sqlite := fabricatedBench()
	sqlite.Store = "sqlite:app.db"
	out.Reset()
	require.NoError(t, a.report(sqlite, benchOpts{}))
	assert.Contains(t, out.String(), "targets: 4 of 8 rows with a target met; 4 NOT MET")

	// Every target met.
	ok := fabricatedBench()
	ok.Write, ok.Drain, ok.Latency, ok.Backlog = ok.Write[:1], ok.Drain[:2], ok.Latency[1:], ok.Backlog[:2]
	ok.Ledger.Rate = 52000
	out.Reset()
	require.NoError(t, a.report(ok, benchOpts{}))
	assert.True(t, strings.HasSuffix(out.String(), "\ntargets: 4 of 4 rows with a target met; all met\n"), out.String())
	assert.NotContains(t, out.String(), "NOT MET")
}
