package ledger_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/ledger"
)

// TestConsistencyProof: ProveConsistency → Marshal → ParseConsistencyProof
// → Verify, from every old size to a checkpoint, and back to the tree.
func TestConsistencyProof(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newKeys(t)
	st := sqlitetest.Open(t, sqlitetest.URL(t))
	fill(t, st, k, 20)
	notes := storedNotes(t, st)
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return st.ReadHashes(ctx, idx) })
	cp20, err := ledger.OpenCheckpoint(notes[20], k.log)
	require.NoError(t, err)
	for old := int64(0); old <= 20; old++ {
		p, err := ledger.ProveConsistency(ctx, st, old, 0)
		require.NoError(t, err, "old %d", old)
		text := p.Marshal()
		assert.True(t, strings.HasPrefix(string(text), "old "), "C2SP tlog-witness add-checkpoint body")
		parsed, err := ledger.ParseConsistencyProof(text)
		require.NoError(t, err)
		assert.Equal(t, p, parsed, "parse(marshal) is the identity")
		assert.Equal(t, text, parsed.Marshal())
		root, err := tlog.TreeHash(old, hr)
		require.NoError(t, err)
		older := ledger.Checkpoint{Origin: cp20.Origin, Size: old, Root: root}
		require.NoError(t, ledger.VerifyConsistency(older, cp20, parsed.Hashes), "old %d", old)
		if n := notes[old]; n != nil {
			o, nw, err := parsed.Verify(k.log, n)
			require.NoError(t, err, "old %d", old)
			assert.Equal(t, old, o.Size)
			assert.Equal(t, int64(20), nw.Size)
		}
	}
	p, err := ledger.ProveConsistency(ctx, st, 7, 14)
	require.NoError(t, err)
	_, nw, err := p.Verify(k.log, notes[7])
	require.NoError(t, err)
	assert.Equal(t, int64(14), nw.Size, "to the checkpoint asked for")

	_, err = ledger.ProveConsistency(ctx, st, 3, 13)
	assert.ErrorIs(t, err, ledger.ErrNotSequenced, "13 was never checkpointed")
	_, err = ledger.ProveConsistency(ctx, st, 21, 20)
	assert.ErrorContains(t, err, "old size 21 is beyond the checkpoint of size 20")
	_, err = ledger.ProveConsistency(ctx, st, 15, 14)
	assert.ErrorContains(t, err, "old size 15 is beyond the checkpoint of size 14")
}

// TestConsistencyProofRejected: a proof checked against the wrong old
// checkpoint, with a hash changed, by another key, and checkpoints that
// cannot be consistent.
func TestConsistencyProofRejected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newKeys(t)
	st := sqlitetest.Open(t, sqlitetest.URL(t))
	fill(t, st, k, 20)
	notes := storedNotes(t, st)
	p, err := ledger.ProveConsistency(ctx, st, 7, 20)
	require.NoError(t, err)
	_, _, err = p.Verify(k.log, notes[7])
	require.NoError(t, err, "the unaltered proof verifies")

	_, _, err = p.Verify(k.log, notes[14])
	assert.ErrorIs(t, err, ledger.ErrInconsistent)
	assert.ErrorContains(t, err, "the proof starts at size 7, the old checkpoint is of size 14")

	moved := *p
	moved.OldSize = 14
	_, _, err = moved.Verify(k.log, notes[14])
	assert.ErrorIs(t, err, ledger.ErrInconsistent, "the hashes of 7→20 do not prove 14→20")

	for i := range p.Hashes {
		bad := *p
		bad.Hashes = append(tlog.TreeProof(nil), p.Hashes...)
		bad.Hashes[i][0] ^= 1
		_, _, err = bad.Verify(k.log, notes[7])
		assert.ErrorIs(t, err, ledger.ErrInconsistent, "hash %d changed", i)
		assert.ErrorIs(t, err, ledger.ErrTampered)
	}
	short := *p
	short.Hashes = p.Hashes[:len(p.Hashes)-1]
	_, _, err = short.Verify(k.log, notes[7])
	assert.ErrorIs(t, err, ledger.ErrInconsistent, "a hash dropped")

	other := newKeys(t)
	_, _, err = p.Verify(other.log, notes[7])
	assert.ErrorIs(t, err, ledger.ErrTampered, "another log's key")
	assert.NotErrorIs(t, err, ledger.ErrInconsistent)

	cp7, err := ledger.OpenCheckpoint(notes[7], k.log)
	require.NoError(t, err)
	cp20, err := ledger.OpenCheckpoint(notes[20], k.log)
	require.NoError(t, err)
	err = ledger.VerifyConsistency(cp20, cp7, nil)
	assert.ErrorContains(t, err, "tree of size 7 does not extend checkpoint of size 20 (truncated or rolled back)")
	forked := cp7
	forked.Root[0] ^= 1
	assert.ErrorContains(t, ledger.VerifyConsistency(cp7, forked, nil), "two checkpoints of size 7 with different roots (the log forked)")
	assert.ErrorContains(t, ledger.VerifyConsistency(ledger.Checkpoint{Origin: cp7.Origin}, cp20, p.Hashes), "a proof from size 0 must be empty")
	elsewhere := cp20
	elsewhere.Origin = "another.example/log"
	assert.ErrorContains(t, ledger.VerifyConsistency(cp7, elsewhere, p.Hashes), "checkpoints of different logs")
}

// TestParseConsistencyProofMalformed: the form is checked strictly.
func TestParseConsistencyProofMalformed(t *testing.T) {
	t.Parallel()
	h := "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	cp := "\n\nexample.com/log\n1\n" + h + "\n\n— example.com/log AAAA\n"
	for name, c := range map[string]struct{ text, want string }{
		"no blank line":        {"old 1\n" + h + "\n", "no blank line before the checkpoint"},
		"no old line":          {h + cp, "is not \"old <size>\""},
		"negative size":        {"old -1" + cp, `first line "old -1"`},
		"leading zero":         {"old 01" + cp, `first line "old 01"`},
		"size with a space":    {"old  1" + cp, `first line "old  1"`},
		"not a hash":           {"old 1\nnot-base64!" + cp, `proof line "not-base64!"`},
		"a short hash":         {"old 1\nAAAA" + cp, `proof line "AAAA"`},
		"non-canonical base64": {"old 1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=" + cp, "is not a canonical base64 hash"},
		"64 hashes":            {"old 1\n" + strings.Repeat(h+"\n", 63) + h + cp, "64 proof hashes (at most 63)"},
	} {
		_, err := ledger.ParseConsistencyProof([]byte(c.text))
		assert.ErrorContains(t, err, "ledger: malformed consistency proof: ", name)
		assert.ErrorContains(t, err, c.want, name)
	}
	p, err := ledger.ParseConsistencyProof([]byte("old 1\n" + strings.Repeat(h+"\n", 62) + h + cp))
	require.NoError(t, err, "63 hashes are allowed")
	assert.Len(t, p.Hashes, 63)
}
