package kafka_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/go-trustlog/trustlog/core"
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
	benchkit.RelayVsMemory(b, benchkit.SinkStores(), benchkit.EnvInt("TRUSTLOG_BENCH_N", 50_000), "kafka-ops/s", func(b *testing.B) core.Sink {
		topic := kafkatest.Topic()
		cluster := kafkatest.Start(b, kfake.SeedTopics(3, topic))
		sink, err := kafka.Open(cluster.URL(topic))
		if err != nil {
			b.Fatal(err)
		}
		return sink
	})
}
