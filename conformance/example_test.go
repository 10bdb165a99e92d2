package conformance_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/examples/custom-sink/filesink"
	"github.com/go-trustlog/trustlog/sinks/memory/memorytest"
)

// A third-party sink runs the suite in its own test. Here the sink is
// examples/custom-sink's filesink (the "jsonl:" scheme); yours opens a
// fresh topic per call. The harness reads what reached the broker through
// the broker's own consumer, not the sink's bookkeeping: for filesink, a
// second reader of the file (a core.Replayer, turned into Read by
// conformance.ReadFrom).
func ExampleRunSink() {
	// In your sink's package, say mysink_test.go:
	newSink := func(t *testing.T) conformance.SinkHarness {
		path := filepath.Join(t.TempDir(), "out.jsonl")
		s, err := filesink.Open("jsonl:" + path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return conformance.SinkHarness{Sink: s, Read: conformance.ReadFrom(filesink.Reader{Path: path})}
	}

	// Your func TestConformance(t *testing.T):
	TestConformance := func(t *testing.T) {
		conformance.RunSink(t, newSink)                     // the sink's own contract
		conformance.RunPair(t, sqlitetest.Harness, newSink) // every guarantee, end to end with a store
	}
	_ = TestConformance
}

// A third-party driver runs the suite in its own test, on a fresh database
// (or schema, or table prefix) per call: the subtests run in parallel.
// Here a SQLite file stands in for your database; sqlitetest.Harness,
// postgrestest.Harness and mysqltest.Harness are complete harnesses of the
// built-in drivers.
func ExampleRunStore() {
	// In your driver's package, say mydriver_test.go:
	newStore := func(t *testing.T) conformance.StoreHarness {
		url := "sqlite:" + filepath.Join(t.TempDir(), "test.db")
		open := func(t *testing.T) *sqlite.Store {
			s, err := sqlite.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if err := s.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			return s
		}
		s := open(t)
		return conformance.StoreHarness{
			Store: s,
			// The same database, for the caller transactions RecordTx joins.
			DB: s.Bun(),
			// Another handle on the same tables, as another relay process
			// would have (optional).
			Reopen: func(t *testing.T) core.Store { return open(t) },
		}
	}

	// Your func TestConformance(t *testing.T):
	TestConformance := func(t *testing.T) {
		conformance.RunStore(t, newStore)                    // every Store, Locker and Notifier method
		conformance.RunPair(t, newStore, memorytest.Harness) // every guarantee, end to end with a sink
	}
	_ = TestConformance
}

// RunPair proves the guarantees for one store and one sink with the engine
// between them: no loss, no phantom, no duplicates without failures, order
// per object, cluster safety, poison isolation, dead and requeue, bad
// input refused.
func ExampleRunPair() {
	// Your func TestPair(t *testing.T):
	TestPair := func(t *testing.T) {
		conformance.RunPair(t, sqlitetest.Harness, memorytest.Harness)
	}
	_ = TestPair
}

// TestSQLiteMemory runs the whole suite on the SQLite store and the memory
// sink: the pair that needs no server.
func TestSQLiteMemory(t *testing.T) {
	t.Run("store", func(t *testing.T) { conformance.RunStore(t, sqlitetest.Harness) })
	t.Run("sink", func(t *testing.T) { conformance.RunSink(t, memorytest.Harness) })
	t.Run("pair", func(t *testing.T) { conformance.RunPair(t, sqlitetest.Harness, memorytest.Harness) })
}
