package witness_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/witness"
)

// checkCosignature checks the witness's cosignature line on c
// independently of the package: the line's name and key ID
// (SHA-256(name || "\n" || 0x04 || public key)[:4]), the timestamp, and
// the Ed25519 signature of "cosignature/v1\ntime <t>\n" || checkpoint body,
// with crypto/ed25519 alone; then with transparency-dev/formats'
// cosignature/v1 verifier; and that the log's signature still verifies.
func checkCosignature(t *testing.T, c *witness.Cosigned, key *witness.Signer, logKey note.Verifier) {
	t.Helper()
	vkey := key.PublicKey()
	parts := strings.SplitN(vkey, "+", 3)
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	require.NoError(t, err)
	require.Equal(t, byte(0x04), raw[0], "a cosignature/v1 vkey has key type 0x04")
	pub := ed25519.PublicKey(raw[1:])

	line := string(c.Line)
	require.True(t, strings.HasPrefix(line, "— "+key.Name()+" ") && strings.HasSuffix(line, "\n"), line)
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(strings.TrimPrefix(line, "— "+key.Name()+" "), "\n"))
	require.NoError(t, err)
	require.Len(t, sig, 4+8+64, "key ID || timestamp || Ed25519 signature")
	id := sha256.Sum256(append([]byte(key.Name()+"\n\x04"), pub...))
	assert.Equal(t, id[:4], sig[:4], "key ID")
	assert.Equal(t, fmt.Sprintf("%08x", binary.BigEndian.Uint32(id[:4])), parts[1], "the vkey's key ID")
	ts := binary.BigEndian.Uint64(sig[4:12])
	assert.Equal(t, uint64(fixedClock.Unix()), ts)
	assert.Equal(t, fixedClock.Unix(), c.Time.Unix())
	msg := fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", ts, c.Checkpoint.Body())
	assert.True(t, ed25519.Verify(pub, msg, sig[12:]), "Ed25519 over the cosignature/v1 message")
	require.True(t, bytes.HasSuffix(c.Note, c.Line), "the cosigned note ends with the cosignature")

	fv, err := fnote.NewVerifierForCosignatureV1(vkey)
	require.NoError(t, err)
	n, err := note.Open(c.Note, note.VerifierList(fv))
	require.NoError(t, err, "transparency-dev/formats verifies the cosignature")
	require.Len(t, n.Sigs, 1)
	fts, err := fnote.CoSigV1Timestamp(n.Sigs[0])
	require.NoError(t, err)
	assert.Equal(t, fixedClock.Unix(), fts.Unix())

	cp, err := ledger.OpenCheckpoint(c.Note, logKey)
	require.NoError(t, err, "the log's signature still verifies")
	assert.Equal(t, c.Checkpoint, cp)
}

// TestWitnessAcceptsGrowingLog: a log that grows, with valid consistency
// proofs, is cosigned at every step, and the state follows it.
func TestWitnessAcceptsGrowingLog(t *testing.T) {
	t.Parallel()
	signer, logKey := newLogKey(t, "log.example/growing")
	w, key, _ := newWitness(t, t.TempDir(), "witness.example/w1", logKey)
	l := newMemLog(t, signer)

	old := int64(0)
	for _, grow := range []int{3, 0, 1, 7, 16, 0, 37} {
		l.add(grow, "leaf")
		c, err := w.AddCheckpoint(old, l.proof(old), l.checkpoint())
		require.NoError(t, err, "size %d from %d", l.size, old)
		assert.Equal(t, l.size, c.Checkpoint.Size)
		checkCosignature(t, c, key, logKey)
		st, ok, err := w.Latest(logKey.Name())
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, l.size, st.Size)
		assert.Equal(t, l.root(l.size), st.Root)
		assert.Equal(t, fmt.Sprintf("%s+%08x", logKey.Name(), logKey.KeyHash()), st.LogKey)
		old = l.size
	}
	assert.Equal(t, int64(64), old)
}

