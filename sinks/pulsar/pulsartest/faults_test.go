package pulsartest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"
)

func TestRejectSends(t *testing.T) {
	b := startBroker(t)
	c := newClient(t, b)
	topic := uniqueTopic("reject")
	ctx := context.Background()
	// Batching on: see the data race note in TestDropConnectionsDuringSends
	// (the client reconnects after each SEND_ERROR).
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, SendTimeout: 400 * time.Millisecond})

	b.RejectSends(true)
	_, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("rejected")})
	require.Error(t, err)
	// The client retransmits on every reconnect until its send timeout, and
	// a retransmission already queued may still reach the broker after Send
	// gave up: close the producer and let that drain while still rejecting.
	p.Close()
	time.Sleep(100 * time.Millisecond)
	require.Empty(t, b.Messages(topic))

	b.RejectSends(false)
	p = newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("accepted")})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, payloads(b.Messages(topic)))
}

func TestWithholdReceipts(t *testing.T) {
	b := startBroker(t)
	c := newClient(t, b)
	topic := uniqueTopic("withhold")
	ctx := context.Background()
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "w", SendTimeout: 300 * time.Millisecond, DisableBatching: true})

	b.WithholdReceipts(true)
	_, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("stored-but-unacknowledged")})
	require.Error(t, err)
	require.True(t, errors.Is(err, pulsar.ErrSendTimeout), "got %v", err)
	require.Equal(t, []string{"stored-but-unacknowledged"}, payloads(b.Messages(topic)))

	b.WithholdReceipts(false)
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("next")})
	require.NoError(t, err)
	require.Equal(t, []string{"stored-but-unacknowledged", "next"}, payloads(b.Messages(topic)))
}

func TestDelayReceipts(t *testing.T) {
	b := startBroker(t)
	c := newClient(t, b)
	topic := uniqueTopic("delay")
	ctx := context.Background()
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, SendTimeout: 5 * time.Second})

	b.DelayReceipts(200 * time.Millisecond)
	start := time.Now()
	_, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("slow")})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)

	// Receipts are pipelined: many async sends take about one delay, not one each.
	start = time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			require.NoError(t, err)
			wg.Done()
		})
	}
	require.NoError(t, p.FlushWithCtx(context.Background()))
	wg.Wait()
	require.Less(t, time.Since(start), 2*time.Second)

	b.DelayReceipts(0)
	start = time.Now()
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("fast")})
	require.NoError(t, err)
	require.Less(t, time.Since(start), 200*time.Millisecond)
	require.Len(t, b.Messages(topic), 22)
}

func TestRestart(t *testing.T) {
	b := startBroker(t)
	topic := uniqueTopic("restart")
	ctx := context.Background()
	c := newClient(t, b)
	// Batching on: see the data race note in TestDropConnectionsDuringSends.
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "r"})
	for i := 0; i < 5; i++ {
		_, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))})
		require.NoError(t, err)
	}
	cons := subscribe(t, c, pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "durable", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		AckWithResponse: true,
	})
	for _, m := range receive(t, cons, 2) {
		require.NoError(t, cons.Ack(m))
	}
	cons.Close()

	b.Stop()
	require.Equal(t, []string{"0", "1", "2", "3", "4"}, payloads(b.Messages(topic)))
	require.NoError(t, b.Restart())

	// The old producer reconnects by itself and goes on where it was.
	_, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("5")})
	require.NoError(t, err)
	stored := b.Messages(topic)
	require.Len(t, stored, 6)
	require.Equal(t, uint64(5), stored[5].SequenceID)

	// A new client reads everything back.
	c2 := newClient(t, b)
	r, err := c2.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	require.NoError(t, err)
	defer r.Close()
	var got []string
	for r.HasNext() {
		m, err := r.Next(ctx)
		require.NoError(t, err)
		got = append(got, string(m.Payload()))
	}
	require.Equal(t, []string{"0", "1", "2", "3", "4", "5"}, got)

	// The durable subscription kept its cursor across the restart.
	cons2 := subscribe(t, c2, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "durable"})
	m := receive(t, cons2, 1)[0]
	require.Equal(t, "2", string(m.Payload()))

	// Restart while running works too.
	require.NoError(t, b.Restart())
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("6")})
	require.NoError(t, err)
	require.Len(t, b.Messages(topic), 7)
}
