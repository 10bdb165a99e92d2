package witness_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/go-trustlog/trustlog/witness"
)

// TestWitnessKeys: the key formats, their key IDs, interoperability with
// transparency-dev/formats in both directions, and refusals that never
// quote the key.
func TestWitnessKeys(t *testing.T) {
	t.Parallel()
	skey, vkey, err := witness.GenerateKey(rand.Reader, "witness.example/keys")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(skey, "PRIVATE+KEY+witness.example/keys+"))
	s, err := witness.NewSigner(skey + "\n")
	require.NoError(t, err)
	assert.Equal(t, vkey, s.PublicKey())
	v, err := witness.NewVerifier(vkey)
	require.NoError(t, err)
	assert.Equal(t, s.KeyHash(), v.KeyHash())
	assert.Equal(t, "witness.example/keys", v.Name())

	// transparency-dev/formats reads both keys, with the same key ID, and
	// its cosignatures verify with ours and ours with its.
	fs, err := fnote.NewSignerForCosignatureV1(skey)
	require.NoError(t, err)
	fv, err := fnote.NewVerifierForCosignatureV1(vkey)
	require.NoError(t, err)
	assert.Equal(t, s.KeyHash(), fs.KeyHash())
	assert.Equal(t, s.KeyHash(), fv.KeyHash())
	body := &note.Note{Text: "log.example/x\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"}
	theirs, err := note.Sign(body, fs)
	require.NoError(t, err)
	_, err = note.Open(theirs, note.VerifierList(v))
	require.NoError(t, err, "formats' cosignature verifies with witness.NewVerifier")
	ours, err := note.Sign(body, s)
	require.NoError(t, err)
	_, err = note.Open(ours, note.VerifierList(fv))
	require.NoError(t, err, "our cosignature verifies with formats")
	_, err = note.Open(ours, note.VerifierList(s.Verifier()))
	require.NoError(t, err)

	// A plain Ed25519 note key (trustlog keygen) is a witness key too,
	// under the cosignature key ID, not its note key hash.
	nskey, nvkey, err := note.GenerateKey(rand.Reader, "witness.example/plain")
	require.NoError(t, err)
	ns, err := witness.NewSigner(nskey)
	require.NoError(t, err)
	nv, err := witness.NewVerifier(nvkey)
	require.NoError(t, err)
	plain, err := note.NewVerifier(nvkey)
	require.NoError(t, err)
	assert.Equal(t, ns.KeyHash(), nv.KeyHash())
	assert.NotEqual(t, plain.KeyHash(), nv.KeyHash())
	converted, err := fnote.VKeyToCosignatureV1(nvkey)
	require.NoError(t, err)
	assert.Equal(t, converted, ns.PublicKey(), "formats converts the vkey to the same cosignature key")

	_, _, err = witness.GenerateKey(rand.Reader, "bad name")
	assert.Error(t, err)
	secret := strings.SplitN(skey, "+", 5)[4]
	for name, bad := range map[string]string{
		"public key as private": vkey,
		"truncated":             skey[:len(skey)-4],
		"wrong key ID":          strings.Replace(skey, strings.SplitN(skey, "+", 5)[3], "00000000", 1),
		"another name":          strings.Replace(skey, "witness.example/keys", "witness.example/other", 1),
	} {
		_, err := witness.NewSigner(bad)
		require.ErrorIs(t, err, witness.ErrPrivateKey, name)
		assert.NotContains(t, err.Error(), secret, "the error never quotes the key")
	}
	for name, bad := range map[string]string{
		"private key as public": skey,
		"wrong key ID":          strings.Replace(vkey, strings.SplitN(vkey, "+", 3)[1], "00000000", 1),
		"another type":          strings.SplitN(vkey, "+", 3)[0] + "+" + strings.SplitN(vkey, "+", 3)[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{0x05}, make([]byte, 32)...)),
	} {
		_, err := witness.NewVerifier(bad)
		assert.ErrorIs(t, err, witness.ErrPublicKey, name)
	}
}

