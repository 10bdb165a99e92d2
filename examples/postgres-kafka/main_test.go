package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
)

// TestPostgresKafka runs the example on the local PostgreSQL and an
// in-process Kafka-protocol broker: three committed saves reach the topic,
// in order, and the rolled-back save left neither its document nor its
// operation.
func TestPostgresKafka(t *testing.T) {
	topic := kafkatest.Topic()
	broker := kafkatest.Start(t, kfake.SeedTopics(1, topic))
	check(t, postgrestest.NewSchema(t), broker.URL(topic))
}

// TestPostgresRealKafka is the same on a real Apache Kafka broker
// (kafkatest.Server).
func TestPostgresRealKafka(t *testing.T) {
	r := kafkatest.NeedReal(t)
	topic := kafkatest.Topic()
	r.CreateTopic(t, topic, 1)
	check(t, postgrestest.NewSchema(t), r.URL(topic))
}

func check(t *testing.T, store, sink string) {
	var out bytes.Buffer
	if err := run(context.Background(), store, sink, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, "documents stored: 1\n") {
		t.Errorf("the rolled-back save must not store doc-2: %q", got)
	}
	if n := strings.Count(got, "key=10.1000/docs/doc-1 op_id matches=true"); n != 3 {
		t.Errorf("want the 3 committed operations in order on the topic, got %d: %q", n, got)
	}
	if strings.Contains(got, "doc-2") {
		t.Errorf("the rolled-back operation was published: %q", got)
	}
}
