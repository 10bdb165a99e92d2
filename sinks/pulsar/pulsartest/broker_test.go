package pulsartest_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/internal/testenv"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// produceMixed sends n messages "m-<i>" with key "k-<i>" and property
// i=<i>: the first half with Send, the rest with SendAsync. It returns the
// message ids the client got, in order.
func produceMixed(t *testing.T, p pulsar.Producer, n int) []pulsar.MessageID {
	t.Helper()
	ctx := context.Background()
	ids := make([]pulsar.MessageID, n)
	msg := func(i int) *pulsar.ProducerMessage {
		return &pulsar.ProducerMessage{
			Payload:    []byte(fmt.Sprintf("m-%d", i)),
			Key:        fmt.Sprintf("k-%d", i),
			Properties: map[string]string{"i": strconv.Itoa(i), "parity": strconv.Itoa(i % 2)},
		}
	}
	for i := 0; i < n/2; i++ {
		id, err := p.Send(ctx, msg(i))
		require.NoError(t, err)
		ids[i] = id
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := n / 2; i < n; i++ {
		wg.Add(1)
		p.SendAsync(ctx, msg(i), func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			ids[i], errs[i] = id, err
			wg.Done()
		})
	}
	require.NoError(t, p.FlushWithCtx(context.Background()))
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "SendAsync %d", i)
	}
	return ids
}

func checkStored(t *testing.T, stored []pulsartest.Message, topic, producer string, ids []pulsar.MessageID) {
	t.Helper()
	require.Len(t, stored, len(ids))
	for i, m := range stored {
		require.Equal(t, topic, m.Topic)
		require.Equal(t, fmt.Sprintf("m-%d", i), string(m.Payload))
		require.Equal(t, fmt.Sprintf("k-%d", i), m.Key)
		require.Equal(t, map[string]string{"i": strconv.Itoa(i), "parity": strconv.Itoa(i % 2)}, m.Properties)
		require.Equal(t, producer, m.Producer)
		require.Equal(t, uint64(i), m.SequenceID)
		require.Equal(t, int32(-1), m.Partition)
		require.WithinDuration(t, time.Now(), m.PublishTime, time.Minute)
		sameID(t, ids[i], m)
	}
}

func TestProduce(t *testing.T) {
	b := startBroker(t)
	c := newClient(t, b)
	for _, batching := range []bool{false, true} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			topic := uniqueTopic("produce")
			p := newProducer(t, c, pulsar.ProducerOptions{
				Topic:                   topic,
				Name:                    "producer-a",
				DisableBatching:         !batching,
				BatchingMaxPublishDelay: 50 * time.Millisecond,
			})
			ids := produceMixed(t, p, 40)
			stored := b.Messages(topic)
			checkStored(t, stored, topic, "producer-a", ids)

			batched := 0
			for _, m := range stored {
				if m.BatchIndex > 0 {
					batched++
				}
				if !batching {
					require.Equal(t, int32(-1), m.BatchIndex)
				}
			}
			if batching {
				require.Positive(t, batched, "SendAsync with batching should produce real batches")
				require.Less(t, stored[len(stored)-1].EntryID, uint64(len(stored)-1), "fewer entries than messages")
			} else {
				require.Equal(t, uint64(len(stored)-1), stored[len(stored)-1].EntryID)
			}
			// The short name finds the same topic.
			require.Len(t, b.Messages(topic[len("persistent://public/default/"):]), len(stored))
		})
	}
	t.Run("assigned producer name", func(t *testing.T) {
		topic := uniqueTopic("noname")
		p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
		require.NotEmpty(t, p.Name())
		_, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("x")})
		require.NoError(t, err)
		stored := b.Messages(topic)
		require.Len(t, stored, 1)
		require.Equal(t, p.Name(), stored[0].Producer)
		require.Nil(t, stored[0].Properties)
		require.Empty(t, stored[0].Key)
	})
	require.Nil(t, b.Messages("persistent://public/default/does-not-exist"))
}

