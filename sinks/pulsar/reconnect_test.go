//go:build !race

package pulsar_test

// The test of this file runs without the race detector only: a stream's
// producer cannot batch (see the package documentation), and
// pulsar-client-go v0.21.0 has a data race, which -race reports, when a
// producer without batching reconnects after it sent: grabCnx rewrites
// the producer's name and encryptor (producer_partition.go:348 and 358)
// that internalSingleSend reads on the producer's event loop (lines 831
// and 837), with nothing ordering the two. Nothing of ours is involved;
// every other test of the package runs under -race.

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// TestStreamAfterReconnects: connections dropped between batches; each
// position is on the topic once, in order per key, and the stream's
// sequence ids are its positions.
func TestStreamAfterReconnects(t *testing.T) {
	t.Parallel()
	topic := pulsartest.Topic()
	b := pulsartest.Start(t, pulsartest.WithPartitionedTopic(topic, 3))
	s := openSink(t, b.SinkURL(topic))
	msgs := streamMessages(t, "log-p2", 0, 200, 11)
	for i := 0; i < len(msgs); i += 25 {
		publish(t, s, msgs[i:i+25]...)
		publish(t, s, msgs[max(i-10, 0):i+25]...) // and again from an older cursor
		b.DropConnections()
	}
	var got []stored
	for _, m := range b.Messages(topic) {
		assert.Equal(t, "log-p2", m.Producer)
		assert.Equal(t, m.Properties[core.HeaderPosition], itoa(int64(m.SequenceID)))
		got = append(got, stored{Producer: m.Producer, Key: m.Key, OpID: m.Properties[core.HeaderOpID], Position: int64(m.SequenceID)})
	}
	requireOnce(t, got, msgs)
	requireKeyOrder(t, got)
}
