package kafka_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/benchkit"
	"github.com/go-trustlog/trustlog/sinks/kafka"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
)

// BenchmarkRelay drains a backlog to the in-process Kafka-protocol broker
// and, in the same iteration, an identical backlog to the memory sink,
// for SQLite and PostgreSQL stores; it reports both rates and kafka/memory.
//
//	go test ./sinks/kafka -run '^$' -bench Relay -benchtime 1x -count 3
func BenchmarkRelay(b *testing.B) {
	n := benchkit.EnvInt("TRUSTLOG_BENCH_N", 50_000)
	stores := map[string]benchkit.Target{
		"sqlite": {NewURL: func(tb testing.TB) string { return sqlitetest.URL(tb) },
			Open: func(tb testing.TB, url string) core.Store { return sqlitetest.Open(tb, url) }},
		"postgres": {NewURL: func(tb testing.TB) string { return postgrestest.NewSchema(tb) },
			Open: func(tb testing.TB, url string) core.Store { return postgrestest.Open(tb, url) }},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		target := stores[name]
		b.Run(fmt.Sprintf("store=%s/batch=1000", name), func(b *testing.B) {
			var mem, kaf benchkit.DrainResult
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s := benchkit.Seeded(b, target, n, 1)
				b.StartTimer()
				r, err := benchkit.EngineDrain(context.Background(), s, nil, n, 1000)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				mem.N, mem.Elapsed = mem.N+r.N, mem.Elapsed+r.Elapsed

				topic := kafkatest.Topic()
				cluster := kafkatest.Start(b, kfake.SeedTopics(3, topic))
				sink, err := kafka.Open(cluster.URL(topic))
				if err != nil {
					b.Fatal(err)
				}
				s = benchkit.Seeded(b, target, n, 1)
				b.StartTimer()
				r, err = benchkit.EngineDrain(context.Background(), s, sink, n, 1000)
				b.StopTimer()
				sink.Close()
				if err != nil {
					b.Fatal(err)
				}
				kaf.N, kaf.Elapsed = kaf.N+r.N, kaf.Elapsed+r.Elapsed
			}
			b.ReportMetric(mem.Rate(), "memory-ops/s")
			b.ReportMetric(kaf.Rate(), "kafka-ops/s")
			b.ReportMetric(kaf.Rate()/mem.Rate(), "ratio")
		})
	}
}