func TestConsume(t *testing.T) {
	b := startBroker(t)
	c := newClient(t, b)
	topic := uniqueTopic("consume")
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "p", BatchingMaxPublishDelay: 20 * time.Millisecond})
	ids := produceMixed(t, p, 30)
	stored := b.Messages(topic)
	checkStored(t, stored, topic, "p", ids)

	check := func(msgs []pulsar.Message) {
		t.Helper()
		for i, m := range msgs {
			require.Equal(t, fmt.Sprintf("m-%d", i), string(m.Payload()))
			require.Equal(t, fmt.Sprintf("k-%d", i), m.Key())
			require.Equal(t, strconv.Itoa(i), m.Properties()["i"])
			require.Equal(t, "p", m.ProducerName())
			require.Equal(t, topic, m.Topic())
			sameID(t, m.ID(), stored[i])
		}
	}

	c1 := subscribe(t, c, pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s1", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		ReceiverQueueSize: 7, // several FLOW rounds
	})
	msgs := receive(t, c1, 30)
	check(msgs)
	for _, m := range msgs {
		require.NoError(t, c1.Ack(m))
	}

	// A second subscription gets everything too.
	c2 := subscribe(t, c, pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s2", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		Type: pulsar.Shared,
	})
	check(receive(t, c2, 30))

	// A Latest subscription sees only what comes next.
	c3 := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s3"})

	// Acks moved the cursor of s1: after re-subscribing, only new messages come.
	c1.Close()
	_, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("late")})
	require.NoError(t, err)
	c1 = subscribe(t, c, pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s1", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	m := receive(t, c1, 1)[0]
	require.Equal(t, "late", string(m.Payload()))
	require.Equal(t, "late", string(receive(t, c3, 1)[0].Payload()))

	// s2 did not ack: a new consumer on it gets everything again, in order.
	c2.Close()
	c2 = subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s2", Type: pulsar.Shared})
	again := receive(t, c2, 31)
	check(again[:30])
	require.Equal(t, "late", string(again[30].Payload()))

	// Exclusive subscriptions refuse a second consumer.
	_, err = c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s1"})
	require.Error(t, err)
}

func TestConsumerAckAndRedelivery(t *testing.T) {
	b := startBroker(t)
	c := newClient(t, b)
	topic := uniqueTopic("redeliver")
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	for i := 0; i < 6; i++ {
		_, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(strconv.Itoa(i))})
		require.NoError(t, err)
	}

	cons := subscribe(t, c, pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s", Type: pulsar.Shared,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		NackRedeliveryDelay:         50 * time.Millisecond,
		AckWithResponse:             true,
	})
	msgs := receive(t, cons, 6)
	for i, m := range msgs {
		require.Equal(t, strconv.Itoa(i), string(m.Payload()))
		require.Zero(t, m.RedeliveryCount())
		if i == 2 {
			cons.Nack(m)
		} else {
			require.NoError(t, cons.Ack(m))
		}
	}
	m := receive(t, cons, 1)[0]
	require.Equal(t, "2", string(m.Payload()))
	require.Equal(t, uint32(1), m.RedeliveryCount())
	require.NoError(t, cons.Ack(m))
	expectNothing(t, cons, 200*time.Millisecond)

	// Cumulative ack on a failover subscription.
	fc := subscribe(t, c, pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "f", Type: pulsar.Failover,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	msgs = receive(t, fc, 6)
	require.NoError(t, fc.AckCumulative(msgs[3]))
	fc.Close()
	fc = subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "f", Type: pulsar.Failover})
	rest := receive(t, fc, 2)
	require.Equal(t, "4", string(rest[0].Payload()))
	require.Equal(t, "5", string(rest[1].Payload()))

	// Seek back on a durable subscription: by publish time, then by message
	// id (the client skips the message itself; it also keeps that id as its
	// start position afterwards, which is why the order matters).
	require.NoError(t, fc.SeekByTime(time.Now().Add(-time.Hour)))
	again := receive(t, fc, 6)
	for i, m := range again {
		require.Equal(t, strconv.Itoa(i), string(m.Payload()))
	}
	require.NoError(t, fc.Seek(msgs[0].ID()))
	again = receive(t, fc, 5)
	for i, m := range again {
		require.Equal(t, strconv.Itoa(i+1), string(m.Payload()))
	}
}

