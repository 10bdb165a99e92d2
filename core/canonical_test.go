package core_test

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

// goldenOp is the operation of docs/message-format.md's worked example.
func goldenOp() *core.Operation {
	return &core.Operation{
		OpID:             "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b",
		Source:           core.SourceDOIP,
		Type:             core.OpCreate,
		DOID:             "10.1000/my-repo/object-001",
		DOPrefix:         "10.1000",
		DORepository:     "my-repo",
		Actor:            "alice",
		ProducerID:       "repo-service",
		HashAlg:          core.HashSHA256,
		RequestBodyHash:  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		ResponseBodyHash: "",
		ClientIP:         "192.0.2.1",
		ServerIP:         "",
		CreatedAt:        time.Date(2026, 11, 23, 12, 0, 0, 123456000, time.UTC),
	}
}

// TestCanonicalGolden pins the encoding byte for byte: if it changes,
// every stored op_hash and signature stops verifying, so a change needs a
// new FormatVersion, not an edit of testdata.
func TestCanonicalGolden(t *testing.T) {
	t.Parallel()
	op := goldenOp()
	require.NoError(t, op.Seal(nil))
	want, err := os.ReadFile("testdata/golden-op-v1.hex")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(want)), "\n")
	require.Len(t, lines, 2, "testdata holds the content hex and its SHA-256")
	assert.Equal(t, lines[0], hex.EncodeToString(op.AppendCanonical(nil)))
	assert.Equal(t, lines[1], op.OpHash)
}

func TestSealedRoundTrip(t *testing.T) {
	t.Parallel()
	skey, vkey, err := core.GenerateEd25519("example.com/log")
	require.NoError(t, err)
	signer, err := core.NewEd25519Signer(skey)
	require.NoError(t, err)
	verifier, err := core.NewEd25519Verifier(vkey)
	require.NoError(t, err)
	op := goldenOp()
	require.NoError(t, op.Seal(signer))
	assert.Equal(t, verifier.KeyName(), op.Signer)
	b, err := op.AppendSealed(nil)
	require.NoError(t, err)
	got, err := core.DecodeSealed(b)
	require.NoError(t, err)
	assert.Equal(t, op, got)
	require.NoError(t, core.VerifyOperation(got, true, verifier))

	content, err := core.DecodeCanonical(op.AppendCanonical(nil))
	require.NoError(t, err)
	content.OpHash, content.Signer, content.Sign = op.OpHash, op.Signer, op.Sign
	assert.Equal(t, op, content)
}

func TestDecodeSealedRejects(t *testing.T) {
	t.Parallel()
	op := goldenOp()
	require.NoError(t, op.Seal(nil))
	good, err := op.AppendSealed(nil)
	require.NoError(t, err)
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 1
		return b
	}
	for name, b := range map[string][]byte{
		"empty":          nil,
		"bad magic":      flip(0),
		"bad version":    flip(4),
		"altered actor":  flip(len("TLOS\x01") + 4 + 36 + 4 + 4 + 4 + 9 + 4 + 26 + 4 + 7 + 4 + 7 + 4),
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte(nil), good...), 0),
		"huge length":    append([]byte("TLOS\x01\xff\xff\xff\xff"), good[9:]...),
		"content only":   op.AppendCanonical(nil),
	} {
		_, err := core.DecodeSealed(b)
		assert.ErrorIs(t, err, core.ErrMalformed, name)
	}
}

func TestVerifyOperationRejects(t *testing.T) {
	t.Parallel()
	skey, vkey, _ := core.GenerateEd25519("example.com/log")
	signer, _ := core.NewEd25519Signer(skey)
	verifier, _ := core.NewEd25519Verifier(vkey)
	_, otherV, _ := core.GenerateEd25519("example.com/log")
	other, _ := core.NewEd25519Verifier(otherV)

	op := goldenOp()
	require.NoError(t, op.Seal(signer))
	altered := *op
	altered.Actor = "mallory"
	assert.ErrorIs(t, core.VerifyOperation(&altered, true, verifier), core.ErrBadSignature, "content changed")
	assert.ErrorIs(t, core.VerifyOperation(op, true, other), core.ErrBadSignature, "other key of the same name")
	badSig := *op
	badSig.Sign = append([]byte(nil), op.Sign...)
	badSig.Sign[0] ^= 1
	assert.ErrorIs(t, core.VerifyOperation(&badSig, true, verifier), core.ErrBadSignature)
	unsigned := goldenOp()
	require.NoError(t, unsigned.Seal(nil))
	assert.NoError(t, core.VerifyOperation(unsigned, false))
	assert.ErrorIs(t, core.VerifyOperation(unsigned, true, verifier), core.ErrBadSignature)
}

func TestKeyErrorsHideKeys(t *testing.T) {
	t.Parallel()
	secret := "PRIVATE+KEY+example.com/log+deadbeef+NOTAREALKEYbutSECRETmaterialHERE"
	_, err := core.NewEd25519Signer(secret)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "SECRETmaterial")
	_, err = core.NewEd25519Verifier("garbage")
	require.Error(t, err)
}

func FuzzDecodeSealed(f *testing.F) {
	op := goldenOp()
	if err := op.Seal(nil); err != nil {
		f.Fatal(err)
	}
	good, _ := op.AppendSealed(nil)
	f.Add(good)
	f.Add(op.AppendCanonical(nil))
	f.Add([]byte("TLOS\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := core.DecodeSealed(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes and its hash holds.
		again, err := got.AppendSealed(nil)
		if err != nil {
			t.Fatalf("decoded operation does not re-encode: %v", err)
		}
		if string(again) != string(b) {
			t.Fatalf("re-encoding differs")
		}
		if got.ComputeHash() != got.OpHash {
			t.Fatalf("decoded op_hash does not hold")
		}
	})
}
