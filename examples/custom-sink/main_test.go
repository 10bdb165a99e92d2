package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCustomSink(t *testing.T) {
	var out bytes.Buffer
	file := filepath.Join(t.TempDir(), "a.jsonl")
	if err := run(context.Background(), file, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 operations in the file, got %q", out.String())
	}
	// Per-object order: doc-1's two operations in the order recorded
	// (doc-2 is in another partition: it may come before, between or
	// after them).
	var doc1 []string
	for i, l := range lines {
		if !strings.HasPrefix(l, "line "+strconv.Itoa(i+1)+" ") {
			t.Fatalf("line %d of the output is %q", i+1, l)
		}
		if strings.Contains(l, "10.1000/custom-sink/doc-1 ") {
			doc1 = append(doc1, strings.Fields(l)[3])
		}
	}
	if len(doc1) != 2 || doc1[0] > doc1[1] {
		t.Fatalf("doc-1's operations out of record order (op_ids are time-ordered UUIDv7): %q", out.String())
	}
}
