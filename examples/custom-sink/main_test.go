package main

import (
	"bytes"
	"context"
	"path/filepath"
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
	// Per-object order: doc-1's two operations in the order recorded.
	if !strings.Contains(lines[0], "10.1000/custom-sink/doc-1") || !strings.HasPrefix(lines[0], "line 1 ") {
		t.Fatalf("unexpected first line %q", lines[0])
	}
}