// TestWitnessRejects: a rollback, a fork (another tree of the same size;
// a log rewritten then grown), a bad log signature, an unknown log, a
// stale old size and malformed requests are each rejected with their
// typed error, and leave the state file byte for byte as it was.
func TestWitnessRejects(t *testing.T) {
	t.Parallel()
	signer, logKey := newLogKey(t, "log.example/rejects")
	w, _, state := newWitness(t, t.TempDir(), "witness.example/w1", logKey)
	l := newMemLog(t, signer).add(5, "leaf")
	cp5 := l.checkpoint()
	_, err := w.AddCheckpoint(0, nil, cp5)
	require.NoError(t, err)
	l.add(7, "leaf")
	cp12 := l.checkpoint()
	_, err = w.AddCheckpoint(5, l.proof(5), cp12)
	require.NoError(t, err)
	before := readFile(t, state)

	otherSigner, _ := newLogKey(t, "log.example/rejects") // same origin, another key
	forged := newMemLog(t, otherSigner).add(13, "leaf").checkpoint()
	tampered := bytes.Replace(cp12, []byte("\n12\n"), []byte("\n13\n"), 1)
	strangerSigner, _ := newLogKey(t, "log.example/stranger")
	stranger := newMemLog(t, strangerSigner).add(3, "leaf").checkpoint()

	// Another tree of size 12: same first 11 leaves, another 12th.
	sameSize := l.clone(11).add(1, "other")
	// The log rewritten (leaf 2 replaced) then grown to 20.
	rewritten := l.clone(2).add(18, "rewritten")
	// A grown log, for proofs that are not the right ones.
	grown := l.clone(12).add(8, "leaf")
	badProof := grown.proof(12)
	badProof[0][0] ^= 1

	for _, c := range []struct {
		name    string
		old     int64
		proof   tlog.TreeProof
		msg     []byte
		reason  error
		latest  int64
		message string
	}{
		{"rollback, old size the latest", 12, nil, cp5, witness.ErrRollback, 12, "smaller than the size 12"},
		{"rollback, old size its own", 5, nil, cp5, witness.ErrRollback, 12, "truncated or rolled back"},
		{"rollback to size 0", 0, nil, newMemLog(t, signer).checkpoint(), witness.ErrRollback, 12, "size 0"},
		{"fork: another root at the same size", 12, nil, sameSize.checkpoint(), witness.ErrFork, 12, "two trees of size 12 with different roots"},
		{"fork: rewritten then grown", 12, rewritten.proof(12), rewritten.checkpoint(), witness.ErrFork, 12, "does not provably extend"},
		{"fork: a proof that does not verify", 12, badProof, grown.checkpoint(), witness.ErrFork, 12, "does not provably extend"},
		{"fork: no proof", 12, nil, grown.checkpoint(), witness.ErrFork, 12, "does not provably extend"},
		{"bad signature: another key of the same name", 12, nil, forged, witness.ErrBadSignature, 0, "the checkpoint of log.example/rejects at size 13 has no valid signature"},
		{"bad signature: tampered body", 12, nil, tampered, witness.ErrBadSignature, 0, "size 13"},
		{"unknown log", 0, nil, stranger, witness.ErrUnknownLog, 0, `no log of origin "log.example/stranger"`},
		{"stale old size", 5, grown.proof(5), grown.checkpoint(), witness.ErrConflict, 12, "prove consistency from 12"},
		{"old size beyond the checkpoint", 30, nil, grown.checkpoint(), witness.ErrMalformed, 12, "old size 30 is larger"},
		{"negative old size", -1, nil, grown.checkpoint(), witness.ErrMalformed, 0, "negative"},
		{"not a note", 12, nil, []byte("log.example/rejects\n20\n"), witness.ErrMalformed, 0, "not a signed checkpoint"},
		{"a proof between equal sizes", 12, badProof, cp12, witness.ErrMalformed, 12, "must be empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := w.AddCheckpoint(c.old, c.proof, c.msg)
			require.Error(t, err)
			assert.Nil(t, got)
			assert.ErrorIs(t, err, c.reason)
			var re *witness.RejectError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, c.latest, re.Latest)
			assert.Contains(t, err.Error(), c.message)
			assert.Equal(t, before, readFile(t, state), "the state is unchanged")
		})
	}

	// A proof from 0 must be empty, even for a log the witness never saw.
	other, otherKey := newLogKey(t, "log.example/second")
	w2, _, state2 := newWitness(t, t.TempDir(), "witness.example/w2", otherKey)
	ol := newMemLog(t, other).add(4, "x")
	_, err = w2.AddCheckpoint(0, ol.clone(4).add(4, "x").proof(4), ol.checkpoint())
	assert.ErrorIs(t, err, witness.ErrMalformed)
	_, ok, err := w2.Latest(otherKey.Name())
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Contains(t, readFile(t, state2), `"logs": {}`)

	// The same checkpoint again is cosigned again; the state keeps it.
	_, err = w.AddCheckpoint(12, nil, cp12)
	require.NoError(t, err)
	st, _, err := w.Latest(logKey.Name())
	require.NoError(t, err)
	assert.Equal(t, int64(12), st.Size)
	assert.Equal(t, string(cp12), st.Checkpoint)
}

