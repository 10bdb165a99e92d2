package pulsar_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// forTopicKinds runs f in parallel on a plain topic and on a topic of 3
// partitions, each on a broker of its own.
func forTopicKinds(t *testing.T, f func(t *testing.T, b *pulsartest.Broker, topic string)) {
	for _, partitions := range []int{0, 3} {
		t.Run(map[int]string{0: "topic", 3: "partitioned"}[partitions], func(t *testing.T) {
			t.Parallel()
			topic := pulsartest.Topic()
			var opts []pulsartest.Option
			if partitions > 0 {
				opts = append(opts, pulsartest.WithPartitionedTopic(topic, partitions))
			}
			f(t, pulsartest.Start(t, opts...), topic)
		})
	}
}

func message(t *testing.T, seq int64, ordered, redelivery bool) core.Message {
	t.Helper()
	return objectMessage(t, "seq", seq, ordered, redelivery)
}

// objectMessage is message for an operation on object (the key).
func objectMessage(t *testing.T, object string, seq int64, ordered, redelivery bool) core.Message {
	t.Helper()
	op := conformance.NewOp(object, int(seq))
	require.NoError(t, op.Seal(nil))
	m, err := core.NewMessage(op, seq)
	require.NoError(t, err)
	// These tests give each message its seq as stream id.
	m.Ordered, m.Redelivery = ordered, redelivery
	if ordered {
		m.StreamSeq = seq
	}
	if redelivery {
		m.PrevStreamSeq = seq
	}
	return m
}

func publish(t *testing.T, s *pulsar.Sink, msgs ...core.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, err := range s.Publish(ctx, msgs) {
		require.NoError(t, err, "message %d", i)
	}
}

