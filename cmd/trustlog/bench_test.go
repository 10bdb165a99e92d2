package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
)

// tinyBench are flags that make every workload finish in seconds.
var tinyBench = []string{"--n", "600", "--engines", "1,2", "--batches", "100", "--write-txs", "20", "--rate", "200",
	"--duration", "500ms", "--backlogs", "1000,3000", "--sink-n", "500", "--ledger-n", "400", "--json"}

// runBench runs every workload on store ("" for the SQLite default) and
// checks the report: every section filled with real measurements, and the
// scratch places dropped.
func runBench(t *testing.T, store string) {
	t.Helper()
	plot := filepath.Join(t.TempDir(), "bench.png")
	args := []string{"bench", "--plot", plot}
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

	png, err := os.ReadFile(plot)
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "a PNG file")
}

func TestBenchSQLite(t *testing.T) {
	t.Parallel()
	runBench(t, "")
}

func TestBenchPostgres(t *testing.T) {
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

// TestBenchFrom re-reports a saved run: the same tables, a plot, and a
// clear error for a file that is not a bench report.
func TestBenchFrom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	code, out, errOut := cli(t, ctx, "", "bench", "ledger", "--ledger-n", "100", "--json")
	require.Equal(t, 0, code, errOut)
	saved := filepath.Join(t.TempDir(), "run.json")
	require.NoError(t, os.WriteFile(saved, []byte(out), 0o600))
	plot := filepath.Join(t.TempDir(), "p.png")
	code, out, errOut = cli(t, ctx, "", "bench", "--from", saved, "--plot", plot)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "leaves/s")
	_, err := os.Stat(plot)
	assert.NoError(t, err)

	notJSON := filepath.Join(t.TempDir(), "x.json")
	require.NoError(t, os.WriteFile(notJSON, []byte("hello"), 0o600))
	code, _, errOut = cli(t, ctx, "", "bench", "--from", notJSON)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "not the JSON of trustlog bench")
}
