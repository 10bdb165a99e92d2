package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/benchkit"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

var target = benchkit.Target{
	NewURL: func(tb testing.TB) string { return postgrestest.NewSchema(tb) },
	Open:   func(tb testing.TB, url string) core.Store { return postgrestest.Open(tb, url) },
	Raw:    rawLoop,
}

// rawLoop is the bare claim+settle loop on the same table: a SKIP LOCKED
// claim returning the columns, then one UPDATE marking the rows published.
func rawLoop(cs core.Store) benchkit.RawLoop {
	s := cs.(*postgres.Store)
	db, op := s.DB(), s.Names().Op
	claim := `UPDATE ` + op + ` SET state = 1, claim_token = $1, attempts = attempts + 1, due_at = now() + interval '1 minute'
		WHERE seq IN (SELECT seq FROM ` + op + ` WHERE state = 0 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING ` + sqlstore.Columns
	settle := `UPDATE ` + op + ` SET state = 3, published_at = now(), claim_token = NULL WHERE claim_token = $1 AND seq = ANY($2)`
	var token int64
	return func(ctx context.Context, batch int) (int, error) {
		token++
		rows, err := db.QueryContext(ctx, claim, token, batch)
		if err != nil {
			return 0, err
		}
		seqs, err := benchkit.ScanSeqs(rows)
		if err != nil || len(seqs) == 0 {
			return 0, err
		}
		_, err = db.ExecContext(ctx, settle, token, seqs)
		return len(seqs), err
	}
}

// BenchmarkDrain: engine vs the raw loop, same run (see benchkit.Drain).
//
//	go test ./drivers/postgres -run '^$' -bench Drain -benchtime 1x -count 3
func BenchmarkDrain(b *testing.B) {
	benchkit.Drain(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_N", 200_000), []int{100, 1000}, []int{1, 4})
}

// BenchmarkLatency: commit → sink ack at a steady 1000 ops/s, woken by
// NOTIFY and, with notify=false, polling.
//
//	go test ./drivers/postgres -run '^$' -bench Latency -benchtime 1x
func BenchmarkLatency(b *testing.B) {
	d := time.Duration(benchkit.EnvInt("TRUSTLOG_BENCH_SECONDS", 10)) * time.Second
	for _, mode := range []string{"notify", "poll"} {
		b.Run(mode, func(b *testing.B) {
			benchkit.LatencyBench(b, func(b *testing.B) core.Store {
				url := postgrestest.NewSchema(b)
				if mode == "poll" {
					url += "&notify=false"
				}
				return postgrestest.Open(b, url)
			}, 1000, d, core.EngineConfig{})
		})
	}
}
