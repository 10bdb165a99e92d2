//go:build !race

package pulsartest_test

// TestDropConnectionsDuringSends drops the broker's connections 180 times
// while producers send. It runs without the race detector only (.ci/run
// runs it in a step of its own): each reconnect of pulsar-client-go
// v0.19.0 had a data race of its own, between connection.run and
// rpcClient.RequestOnCnx (internal/connection.go:430 and
// internal/rpc_client.go:181; apache/pulsar-client-go#1483, fixed in
// v0.20.0), which a reconnect storm made the race detector report now and
// then. Not yet shown race-free on v0.21.0 under a storm, so it stays out
// of -race. Nothing of ours is involved; every other test, reconnects
// included, runs under -race.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"
)

func TestDropConnectionsDuringSends(t *testing.T) {
	b := startBroker(t)
	c := newClient(t, b)
	topic := uniqueTopic("drop")
	ctx := context.Background()

	cons := subscribe(t, c, pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})

	// The producers batch: pulsar-client-go v0.19.0 had a data race (found
	// by -race) when a producer without batching reconnects while a send is
	// in flight (partitionProducer.grabCnx rewrites producerName and
	// encryptor, which internalSingleSend reads). Batching producers use
	// their batch builder's copies instead.
	var mu sync.Mutex
	var okPayloads []string
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		p := newProducer(t, c, pulsar.ProducerOptions{
			Topic: topic, Name: fmt.Sprintf("w%d", w), SendTimeout: 5 * time.Second,
			BatchingMaxPublishDelay: 2 * time.Millisecond,
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if w == 0 && i%20 == 10 {
					b.DropConnections() // while the other workers are mid-send
				}
				payload := fmt.Sprintf("w%d-%d", w, i)
				if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(payload)}); err == nil {
					mu.Lock()
					okPayloads = append(okPayloads, payload)
					mu.Unlock()
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	drops := 0
loop:
	for {
		select {
		case <-done:
			break loop
		case <-time.After(5 * time.Millisecond):
			b.DropConnections()
			drops++
		}
	}
	require.Positive(t, drops)

	stored := map[string]int{}
	for _, m := range b.Messages(topic) {
		stored[string(m.Payload)]++
	}
	require.NotEmpty(t, okPayloads)
	for _, p := range okPayloads {
		require.Equal(t, 1, stored[p], "%s acknowledged: stored exactly once", p)
	}
	for p, n := range stored {
		require.Equal(t, 1, n, "%s stored more than once despite deduplication", p)
	}
	t.Logf("%d sends acknowledged, %d stored, %d connection drops", len(okPayloads), len(stored), drops)

	// The consumer, reconnected too, gets everything stored.
	got := map[string]bool{}
	for len(got) < len(stored) {
		for _, m := range receive(t, cons, 1) {
			got[string(m.Payload())] = true
			require.NoError(t, cons.Ack(m))
		}
	}
}
