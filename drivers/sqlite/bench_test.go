package sqlite_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/benchkit"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

var target = benchkit.Target{
	NewURL: func(tb testing.TB) string { return sqlitetest.URL(tb) },
	Open:   func(tb testing.TB, url string) core.Store { return sqlitetest.Open(tb, url) },
	Raw:    rawLoop,
}

// rawLoop is the bare claim+settle loop a developer would write by hand on
// the same table: claim with UPDATE … RETURNING on the pending index, read
// the columns, mark the rows published. No engine, no sink, no encoding.
func rawLoop(cs core.Store) benchkit.RawLoop {
	s := cs.(*sqlite.Store)
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
		seqs, err := benchkit.ScanSeqs(rows)
		if err != nil || len(seqs) == 0 {
			return 0, err
		}
		list := make([]string, len(seqs))
		for i, s := range seqs {
			list[i] = strconv.FormatInt(s, 10)
		}
		_, err = db.ExecContext(ctx, `UPDATE `+op+` SET state = 3, published_at = ?, claim_token = NULL
			WHERE claim_token = ? AND seq IN (`+strings.Join(list, ",")+`)`, time.Now().UnixMicro(), token)
		return len(seqs), err
	}
}

// BenchmarkDrain: engine vs the raw loop, same run (see benchkit.Drain).
//
//	go test ./drivers/sqlite -run '^$' -bench Drain -benchtime 1x -count 3
func BenchmarkDrain(b *testing.B) {
	benchkit.Drain(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_N", 100_000), []int{100, 1000}, []int{1, 4})
}

// BenchmarkLatency: commit → sink ack at a steady 1000 ops/s, polling.
//
//	go test ./drivers/sqlite -run '^$' -bench Latency -benchtime 1x
func BenchmarkLatency(b *testing.B) {
	d := time.Duration(benchkit.EnvInt("TRUSTLOG_BENCH_SECONDS", 10)) * time.Second
	benchkit.LatencyBench(b, func(b *testing.B) core.Store { return sqlitetest.Open(b, sqlitetest.URL(b)) },
		1000, d, core.EngineConfig{})
}
