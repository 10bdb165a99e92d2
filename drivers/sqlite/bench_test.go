package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/internal/benchkit"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

// benchN is the backlog drained per measurement (TRUSTLOG_BENCH_N, default
// 100000).
func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("TRUSTLOG_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

func openSeeded(b *testing.B, n int) (string, *sqlite.Store) { return openSeededT(b, n) }

func openSeededT(b testing.TB, n int) (string, *sqlite.Store) {
	b.Helper()
	url := "sqlite:" + filepath.Join(b.TempDir(), "bench.db")
	s, err := sqlite.Open(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	if err := benchkit.Seed(context.Background(), s, n, 2000); err != nil {
		b.Fatal(err)
	}
	return url, s
}

// rawLoop is the bare claim+settle loop a developer would write by hand on
// the same table: claim with UPDATE … RETURNING on the pending index, read
// the columns, mark the rows published. No engine, no sink, no encoding.
func rawLoop(s *sqlite.Store) benchkit.RawLoop {
	db, op := s.DB(), s.Names().Op
	claim := `UPDATE ` + op + ` SET state = 1, claim_token = ?, attempts = attempts + 1, due_at = ?
		WHERE seq IN (SELECT seq FROM ` + op + ` INDEXED BY operation_pending WHERE state = 0 ORDER BY seq LIMIT ?)
		RETURNING ` + sqlstore.Columns
	var token int64
	return func(ctx context.Context, batch int) (int, error) {
		token++
		rows, err := db.QueryContext(ctx, claim, token, time.Now().Add(time.Minute).UnixMicro(), batch)
		if err != nil {
			return 0, err
		}
		cols := make([]any, 24)
		for i := range cols {
			cols[i] = new(any)
		}
		var seqs []string
		for rows.Next() {
			if err := rows.Scan(cols...); err != nil {
				rows.Close()
				return 0, err
			}
			seqs = append(seqs, fmt.Sprint(*(cols[0].(*any))))
		}
		if err := rows.Close(); err != nil || len(seqs) == 0 {
			return 0, err
		}
		_, err = db.ExecContext(ctx, `UPDATE `+op+` SET state = 3, published_at = ?, claim_token = NULL
			WHERE claim_token = ? AND seq IN (`+strings.Join(seqs, ",")+`)`, time.Now().UnixMicro(), token)
		return len(seqs), err
	}
}

// BenchmarkDrain drains a backlog of pending operations with the engine and
// with the raw loop on fresh copies of the same table, in the same run, and
// reports both rates and their ratio.
//
//	go test ./drivers/sqlite -run '^$' -bench Drain -benchtime 3x
func BenchmarkDrain(b *testing.B) {
	n := benchN()
	for _, batch := range []int{100, 1000} {
		for _, workers := range []int{1, 4} {
			b.Run(fmt.Sprintf("batch=%d/workers=%d", batch, workers), func(b *testing.B) {
				var raw, eng benchkit.DrainResult
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					url, s := openSeeded(b, n)
					loops := []benchkit.RawLoop{rawLoop(s)}
					for len(loops) < workers {
						o, err := sqlite.Open(context.Background(), url)
						if err != nil {
							b.Fatal(err)
						}
						b.Cleanup(func() { o.Close() })
						loops = append(loops, rawLoop(o))
					}
					b.StartTimer()
					r, err := benchkit.RawDrain(context.Background(), loops, batch)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if r.N != n {
						b.Fatalf("raw loop drained %d of %d", r.N, n)
					}
					raw.N, raw.Elapsed = raw.N+r.N, raw.Elapsed+r.Elapsed

					url, s = openSeeded(b, n)
					stores := []core.Store{s}
					for len(stores) < workers {
						o, err := sqlite.Open(context.Background(), url)
						if err != nil {
							b.Fatal(err)
						}
						b.Cleanup(func() { o.Close() })
						stores = append(stores, o)
					}
					b.StartTimer()
					e, err := benchkit.EngineDrain(context.Background(), stores, n, batch)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					eng.N, eng.Elapsed = eng.N+e.N, eng.Elapsed+e.Elapsed
				}
				b.ReportMetric(raw.Rate(), "raw-ops/s")
				b.ReportMetric(eng.Rate(), "engine-ops/s")
				b.ReportMetric(eng.Rate()/raw.Rate(), "ratio")
			})
		}
	}
}