// TestWitnessStateSurvivesRestart: a new Witness on the same state file
// remembers the latest checkpoint: it rejects a rollback and a fork, and
// accepts the log's continuation.
func TestWitnessStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	signer, logKey := newLogKey(t, "log.example/restart")
	w, key, state := newWitness(t, dir, "witness.example/w1", logKey)
	l := newMemLog(t, signer).add(9, "leaf")
	cp9 := l.checkpoint()
	_, err := w.AddCheckpoint(0, nil, cp9)
	require.NoError(t, err)

	again, err := witness.New(witness.Config{State: state, Key: key, Logs: []note.Verifier{logKey}, Now: func() time.Time { return fixedClock }})
	require.NoError(t, err)
	st, ok, err := again.Latest(logKey.Name())
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, int64(9), st.Size)
	assert.Equal(t, string(cp9), st.Checkpoint)

	_, err = again.AddCheckpoint(0, nil, l.clone(4).checkpoint())
	assert.ErrorIs(t, err, witness.ErrRollback)
	_, err = again.AddCheckpoint(9, nil, l.clone(8).add(1, "fork").checkpoint())
	assert.ErrorIs(t, err, witness.ErrFork)
	l.add(6, "leaf")
	c, err := again.AddCheckpoint(9, l.proof(9), l.checkpoint())
	require.NoError(t, err)
	checkCosignature(t, c, key, logKey)
}

// TestWitnessConcurrentAddCheckpoint: of many concurrent add-checkpoint
// calls from the same old size, through several Witnesses on one state
// file, each valid on its own but forks of each other, exactly one wins,
// and the state is the winner's.
func TestWitnessConcurrentAddCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	signer, logKey := newLogKey(t, "log.example/race")
	w, key, state := newWitness(t, dir, "witness.example/w1", logKey)
	base := newMemLog(t, signer).add(4, "leaf")
	_, err := w.AddCheckpoint(0, nil, base.checkpoint())
	require.NoError(t, err)

	const n = 16
	type attempt struct {
		msg   []byte
		proof tlog.TreeProof
	}
	attempts := make([]attempt, n)
	for i := range attempts {
		fork := base.clone(4).add(1+i%5, fmt.Sprintf("fork-%d", i)) // sizes 5 to 9, all different trees
		attempts[i] = attempt{fork.checkpoint(), fork.proof(4)}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range attempts {
		wi, err := witness.New(witness.Config{State: state, Key: key, Logs: []note.Verifier{logKey}})
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, results[i] = wi.AddCheckpoint(4, attempts[i].proof, attempts[i].msg)
		}()
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range results {
		if err == nil {
			require.Equal(t, -1, winner, "two concurrent calls both won")
			winner = i
			continue
		}
		var re *witness.RejectError
		require.ErrorAs(t, err, &re, "attempt %d", i)
		assert.True(t, errors.Is(err, witness.ErrConflict) || errors.Is(err, witness.ErrRollback) || errors.Is(err, witness.ErrFork), "attempt %d: %v", i, err)
	}
	require.NotEqual(t, -1, winner, "one call wins")
	st, _, err := w.Latest(logKey.Name())
	require.NoError(t, err)
	assert.Equal(t, string(attempts[winner].msg), st.Checkpoint)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"state.json", "state.json.lock"}, names, "no temporary file left behind")
}

// TestWitnessStateFile: a missing state file is refused (never a silent
// fresh start), CreateState never replaces one, and a corrupt one is
// named as such.
func TestWitnessStateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, logKey := newLogKey(t, "log.example/state")
	skey, _, err := witness.GenerateKey(rand.Reader, "witness.example/w1")
	require.NoError(t, err)
	key, err := witness.NewSigner(skey)
	require.NoError(t, err)
	state := filepath.Join(dir, "state.json")

	_, err = witness.New(witness.Config{State: state, Key: key, Logs: []note.Verifier{logKey}})
	assert.ErrorIs(t, err, witness.ErrNoState)
	assert.Contains(t, err.Error(), "trustlog witness init --state "+state)
	require.NoError(t, witness.CreateState(state))
	assert.ErrorIs(t, witness.CreateState(state), fs.ErrExist)
	_, err = witness.New(witness.Config{State: state, Key: key, Logs: []note.Verifier{logKey}})
	require.NoError(t, err)
	_, err = witness.New(witness.Config{State: state, Logs: []note.Verifier{logKey}})
	assert.ErrorContains(t, err, "no cosigning key")
	_, err = witness.New(witness.Config{State: state, Key: key})
	assert.ErrorContains(t, err, "no log keys")

	for name, content := range map[string]string{
		"not JSON":       "{",
		"another format": `{"format":"something/v9","logs":{}}`,
		"unknown field":  `{"format":"trustlog-witness-state/v1","logs":{},"extra":1}`,
		"entry does not match its checkpoint": `{"format":"trustlog-witness-state/v1","logs":{"log.example/state":{"size":3,` +
			`"root":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","checkpoint":"log.example/state\n2\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— x AAAA\n"}}}`,
	} {
		bad := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		require.NoError(t, os.WriteFile(bad, []byte(content), 0o644))
		_, err := witness.New(witness.Config{State: bad, Key: key, Logs: []note.Verifier{logKey}})
		assert.ErrorIs(t, err, witness.ErrState, name)
		assert.ErrorContains(t, err, bad, name)
	}
}