// TestVerifyCosignatures: K of N witness keys. Three witnesses follow a
// log, two cosign a checkpoint (the second adds its line to the first's
// output); a fourth, unlisted, cosigns too.
func TestVerifyCosignatures(t *testing.T) {
	t.Parallel()
	signer, logKey := newLogKey(t, "log.example/quorum")
	l := newMemLog(t, signer).add(10, "leaf")
	var keys []note.Verifier
	var vkeys []string
	msg := l.checkpoint()
	for i, name := range []string{"witness.example/w1", "witness.example/w2", "witness.example/w3", "witness.example/w4"} {
		w, key, _ := newWitness(t, t.TempDir(), name, logKey)
		if i < 3 {
			keys = append(keys, key.Verifier())
			vkeys = append(vkeys, key.PublicKey())
		}
		if i == 2 {
			continue // w3 does not cosign
		}
		c, err := w.AddCheckpoint(0, nil, msg)
		require.NoError(t, err)
		msg = c.Note
	}
	assert.Equal(t, 4, strings.Count(string(msg), "\n— "), "the log's signature and three cosignatures")

	for k := 1; k <= 2; k++ {
		assert.NoError(t, witness.VerifyCosignatures(msg, keys, k), "k=%d", k)
	}
	err := witness.VerifyCosignatures(msg, keys, 3)
	require.ErrorIs(t, err, witness.ErrQuorum)
	var qe *witness.QuorumError
	require.ErrorAs(t, err, &qe)
	assert.Equal(t, 3, qe.Want)
	assert.Equal(t, 2, qe.Got)
	assert.Equal(t, []string{"witness.example/w1", "witness.example/w2"}, qe.Valid)
	assert.Equal(t, []string{"witness.example/w3"}, qe.Missing)
	assert.ErrorContains(t, err, "2 valid of the 3 required")

	sigs, err := witness.Cosignatures(msg, keys)
	require.NoError(t, err)
	require.Len(t, sigs, 2)
	assert.Equal(t, "witness.example/w1", sigs[0].Name)
	assert.Equal(t, keys[0].KeyHash(), sigs[0].KeyHash)
	assert.Equal(t, fixedClock.Unix(), sigs[0].Time.Unix())

	// Verifiers from transparency-dev/formats count the same.
	var theirs []note.Verifier
	for _, vkey := range vkeys {
		fv, err := fnote.NewVerifierForCosignatureV1(vkey)
		require.NoError(t, err)
		theirs = append(theirs, fv)
	}
	assert.NoError(t, witness.VerifyCosignatures(msg, theirs[:2], 2))

	// A repeated line counts once.
	var w1Line string
	for _, line := range strings.SplitAfter(string(msg), "\n") {
		if strings.HasPrefix(line, "— witness.example/w1 ") {
			w1Line = line
		}
	}
	require.NotEmpty(t, w1Line)
	dup := []byte(string(msg) + w1Line)
	assert.ErrorIs(t, witness.VerifyCosignatures(dup, keys, 3), witness.ErrQuorum)

	// A trusted witness's line that does not verify fails, whatever K.
	sig := strings.TrimSuffix(strings.TrimPrefix(w1Line, "— witness.example/w1 "), "\n")
	raw, err := base64.StdEncoding.DecodeString(sig)
	require.NoError(t, err)
	raw[len(raw)-1] ^= 1
	forged := bytes.Replace(msg, []byte(sig), []byte(base64.StdEncoding.EncodeToString(raw)), 1)
	err = witness.VerifyCosignatures(forged, keys, 1)
	assert.ErrorIs(t, err, witness.ErrBadCosignature)
	assert.ErrorContains(t, err, "witness.example/w1")
	raw[len(raw)-1] ^= 1
	raw[4] = 0x80 // a timestamp beyond 2^63-1
	assert.ErrorIs(t, witness.VerifyCosignatures(bytes.Replace(msg, []byte(sig), []byte(base64.StdEncoding.EncodeToString(raw)), 1), keys, 1), witness.ErrBadCosignature)

	// The policy itself.
	for name, c := range map[string]struct {
		keys []note.Verifier
		k    int
	}{
		"k = 0":          {keys, 0},
		"k > N":          {keys, 4},
		"no keys":        {nil, 1},
		"a key twice":    {[]note.Verifier{keys[0], keys[1], keys[0]}, 2},
		"a nil key":      {[]note.Verifier{keys[0], nil}, 1},
		"negative quota": {keys, -1},
	} {
		assert.ErrorIs(t, witness.VerifyCosignatures(msg, c.keys, c.k), witness.ErrPolicy, name)
	}

	// Not a note; a note no listed witness signed.
	assert.ErrorIs(t, witness.VerifyCosignatures([]byte("no signatures\n"), keys, 1), witness.ErrMalformedNote)
	bare := l.checkpoint()
	err = witness.VerifyCosignatures(bare, keys, 1)
	assert.ErrorIs(t, err, witness.ErrQuorum)
	assert.ErrorContains(t, err, "0 valid of the 1 required")
}
