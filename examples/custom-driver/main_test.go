package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/examples/custom-driver/memstore"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

func TestCustomDriver(t *testing.T) {
	name := "custom-driver-" + t.Name()
	t.Cleanup(func() { memstore.Drop(name) })
	var out bytes.Buffer
	if err := run(testenv.Context(t), "memstore://"+name, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 messages in the sink, got %q", out.String())
	}
	// Per-object order: doc-1's two operations reach the sink in the order
	// recorded (increasing positions).
	var doc1 []string
	for _, l := range lines {
		if strings.Contains(l, "key=10.1000/custom-driver/doc-1 ") {
			doc1 = append(doc1, l)
		}
	}
	if len(doc1) != 2 || !(position(t, doc1[0]) < position(t, doc1[1])) {
		t.Fatalf("doc-1's operations out of order or missing: %q", doc1)
	}

	// The store outlives the client: a new open of the same name sees the
	// three operations, published.
	st, err := memstore.Open(context.Background(), "memstore://"+name)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stats, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if stats.TreeSize != 3 || stats.Counts[core.StatePublished] != 3 {
		t.Fatalf("reopened store: want 3 published operations, got %+v", stats)
	}
}

func position(t *testing.T, line string) int64 {
	var p int64
	if _, err := fmt.Sscanf(line, "position=%d ", &p); err != nil {
		t.Fatalf("no position in %q: %v", line, err)
	}
	return p
}

func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, "memstore://example", &out); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.Count(out.String(), "\n"), "messages received")
	// Output: 3 messages received
}
