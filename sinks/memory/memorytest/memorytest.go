// Package memorytest is the conformance harness of the memory sink.
package memorytest

import (
	"context"
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// Harness returns a fresh memory sink whose Read is its own record of
// what it accepted (for this sink, that is what a consumer sees).
func Harness(t *testing.T) conformance.SinkHarness {
	s := memory.New(memory.Faults{})
	return conformance.SinkHarness{Sink: s, Read: func(ctx context.Context, n int) ([]conformance.Received, error) {
		err := s.WaitFor(ctx, n)
		msgs := s.Messages()
		out := make([]conformance.Received, len(msgs))
		for i, m := range msgs {
			h := map[string]string{}
			for _, kv := range m.Headers() {
				h[kv[0]] = kv[1]
			}
			out[i] = conformance.Received{Key: m.Key, ID: m.ID, Payload: m.Payload, Headers: h}
		}
		return out, err
	}}
}
