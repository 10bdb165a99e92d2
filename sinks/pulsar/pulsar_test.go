package pulsar_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	conformance.RunSink(t, pulsartest.Harness)
}

// TestConformanceReal runs the same suite against a real Apache Pulsar
// broker (pulsartest.Server).
func TestConformanceReal(t *testing.T) {
	t.Parallel()
	conformance.RunSink(t, pulsartest.RealHarness)
}
