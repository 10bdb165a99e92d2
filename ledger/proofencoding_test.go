package ledger_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/ledger"
)

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// validProof builds a 40-leaf log and returns the marshalled proof of one
// leaf, which verifies.
func validProof(t *testing.T) ([]byte, keys) {
	t.Helper()
	ctx := context.Background()
	k := newKeys(t)
	st := sqlitetest.Open(t, sqlitetest.URL(t))
	fill(t, st, k, 40)
	leaves, err := st.Leaves(ctx, 0, 100)
	require.NoError(t, err)
	p, err := ledger.Prove(ctx, st, leaves[17].Op.OpID)
	require.NoError(t, err)
	text := p.Marshal()
	require.NoError(t, verifyText(text, k), "the unaltered proof verifies")
	return text, k
}

func verifyText(text []byte, k keys) error {
	p, err := ledger.ParseProof(text)
	if err != nil {
		return err
	}
	_, _, err = p.Verify(k.log, true, k.opVer)
	return err
}

// flipPadding flips the lowest padding bit of padded standard base64: the
// result decodes, leniently, to the same bytes. ok is false when s has no
// padding bits.
func flipPadding(s string) (string, bool) {
	var i int
	switch {
	case strings.HasSuffix(s, "=="):
		i = len(s) - 3
	case strings.HasSuffix(s, "="):
		i = len(s) - 2
	default:
		return "", false
	}
	v := strings.IndexByte(b64Alphabet, s[i])
	if v < 0 {
		return "", false
	}
	return s[:i] + string(b64Alphabet[v^1]) + s[i+1:], true
}

// TestProofBitFlipsNeverVerify: of every single-bit flip of a valid
// proof's text, none verifies: a proof has exactly one accepted encoding.
func TestProofBitFlipsNeverVerify(t *testing.T) {
	t.Parallel()
	text, k := validProof(t)
	flipped := make([]byte, len(text))
	var accepted []string
	for i := range text {
		for bit := 0; bit < 8; bit++ {
			copy(flipped, text)
			flipped[i] ^= 1 << bit
			if verifyText(flipped, k) == nil {
				line := strings.Count(string(text[:i]), "\n") + 1
				accepted = append(accepted, fmt.Sprintf("line %d byte %d (%q) bit %d", line, i, text[i], bit))
			}
		}
	}
	assert.Empty(t, accepted, "%d of %d single-bit flips still verify", len(accepted), 8*len(text))
}

// TestProofNonCanonicalBase64Refused: flipping a padding bit keeps the
// bytes lenient base64 decodes to; in a hash line, the extra line or the
// checkpoint's signature line, it must still be refused.
func TestProofNonCanonicalBase64Refused(t *testing.T) {
	t.Parallel()
	text, k := validProof(t)
	lines := strings.Split(string(text), "\n")
	cases := 0
	for i, l := range lines {
		var prefix, b64 string
		switch {
		case strings.HasPrefix(l, "extra "):
			prefix, b64 = "extra ", strings.TrimPrefix(l, "extra ")
		case strings.HasPrefix(l, "— "):
			j := strings.LastIndexByte(l, ' ')
			prefix, b64 = l[:j+1], l[j+1:]
		case len(l) == 44 && i > 2 && !strings.Contains(l, " "):
			b64 = l // a proof hash, or the checkpoint's root hash
		default:
			continue
		}
		alt, ok := flipPadding(b64)
		if !ok {
			continue
		}
		cases++
		mod := append([]string(nil), lines...)
		mod[i] = prefix + alt
		err := verifyText([]byte(strings.Join(mod, "\n")), k)
		assert.Error(t, err, "line %d %q with a flipped padding bit verifies", i+1, mod[i])

		if strings.HasPrefix(l, "— ") {
			// The checkpoint alone, as audit and the sequencer open it.
			p, perr := ledger.ParseProof(text)
			require.NoError(t, perr)
			cp := strings.Replace(string(p.Checkpoint), l, mod[i], 1)
			_, err := ledger.OpenCheckpoint([]byte(cp), k.log)
			assert.ErrorIs(t, err, ledger.ErrTampered, "a checkpoint signature with a flipped padding bit opens")
		}
	}
	assert.GreaterOrEqual(t, cases, 3, "hash lines and the signature line have padding bits")
}
