package conformance

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

// RunSink runs the sink half of the suite: what a consumer reads is what
// was published, with its metadata, in order per key, and a sink fails
// cleanly once closed.
func RunSink(t *testing.T, newSink NewSinkFunc) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h SinkHarness)
	}{
		{"DeliversInKeyOrder", testSinkKeyOrder},
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
// signed, with store sequences 1…n.
func sealedMessages(t *testing.T, n, keys int) ([]core.Message, []*core.Operation) {
	t.Helper()
	skey, _, err := core.GenerateEd25519("conformance.example/sink")
	require.NoError(t, err)
	signer, err := core.NewEd25519Signer(skey)
	require.NoError(t, err)
	ops := newOps(n, keys)
	msgs := make([]core.Message, n)
	for i, op := range ops {
		require.NoError(t, op.Seal(signer))
		msgs[i], err = core.NewMessage(op, int64(i+1))
		require.NoError(t, err)
	}
	return msgs, ops
}

func testSinkKeyOrder(t *testing.T, h SinkHarness) {
	ctx := testContext(t)
	msgs, ops := sealedMessages(t, 60, 3)
	for _, batch := range [][]core.Message{msgs[:25], msgs[25:]} {
		errs := h.Sink.Publish(ctx, batch)
		require.Len(t, errs, len(batch), "one result per message")
		for i, err := range errs {
			require.NoError(t, err, "message %d", i)
		}
	}
	got, err := h.Read(ctx, len(msgs))
	require.NoError(t, err)
	require.Len(t, got, len(msgs), "every message arrives once")

	want := map[string][]string{}
	for _, op := range ops {
		want[op.DOID] = append(want[op.DOID], op.OpID)
	}
	have := map[string][]string{}
	byID := map[string]*core.Operation{}
	for _, op := range ops {
		byID[op.OpID] = op
	}
	for _, r := range got {
		have[r.Key] = append(have[r.Key], r.ID)
		op := byID[r.ID]
		require.NotNil(t, op, "message %s was published", r.ID)
		assert.Equal(t, op.DOID, r.Key, "key is the DOID")
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