// TestOrderedStreamResumes: a sink that reconnects under the same producer
// name resumes its ordered stream from the highest sequence id the broker
// holds from that name, a re-send at or below it is dropped by the broker,
// and a new message above it is stored.
func TestOrderedStreamResumes(t *testing.T) {
	t.Parallel()
	forTopicKinds(t, func(t *testing.T, b *pulsartest.Broker, topic string) {
		url := b.SinkURL(topic, "producer_name=relay-7")
		ctx := context.Background()

		first, err := pulsar.Open(url)
		require.NoError(t, err)
		last, ok, err := first.OrderedStream(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Zero(t, last, "nothing sent yet under this name")
		_, ok, _ = first.OrderedStream(ctx)
		assert.False(t, ok, "one engine at a time holds the ordered stream")
		var msgs []core.Message
		for seq := int64(1); seq <= 12; seq++ {
			msgs = append(msgs, message(t, seq, true, false))
		}
		publish(t, first, msgs...)
		require.NoError(t, first.Close())

		second, err := pulsar.Open(url)
		require.NoError(t, err)
		defer second.Close()
		last, ok, err = second.OrderedStream(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, int64(12), last, "the broker's last sequence id from relay-7")
		// A crash's re-send of 11 and 12, then the stream goes on at 13.
		publish(t, second, message(t, 11, false, true), message(t, 12, false, true), message(t, 13, true, false))
		assert.Len(t, b.Messages(topic), 13, "re-sends dropped, 13 stored once")

		other, err := pulsar.Open(b.SinkURL(topic, "producer_name=relay-8"))
		require.NoError(t, err)
		defer other.Close()
		last, _, err = other.OrderedStream(ctx)
		require.NoError(t, err)
		assert.Zero(t, last, "another producer name has its own sequence")
	})
}

// TestBrokerLastSequences pins what the sink reads from pulsar-client-go's
// producer (see brokerLastSequences): an upgrade that moves it fails here.
// Per partition: the sink routes each key where partitionOf says, and the
// broker keeps one last sequence per partition.
func TestBrokerLastSequences(t *testing.T) {
	t.Parallel()
	forTopicKinds(t, func(t *testing.T, b *pulsartest.Broker, topic string) {
		s, err := pulsar.Open(b.SinkURL(topic, "producer_name=pin"))
		require.NoError(t, err)
		var msgs []core.Message
		for seq := int64(1); seq <= 30; seq++ {
			msgs = append(msgs, message(t, seq, true, false))
		}
		publish(t, s, msgs...)
		require.NoError(t, s.Close())

		stored := b.Messages(topic)
		require.Len(t, stored, 30)
		parts := 1
		if stored[0].Partition >= 0 {
			parts = 3
		}
		want := make([]int64, parts)
		for i := range want {
			want[i] = -1
		}
		for _, m := range stored {
			p := pulsar.PartitionOf(m.Key, parts)
			assert.Equal(t, max(m.Partition, 0), int32(p), "key %s goes where partitionOf says", m.Key)
			want[p] = max(want[p], int64(m.SequenceID))
		}

		client, err := pc.NewClient(pc.ClientOptions{URL: b.URL()})
		require.NoError(t, err)
		defer client.Close()
		p, err := client.CreateProducer(pc.ProducerOptions{Topic: topic, Name: "pin"})
		require.NoError(t, err)
		defer p.Close()
		lasts, ok := pulsar.BrokerLastSequences(p)
		require.True(t, ok, "pulsar-client-go's producer layout changed: see brokerLastSequences")
		assert.Equal(t, want, lasts)
		assert.Equal(t, int64(-1), p.LastSequenceID(), "pulsar-client-go's LastSequenceID was fixed: use it instead of brokerLastSequences")
	})
}

// TestRetryWaitsForPendingSend: the broker stores a batch but its
// receipts come late, after the publish gave up (as in an outage). The
// engine's retry of those operations must not put a second copy on the
// topic: it waits for the producer's pending send and takes its outcome.
// Both for the ordered stream (main producer) and for messages outside it.
// Messages sent after the retry are stored once too.
func TestRetryWaitsForPendingSend(t *testing.T) {
	t.Parallel()
	for _, ordered := range []bool{true, false} {
		t.Run(map[bool]string{true: "ordered", false: "unordered"}[ordered], func(t *testing.T) {
			t.Parallel()
			topic := pulsartest.Topic()
			b := pulsartest.Start(t)
			s, err := pulsar.Open(b.SinkURL(topic, "producer_name=relay-late"))
			require.NoError(t, err)
			defer s.Close()
			if ordered {
				_, ok, err := s.OrderedStream(context.Background())
				require.NoError(t, err)
				require.True(t, ok)
			}

			var msgs, retries []core.Message
			for seq := int64(1); seq <= 5; seq++ {
				m := message(t, seq, ordered, false)
				msgs = append(msgs, m)
				m.Ordered = false // the same operation, claimed again (below the stream)
				retries = append(retries, m)
			}
			b.WithholdReceipts(true)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			errs := s.Publish(ctx, msgs)
			cancel()
			for i, err := range errs {
				require.True(t, core.IsUnavailable(err), "message %d: no receipt yet: %v", i, err)
			}
			require.Eventually(t, func() bool { return len(b.Messages(topic)) == 5 }, testenv.Patience(t), 10*time.Millisecond)

			done := make(chan []error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				done <- s.Publish(ctx, retries) // the engine's retry, while receipts are still withheld
			}()
			time.Sleep(200 * time.Millisecond)
			b.WithholdReceipts(false)
			b.DropConnections() // the client reconnects and re-sends what it holds; the broker drops the copies
			for i, err := range <-done {
				require.NoError(t, err, "retry of message %d", i)
			}
			publish(t, s, message(t, 6, ordered, false))
			publish(t, s, retries[2]) // a later retry of a delivered send: answered, not re-sent
			copies := map[string]int{}
			for _, m := range b.Messages(topic) {
				copies[m.Properties[core.HeaderOpID]]++
			}
			assert.Len(t, copies, 6)
			for id, n := range copies {
				assert.Equal(t, 1, n, "copies of %s", id)
			}
		})
	}
}

// TestBorrowStream: another sink can borrow a producer name only while
// its owner is not connected (core.ErrStreamBusy) and learns the broker's
// last sequence id under it; released, the name is free again.
func TestBorrowStream(t *testing.T) {
	t.Parallel()
	forTopicKinds(t, func(t *testing.T, b *pulsartest.Broker, topic string) {
		ctx := context.Background()
		owner, err := pulsar.Open(b.SinkURL(topic, "producer_name=relay-a"))
		require.NoError(t, err)
		assert.Equal(t, "relay-a", owner.StreamName())
		_, ok, err := owner.OrderedStream(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		var msgs []core.Message
		for seq := int64(1); seq <= 10; seq++ {
			msgs = append(msgs, message(t, seq, true, false))
		}
		publish(t, owner, msgs...)

		taker, err := pulsar.Open(b.SinkURL(topic, "producer_name=relay-b"))
		require.NoError(t, err)
		defer taker.Close()
		_, err = taker.Borrow(ctx, "relay-a")
		require.ErrorIs(t, err, core.ErrStreamBusy, "the owner is connected")
		_, err = taker.Borrow(ctx, "relay-b")
		require.Error(t, err, "a sink does not borrow its own stream")

		require.NoError(t, owner.Close())
		bs, err := taker.Borrow(ctx, "relay-a")
		require.NoError(t, err)
		for _, m := range msgs {
			assert.True(t, bs.Holds(m.Key, m.Seq), "the broker holds seq %d", m.Seq)
		}
		assert.False(t, bs.Holds(msgs[9].Key, 11), "nothing above the last sequence of its partition")
		bs.Release()
		bs.Release()

		again, err := pulsar.Open(b.SinkURL(topic, "producer_name=relay-a"))
		require.NoError(t, err, "the released name is free")
		defer again.Close()
		last, ok, err := again.OrderedStream(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, int64(10), last)
	})
}

// TestRedeliveryPerPartition: the broker keeps one last sequence per
// partition. A crashed relay's stream reached one partition but not
// another; the restarted relay's re-sends for the partition that got
// nothing are new to the broker and must be stored, in whatever order they
// come (a re-send under its old id there would raise that partition's last
// sequence and have the next lower one dropped).
func TestRedeliveryPerPartition(t *testing.T) {
	t.Parallel()
	const parts = 3
	topic := pulsartest.Topic()
	b := pulsartest.Start(t, pulsartest.WithPartitionedTopic(topic, parts))
	url := b.SinkURL(topic, "producer_name=relay-p")
	reached, missed, _ := splitByPartition(t, 30, parts)
	require.GreaterOrEqual(t, len(missed), 2)
	require.Greater(t, reached[len(reached)-1].Seq, missed[len(missed)-1].Seq, "the broker's highest last sequence is above every missed one")
	second := sendThenReconnect(t, url, reached)
	// Re-sends, the higher one first.
	hi, lo := missed[len(missed)-1], missed[0]
	hi.Ordered, hi.Redelivery, hi.PrevStreamSeq = false, true, hi.Seq
	lo.Ordered, lo.Redelivery, lo.PrevStreamSeq = false, true, lo.Seq
	publish(t, second, hi)
	publish(t, second, lo)
	ids := map[string]bool{}
	for _, m := range b.Messages(topic) {
		ids[m.Properties[core.HeaderOpID]] = true
	}
	assert.Len(t, b.Messages(topic), len(reached)+2)
	assert.True(t, ids[hi.ID], "the higher re-send is stored")
	assert.True(t, ids[lo.ID], "the lower re-send is stored too")
}

// TestNewOperationsGoInTheStream: with a writer committing all the time,
// every operation a single relay publishes goes through its ordered stream
// (the producer named producer_name), which is what lets the broker drop
// a re-send after a crash. The relay's second claim, for operations that
// came back below the stream, used to take operations committed just after
// the ordered claim looked, and sent about a fifth of them through the
// unordered producer.
func TestNewOperationsGoInTheStream(t *testing.T) {
	t.Parallel()
	for _, strict := range []bool{false, true} {
		t.Run(map[bool]string{false: "any-order", true: "strict"}[strict], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			topic := pulsartest.Topic()
			b := pulsartest.Start(t, pulsartest.WithPartitionedTopic(topic, 4))
			db := sqlitetest.Open(t, sqlitetest.URL(t))
			c, err := core.NewClient(db, nil, core.Config{Strategy: core.StoreOnly})
			require.NoError(t, err)
			sink, err := pulsar.Open(b.SinkURL(topic, "producer_name=r1"))
			require.NoError(t, err)
			defer sink.Close()
			e, err := core.NewEngine(db, sink, core.EngineConfig{Node: "r1", Workers: 1, BatchSize: 200, StrictOrder: strict,
				PollInterval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
			require.NoError(t, err)
			require.NoError(t, e.Start(ctx))
			defer e.Stop(ctx)
			for i := 0; i < 50; i++ {
				ops := make([]*core.Operation, 100)
				for j := range ops {
					ops[j] = conformance.NewOp(fmt.Sprintf("o-%d", (i*100+j)%300), i*100+j)
				}
				require.NoError(t, c.Record(ctx, ops...))
				time.Sleep(5 * time.Millisecond)
			}
			require.Eventually(t, func() bool { return len(b.Messages(topic)) >= 5000 }, testenv.Patience(t), 10*time.Millisecond)
			byProducer := map[string]int{}
			for _, m := range b.Messages(topic) {
				byProducer[m.Producer]++
			}
			assert.Equal(t, map[string]int{"r1": 5000}, byProducer)
		})
	}
}

// TestSkippedOperationsGoInTheStream: relays with strict order work
// through a backlog on few objects, with a broker slow enough that each
// relay claims its next batch while the last is in flight. A claim then
// skips the operations whose object has an earlier one in flight (at
// another relay, or in the relay's own last batch) and takes later ones
// of other objects, so by the time a skipped operation is free the
// relays' streams have sent higher seqs. It still goes through a relay's
// ordered stream (stream ids are numbered by batch, not by seq), never
// through an unordered producer, whose sends nothing can deduplicate
// after a crash. Before stream ids were numbered by batch, most of the
// operations went out unordered here.
func TestSkippedOperationsGoInTheStream(t *testing.T) {
	t.Parallel()
	for _, relays := range []int{1, 3} {
		t.Run(fmt.Sprintf("relays-%d", relays), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			topic := pulsartest.Topic()
			b := pulsartest.Start(t, pulsartest.WithPartitionedTopic(topic, 4))
			db := sqlitetest.Open(t, sqlitetest.URL(t))
			c, err := core.NewClient(db, nil, core.Config{Strategy: core.StoreOnly})
			require.NoError(t, err)
			const n = 1500
			rnd := rand.New(rand.NewPCG(1, 2))
			ops := make([]*core.Operation, n)
			for i := range ops {
				ops[i] = conformance.NewOp(fmt.Sprintf("o-%d", rnd.IntN(40)), i)
			}
			require.NoError(t, c.Record(ctx, ops...))
			var nodes []string
			for i := range relays {
				node := fmt.Sprintf("r%d", i)
				nodes = append(nodes, node)
				sink, err := pulsar.Open(b.SinkURL(topic, "producer_name="+node))
				require.NoError(t, err)
				defer sink.Close()
				e, err := core.NewEngine(db, slowSink{sink}, core.EngineConfig{Node: node, Workers: 1, BatchSize: 20, StrictOrder: true,
					PollInterval: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
				require.NoError(t, err)
				require.NoError(t, e.Start(ctx))
				defer e.Stop(ctx)
			}
			untilPublished(t, db, n)
			byProducer := map[string]int{}
			for _, m := range b.Messages(topic) {
				byProducer[m.Producer]++
			}
			ordered := 0
			for _, node := range nodes {
				ordered += byProducer[node]
			}
			assert.Equal(t, n, ordered, "every operation once, through an ordered stream: %v", byProducer)
		})
	}
}

// untilPublished waits until s has published n operations.
func untilPublished(t *testing.T, s core.Store, n int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := s.Stats(context.Background())
		return err == nil && st.Counts[core.StatePublished] == n
	}, testenv.Patience(t), 10*time.Millisecond)
}

// slowSink delays every batch, as a broker far away does.
type slowSink struct{ *pulsar.Sink }

func (s slowSink) Publish(ctx context.Context, msgs []core.Message) []error {
	time.Sleep(20 * time.Millisecond)
	return s.Sink.Publish(ctx, msgs)
}

// TestPositionPerPartition: a sink's Position is the broker's last
// sequence per partition when it connected, and HeldAt judges a message
// by its own partition's: what the engine records as the end of a run, to
// tell later which of that run's sends the broker holds.
func TestPositionPerPartition(t *testing.T) {
	t.Parallel()
	const parts = 3
	topic := pulsartest.Topic()
	b := pulsartest.Start(t, pulsartest.WithPartitionedTopic(topic, parts))
	url := b.SinkURL(topic, "producer_name=relay-q")
	sent, _, dark := splitByPartition(t, 18, parts)
	require.GreaterOrEqual(t, len(sent), 2)
	fresh, err := pulsar.Open(url)
	require.NoError(t, err)
	assert.Equal(t, "-1,-1,-1", fresh.Position(), "nothing held yet")
	require.NoError(t, fresh.Close())
	second := sendThenReconnect(t, url, sent)
	pos := second.Position()
	lasts := strings.Split(pos, ",")
	require.Len(t, lasts, parts)
	assert.Equal(t, "-1", lasts[dark])
	for _, m := range sent {
		assert.True(t, second.HeldAt(pos, m.Key, m.StreamSeq), "seq %d was sent", m.Seq)
		assert.False(t, second.HeldAt(pos, m.Key, sent[len(sent)-1].StreamSeq+1), "above every last")
	}
	darkKey := ""
	for i := 0; darkKey == ""; i++ {
		if k := fmt.Sprintf("dark-%d", i); pulsar.PartitionOf(k, parts) == dark {
			darkKey = k
		}
	}
	assert.False(t, second.HeldAt(pos, darkKey, 1), "its partition held nothing")
	assert.False(t, second.HeldAt("5,5", sent[0].Key, 1), "a position of another partition count says nothing")
	assert.False(t, second.HeldAt("", sent[0].Key, 1))
	assert.False(t, second.HeldAt("x,y,z", sent[0].Key, 1))
}

// sendThenReconnect sends msgs in the ordered stream of a sink at url,
// closes it, and returns a second sink under the same name, closed when t
// ends.
func sendThenReconnect(t *testing.T, url string, msgs []core.Message) *pulsar.Sink {
	t.Helper()
	first, err := pulsar.Open(url)
	require.NoError(t, err)
	_, _, err = first.OrderedStream(context.Background())
	require.NoError(t, err)
	publish(t, first, msgs...)
	require.NoError(t, first.Close())
	second, err := pulsar.Open(url)
	require.NoError(t, err)
	t.Cleanup(func() { second.Close() })
	return second
}

// splitByPartition makes n ordered messages on objects obj-1 … obj-n
// (seqs 1 … n) and splits them by partition of parts: those of the first
// one's partition (dark, the one that is to get nothing) and the others.
func splitByPartition(t *testing.T, n, parts int) (others, inDark []core.Message, dark int) {
	t.Helper()
	dark = -1
	for seq := int64(1); seq <= int64(n); seq++ {
		m := objectMessage(t, fmt.Sprintf("obj-%d", seq), seq, true, false)
		p := pulsar.PartitionOf(m.Key, parts)
		if dark < 0 {
			dark = p
		}
		if p == dark {
			inDark = append(inDark, m)
		} else {
			others = append(others, m)
		}
	}
	return others, inDark, dark
}
