// Package memorytest is the conformance harness of the memory sink.
package memorytest

import (
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// Harness returns a fresh memory sink; Read replays what it accepted (for
// this sink, that is what a consumer sees).
func Harness(t *testing.T) conformance.SinkHarness {
	s := memory.New(memory.Faults{})
	return conformance.SinkHarness{Sink: s, Read: conformance.ReadFrom(s)}
}
