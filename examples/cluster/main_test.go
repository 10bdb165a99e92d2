package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
)

// TestMain lets the test binary be the example's relay processes: the
// parent starts os.Executable(), which under `go test` is this binary.
func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// check runs the example with three relay processes and asserts what it
// reports: everything published, every object in recorded order.
func check(t *testing.T, store string) {
	t.Helper()
	topic := kafkatest.Topic()
	broker := kafkatest.Start(t, kfake.SeedTopics(3, topic))
	var out bytes.Buffer
	if err := run(context.Background(), store, broker.URL(topic), 3, 600, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"relays: 3\n", "published: 600 of 600\n", "objects in recorded order: 20 of 20\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in the report:\n%s", want, got)
		}
	}
}

func TestClusterSQLite(t *testing.T) { check(t, "") }

func TestClusterPostgres(t *testing.T) { check(t, postgrestest.NewSchema(t)) }
