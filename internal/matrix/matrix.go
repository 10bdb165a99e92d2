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
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
	"github.com/go-trustlog/trustlog/sinks/memory/memorytest"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// Sinks are the harnesses of every sink in this repository: the memory
// sink, Kafka and Pulsar in process (kfake, pulsartest) and on the real
// brokers scripts/services.sh starts. The sink suites themselves
// (conformance.RunSink) run in the sinks' own packages.
var Sinks = map[string]conformance.NewSinkFunc{
	"memory":        memorytest.Harness,
	"kafka":         kafkatest.Harness,
	"pulsar":        pulsartest.Harness,
	"kafka-broker":  kafkatest.RealHarness,
	"pulsar-broker": pulsartest.RealHarness,
}

// inProcess are the in-process brokers: fast and good at fault
// injection, but never the only proof a sink works with its broker. In a
// full run they pair with SQLite only (their pairs with the server
// databases repeat what the real brokers prove there).
var inProcess = map[string]bool{"kafka": true, "pulsar": true}

// Run runs the store suite for one driver and its pair suite against
// each sink: the memory sink always; with TRUSTLOG_FULL=1 (CI) also the
// real Kafka and Pulsar brokers, and the in-process brokers when
// embedded is true (the driver needs no server: SQLite).
func Run(t *testing.T, newStore conformance.NewStoreFunc, embedded bool) {
	t.Run("store", func(t *testing.T) {
		t.Parallel()
		conformance.RunStore(t, newStore)
	})
	for name, newSink := range Sinks {
		if inProcess[name] && !embedded {
			continue
		}
		t.Run("pair="+name, func(t *testing.T) {
			if name != "memory" {
				testenv.Long(t)
			}
			t.Parallel()
			conformance.RunPair(t, newStore, newSink)
		})
	}
}
