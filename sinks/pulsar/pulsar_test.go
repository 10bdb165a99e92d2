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
