package pulsar_test

import (
	"os"
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	conformance.RunSink(t, pulsartest.Harness)
}

// TestConformanceExternal runs the same sink tests against a real Pulsar
// broker when TRUSTLOG_PULSAR_URL names one (pulsar://host:6650).
func TestConformanceExternal(t *testing.T) {
	url := os.Getenv("TRUSTLOG_PULSAR_URL")
	if url == "" {
		t.Skip("set TRUSTLOG_PULSAR_URL=pulsar://host:6650 to run the sink tests against a real Pulsar broker")
	}
	conformance.RunSink(t, pulsartest.ExternalHarness(url))
}
