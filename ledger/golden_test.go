package ledger_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/ledger"
)

var update = flag.Bool("update", false, "rewrite the golden files in "+goldenDir)

// goldenDir holds a small log, fixed: its keys, leaves, stored hashes,
// checkpoints, an inclusion proof and consistency proofs. TestGolden
// rebuilds them in a store; TestGoldenInterop checks them with an RFC 6962
// implementation trustlog does not use (github.com/transparency-dev/merkle).
const goldenDir = "testdata/golden"

// The golden log: goldenLeaves operations, checkpointed at these sizes.
const goldenLeaves = 13

var goldenCheckpoints = []int64{3, 7, 13}

// goldenConsistency are the consistency proofs written, old → new.
var goldenConsistency = [][2]int64{{3, 7}, {3, 13}, {7, 13}}

// goldenInclusion is the leaf whose inclusion proof is written.
const goldenInclusion = 5

// goldenKey reads a golden key pair; with -update it first creates it
// from a fixed seed, so rewriting yields the same files.
func goldenKey(t *testing.T, name, file string) (skey, vkey string) {
	t.Helper()
	kf, pf := filepath.Join(goldenDir, file+".key"), filepath.Join(goldenDir, file+".pub")
	if *update {
		seed := sha256.Sum256([]byte("trustlog golden key " + name))
		skey, vkey, err := note.GenerateKey(bytes.NewReader(seed[:]), name)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(goldenDir, 0o755))
		require.NoError(t, os.WriteFile(kf, []byte(skey+"\n"), 0o600))
		require.NoError(t, os.WriteFile(pf, []byte(vkey+"\n"), 0o644))
	}
	s, err := os.ReadFile(kf)
	require.NoError(t, err)
	v, err := os.ReadFile(pf)
	require.NoError(t, err)
	return strings.TrimSpace(string(s)), strings.TrimSpace(string(v))
}

// golden compares got with the golden file, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./ledger -run TestGolden -update to create it")
	assert.Equal(t, string(want), string(got), "%s differs; if the change is intended, go test ./ledger -run TestGolden -update", path)
}

// TestGolden builds the golden log in a store, with the sequencer, Prove
// and ProveConsistency, and compares every file.
func TestGolden(t *testing.T) {
	ctx := context.Background()
	logKey, _ := goldenKey(t, "golden.trustlog.example/log", "log")
	opKey, _ := goldenKey(t, "golden.trustlog.example/signer", "signer")
	signer, err := core.NewEd25519Signer(opKey)
	require.NoError(t, err)
	st := sqlitetest.Open(t, sqlitetest.URL(t))
	c, err := core.NewClient(st, nil, core.Config{Strategy: core.StoreOnly, Signer: signer})
	require.NoError(t, err)
	seq, err := ledger.NewSequencer(ledger.Config{Key: logKey})
	require.NoError(t, err)
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var ids []string
	from := 0
	for _, size := range goldenCheckpoints {
		for i := from; i < int(size); i++ {
			op := conformance.NewOp(fmt.Sprintf("golden-%d", i%3), i)
			op.OpID = fmt.Sprintf("01941a2b-3c4d-7e5f-8a6b-%012x", i)
			op.CreatedAt = base.Add(time.Duration(i) * time.Second)
			require.NoError(t, c.Record(ctx, op))
			ids = append(ids, op.OpID)
		}
		from = int(size)
		_, err := seq.Sequence(ctx, st)
		require.NoError(t, err)
		cp, err := seq.Checkpoint(ctx, st)
		require.NoError(t, err)
		require.Equal(t, size, cp.Size)
		golden(t, fmt.Sprintf("checkpoint-%d.txt", size), cp.Note)
	}

	recs, err := st.Leaves(ctx, 0, goldenLeaves)
	require.NoError(t, err)
	require.Len(t, recs, goldenLeaves)
	var leaves bytes.Buffer
	for i := range recs {
		leaf, err := ledger.LeafData(&recs[i].Op)
		require.NoError(t, err)
		leaves.WriteString(base64.StdEncoding.EncodeToString(leaf) + "\n")
	}
	golden(t, "leaves.txt", leaves.Bytes())

	n := tlog.StoredHashCount(goldenLeaves)
	idx := make([]int64, n)
	for i := range idx {
		idx[i] = int64(i)
	}
	hs, err := st.ReadHashes(ctx, idx)
	require.NoError(t, err)
	var hashes bytes.Buffer
	hashes.WriteString("# stored-hash index, level, index at that level, hash (base64)\n")
	for i, h := range hs {
		level, k := tlog.SplitStoredHashIndex(int64(i))
		fmt.Fprintf(&hashes, "%d %d %d %s\n", i, level, k, base64.StdEncoding.EncodeToString(h[:]))
	}
	golden(t, "hashes.txt", hashes.Bytes())

	p, err := ledger.Prove(ctx, st, ids[goldenInclusion])
	require.NoError(t, err)
	golden(t, fmt.Sprintf("inclusion-%d.tlog-proof", goldenInclusion), p.Marshal())
	for _, c := range goldenConsistency {
		cp, err := ledger.ProveConsistency(ctx, st, c[0], c[1])
		require.NoError(t, err)
		golden(t, fmt.Sprintf("consistency-%d-%d.txt", c[0], c[1]), cp.Marshal())
	}
}

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, name))
	require.NoError(t, err)
	return b
}

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	require.NoError(t, err, "%q", s)
	return b
}

