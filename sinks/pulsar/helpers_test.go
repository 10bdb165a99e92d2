package pulsar_test

import (
	"fmt"
	"sort"
	"strconv"
	"testing"

	pc "github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// streamMessages returns the messages of positions from … to-1 of
// stream, on objects <stream>-obj-0 … <stream>-obj-(objects-1) in turn
// (one partition of the log holds its objects), as a relay sends a
// partition: each an operation sealed once, so a re-send is the same
// message.
func streamMessages(t testing.TB, stream string, from, to int64, objects int) []core.Message {
	t.Helper()
	var out []core.Message
	for pos := from; pos < to; pos++ {
		op := &core.Operation{
			Source: core.SourceDOIP, Type: core.OpUpdate,
			DOID: fmt.Sprintf("10.1000/%s-obj-%d", stream, pos%int64(objects)), DOPrefix: "10.1000",
			Actor: "user-" + stream, ProducerID: "pulsar-sink-test",
			RequestBodyHash: fmt.Sprintf("%064x", pos),
		}
		require.NoError(t, op.Seal(nil))
		m, err := core.NewMessage(op, pos+1, pos)
		require.NoError(t, err)
		m.Stream = stream
		out = append(out, m)
	}
	return out
}

// publish sends msgs and fails t on any error.
func publish(t testing.TB, s *pulsar.Sink, msgs ...core.Message) {
	t.Helper()
	for i, err := range s.Publish(testenv.Context(t), msgs) {
		require.NoError(t, err, "message %d (position %d)", i, msgs[i].Position)
	}
}

// stored is one message as a pulsar-client-go reader reads it back.
type stored struct {
	Producer string
	Key      string
	OpID     string
	Position int64 // the position header, -1 if none
	Kind     string
}

// readBack reads every message of topic (each partition, from the
// earliest) with a client of its own, in broker order per partition.
func readBack(t testing.TB, serviceURL, topic string) []stored {
	t.Helper()
	ctx := testenv.Context(t)
	client, err := pc.NewClient(pc.ClientOptions{URL: serviceURL})
	require.NoError(t, err)
	defer client.Close()
	parts, err := client.TopicPartitions(topic)
	require.NoError(t, err)
	var out []stored
	for _, part := range parts {
		r, err := client.CreateReader(pc.ReaderOptions{Topic: part, StartMessageID: pc.EarliestMessageID()})
		require.NoError(t, err)
		for r.HasNext() {
			m, err := r.Next(ctx)
			require.NoError(t, err)
			p := m.Properties()
			pos := int64(-1)
			if v, ok := p[core.HeaderPosition]; ok {
				pos, err = strconv.ParseInt(v, 10, 64)
				require.NoError(t, err)
			}
			out = append(out, stored{Producer: m.ProducerName(), Key: m.Key(), OpID: p[core.HeaderOpID], Position: pos, Kind: p[core.HeaderKind]})
		}
		r.Close()
	}
	return out
}

// copiesByOpID counts the messages of each op_id.
func copiesByOpID(msgs []stored) map[string]int {
	n := map[string]int{}
	for _, m := range msgs {
		n[m.OpID]++
	}
	return n
}

// requireOnce checks that msgs hold each of want exactly once and
// nothing else.
func requireOnce(t testing.TB, msgs []stored, want []core.Message) {
	t.Helper()
	got := copiesByOpID(msgs)
	for _, m := range want {
		require.Equal(t, 1, got[m.ID], "copies of position %d (%s)", m.Position, m.ID)
	}
	require.Len(t, msgs, len(want), "nothing else on the topic")
}

// requireHeldOnce checks that the in-process broker b holds each of want
// exactly once on topic, and nothing else.
func requireHeldOnce(t testing.TB, b *pulsartest.Broker, topic string, want []core.Message) {
	t.Helper()
	var msgs []stored
	for _, m := range b.Messages(topic) {
		msgs = append(msgs, stored{Producer: m.Producer, Key: m.Key, OpID: m.Properties[core.HeaderOpID]})
	}
	requireOnce(t, msgs, want)
}

// requireKeyOrder checks that each key's messages are in increasing
// position order.
func requireKeyOrder(t testing.TB, msgs []stored) {
	t.Helper()
	byKey := map[string][]int64{}
	for _, m := range msgs {
		byKey[m.Key] = append(byKey[m.Key], m.Position)
	}
	for k, ps := range byKey {
		require.True(t, sort.SliceIsSorted(ps, func(i, j int) bool { return ps[i] < ps[j] }), "key %s: %v", k, ps)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
