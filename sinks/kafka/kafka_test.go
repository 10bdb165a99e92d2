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
