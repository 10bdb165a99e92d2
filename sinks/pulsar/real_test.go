package pulsar_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// The tests of this file run against the real Apache Pulsar broker
// (pulsartest.Server, deduplication on): what the sink promises rests on
// the broker's deduplication, which only a real broker proves.

// openSink opens a sink at url, closed when t ends.
func openSink(t testing.TB, url string) *pulsar.Sink {
	t.Helper()
	s, err := pulsar.Open(url)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// requireDedup fails t unless the broker deduplicates on topic (it must
// exist): scripts/services.sh starts Pulsar with deduplication on.
func requireDedup(t testing.TB, r *pulsartest.Real, topic string) {
	t.Helper()
	on, err := r.Deduplication(testenv.Context(t), topic)
	require.NoError(t, err)
	require.True(t, on, "the broker must deduplicate (brokerDeduplicationEnabled=true, as scripts/services.sh starts it)")
}

// suffix is the random part of a pulsartest.Topic name, to name streams
// and producers uniquely per test.
func suffix(topic string) string { return topic[len(topic)-8:] }

// TestRealStreamHandover: a partition's owner sends positions 0-59 and
// goes away (after the broker stored them, before its cursor moved past
// 40); the next owner sends again from its cursor, 40-99. The topic holds
// each position once, in order per key, from the producer named after
// the stream; two streams on the topic do not disturb each other. On a
// plain topic and on one of 3 partitions, where the broker deduplicates
// per partition.
func TestRealStreamHandover(t *testing.T) {
	t.Parallel()
	r := pulsartest.NeedReal(t)
	for _, parts := range []int{0, 3} {
		t.Run(fmt.Sprintf("partitions-%d", parts), func(t *testing.T) {
			t.Parallel()
			topic := pulsartest.Topic()
			if parts > 0 {
				r.CreatePartitionedTopic(t, topic, parts)
			}
			streams := []string{"log-" + suffix(topic) + "-p0", "log-" + suffix(topic) + "-p1"}
			all := map[string][]core.Message{}
			var want []core.Message
			for _, st := range streams {
				all[st] = streamMessages(t, st, 0, 100, 7)
				want = append(want, all[st]...)
			}
			sendRange := func(s *pulsar.Sink, from, to int) {
				for _, st := range streams {
					for i := from; i < to; i += 20 {
						publish(t, s, all[st][i:min(i+20, to)]...)
					}
				}
			}

			first := openSink(t, r.SinkURL(topic))
			sendRange(first, 0, 60)
			requireDedup(t, r, topic)
			require.NoError(t, first.Close())

			second := openSink(t, r.SinkURL(topic))
			sendRange(second, 40, 100)
			for _, st := range streams {
				last, err := second.LastPosition(testenv.Context(t), st)
				require.NoError(t, err)
				assert.Equal(t, int64(99), last, "stream %s", st)
			}

			got := readBack(t, r.ServiceURL, topic)
			requireOnce(t, got, want)
			requireKeyOrder(t, got)
			for _, m := range got {
				assert.Contains(t, streams, m.Producer, "sent by the stream's producer")
			}
		})
	}
}

// TestRealStreamBusy: while one sink holds a stream's producer, another
// that opens the stream gets core.Unavailable (ProducerBusy: the
// partition waits), not a permanent error; once the first lets go (it
// closes the stream, or the whole sink), the second takes over and
// nothing is lost or doubled.
func TestRealStreamBusy(t *testing.T) {
	t.Parallel()
	r := pulsartest.NeedReal(t)
	for _, how := range []string{"close-stream", "close-sink"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			topic := pulsartest.Topic()
			stream := "log-" + suffix(topic) + "-p3"
			msgs := streamMessages(t, stream, 0, 20, 3)
			first := openSink(t, r.SinkURL(topic))
			publish(t, first, msgs[:10]...)

			second := openSink(t, r.SinkURL(topic))
			ctx := testenv.Context(t)
			for i, err := range second.Publish(ctx, msgs[5:15]) {
				require.True(t, core.IsUnavailable(err), "message %d: want unavailable, got %v", i, err)
				require.False(t, core.IsPermanent(err))
				require.Contains(t, err.Error(), "ProducerBusy")
			}
			_, err := second.LastPosition(ctx, stream)
			require.True(t, core.IsUnavailable(err), "LastPosition: %v", err)

			if how == "close-stream" {
				require.NoError(t, first.CloseStream(stream))
			} else {
				require.NoError(t, first.Close())
			}
			require.Eventually(t, func() bool {
				for _, err := range second.Publish(ctx, msgs[5:15]) {
					if err != nil {
						require.True(t, core.IsUnavailable(err), "only unavailable while the name is released: %v", err)
						return false
					}
				}
				return true
			}, testenv.Patience(t), 50*time.Millisecond)
			publish(t, second, msgs[15:]...)
			got := readBack(t, r.ServiceURL, topic)
			requireOnce(t, got, msgs)
			requireKeyOrder(t, got)
		})
	}
}

