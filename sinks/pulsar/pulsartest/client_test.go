package pulsartest_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"
)

func TestMultiTopicAndRegexConsumers(t *testing.T) {
	b := startBroker(t)
	c := newClient(t, b)
	ctx := context.Background()
	topics := []string{"persistent://acme/orders/eu", "persistent://acme/orders/us", "persistent://acme/other/x"}
	for _, topic := range topics {
		p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
		_, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(topic)})
		require.NoError(t, err)
	}

	multi := subscribe(t, c, pulsar.ConsumerOptions{
		Topics: topics[:2], SubscriptionName: "multi", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	regex := subscribe(t, c, pulsar.ConsumerOptions{
		TopicsPattern: "persistent://acme/orders/.*", SubscriptionName: "regex",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	for _, cons := range []pulsar.Consumer{multi, regex} {
		var got []string
		for _, m := range receive(t, cons, 2) {
			got = append(got, string(m.Payload()))
			require.NoError(t, cons.Ack(m))
		}
		sort.Strings(got)
		require.Equal(t, topics[:2], got)
		expectNothing(t, cons, 100*time.Millisecond)
	}
}

func TestSchemasAreAcceptedAndIgnored(t *testing.T) {
	b := startBroker(t)
	c := newClient(t, b)
	topic := uniqueTopic("schema")
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewStringSchema(nil)})
	_, err := p.Send(context.Background(), &pulsar.ProducerMessage{Value: "typed"})
	require.NoError(t, err)
	require.Equal(t, []string{"typed"}, payloads(b.Messages(topic)))

	cons := subscribe(t, c, pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s", Schema: pulsar.NewStringSchema(nil),
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	m := receive(t, cons, 1)[0]
	var s *string // StringSchema decodes into a **string
	require.NoError(t, m.GetSchemaValue(&s))
	require.Equal(t, "typed", *s)
}

func TestBatchIndexAckAndUnsubscribe(t *testing.T) {
	b := startBroker(t)
	c := newClient(t, b)
	ctx := context.Background()
	topic := uniqueTopic("batchack")
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, BatchingMaxPublishDelay: time.Hour, BatchingMaxMessages: 6})
	for i := 0; i < 6; i++ {
		p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}, nil)
	}
	require.NoError(t, p.FlushWithCtx(context.Background()))
	stored := b.Messages(topic)
	require.Len(t, stored, 6)
	require.Equal(t, stored[0].EntryID, stored[5].EntryID, "one batch")

	opts := pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		EnableBatchIndexAcknowledgment: true, AckWithResponse: true,
	}
	cons, err := c.Subscribe(opts)
	require.NoError(t, err)
	for i, m := range receive(t, cons, 6) {
		if i%2 == 0 {
			require.NoError(t, cons.Ack(m))
		}
	}
	cons.Close()

	// Only the unacknowledged half of the batch comes back, with its indexes.
	cons = subscribe(t, c, opts)
	again := receive(t, cons, 3)
	for i, m := range again {
		require.Equal(t, fmt.Sprint(2*i+1), string(m.Payload()))
		require.Equal(t, int32(2*i+1), m.ID().BatchIdx())
		require.NoError(t, cons.Ack(m))
	}
	expectNothing(t, cons, 100*time.Millisecond)

	// Unsubscribe drops the subscription: a new one at Latest gets nothing old.
	require.NoError(t, cons.Unsubscribe())
	cons2 := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	expectNothing(t, cons2, 100*time.Millisecond)
}

// TestSubscriptionTypes covers Key_Shared, a zero-queue consumer and two
// Shared consumers splitting a subscription.
func TestSubscriptionTypes(t *testing.T) {
	b := startBroker(t)
	c := newClient(t, b)
	topic := uniqueTopic("misc")
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	for i := 0; i < 5; i++ {
		_, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i)), Key: fmt.Sprint(i % 2)})
		require.NoError(t, err)
	}
	ks := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "ks", Type: pulsar.KeyShared, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	require.Len(t, receive(t, ks, 5), 5)
	zq := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "zq", EnableZeroQueueConsumer: true, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	for _, m := range receive(t, zq, 5) {
		require.NoError(t, zq.Ack(m))
	}
	// Two Shared consumers split the work.
	s1 := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sh", Type: pulsar.Shared, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 1})
	s2 := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sh", Type: pulsar.Shared, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 1})
	got := 0
	for got < 5 {
		for _, cons := range []pulsar.Consumer{s1, s2} {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			m, err := cons.Receive(ctx)
			cancel()
			if err == nil {
				got++
				require.NoError(t, cons.Ack(m))
			}
		}
	}
}