func TestReader(t *testing.T) {
	b := startBroker(t)
	c := newClient(t, b)
	topic := uniqueTopic("reader")
	ctx := context.Background()

	// Empty topic: nothing to read.
	empty, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	require.NoError(t, err)
	require.False(t, empty.HasNext())
	empty.Close()

	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "p", BatchingMaxPublishDelay: 20 * time.Millisecond})
	ids := produceMixed(t, p, 20)

	r, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	require.NoError(t, err)
	defer r.Close()
	var got []string
	for r.HasNext() {
		m, err := r.Next(ctx)
		require.NoError(t, err)
		got = append(got, string(m.Payload()))
	}
	require.Len(t, got, 20)
	for i, s := range got {
		require.Equal(t, fmt.Sprintf("m-%d", i), s)
	}
	last, err := r.GetLastMessageID()
	require.NoError(t, err)
	require.Equal(t, ids[19].EntryID(), last.EntryID())
	require.Equal(t, ids[19].BatchIdx(), last.BatchIdx())

	// New messages make HasNext true again.
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("more")})
	require.NoError(t, err)
	require.True(t, r.HasNext())
	m, err := r.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, "more", string(m.Payload()))
	require.False(t, r.HasNext())

	// Start after a given message (exclusive) and at it (inclusive).
	r2, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: ids[14]})
	require.NoError(t, err)
	defer r2.Close()
	m, err = r2.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, "m-15", string(m.Payload()))

	r3, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: ids[14], StartMessageIDInclusive: true})
	require.NoError(t, err)
	defer r3.Close()
	m, err = r3.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, "m-14", string(m.Payload()))

	// Latest, inclusive: the last message (GET_LAST_MESSAGE_ID + SEEK).
	r4, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.LatestMessageID(), StartMessageIDInclusive: true})
	require.NoError(t, err)
	defer r4.Close()
	require.True(t, r4.HasNext())
	m, err = r4.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, "more", string(m.Payload()))
	require.False(t, r4.HasNext())

	// Latest, exclusive: nothing until something new arrives.
	r5, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.LatestMessageID()})
	require.NoError(t, err)
	defer r5.Close()
	require.False(t, r5.HasNext())
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("newest")})
	require.NoError(t, err)
	nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err = r5.Next(nctx)
	require.NoError(t, err)
	require.Equal(t, "newest", string(m.Payload()))

	// Reader.Seek back to a message.
	require.NoError(t, r.Seek(ids[5]))
	m, err = r.Next(nctx)
	require.NoError(t, err)
	require.Equal(t, "m-6", string(m.Payload()))
}

