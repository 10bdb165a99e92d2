package witness_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/witness"
)

// memLog is a Merkle log in memory, signing checkpoints with a note key:
// enough of a log to feed a witness.
type memLog struct {
	t      testing.TB
	signer note.Signer
	hashes []tlog.Hash // the stored hashes (tlog.StoredHashes layout)
	size   int64
}

// newLogKey returns a log key pair whose name is origin.
func newLogKey(t testing.TB, origin string) (note.Signer, note.Verifier) {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	require.NoError(t, err)
	s, err := note.NewSigner(skey)
	require.NoError(t, err)
	v, err := note.NewVerifier(vkey)
	require.NoError(t, err)
	return s, v
}

func newMemLog(t testing.TB, signer note.Signer) *memLog {
	return &memLog{t: t, signer: signer}
}

// ReadHashes implements tlog.HashReader.
func (l *memLog) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(l.hashes)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = l.hashes[x]
	}
	return out, nil
}

// add appends leaves named by prefix and their number.
func (l *memLog) add(n int, prefix string) *memLog {
	for i := 0; i < n; i++ {
		hs, err := tlog.StoredHashes(l.size, fmt.Appendf(nil, "%s-%d", prefix, l.size), l)
		require.NoError(l.t, err)
		l.hashes = append(l.hashes, hs...)
		l.size++
	}
	return l
}

// root returns the root hash of the tree at size n.
func (l *memLog) root(n int64) tlog.Hash {
	h, err := tlog.TreeHash(n, l)
	require.NoError(l.t, err)
	return h
}

// checkpoint signs the checkpoint of the current tree.
func (l *memLog) checkpoint() []byte {
	msg, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: l.signer.Name(), Size: l.size, Root: l.root(l.size)}, l.signer)
	require.NoError(l.t, err)
	return msg
}

// proof returns the consistency proof from size old to the current tree.
func (l *memLog) proof(old int64) tlog.TreeProof {
	if old == 0 || old == l.size {
		return nil
	}
	p, err := tlog.ProveTree(l.size, old, l)
	require.NoError(l.t, err)
	return p
}

// clone copies the log's first n leaves (to fork it).
func (l *memLog) clone(n int64) *memLog {
	c := newMemLog(l.t, l.signer)
	c.hashes = append(c.hashes, l.hashes[:tlog.StoredHashCount(n)]...)
	c.size = n
	return c
}

// fixedClock is a cosignature clock.
var fixedClock = time.Unix(1_760_000_000, 0)

// newWitness creates a witness key, an empty state file in dir and a
// witness following the given logs.
func newWitness(t testing.TB, dir, name string, logs ...note.Verifier) (*witness.Witness, *witness.Signer, string) {
	skey, _, err := witness.GenerateKey(rand.Reader, name)
	require.NoError(t, err)
	key, err := witness.NewSigner(skey)
	require.NoError(t, err)
	state := filepath.Join(dir, "state.json")
	require.NoError(t, witness.CreateState(state))
	w, err := witness.New(witness.Config{State: state, Key: key, Logs: logs, Now: func() time.Time { return fixedClock }})
	require.NoError(t, err)
	return w, key, state
}

func readFile(t testing.TB, path string) string {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
