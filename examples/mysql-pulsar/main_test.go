package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// TestMySQLPulsar runs the example on the local MariaDB and the in-process
// Pulsar-protocol broker (deduplication on): three committed saves reach
// the topic in order, the rolled-back one neither stored nor published.
func TestMySQLPulsar(t *testing.T) {
	broker := pulsartest.Start(t)
	check(t, mysqltest.NewDatabase(t), broker.SinkURL(pulsartest.Topic()))
}

// TestMySQLRealPulsar is the same on a real Apache Pulsar broker
// (pulsartest.Server, deduplication on).
func TestMySQLRealPulsar(t *testing.T) {
	r := pulsartest.NeedReal(t)
	check(t, mysqltest.NewDatabase(t), r.SinkURL(pulsartest.Topic()))
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