func TestDedup(t *testing.T) {
	send := func(t *testing.T, p pulsar.Producer, from, to int64) {
		t.Helper()
		for seq := from; seq <= to; seq++ {
			s := seq
			_, err := p.Send(context.Background(), &pulsar.ProducerMessage{
				Payload: []byte(fmt.Sprintf("seq-%d", s)), SequenceID: &s,
			})
			require.NoError(t, err)
		}
	}
	seqs := func(msgs []pulsartest.Message) []uint64 {
		var out []uint64
		for _, m := range msgs {
			out = append(out, m.SequenceID)
		}
		return out
	}

	t.Run("on", func(t *testing.T) {
		b := startBroker(t)
		c := newClient(t, b)
		topic := uniqueTopic("dedup")
		p1 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "fixed", DisableBatching: true})
		send(t, p1, 1, 5)
		p1.Close()

		p2 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "fixed", DisableBatching: true})
		send(t, p2, 4, 7)
		require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7}, seqs(b.Messages(topic)))
		require.Equal(t, []string{"seq-1", "seq-2", "seq-3", "seq-4", "seq-5", "seq-6", "seq-7"}, payloads(b.Messages(topic)))

		// Without explicit sequence ids, a restarted producer continues after 7.
		p2.Close()
		p3 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "fixed"})
		_, err := p3.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("next")})
		require.NoError(t, err)
		stored := b.Messages(topic)
		require.Equal(t, uint64(8), stored[len(stored)-1].SequenceID)

		// As Pulsar 4.2.4 does (pulsar-client-go sets no
		// highest_sequence_id): a batch is judged by its first sequence id
		// alone. One that starts at or below the last is dropped whole, its
		// new messages too; one that starts above it is stored whole, and
		// its first id becomes the last, which a reconnecting producer is
		// told.
		sendBatch := func(from, to int64) {
			p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "fixed", BatchingMaxPublishDelay: time.Hour})
			defer p.Close()
			var wg sync.WaitGroup
			for seq := from; seq <= to; seq++ {
				s := seq
				wg.Add(1)
				p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("seq-%d", s)), SequenceID: &s},
					func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
						require.NoError(t, err)
						wg.Done()
					})
			}
			require.NoError(t, p.FlushWithCtx(context.Background()))
			wg.Wait()
		}
		p3.Close()
		sendBatch(7, 10) // starts at 7 <= 8: dropped, 9 and 10 with it
		require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8}, seqs(b.Messages(topic)))
		sendBatch(9, 12)  // starts above 8: stored whole; the last is now 9
		sendBatch(10, 11) // starts above 9: stored again, copies of 10 and 11
		stored = b.Messages(topic)
		require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 10, 11}, seqs(stored))
		require.Equal(t, int32(0), stored[8].BatchIndex)
		require.Equal(t, int32(1), stored[9].BatchIndex)
		p5 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "fixed"})
		_, err = p5.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("after")})
		require.NoError(t, err)
		stored = b.Messages(topic)
		require.Equal(t, uint64(11), stored[len(stored)-1].SequenceID, "a reconnecting producer continues after the last batch's first id")

		// Consumers see the batches as sent.
		cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
		got := receive(t, cons, 15)
		require.Equal(t, "seq-9", string(got[8].Payload()))
		require.Equal(t, "seq-10", string(got[12].Payload()))
		sameID(t, got[9].ID(), stored[9])
	})

	t.Run("off", func(t *testing.T) {
		b := startBroker(t, pulsartest.WithDedup(false))
		c := newClient(t, b)
		topic := uniqueTopic("nodedup")
		p1 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "fixed", DisableBatching: true})
		send(t, p1, 1, 5)
		p1.Close()
		p2 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "fixed", DisableBatching: true})
		send(t, p2, 4, 7)
		require.Equal(t, []uint64{1, 2, 3, 4, 5, 4, 5, 6, 7}, seqs(b.Messages(topic)))

		// Switching it on at run time.
		b.SetDedup(true)
		send(t, p2, 6, 8)
		require.Equal(t, []uint64{1, 2, 3, 4, 5, 4, 5, 6, 7, 8}, seqs(b.Messages(topic)))
	})
}