// TestRealRetriesAndStreamless: retries (re-sends out of position order)
// and messages outside any stream (a checkpoint, a synchronous send) go
// through the plain producer, with sequence ids of its own, so the
// broker stores them although their positions are below what the stream
// sent; a second retry of a delivered retry is answered without a third
// copy. A first send below a position already sent (out of the stream's
// order) is stored too.
func TestRealRetriesAndStreamless(t *testing.T) {
	t.Parallel()
	r := pulsartest.NeedReal(t)
	topic := pulsartest.Topic()
	stream := "log-" + suffix(topic) + "-p0"
	plainName := "plain-" + suffix(topic)
	s := openSink(t, r.SinkURL(topic, "producer_name="+plainName))
	msgs := streamMessages(t, stream, 0, 12, 3)
	publish(t, s, msgs[:10]...)

	retry3, retry5 := msgs[3], msgs[5]
	retry3.Retry, retry5.Retry = true, true
	publish(t, s, retry3, retry5)
	publish(t, s, retry3) // delivered already: answered, not sent again

	checkpoint := core.Message{Kind: core.KindCheckpoint, Key: "checkpoint", ID: "checkpoint-1",
		Payload: []byte("example.org/log\n10\nAAAA\n"), Position: -1}
	direct := streamMessages(t, "", 0, 1, 1)[0]
	direct.Position = -1 // a synchronous send has no position yet
	publish(t, s, checkpoint, direct)

	publish(t, s, msgs[11])
	publish(t, s, msgs[10]) // below 11, and not a retry: out of order

	got := readBack(t, r.ServiceURL, topic)
	copies := copiesByOpID(got)
	for i, m := range msgs {
		want := 1
		if i == 3 || i == 5 {
			want = 2 // the stream's send and the retry
		}
		assert.Equal(t, want, copies[m.ID], "position %d", i)
	}
	assert.Equal(t, 1, copies[checkpoint.ID], "the checkpoint")
	assert.Equal(t, 1, copies[direct.ID], "the synchronous send")
	assert.Len(t, got, 12+2+2)
	byProducer := map[string][]int64{}
	for _, m := range got {
		byProducer[m.Producer] = append(byProducer[m.Producer], m.Position)
	}
	assert.ElementsMatch(t, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11}, byProducer[stream])
	assert.ElementsMatch(t, []int64{3, 5, -1, -1, 10}, byProducer[plainName])
}

// TestRealKeyOrder: one sink publishes four streams at once, batch after
// batch, to a topic of 3 partitions; each key's messages are on the
// topic once, in position order.
func TestRealKeyOrder(t *testing.T) {
	t.Parallel()
	r := pulsartest.NeedReal(t)
	topic := pulsartest.Topic()
	r.CreatePartitionedTopic(t, topic, 3)
	s := openSink(t, r.SinkURL(topic))
	var want []core.Message
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	ctx := testenv.Context(t)
	for p := range 4 {
		msgs := streamMessages(t, fmt.Sprintf("log-%s-p%d", suffix(topic), p), 0, 250, 13)
		want = append(want, msgs...)
		wg.Go(func() {
			for i := 0; i < len(msgs); i += 50 {
				for _, err := range s.Publish(ctx, msgs[i:i+50]) {
					if err != nil {
						mu.Lock()
						failed = append(failed, err)
						mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	require.Empty(t, failed)
	got := readBack(t, r.ServiceURL, topic)
	requireOnce(t, got, want)
	requireKeyOrder(t, got)
}

// TestRealOwnershipChanges: a partition moves between two relays' sinks
// a dozen times, on a topic of 3 partitions. Each owner publishes from
// the cursor as a relay does: a batch, then the cursor moves past the
// prefix the sink accepted, the rest is sent again; some batches get too
// little time for their receipts. Each hand-over loses the owner's last
// cursor move (a crash between the broker's receipt and the store's
// commit), so the next owner sends the end of the previous one's work
// again. The topic holds each position once, in order per key.
func TestRealOwnershipChanges(t *testing.T) {
	t.Parallel()
	r := pulsartest.NeedReal(t)
	topic := pulsartest.Topic()
	r.CreatePartitionedTopic(t, topic, 3)
	stream := "log-" + suffix(topic) + "-p5"
	msgs := streamMessages(t, stream, 0, 600, 17)
	owners := []*pulsar.Sink{openSink(t, r.SinkURL(topic)), openSink(t, r.SinkURL(topic))}
	ctx := testenv.Context(t)
	cursor, batches := 0, 0
	for round := 0; cursor < len(msgs); round++ {
		owner := owners[round%2]
		lastMove := 0
		for k := 0; k < 4 && cursor < len(msgs); k++ {
			batches++
			bctx, cancel := ctx, context.CancelFunc(func() {})
			if batches%5 == 0 {
				bctx, cancel = context.WithTimeout(ctx, time.Millisecond) // receipts come after the publish gave up
			}
			batch := msgs[cursor:min(cursor+30, len(msgs))]
			errs := owner.Publish(bctx, batch)
			cancel()
			handled := 0
			for _, err := range errs {
				if err != nil {
					require.True(t, core.IsUnavailable(err), "%v", err)
					break
				}
				handled++
			}
			cursor += handled
			lastMove = handled
			require.NoError(t, ctx.Err())
		}
		if cursor < len(msgs) {
			cursor -= lastMove // the last advance is lost
		}
		require.NoError(t, owner.CloseStream(stream))
	}
	got := readBack(t, r.ServiceURL, topic)
	requireOnce(t, got, msgs)
	requireKeyOrder(t, got)
}
