package filesink_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/examples/custom-sink/filesink"
)

// harness is what a sink author writes: a fresh sink per test, and a way
// to read what reached the "broker" that does not trust the sink's own
// bookkeeping (here: a second reader of the file).
func harness(t *testing.T) conformance.SinkHarness {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s, err := filesink.Open("jsonl:" + path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return conformance.SinkHarness{Sink: s, Read: conformance.ReadFrom(filesink.Reader{Path: path})}
}

// TestConformance runs the exported suite: the sink's own contract, then
// (with TRUSTLOG_FULL=1, as CI runs it) every guarantee end to end with a
// real SQLite store.
func TestConformance(t *testing.T) {
	conformance.RunSink(t, harness)
	t.Run("pair", func(t *testing.T) {
		if os.Getenv("TRUSTLOG_FULL") != "1" {
			t.Skip("long scenario: TRUSTLOG_FULL=1 runs it (CI does)")
		}
		conformance.RunPair(t, sqlitetest.Harness, harness)
	})
}

func TestBadURLs(t *testing.T) {
	for _, u := range []string{"jsonl:", "jsonl://", "file:x.jsonl", "jsonl:x.jsonl?fsync=false"} {
		if _, err := filesink.Open(u); !errors.Is(err, core.ErrInvalidURL) {
			t.Errorf("%q: got %v, want ErrInvalidURL", u, err)
		}
	}
}