// TestGoldenInterop checks the golden files with code trustlog did not
// write: golang.org/x/mod/sumdb/note for the signatures, and
// github.com/transparency-dev/merkle (RFC 6962 hasher, compact ranges,
// proof verification) for every stored hash, every checkpoint's root, the
// inclusion proof and the consistency proofs. The files are parsed by hand
// here, from the formats docs/ledger.md describes.
func TestGoldenInterop(t *testing.T) {
	t.Parallel()
	h := rfc6962.DefaultHasher
	rf := compact.RangeFactory{Hash: h.HashChildren}
	v, err := note.NewVerifier(strings.TrimSpace(string(readGolden(t, "log.pub"))))
	require.NoError(t, err)

	var leafHashes [][]byte
	for _, l := range strings.Split(strings.TrimSuffix(string(readGolden(t, "leaves.txt")), "\n"), "\n") {
		leafHashes = append(leafHashes, h.HashLeaf(b64(t, l)))
	}
	require.Len(t, leafHashes, goldenLeaves)
	// root returns the RFC 6962 hash of leaves [begin, end): the tree's
	// root for begin 0, else the hash of a complete subtree.
	root := func(begin, end uint64) []byte {
		r := rf.NewEmptyRange(begin)
		for _, lh := range leafHashes[begin:end] {
			require.NoError(t, r.Append(lh, nil))
		}
		if begin > 0 {
			require.Len(t, r.Hashes(), 1, "[%d, %d) is a complete subtree", begin, end)
			return r.Hashes()[0]
		}
		got, err := r.GetRootHash(nil)
		require.NoError(t, err)
		return got
	}

	// The stored-hash table: the hash at (level, k) is the root of the
	// complete subtree over leaves [k·2^level, (k+1)·2^level).
	lines := strings.Split(strings.TrimSuffix(string(readGolden(t, "hashes.txt")), "\n"), "\n")[1:]
	require.Len(t, lines, int(tlog.StoredHashCount(goldenLeaves)))
	for i, l := range lines {
		f := strings.Fields(l)
		require.Len(t, f, 4, l)
		level, err := strconv.ParseUint(f[1], 10, 8)
		require.NoError(t, err)
		k, err := strconv.ParseUint(f[2], 10, 64)
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(i), f[0])
		assert.Equal(t, root(k<<level, (k+1)<<level), b64(t, f[3]), "stored hash %s (level %d, %d)", f[0], level, k)
	}

	// Checkpoints: signed notes; origin, size, base64 root of that many leaves.
	roots := map[int64][]byte{}
	checkpoint := func(text []byte) (int64, []byte) {
		n, err := note.Open(text, note.VerifierList(v))
		require.NoError(t, err)
		body := strings.Split(n.Text, "\n")
		require.GreaterOrEqual(t, len(body), 3)
		assert.Equal(t, v.Name(), body[0], "origin")
		size, err := strconv.ParseInt(body[1], 10, 64)
		require.NoError(t, err)
		return size, b64(t, body[2])
	}
	for _, size := range goldenCheckpoints {
		got, r := checkpoint(readGolden(t, fmt.Sprintf("checkpoint-%d.txt", size)))
		require.Equal(t, size, got)
		assert.Equal(t, root(0, uint64(size)), r, "root of checkpoint %d", size)
		roots[size] = r
	}

	// The inclusion proof (C2SP tlog-proof).
	head, cp, ok := strings.Cut(string(readGolden(t, fmt.Sprintf("inclusion-%d.tlog-proof", goldenInclusion))), "\n\n")
	require.True(t, ok)
	pl := strings.Split(head, "\n")
	require.Equal(t, "c2sp.org/tlog-proof@v1", pl[0])
	extra, ok := strings.CutPrefix(pl[1], "extra ")
	require.True(t, ok)
	require.Equal(t, fmt.Sprintf("index %d", goldenInclusion), pl[2])
	size, r := checkpoint([]byte(cp))
	var path [][]byte
	for _, l := range pl[3:] {
		path = append(path, b64(t, l))
	}
	require.NoError(t, proof.VerifyInclusion(h, goldenInclusion, uint64(size), h.HashLeaf(b64(t, extra)), path, r))
	assert.Equal(t, leafHashes[goldenInclusion], h.HashLeaf(b64(t, extra)))

	// The consistency proofs (C2SP tlog-witness add-checkpoint body).
	for _, c := range goldenConsistency {
		name := fmt.Sprintf("consistency-%d-%d.txt", c[0], c[1])
		text := readGolden(t, name)
		head, cp, ok := strings.Cut(string(text), "\n\n")
		require.True(t, ok, name)
		pl := strings.Split(head, "\n")
		require.Equal(t, fmt.Sprintf("old %d", c[0]), pl[0], name)
		size, r := checkpoint([]byte(cp))
		require.Equal(t, c[1], size, name)
		var path [][]byte
		for _, l := range pl[1:] {
			path = append(path, b64(t, l))
		}
		require.NoError(t, proof.VerifyConsistency(h, uint64(c[0]), uint64(c[1]), path, roots[c[0]], r), name)
		// A changed hash fails the independent verifier too.
		bad := append([][]byte(nil), path...)
		bad[0] = append([]byte(nil), bad[0]...)
		bad[0][0] ^= 1
		assert.Error(t, proof.VerifyConsistency(h, uint64(c[0]), uint64(c[1]), bad, roots[c[0]], r), name)

		// And trustlog's own verifier agrees.
		lv, err := note.NewVerifier(strings.TrimSpace(string(readGolden(t, "log.pub"))))
		require.NoError(t, err)
		p, err := ledger.ParseConsistencyProof(text)
		require.NoError(t, err)
		_, _, err = p.Verify(lv, readGolden(t, fmt.Sprintf("checkpoint-%d.txt", c[0])))
		require.NoError(t, err, name)
	}
}
