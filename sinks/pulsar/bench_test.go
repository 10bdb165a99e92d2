package pulsar_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/benchkit"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// BenchmarkRelay drains a backlog to the in-process Pulsar-protocol test broker (deduplication on, 3 partitions, ordered stream)
// and, in the same iteration, an identical backlog to the memory sink,
// for SQLite and PostgreSQL stores; it reports both rates and pulsar/memory.
//
//	go test ./sinks/pulsar -run '^$' -bench Relay -benchtime 1x -count 3
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
			var mem, pul benchkit.DrainResult
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

				topic := pulsartest.Topic()
				broker := pulsartest.Start(b, pulsartest.WithPartitionedTopic(topic, 3))
				sink, err := pulsar.Open(broker.SinkURL(topic, "producer_name=bench"))
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
				pul.N, pul.Elapsed = pul.N+r.N, pul.Elapsed+r.Elapsed
			}
			b.ReportMetric(mem.Rate(), "memory-ops/s")
			b.ReportMetric(pul.Rate(), "pulsar-ops/s")
			b.ReportMetric(pul.Rate()/mem.Rate(), "ratio")
		})
	}
}
