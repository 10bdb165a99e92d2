package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "published true on 10.1000/my-repo/object-001") {
		t.Fatalf("unexpected output %q", out.String())
	}
}
