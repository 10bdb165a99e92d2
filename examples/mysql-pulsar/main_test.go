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
	store := mysqltest.NewDatabase(t)
	broker := pulsartest.Start(t)
	var out bytes.Buffer
	if err := run(context.Background(), store, broker.SinkURL(pulsartest.Topic()), &out); err != nil {
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
