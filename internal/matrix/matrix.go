// Package matrix is the driver × sink matrix of this repository's own
// tests: which sinks every driver's pair suite (conformance.RunPair) runs
// against, in a quick run and in CI's full run.
//
// Each driver's package runs its row of the matrix (its conformance_test.go
// calls Run), so the rows are separate test binaries: they run in
// parallel, and each fits go test's default per-package timeout under
// -race. The root package's TestMatrixCoversRegistry checks that every
// registered driver and sink has a place here.
package matrix

import (
	"flag"
	"os"
	"runtime"
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
	"github.com/go-trustlog/trustlog/sinks/memory/memorytest"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// Sinks are the harnesses every driver pairs with: the memory sink, and
// Kafka and Pulsar on the real brokers scripts/services.sh starts. The
// in-process brokers (kfake, pulsartest) are for fast tests and fault
// injection: the sink suites (conformance.RunSink) run on them and on
// the real brokers in the sinks' own packages; pairing every driver with
// them too would repeat what the real brokers prove, at a cost the
// per-package timeout cannot carry under -race on two cores.
var Sinks = map[string]conformance.NewSinkFunc{
	"memory":        memorytest.Harness,
	"kafka-broker":  kafkatest.RealHarness,
	"pulsar-broker": pulsartest.RealHarness,
}

// Schemes are the registered sink schemes and the harness of Sinks that
// covers each.
var Schemes = map[string]string{"memory": "memory", "kafka": "kafka-broker", "pulsar": "pulsar-broker", "pulsar+ssl": "pulsar-broker"}

// Main runs a driver package's tests with at least 4 parallel tests
// unless -test.parallel is given: the pair suite's tests mostly wait
// (on leases, on brokers, on SQLite's one writer), and go test's default
// of GOMAXPROCS would run them two at a time on a two-core machine. Only
// for a driver that opens no server connections: each parallel test
// holds a few, and a server's limit is shared with the other packages.
func Main(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set && runtime.GOMAXPROCS(0) < 4 {
		_ = flag.Set("test.parallel", "4")
	}
	os.Exit(m.Run())
}

// Run runs the store suite for one driver and its pair suite against
// each sink: the memory sink always; with TRUSTLOG_FULL=1 (CI) also the
// real Kafka and Pulsar brokers.
func Run(t *testing.T, newStore conformance.NewStoreFunc) {
	t.Run("store", func(t *testing.T) {
		t.Parallel()
		conformance.RunStore(t, newStore)
	})
	for name, newSink := range Sinks {
		t.Run("pair="+name, func(t *testing.T) {
			if name != "memory" {
				testenv.Long(t)
			}
			t.Parallel()
			conformance.RunPair(t, newStore, newSink)
		})
	}
}
