package pulsar_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// The tests of this file inject faults a real broker cannot be made to
// show on demand, with the in-process broker (pulsartest), which
// deduplicates as Apache Pulsar does; real_test.go has the proof on a
// real broker.

// TestResendWaitsForPendingSend: the broker stores a batch but its
// receipts come late, after the publish gave up (as in an outage). The
// engine's re-send of those messages must not put a second copy on the
// topic: it waits for the producer's pending sends and takes their
// outcome. For a stream (re-sent from the cursor) and for retries
// through the plain producer. Messages sent afterwards are stored once
// too, and a later re-send of a delivered one is answered without a send.
func TestResendWaitsForPendingSend(t *testing.T) {
	t.Parallel()
	for _, retry := range []bool{false, true} {
		t.Run(map[bool]string{false: "stream", true: "retry"}[retry], func(t *testing.T) {
			t.Parallel()
			topic := pulsartest.Topic()
			b := pulsartest.Start(t)
			s := openSink(t, b.SinkURL(topic))
			msgs := streamMessages(t, "log-p0", 0, 6, 3)
			for i := range msgs {
				msgs[i].Retry = retry
			}
			b.DelayReceipts(200 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			errs := s.Publish(ctx, msgs[:5])
			cancel()
			for i, err := range errs {
				require.True(t, core.IsUnavailable(err), "message %d: no receipt yet: %v", i, err)
			}
			require.Eventually(t, func() bool { return len(b.Messages(topic)) == 5 }, testenv.Patience(t), 10*time.Millisecond,
				"stored, acknowledged late")
			for i, err := range s.Publish(testenv.Context(t), msgs[:5]) {
				require.NoError(t, err, "re-send of message %d", i)
			}
			b.DelayReceipts(0)
			publish(t, s, msgs[5])
			publish(t, s, msgs[2]) // delivered: answered, not sent again
			requireHeldOnce(t, b, topic, msgs)
		})
	}
}

// TestIdleStreamClosed: a stream's producer nobody used for stream_idle
// is closed, so the partition's next owner (another sink) can open it.
func TestIdleStreamClosed(t *testing.T) {
	t.Parallel()
	topic := pulsartest.Topic()
	b := pulsartest.Start(t)
	first := openSink(t, b.SinkURL(topic, "stream_idle=100ms"))
	msgs := streamMessages(t, "log-p0", 0, 10, 2)
	publish(t, first, msgs[:5]...)
	second := openSink(t, b.SinkURL(topic))
	ctx := testenv.Context(t)
	require.Eventually(t, func() bool {
		errs := second.Publish(ctx, msgs[3:])
		for _, err := range errs {
			if err != nil {
				require.True(t, core.IsUnavailable(err), "%v", err)
				return false
			}
		}
		return true
	}, testenv.Patience(t), 20*time.Millisecond)
	assert.Len(t, b.Messages(topic), 10)
}

// TestMaxStreams: opening a stream beyond max_streams closes the least
// recently used idle one, freeing its name.
func TestMaxStreams(t *testing.T) {
	t.Parallel()
	topic := pulsartest.Topic()
	b := pulsartest.Start(t)
	first := openSink(t, b.SinkURL(topic, "max_streams=2", "stream_idle=1h"))
	s1, s2, s3 := streamMessages(t, "log-p1", 0, 4, 2), streamMessages(t, "log-p2", 0, 4, 2), streamMessages(t, "log-p3", 0, 4, 2)
	publish(t, first, s1[:2]...)
	publish(t, first, s2[:2]...)
	publish(t, first, s3[:2]...) // log-p1 is the least recently used: closed

	second := openSink(t, b.SinkURL(topic))
	publish(t, second, s1...)
	for _, err := range second.Publish(testenv.Context(t), s2) {
		require.True(t, core.IsUnavailable(err), "log-p2 is still open at the first sink: %v", err)
	}
	publish(t, first, s3[2:]...)
	assert.Len(t, b.Messages(topic), 4+2+4)
}

// TestLastPosition pins what LastPosition reports: the highest position
// the broker acknowledged to this sink's producer of the stream, learnt
// from receipts only (pulsar-client-go's LastSequenceID): -1 for a new
// producer even where the broker holds the stream's earlier positions,
// then the position of the last receipt, a dropped re-send's included.
func TestLastPosition(t *testing.T) {
	t.Parallel()
	topic := pulsartest.Topic()
	b := pulsartest.Start(t)
	ctx := testenv.Context(t)
	msgs := streamMessages(t, "log-p0", 0, 10, 2)
	first := openSink(t, b.SinkURL(topic))
	last, err := first.LastPosition(ctx, "log-p0")
	require.NoError(t, err)
	assert.Equal(t, int64(-1), last, "nothing sent")
	publish(t, first, msgs...)
	last, err = first.LastPosition(ctx, "log-p0")
	require.NoError(t, err)
	assert.Equal(t, int64(9), last)
	require.NoError(t, first.Close())

	second := openSink(t, b.SinkURL(topic))
	last, err = second.LastPosition(ctx, "log-p0")
	require.NoError(t, err)
	assert.Equal(t, int64(-1), last, "a new producer knows nothing until a receipt (pulsar-client-go)")
	publish(t, second, msgs[7:]...)
	last, err = second.LastPosition(ctx, "log-p0")
	require.NoError(t, err)
	assert.Equal(t, int64(9), last)
	assert.Len(t, b.Messages(topic), 10, "the re-sends were dropped")
	_, err = second.LastPosition(ctx, "")
	require.Error(t, err)
}

// TestTooBigInStream: a message over the broker's size limit is refused
// permanently while the rest of its stream goes on through the same
// producer; its retry (through the plain producer) is refused the same
// way.
func TestTooBigInStream(t *testing.T) {
	t.Parallel()
	topic := pulsartest.Topic()
	b := pulsartest.Start(t, pulsartest.WithMaxMessageSize(4096))
	s := openSink(t, b.SinkURL(topic))
	msgs := streamMessages(t, "log-p0", 0, 6, 2)
	msgs[3].Payload = []byte(strings.Repeat("x", 8192))
	errs := s.Publish(testenv.Context(t), msgs)
	for i, err := range errs {
		if i == 3 {
			require.True(t, core.IsPermanent(err), "too big: %v", err)
		} else {
			require.NoError(t, err, "message %d", i)
		}
	}
	retry := msgs[3]
	retry.Retry = true
	require.True(t, core.IsPermanent(s.Publish(testenv.Context(t), []core.Message{retry})[0]))
	publish(t, s, streamMessages(t, "log-p0", 6, 8, 2)...)
	assert.Len(t, b.Messages(topic), 7)
}

// TestClosed: a closed sink refuses everything as unavailable, and Close
// is idempotent.
func TestClosed(t *testing.T) {
	t.Parallel()
	b := pulsartest.Start(t)
	s, err := pulsar.Open(b.SinkURL(pulsartest.Topic()))
	require.NoError(t, err)
	msgs := streamMessages(t, "log-p0", 0, 2, 1)
	publish(t, s, msgs[0])
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	for _, err := range s.Publish(testenv.Context(t), msgs) {
		require.True(t, core.IsUnavailable(err), "%v", err)
		require.ErrorIs(t, err, core.ErrClosed)
	}
	_, err = s.LastPosition(testenv.Context(t), "log-p0")
	require.ErrorIs(t, err, core.ErrClosed)
	require.Empty(t, s.Publish(testenv.Context(t), nil))
}

// TestRefusedProducerIsUnavailable: a broker that refuses to create a
// stream's producer (starting, its metadata store unreachable: the
// client's error carries no pulsar.Result) is down, not refusing the
// messages: Publish reports core.Unavailable, so the engine pauses the
// partition without spending attempts or sending anything to the retry
// table, where its re-send would go out through the plain producer,
// outside the broker's deduplication, as a copy of what an earlier owner
// stored. Once the broker takes producers again, the stream goes on and
// the broker holds each message once.
func TestRefusedProducerIsUnavailable(t *testing.T) {
	t.Parallel()
	topic := pulsartest.Topic()
	b := pulsartest.Start(t)
	msgs := streamMessages(t, "log-p0", 0, 6, 2)
	earlier := openSink(t, b.SinkURL(topic))
	publish(t, earlier, msgs[:4]...) // stored by the partition's earlier owner
	require.NoError(t, earlier.CloseStream("log-p0"))

	s := openSink(t, b.SinkURL(topic))
	b.RefuseProducers(true)
	for i, err := range s.Publish(testenv.Context(t), msgs) {
		require.Error(t, err, "message %d", i)
		require.True(t, core.IsUnavailable(err), "message %d: a refused producer is an unavailable sink: %v", i, err)
	}
	b.RefuseProducers(false)
	publish(t, s, msgs...)
	requireHeldOnce(t, b, topic, msgs)
}
