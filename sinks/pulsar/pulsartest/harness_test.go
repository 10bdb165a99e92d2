package pulsartest_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// TestExternalHarness drives ExternalHarness, the TRUSTLOG_PULSAR_URL
// path, against an in-process broker addressed only by its URL.
func TestExternalHarness(t *testing.T) {
	b := pulsartest.Start(t)
	conformance.RunSink(t, pulsartest.ExternalHarness(b.URL()+"/"))
}
