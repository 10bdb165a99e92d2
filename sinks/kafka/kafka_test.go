package kafka_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	conformance.RunSink(t, kafkatest.Harness)
}

// TestConformanceReal runs the same suite against a real Apache Kafka
// broker (kafkatest.Server).
func TestConformanceReal(t *testing.T) {
	t.Parallel()
	conformance.RunSink(t, kafkatest.RealHarness)
}
