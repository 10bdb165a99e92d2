package conformance

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

// RunSink runs the sink half of the suite: what a consumer reads is what
// was published, byte for byte, with its metadata and position, in order
// per key; a retry out of its stream's order is delivered; a sink fails
// cleanly once closed.
func RunSink(t *testing.T, newSink NewSinkFunc) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h SinkHarness)
	}{
		{"DeliversInKeyOrder", testSinkKeyOrder},
		{"PositionHeader", testSinkPositionHeader},
		{"RetryOutOfStreamOrderDelivered", testSinkRetry},
		{"EmptyBatch", testSinkEmpty},
		{"CloseIsIdempotent", testSinkClose},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newSink(t))
		})
	}
}

// sealedMessages returns n messages of sealed operations over keys objects,
// signed, with store sequences 1…n and positions 0…n-1 in stream (a
// stream name unique to the call, as a log identity is to a store).
func sealedMessages(t *testing.T, n, keys int) ([]core.Message, []*core.Operation) {
	t.Helper()
	skey, _, err := core.GenerateEd25519("conformance.example/sink")
	require.NoError(t, err)
	signer, err := core.NewEd25519Signer(skey)
	require.NoError(t, err)
	stream := uuid.NewString() + "-p0"
	ops := newOps(n, keys)
	msgs := make([]core.Message, n)
	for i, op := range ops {
		require.NoError(t, op.Seal(signer))
		msgs[i], err = core.NewMessage(op, int64(i+1), int64(i))
		require.NoError(t, err)
		msgs[i].Stream = stream
	}
	return msgs, ops
}

// publishAll publishes msgs and requires the sink to accept each.
func publishAll(t *testing.T, h SinkHarness, msgs []core.Message) {
	t.Helper()
	errs := h.Sink.Publish(testContext(t), msgs)
	require.Len(t, errs, len(msgs), "one result per message")
	for i, err := range errs {
		require.NoError(t, err, "message %d", i)
	}
}

// checkDelivered checks that r is m as sent: key, op_id, payload byte for
// byte, and every header the message has (core.Message.Headers), the
// position among them when the message has one.
func checkDelivered(t *testing.T, m core.Message, r Received) {
	t.Helper()
	assert.Equal(t, m.Key, r.Key, "the key is the DOID")
	assert.Equal(t, m.ID, r.ID)
	assert.Equal(t, m.Payload, r.Payload, "the payload arrives byte for byte")
	for _, kv := range m.Headers() {
		assert.Equal(t, kv[1], r.Headers[kv[0]], "header %s of %s", kv[0], m.ID)
	}
	if m.Position >= 0 {
		assert.Equal(t, strconv.FormatInt(m.Position, 10), r.Headers[core.HeaderPosition], "%s carries its position", m.ID)
	} else {
		assert.NotContains(t, r.Headers, core.HeaderPosition, "%s has no position, so no position header", m.ID)
	}
}

func testSinkKeyOrder(t *testing.T, h SinkHarness) {
	ctx := testContext(t)
	msgs, ops := sealedMessages(t, 60, 3)
	publishAll(t, h, msgs[:25])
	publishAll(t, h, msgs[25:])
	got, err := h.Read(ctx, len(msgs))
	require.NoError(t, err)
	require.Len(t, got, len(msgs), "every message arrives once")

	want := map[string][]string{}
	for _, op := range ops {
		want[op.DOID] = append(want[op.DOID], op.OpID)
	}
	have := map[string][]string{}
	byID := map[string]int{}
	for i, op := range ops {
		byID[op.OpID] = i
	}
	for _, r := range got {
		have[r.Key] = append(have[r.Key], r.ID)
		i, ok := byID[r.ID]
		require.True(t, ok, "message %s was published", r.ID)
		op := ops[i]
		checkDelivered(t, msgs[i], r)
		dec, err := core.DecodeSealed(r.Payload)
		require.NoError(t, err, "payload is a sealed operation")
		assert.Equal(t, op.OpID, dec.OpID)
		assert.Equal(t, op.OpHash, dec.OpHash)
		assert.Equal(t, op.Sign, dec.Sign)
		assert.Equal(t, op.OpID, r.Headers[core.HeaderOpID], "op_id header")
		assert.Equal(t, op.OpHash, r.Headers[core.HeaderOpHash], "op_hash header")
		assert.Equal(t, op.Signer, r.Headers[core.HeaderSigner], "signer header")
		assert.NotEmpty(t, r.Headers[core.HeaderSignature], "signature header")
		assert.Equal(t, fmt.Sprint(core.FormatVersion), r.Headers[core.HeaderFormatVersion])
	}
	assert.Equal(t, want, have, "per key, messages arrive in publish order")
}

// testSinkPositionHeader: a message with a position carries it as a
// header; one without (Position -1: a synchronous PublishOnly send, no
// stream) has no position header.
func testSinkPositionHeader(t *testing.T, h SinkHarness) {
	ctx := testContext(t)
	msgs, _ := sealedMessages(t, 6, 6)
	for i := 3; i < len(msgs); i++ {
		msgs[i].Position, msgs[i].Stream, msgs[i].Seq = -1, "", 0
	}
	publishAll(t, h, msgs[:3])
	publishAll(t, h, msgs[3:])
	got, err := h.Read(ctx, len(msgs))
	require.NoError(t, err)
	require.Len(t, got, len(msgs), "every message arrives once")
	byID := map[string]core.Message{}
	for _, m := range msgs {
		byID[m.ID] = m
	}
	for _, r := range got {
		m, ok := byID[r.ID]
		require.True(t, ok, "message %s was published", r.ID)
		checkDelivered(t, m, r)
	}
}

// testSinkRetry: a retry (Message.Retry) is a re-send of an operation the
// sink refused before, out of its stream's position order. It must be
// delivered, with its position header: a sink that deduplicates by
// stream and position must not send it as the stream's next sequence id.
func testSinkRetry(t *testing.T, h SinkHarness) {
	ctx := testContext(t)
	msgs, _ := sealedMessages(t, 6, 6)
	// Position 2 was refused; 0, 1, 3, 4 and 5 went through.
	publishAll(t, h, []core.Message{msgs[0], msgs[1]})
	publishAll(t, h, []core.Message{msgs[3], msgs[4], msgs[5]})
	retry := msgs[2]
	retry.Retry = true
	publishAll(t, h, []core.Message{retry})
	got, err := h.Read(ctx, len(msgs))
	require.NoError(t, err)
	require.Len(t, got, len(msgs), "every message arrives once, the retry too")
	byID := map[string]core.Message{}
	for _, m := range msgs {
		byID[m.ID] = m
	}
	for _, r := range got {
		m, ok := byID[r.ID]
		require.True(t, ok, "message %s was published", r.ID)
		checkDelivered(t, m, r)
	}
}

func testSinkEmpty(t *testing.T, h SinkHarness) {
	assert.Empty(t, h.Sink.Publish(testContext(t), nil))
}

func testSinkClose(t *testing.T, h SinkHarness) {
	msgs, _ := sealedMessages(t, 2, 1)
	require.NoError(t, h.Sink.Close())
	require.NoError(t, h.Sink.Close(), "Close is idempotent")
	ctx := testContext(t)
	errs := h.Sink.Publish(ctx, msgs)
	require.Len(t, errs, 2)
	for _, err := range errs {
		assert.Error(t, err, "publishing on a closed sink fails")
	}
}
