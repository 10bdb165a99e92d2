package core

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sealedOps are operations of various shapes, sealed: unsigned, signed,
// with every text field set.
func sealedOps(t *testing.T) []*Operation {
	t.Helper()
	plain := &Operation{Source: SourceDOIP, Type: OpUpdate, DOID: "10.1000/a", DOPrefix: "10.1000", Actor: "alice", ProducerID: "p"}
	full := &Operation{
		Source: SourceIRP, Type: "100", DOID: "10.1000/" + strings.Repeat("x", 300), DOPrefix: "10.1000",
		DORepository: "repo", Actor: "bob", ProducerID: "producer", HashAlg: HashSHA256,
		RequestBodyHash: strings.Repeat("ab", 32), ResponseBodyHash: strings.Repeat("cd", 32),
		ClientIP: "192.0.2.1", ServerIP: "2001:db8::1",
	}
	var ops []*Operation
	for _, op := range []*Operation{plain, full} {
		require.NoError(t, op.Seal(nil))
		signed := *op
		signed.Signer, signed.Sign = "example.org/key", bytes.Repeat([]byte{7}, 64)
		ops = append(ops, op, &signed)
	}
	return ops
}

// TestAppendSealedChecked: the publisher's one-pass encoding gives the
// bytes AppendSealed gives and the hash ComputeHash gives, in one
// allocation, after what b held; an operation whose content no longer
// hashes to its op_hash (edited, op_hash malformed or in uppercase, which
// a computed hash never equals) gives ok = false and b as it was.
func TestAppendSealedChecked(t *testing.T) {
	for i, op := range sealedOps(t) {
		want, err := op.AppendSealed(nil)
		require.NoError(t, err)
		assert.Len(t, want, op.sealedSize(), "op %d: sealedSize", i)
		got, sum, ok := op.appendSealedChecked([]byte("prefix"))
		require.True(t, ok, "op %d", i)
		assert.Equal(t, append([]byte("prefix"), want...), got, "op %d", i)
		assert.Equal(t, op.ComputeHash(), hexDigest(sum), "op %d", i)
		if !raceEnabled { // the race detector's instrumentation allocates
			allocs := testing.AllocsPerRun(20, func() { op.appendSealedChecked(nil) })
			assert.Equal(t, 1.0, allocs, "op %d: allocations", i)
			allocs = testing.AllocsPerRun(20, func() { op.AppendSealed(nil) })
			assert.Equal(t, 1.0, allocs, "op %d: AppendSealed's allocations", i)
		}

		edited := *op
		edited.Actor += "!"
		upper := *op
		upper.OpHash = strings.ToUpper(op.OpHash)
		short := *op
		short.OpHash = op.OpHash[:62]
		for name, bad := range map[string]*Operation{"edited": &edited, "uppercase": &upper, "short": &short} {
			b := []byte("prefix")
			got, sum, ok := bad.appendSealedChecked(b)
			assert.False(t, ok, "op %d %s", i, name)
			assert.Equal(t, "prefix", string(got), "op %d %s", i, name)
			assert.Equal(t, bad.ComputeHash(), hexDigest(sum), "op %d %s", i, name)
		}
		// AppendSealed takes op_hash in either case, as it always has.
		fromUpper, err := upper.AppendSealed(nil)
		require.NoError(t, err)
		assert.Equal(t, want, fromUpper, "op %d", i)
		_, err = short.AppendSealed(nil)
		assert.ErrorIs(t, err, ErrMalformed, "op %d", i)
	}
}
