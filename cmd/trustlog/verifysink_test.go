package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sinkcheck"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/kafka"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// TestVerifySinkKafka relays to a Kafka-protocol broker, checks that
// verify-sink passes, then injects a missing, a duplicated, an altered, a
// corrupted and an unknown message and checks that it names each.
func TestVerifySinkKafka(t *testing.T) {
	t.Parallel()
	topic := kafkatest.Topic()
	cluster := kafkatest.Start(t, kfake.SeedTopics(3, topic))
	testVerifySink(t, cluster.URL(topic), kafka.Open)
}

// TestVerifySinkPulsar is TestVerifySinkKafka on the Pulsar-protocol test
// broker (deduplication on, 3 partitions), read back with pulsar-client-go.
func TestVerifySinkPulsar(t *testing.T) {
	t.Parallel()
	topic := pulsartest.Topic()
	broker := pulsartest.Start(t, pulsartest.WithPartitionedTopic(topic, 3))
	testVerifySink(t, broker.SinkURL(topic, "producer_name=verify-sink-relay"), func(u string) (core.Sink, error) {
		// The relay's sink holds its producer name (the broker refuses a
		// second connection under it); verify-sink itself only reads.
		return pulsar.Open(strings.Replace(u, "verify-sink-relay", "verify-sink-injector", 1))
	})
}

// TestVerifySinkRealKafka is TestVerifySinkKafka on a real Apache Kafka
// broker (kafkatest.Server).
func TestVerifySinkRealKafka(t *testing.T) {
	t.Parallel()
	r := kafkatest.NeedReal(t)
	topic := kafkatest.Topic()
	r.CreateTopic(t, topic, 3)
	testVerifySink(t, r.URL(topic), kafka.Open)
}

// TestVerifySinkRealPulsar is TestVerifySinkPulsar on a real Apache Pulsar
// broker (pulsartest.Server, deduplication on, 3 partitions).
func TestVerifySinkRealPulsar(t *testing.T) {
	t.Parallel()
	r := pulsartest.NeedReal(t)
	topic := pulsartest.Topic()
	r.CreatePartitionedTopic(t, topic, 3)
	testVerifySink(t, r.SinkURL(topic, "producer_name=verify-sink-relay-"+topic[len(topic)-8:]), func(u string) (core.Sink, error) {
		return pulsar.Open(strings.Replace(u, "verify-sink-relay", "verify-sink-injector", 1))
	})
}

func testVerifySink[S core.Sink](t *testing.T, sinkURL string, open func(string) (S, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	storeURL := "sqlite:" + filepath.Join(t.TempDir(), "vs.db")
	dir := t.TempDir()
	skey, vkey, err := core.GenerateEd25519("verify-sink.test/log")
	require.NoError(t, err)
	pub := filepath.Join(dir, "log.pub")
	require.NoError(t, os.WriteFile(pub, []byte(vkey), 0o644))
	signer, err := core.NewEd25519Signer(skey)
	require.NoError(t, err)

	c, err := core.Open(ctx, core.Config{Store: storeURL, Sink: sinkURL, Signer: signer, Migrate: true,
		Engine: core.EngineConfig{PollInterval: 10 * time.Millisecond}})
	require.NoError(t, err)
	defer c.Close()
	ops := make([]*core.Operation, 30)
	for i := range ops {
		ops[i] = conformance.NewOp("vs", i)
	}
	require.NoError(t, c.Record(ctx, ops...))
	e, err := c.Engine()
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	require.Eventually(t, func() bool { return e.Stats().Published == 30 }, testenv.Patience(t), 10*time.Millisecond)
	require.NoError(t, e.Stop(ctx))

	code, out, errOut := cli(t, ctx, "", "--store", storeURL, "--sink", sinkURL, "verify-sink", "--key", pub, "--require-signature")
	require.Equal(t, 0, code, out+errOut)
	assert.Contains(t, out, "verified                30")

	// Injections, straight to the broker and the store.
	direct, err := open(sinkURL)
	require.NoError(t, err)
	defer direct.Close()
	msg := func(op *core.Operation) core.Message {
		m, err := core.NewMessage(op, 0, -1)
		require.NoError(t, err)
		return m
	}
	dup := msg(ops[3])
	altered := *ops[5]
	altered.Actor, altered.OpHash, altered.Sign = "mallory", "", nil
	require.NoError(t, altered.Seal(signer))
	corrupted := msg(ops[7])
	corrupted.Payload = append([]byte(nil), corrupted.Payload...)
	corrupted.Payload[60] ^= 1
	stranger := conformance.NewOp("stranger", 99)
	require.NoError(t, stranger.Seal(signer))
	for _, err := range direct.Publish(ctx, []core.Message{dup, msg(&altered), corrupted, msg(stranger)}) {
		require.NoError(t, err)
	}
	lost := conformance.NewOp("lost", 100)
	require.NoError(t, c.Record(ctx, lost))
	// Marked published, never sent: its position, and its partition's
	// cursor moved over it.
	_, err = core.SequenceAll(ctx, c.Store(), 0)
	require.NoError(t, err)
	rec, err := c.Store().Get(ctx, lost.OpID)
	require.NoError(t, err)
	p, err := c.Store().TakePartition(ctx, rec.Part, "verify-sink-test", time.Minute)
	require.NoError(t, err)
	require.NoError(t, c.Store().Advance(ctx, core.AdvanceParams{Part: rec.Part, Generation: p.Generation, From: p.Cursor, To: rec.LeafIndex}))

	code, out, errOut = cli(t, ctx, "", "--store", storeURL, "--sink", sinkURL, "verify-sink", "--key", pub, "--json")
	require.Equal(t, exitVerifyKO, code, errOut)
	var rep sinkcheck.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.Equal(t, 1, rep.MissingN)
	assert.Equal(t, lost.OpID, rep.Missing[0].OpID)
	assert.Equal(t, 1, rep.UnknownN)
	assert.Equal(t, stranger.OpID, rep.Unknown[0].OpID)
	mismatched := map[string]bool{}
	for _, p := range rep.Mismatched {
		mismatched[p.OpID] = true
	}
	assert.True(t, mismatched[ops[5].OpID], "the altered copy is found: %+v", rep.Mismatched)
	assert.Equal(t, 2, rep.MismatchedN, "the altered and the corrupted message: %+v", rep.Mismatched)
	dups := map[string]bool{}
	for _, p := range rep.Duplicated {
		dups[p.OpID] = true
	}
	assert.True(t, dups[ops[3].OpID], "the duplicate is found: %+v", rep.Duplicated)
}
