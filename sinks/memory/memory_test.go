package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/memory"
	"github.com/go-trustlog/trustlog/sinks/memory/memorytest"
)

// TestConformance runs the exported sink suite on the memory sink.
func TestConformance(t *testing.T) {
	conformance.RunSink(t, memorytest.Harness)
}

// streamMessage is the message of an operation at pos in stream.
func streamMessage(t *testing.T, stream string, pos int64) core.Message {
	t.Helper()
	op := &core.Operation{
		Source: core.SourceDOIP, Type: core.OpUpdate,
		DOID: "10.1000/obj-" + stream, DOPrefix: "10.1000",
		Actor: fmt.Sprintf("user-%d", pos), ProducerID: "memory-test",
	}
	require.NoError(t, op.Seal(nil))
	m, err := core.NewMessage(op, pos+1, pos)
	require.NoError(t, err)
	m.Stream = stream
	return m
}

// TestStreams: the sink keeps each message whole (Position, Stream,
// Retry, the position header), per stream; without dedup a re-send is
// stored again, with it (dedup=true) it is accepted and dropped, and
// retries and stream-less messages are always stored.
func TestStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, dedup := range []bool{false, true} {
		t.Run(fmt.Sprintf("dedup=%v", dedup), func(t *testing.T) {
			t.Parallel()
			s, err := memory.Open(fmt.Sprintf("memory://?dedup=%v", dedup))
			require.NoError(t, err)
			a0, a1, b0 := streamMessage(t, "a", 0), streamMessage(t, "a", 1), streamMessage(t, "b", 0)
			retry := a0
			retry.Retry = true
			none := streamMessage(t, "", 7)
			none.Position = -1
			for _, batch := range [][]core.Message{{a0, a1, b0}, {a0, a1}, {retry, none}} {
				for i, err := range s.Publish(ctx, batch) {
					require.NoError(t, err, "message %d", i)
				}
			}
			if dedup {
				assert.Equal(t, []int64{0, 1}, s.Positions("a"))
				assert.Equal(t, 2, s.Dropped())
				assert.Equal(t, 5, s.Len())
			} else {
				assert.Equal(t, []int64{0, 1, 0, 1}, s.Positions("a"))
				assert.Zero(t, s.Dropped())
				assert.Equal(t, 7, s.Len())
			}
			assert.Equal(t, []int64{0}, s.Positions("b"))
			for stream, want := range map[string]int64{"a": 1, "b": 0, "c": -1} {
				last, err := s.LastPosition(ctx, stream)
				require.NoError(t, err)
				assert.Equal(t, want, last, stream)
			}
			msgs := s.Messages()
			got := msgs[len(msgs)-2]
			assert.True(t, got.Retry)
			assert.Equal(t, "a", got.Stream)
			assert.Equal(t, a0.ID, got.ID)
			assert.Equal(t, int64(-1), msgs[len(msgs)-1].Position)
			var pos string
			require.NoError(t, s.Replay(ctx, time.Time{}, func(d core.Delivered) error {
				if d.ID == a1.ID {
					pos = d.Headers[core.HeaderPosition]
				}
				return nil
			}))
			assert.Equal(t, "1", pos)
		})
	}
	_, err := memory.Open("memory://?dedup=maybe")
	require.ErrorIs(t, err, core.ErrInvalidURL)
}

// TestKeepsThousandsInOrder: past the sink's chunks of 1,024 messages,
// Messages, Positions and Replay give every message once, in the order
// it was accepted, each with its own copy of the payload and signature
// (what the publisher passed may be reused), and a nil signature stays
// nil.
func TestKeepsThousandsInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := memory.New(memory.Faults{})
	const n = 2500
	var sent []core.Message
	for pos := int64(0); pos < n; {
		var batch []core.Message
		for range 7 {
			if pos == n {
				break
			}
			m := streamMessage(t, "a", pos)
			if pos%2 == 0 {
				m.Sign = []byte{byte(pos), 1, 2}
			}
			batch = append(batch, m)
			pos++
		}
		for i, err := range s.Publish(ctx, batch) {
			require.NoError(t, err, "message %d", i)
		}
		for i := range batch {
			sent = append(sent, batch[i])
			sent[len(sent)-1].Payload = append([]byte(nil), batch[i].Payload...)
			sent[len(sent)-1].Sign = append([]byte(nil), batch[i].Sign...)
			if batch[i].Sign == nil {
				sent[len(sent)-1].Sign = nil
			}
			clear(batch[i].Payload) // the sink must not share it
			clear(batch[i].Sign)
		}
	}
	require.Equal(t, n, s.Len())
	got := s.Messages()
	require.Len(t, got, n)
	for i := range got {
		require.Equal(t, sent[i], got[i], "message %d", i)
	}
	positions := s.Positions("a")
	require.Len(t, positions, n)
	for i, p := range positions {
		require.Equal(t, int64(i), p)
	}
	i := 0
	require.NoError(t, s.Replay(ctx, time.Time{}, func(d core.Delivered) error {
		assert.Equal(t, sent[i].ID, d.ID)
		assert.Equal(t, sent[i].Payload, d.Payload)
		assert.Equal(t, fmt.Sprint(i), d.Position)
		i++
		return nil
	}))
	require.Equal(t, n, i)
}
