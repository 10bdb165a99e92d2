package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/sqlstore/storetest"
	"github.com/go-trustlog/trustlog/ledger"
)

// storedHashes returns every stored hash of the store's first n leaves,
// computed from the operations.
func storedHashes(t *testing.T, s *storetest.Store, n int) []tlog.Hash {
	t.Helper()
	_, mem := leafTree(t, s, n)
	out := make([]tlog.Hash, tlog.StoredHashCount(int64(n)))
	for i := range out {
		out[i] = mem[int64(i)]
	}
	return out
}

func indexes(from, to int64) []int64 {
	out := make([]int64, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// TestHashRuns: PostgreSQL keeps the stored hashes in runs of at most 60
// (migration 00008). Appends of 50 (runs that do not start on a multiple
// of 60) read back every hash; the migration moves a table of one row
// per hash into runs and back, and a hash missing from the old table
// stays missing; the tamper tests' helpers replace and cut hashes in
// runs.
func TestHashRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.Open(t, postgrestest.NewSchema(t))
	const n = 130
	record(t, s, 0, n)
	got, err := core.SequenceAll(ctx, s, 50)
	require.NoError(t, err)
	require.Equal(t, n, got)
	want := storedHashes(t, s, n)
	count := int64(len(want))
	all := indexes(0, count)
	read, err := s.ReadHashes(ctx, all)
	require.NoError(t, err)
	assert.Equal(t, want, read, "every stored hash, read from runs")

	var rows, longest int
	require.NoError(t, s.DB().QueryRow(s.SQL(t, `SELECT COUNT(*), MAX(octet_length(hashes)) / 32 FROM {{.HashRun}}`)).Scan(&rows, &longest))
	assert.LessOrEqual(t, longest, 60, "a run holds 60 hashes at most")
	assert.Less(t, rows, int(count)/20, "%d stored hashes in %d rows", count, rows)
	var first []int64
	r, err := s.DB().Query(s.SQL(t, `SELECT first_idx FROM {{.HashRun}} ORDER BY first_idx`))
	require.NoError(t, err)
	for r.Next() {
		var f int64
		require.NoError(t, r.Scan(&f))
		first = append(first, f)
	}
	require.NoError(t, r.Err())
	for _, leaves := range []int64{50, 100} {
		assert.Contains(t, first, tlog.StoredHashIndex(0, leaves), "an append's runs start at its own first stored hash (leaf %d)", leaves)
	}

	// Down: one row per hash, as before 00008.
	runDown(t, s, "00008_hash_runs")
	var inRows int64
	require.NoError(t, s.DB().QueryRow(s.SQL(t, `SELECT COUNT(*) FROM {{.Hash}}`)).Scan(&inRows))
	assert.Equal(t, count, inRows, "00008's down migration writes a row per hash")
	const missing = 77
	s.Exec(t, `DELETE FROM {{.Hash}} WHERE idx = ?`, missing)

	// Up again: runs, with the hole where the row was.
	require.NoError(t, s.Migrate(ctx))
	_, err = s.ReadHashes(ctx, []int64{missing})
	assert.ErrorIs(t, err, ledger.ErrTampered, "a hash missing before the migration is missing after it")
	rest := append(indexes(0, missing), indexes(missing+1, count)...)
	read, err = s.ReadHashes(ctx, rest)
	require.NoError(t, err)
	assert.Equal(t, append(append([]tlog.Hash{}, want[:missing]...), want[missing+1:]...), read, "the migration moved every other hash")
	checkLog(t, s, n)

	// The tamper tests' helpers.
	zero := make([]byte, 32)
	require.NoError(t, s.SetStoredHash(ctx, 100, zero))
	read, err = s.ReadHashes(ctx, []int64{99, 100, 101})
	require.NoError(t, err)
	assert.Equal(t, []tlog.Hash{want[99], {}, want[101]}, read, "SetStoredHash replaces one hash")
	require.NoError(t, s.DeleteStoredHashes(ctx, 130))
	_, err = s.ReadHashes(ctx, []int64{130})
	assert.ErrorIs(t, err, ledger.ErrTampered, "DeleteStoredHashes cuts from the index on")
	read, err = s.ReadHashes(ctx, []int64{129})
	require.NoError(t, err)
	assert.Equal(t, want[129], read[0], "and keeps what is below it")
}

// TestReadHashRunsByIndex: reading a few stored hashes (a proof, the
// sequencer's first batch) steps back on the runs' primary key once per
// index, in a log of two million stored hashes, before and after ANALYZE:
// never a scan of every run.
func TestReadHashRunsByIndex(t *testing.T) {
	t.Parallel()
	s := storetest.Open(t, postgrestest.NewSchema(t))
	names := s.Names()
	s.Exec(t, "ALTER TABLE "+names.HashRun+" SET (autovacuum_enabled = false)")
	s.Exec(t, "INSERT INTO "+names.HashRun+" (first_idx, hashes) SELECT g * 60, decode(repeat('ab', 1920), 'hex') FROM generate_series(0, 33333) AS g")
	q, err := s.Render(s.Dialect().Queries.ReadHashRuns)
	require.NoError(t, err)
	want := []int64{5, 100, 1000, 50000, 1999999}
	for _, when := range []string{"without statistics", "analyzed"} {
		if when == "analyzed" {
			s.Exec(t, "ANALYZE "+names.HashRun)
		}
		rows, err := s.DB().Query("EXPLAIN (ANALYZE, COSTS OFF) "+q, want)
		require.NoError(t, err)
		var plan strings.Builder
		for rows.Next() {
			var line string
			require.NoError(t, rows.Scan(&line))
			plan.WriteString(line + "\n")
		}
		require.NoError(t, rows.Err())
		rows.Close()
		assert.NotContains(t, plan.String(), "Seq Scan", "%s: reading %d hashes reads every run:\n%s", when, len(want), plan.String())
		got, err := s.ReadHashes(context.Background(), want)
		require.NoError(t, err, when)
		assert.Len(t, got, len(want), when)
	}
}