func TestPartitionedTopic(t *testing.T) {
	const base = "persistent://public/default/parted"
	b := startBroker(t, pulsartest.WithPartitionedTopic(base, 3))
	c := newClient(t, b)
	ctx := context.Background()

	parts, err := c.TopicPartitions(base)
	require.NoError(t, err)
	require.Equal(t, []string{base + "-partition-0", base + "-partition-1", base + "-partition-2"}, parts)

	p := newProducer(t, c, pulsar.ProducerOptions{Topic: base, Name: "pp", BatchingMaxPublishDelay: 10 * time.Millisecond})
	const n = 90
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		p.SendAsync(ctx, &pulsar.ProducerMessage{
			Payload: []byte(fmt.Sprintf("%d", i)),
			Key:     fmt.Sprintf("key-%d", i%12),
		}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			require.NoError(t, err)
			wg.Done()
		})
	}
	require.NoError(t, p.FlushWithCtx(context.Background()))
	wg.Wait()

	stored := b.Messages(base)
	require.Len(t, stored, n)
	used := map[int32]int{}
	keyPartition := map[string]int32{}
	lastOfKey := map[string]int{}
	prevPartition := int32(0)
	for _, m := range stored {
		require.Equal(t, fmt.Sprintf("%s-partition-%d", base, m.Partition), m.Topic)
		require.GreaterOrEqual(t, m.Partition, prevPartition, "partition by partition")
		prevPartition = m.Partition
		used[m.Partition]++
		if p, ok := keyPartition[m.Key]; ok {
			require.Equal(t, p, m.Partition, "a key stays on one partition")
		}
		keyPartition[m.Key] = m.Partition
		i, _ := strconv.Atoi(string(m.Payload))
		if prev, ok := lastOfKey[m.Key]; ok {
			require.Greater(t, i, prev, "per-key order")
		}
		lastOfKey[m.Key] = i
	}
	require.GreaterOrEqual(t, len(used), 2, "keys spread over partitions: %v", used)
	require.Len(t, b.Messages(base+"-partition-1"), used[1])

	cons := subscribe(t, c, pulsar.ConsumerOptions{
		Topic: base, SubscriptionName: "all", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	got := receive(t, cons, n)
	seen := map[string]bool{}
	for _, m := range got {
		seen[string(m.Payload())] = true
		require.Equal(t, keyPartition[m.Key()], m.ID().PartitionIdx())
		require.NoError(t, cons.Ack(m))
	}
	require.Len(t, seen, n)

	// Partitioned topics made at run time.
	b.CreatePartitionedTopic("later", 2)
	parts, err = c.TopicPartitions("later")
	require.NoError(t, err)
	require.Len(t, parts, 2)
	p2 := newProducer(t, c, pulsar.ProducerOptions{Topic: "later", DisableBatching: true})
	_, err = p2.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("x"), Key: "k"})
	require.NoError(t, err)
	require.Len(t, b.Messages("later"), 1)
	require.Contains(t, b.Topics(), "persistent://public/default/later-partition-1")
}

// TestProducerNameHeldOnce: as on a real broker, a producer name is held by
// one connected producer per topic; another gets ProducerBusy until the
// holder closes or its connection drops.
func TestProducerNameHeldOnce(t *testing.T) {
	b := startBroker(t)
	topic := uniqueTopic("named")
	c1 := newClient(t, b)
	p1 := newProducer(t, c1, pulsar.ProducerOptions{Topic: topic, Name: "owner", DisableBatching: true})

	c2 := newClient(t, b)
	_, err := c2.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "owner"})
	require.ErrorContains(t, err, "ProducerBusy")
	other := newProducer(t, c2, pulsar.ProducerOptions{Topic: uniqueTopic("named"), Name: "owner"})
	require.Equal(t, "owner", other.Name(), "the name is held per topic")

	p1.Close()
	_, err = c2.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "owner"})
	require.NoError(t, err, "a closed producer frees its name")

	// A dropped connection frees it too.
	c1.Close()
	c3 := newClient(t, b)
	_, err = c3.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "owner"})
	require.ErrorContains(t, err, "ProducerBusy")
	c2.Close()
	require.Eventually(t, func() bool {
		p, err := c3.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "owner"})
		if err == nil {
			p.Close()
		}
		return err == nil
	}, testenv.Patience(t), 50*time.Millisecond, "a closed connection frees its producers' names")
}
