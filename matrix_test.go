package trustlog_test

import (
	"maps"
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
	"github.com/go-trustlog/trustlog/sinks/memory/memorytest"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// stores and sinks are the conformance harnesses of every driver and sink
// in this repository. Importing a harness package imports (and registers)
// its driver or sink; TestMatrixCoversRegistry fails if one is missing.
var (
	stores = map[string]conformance.NewStoreFunc{
		"sqlite":   sqlitetest.Harness,
		"postgres": postgrestest.Harness,
		"mysql":    mysqltest.Harness,
	}
	sinks = map[string]conformance.NewSinkFunc{
		"memory": memorytest.Harness,
		"kafka":  kafkatest.Harness,
		"pulsar": pulsartest.Harness,
	}
	// brokers are the same sinks on real Apache Kafka and Apache Pulsar
	// brokers (scripts/services.sh starts them): every driver runs RunPair
	// against each. Their sink suites run in the sinks' own packages
	// (TestConformanceReal).
	brokers = map[string]conformance.NewSinkFunc{
		"kafka-broker":  kafkatest.RealHarness,
		"pulsar-broker": pulsartest.RealHarness,
	}
	// aliases are extra schemes of a registered driver or sink.
	aliases = map[string]bool{"file": true, "postgresql": true, "mariadb": true, "pulsar+ssl": true}
)

// TestMatrix runs the store suite for every driver, the sink suite for
// every sink, and the pair suite for every store × sink pair and every
// store against the real brokers. Without TRUSTLOG_FULL=1 (a quick local
// run) the pairs are each store with the memory sink; CI runs them all.
func TestMatrix(t *testing.T) {
	for storeName, newStore := range stores {
		t.Run("store="+storeName, func(t *testing.T) {
			t.Parallel()
			conformance.RunStore(t, newStore)
		})
		for sinkName, newSink := range all(sinks, brokers) {
			t.Run("pair="+storeName+"×"+sinkName, func(t *testing.T) {
				if sinkName != "memory" {
					testenv.Long(t)
				}
				t.Parallel()
				conformance.RunPair(t, newStore, newSink)
			})
		}
	}
	for sinkName, newSink := range sinks {
		t.Run("sink="+sinkName, func(t *testing.T) {
			t.Parallel()
			conformance.RunSink(t, newSink)
		})
	}
}

// TestMatrixCoversRegistry: every registered scheme has a harness here.
func TestMatrixCoversRegistry(t *testing.T) {
	for _, d := range core.Drivers() {
		if _, ok := stores[d]; !ok && !aliases[d] {
			t.Errorf("driver %q is registered but has no conformance harness in matrix_test.go", d)
		}
	}
	for _, s := range core.Sinks() {
		if _, ok := sinks[s]; !ok && !aliases[s] {
			t.Errorf("sink %q is registered but has no conformance harness in matrix_test.go", s)
		}
	}
}

// all merges harness maps.
func all(ms ...map[string]conformance.NewSinkFunc) map[string]conformance.NewSinkFunc {
	out := map[string]conformance.NewSinkFunc{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}
