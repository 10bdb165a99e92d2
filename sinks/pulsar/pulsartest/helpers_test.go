package pulsartest_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

var topicSeq atomic.Int64

// uniqueTopic returns a fresh full topic name.
func uniqueTopic(prefix string) string {
	return fmt.Sprintf("persistent://public/default/%s-%d", prefix, topicSeq.Add(1))
}

// startBroker starts a broker; PULSARTEST_LOG=1 makes it log to the test.
func startBroker(t *testing.T, opts ...pulsartest.Option) *pulsartest.Broker {
	t.Helper()
	if os.Getenv("PULSARTEST_LOG") != "" {
		opts = append(opts, pulsartest.WithLogf(t.Logf))
	}
	return pulsartest.Start(t, opts...)
}

// newClient returns a client with short timeouts, closed at the end of the test.
func newClient(t *testing.T, b *pulsartest.Broker) pulsar.Client {
	t.Helper()
	logger := log.DefaultNopLogger()
	if os.Getenv("PULSARTEST_LOG") != "" {
		logger = log.NewLoggerWithSlog(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	}
	c, err := pulsar.NewClient(pulsar.ClientOptions{
		URL:               b.URL(),
		OperationTimeout:  5 * time.Second,
		ConnectionTimeout: 2 * time.Second,
		Logger:            logger,
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func newProducer(t *testing.T, c pulsar.Client, opts pulsar.ProducerOptions) pulsar.Producer {
	t.Helper()
	if opts.SendTimeout == 0 {
		opts.SendTimeout = 5 * time.Second
	}
	p, err := c.CreateProducer(opts)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

func subscribe(t *testing.T, c pulsar.Client, opts pulsar.ConsumerOptions) pulsar.Consumer {
	t.Helper()
	cons, err := c.Subscribe(opts)
	require.NoError(t, err)
	t.Cleanup(cons.Close)
	return cons
}

// receive reads n messages, failing the test if they do not come within 10s.
func receive(t *testing.T, cons pulsar.Consumer, n int) []pulsar.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make([]pulsar.Message, 0, n)
	for len(out) < n {
		m, err := cons.Receive(ctx)
		require.NoError(t, err, "received %d of %d messages", len(out), n)
		out = append(out, m)
	}
	return out
}

// expectNothing checks that no message arrives within d.
func expectNothing(t *testing.T, cons pulsar.Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := cons.Receive(ctx)
	if err == nil {
		t.Fatalf("unexpected message %q (id %v)", m.Payload(), m.ID())
	}
}

// sameID checks that a client message id designates stored message m.
// pulsar-client-go numbers a message sent without batching as batch index 0
// and the single partition of a non-partitioned topic as partition 0, where
// the wire (and Message) say -1.
func sameID(t *testing.T, id pulsar.MessageID, m pulsartest.Message) {
	t.Helper()
	require.Equal(t, int64(m.LedgerID), id.LedgerID(), "ledger of %q", m.Payload)
	require.Equal(t, int64(m.EntryID), id.EntryID(), "entry of %q", m.Payload)
	require.Equal(t, max(m.BatchIndex, 0), id.BatchIdx(), "batch index of %q", m.Payload)
	require.Equal(t, max(m.Partition, 0), id.PartitionIdx(), "partition of %q", m.Payload)
}

func payloads(msgs []pulsartest.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Payload)
	}
	return out
}
