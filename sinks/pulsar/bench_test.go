package pulsar_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/benchkit"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// BenchmarkRelay drains a backlog to the in-process Pulsar-protocol test
// broker (deduplication on, 3 partitions, a producer per stream) and, in
// the same iteration, an identical backlog to the memory sink, for SQLite
// and PostgreSQL stores; it reports both rates and pulsar/memory.
//
//	go test ./sinks/pulsar -run '^$' -bench Relay -benchtime 1x -count 3
func BenchmarkRelay(b *testing.B) {
	benchkit.RelayVsMemory(b, benchkit.SinkStores(), benchkit.EnvInt("TRUSTLOG_BENCH_N", 50_000), "pulsar-ops/s", func(b *testing.B) core.Sink {
		topic := pulsartest.Topic()
		broker := pulsartest.Start(b, pulsartest.WithPartitionedTopic(topic, 3))
		sink, err := pulsar.Open(broker.SinkURL(topic))
		if err != nil {
			b.Fatal(err)
		}
		return sink
	})
}
