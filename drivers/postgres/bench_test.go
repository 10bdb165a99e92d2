package postgres_test

import (
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/benchkit"
)

var target = benchkit.Target{
	NewURL: func(tb testing.TB) string { return postgrestest.NewSchema(tb) },
	Open:   func(tb testing.TB, url string) core.Store { return postgrestest.Open(tb, url) },
}

// BenchmarkWrite: RecordTx vs a plain INSERT of the same rows, same run
// (see benchkit.Write).
//
//	go test ./drivers/postgres -run '^$' -bench Write -benchtime 1x -count 3
func BenchmarkWrite(b *testing.B) {
	benchkit.Write(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_TXS", 2000))
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
