package mysql_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/internal/benchkit"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

var target = benchkit.Target{
	NewURL: func(tb testing.TB) string { return mysqltest.NewDatabase(tb) },
	Open:   func(tb testing.TB, url string) core.Store { return mysqltest.Open(tb, url) },
	Raw:    rawLoop,
}

// rawLoop is the bare claim+settle loop on the same table: a transaction
// selecting the lowest pending rows FOR UPDATE SKIP LOCKED and marking
// them claimed, then one UPDATE marking them published.
func rawLoop(cs core.Store) benchkit.RawLoop {
	s := cs.(*mysql.Store)
	db, op := s.DB(), s.Names().Op
	sel := `SELECT ` + sqlstore.Columns + ` FROM ` + op + ` WHERE state = 0 ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED`
	var token int64
	return func(ctx context.Context, batch int) (int, error) {
		token++
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		defer tx.Rollback()
		rows, err := tx.QueryContext(ctx, sel, batch)
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
		in := strings.Join(list, ",")
		if _, err := tx.ExecContext(ctx, `UPDATE `+op+` SET state = 1, claim_token = ?, attempts = attempts + 1,
			due_at = UTC_TIMESTAMP(6) + INTERVAL 1 MINUTE WHERE seq IN (`+in+`)`, token); err != nil {
			return 0, err
		}
		if err := tx.Commit(); err != nil {
			return 0, err
		}
		_, err = db.ExecContext(ctx, `UPDATE `+op+` SET state = 3, published_at = UTC_TIMESTAMP(6), claim_token = NULL
			WHERE claim_token = ? AND seq IN (`+in+`)`, token)
		return len(seqs), err
	}
}

// BenchmarkDrain: engine vs the raw loop, same run (see benchkit.Drain).
//
//	go test ./drivers/mysql -run '^$' -bench Drain -benchtime 1x -count 3
func BenchmarkDrain(b *testing.B) {
	benchkit.Drain(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_N", 200_000), []int{100, 1000}, []int{1, 4})
}

// BenchmarkLatency: commit → sink ack at a steady 1000 ops/s, polling.
//
//	go test ./drivers/mysql -run '^$' -bench Latency -benchtime 1x
func BenchmarkLatency(b *testing.B) {
	d := time.Duration(benchkit.EnvInt("TRUSTLOG_BENCH_SECONDS", 10)) * time.Second
	benchkit.LatencyBench(b, func(b *testing.B) core.Store { return mysqltest.Open(b, mysqltest.NewDatabase(b)) },
		1000, d, core.EngineConfig{})
}
