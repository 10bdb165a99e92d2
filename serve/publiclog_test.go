package serve_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/serve"
)

// scriptDOID is a DOID an attacker might hope a browser renders.
const scriptDOID = "<script>alert(1)</script>"

// testLog is a SQLite store with a ledger, served by an httptest server.
type testLog struct {
	st     *sqlite.Store
	client *core.Client
	seq    *ledger.Sequencer
	srv    *httptest.Server
	vkey   string
	ops    []*core.Operation // in leaf order
}

// newTestLog serves a fresh store whose log key is a new key pair.
func newTestLog(t *testing.T) *testLog {
	t.Helper()
	st := sqlitetest.Open(t, sqlitetest.URL(t))
	skey, vkey, err := core.GenerateEd25519("serve.test/log")
	require.NoError(t, err)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	seq, err := ledger.NewSequencer(ledger.Config{Key: skey, Logger: quiet})
	require.NoError(t, err)
	c, err := core.NewClient(st, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	h, err := serve.NewPublicLog(st, serve.PublicLogOptions{LogKey: vkey + "\n", Logger: quiet})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testLog{st: st, client: c, seq: seq, srv: srv, vkey: vkey}
}

// record records n operations (one of them on scriptDOID, when at is in
// range) and sequences them.
func (l *testLog) record(t *testing.T, n, at int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i += 100 {
		var ops []*core.Operation
		for j := i; j < min(n, i+100); j++ {
			op := conformance.NewOp(fmt.Sprintf("serve-%d", j%9), len(l.ops)+j)
			if j == at {
				op.DOID = "10.1000/" + scriptDOID
			}
			ops = append(ops, op)
		}
		require.NoError(t, l.client.Record(ctx, ops...))
		l.ops = append(l.ops, ops...)
	}
	got, err := core.SequenceAll(ctx, l.st, 0)
	require.NoError(t, err)
	require.Equal(t, n, got)
}

// sign signs a checkpoint of the whole tree.
func (l *testLog) sign(t *testing.T) {
	t.Helper()
	cp, err := l.seq.Checkpoint(context.Background(), l.st)
	require.NoError(t, err)
	require.NotNil(t, cp)
}

// response is what a GET or another request answered.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (l *testLog) do(t *testing.T, method, path string) response {
	t.Helper()
	req, err := http.NewRequest(method, l.srv.URL+path, nil)
	require.NoError(t, err)
	resp, err := l.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, resp.Header, b}
}

func (l *testLog) get(t *testing.T, path string) response {
	t.Helper()
	return l.do(t, http.MethodGet, path)
}

// mustGet GETs path and requires 200.
func (l *testLog) mustGet(t *testing.T, path string) response {
	t.Helper()
	r := l.get(t, path)
	require.Equal(t, http.StatusOK, r.code, "GET %s: %s", path, r.body)
	return r
}

// c2spPath is the one piece of client code of ours: the C2SP tlog-tiles
// path of a tlog tile of height 8. tlog's paths name the height
// ("tile/8/L/N") and call the entries level "data"; C2SP's do not
// ("tile/L/N", "tile/entries/N"). The N and .p/W encodings are the same.
func c2spPath(t tlog.Tile) string {
	rest := strings.TrimPrefix(t.Path(), "tile/8/")
	if t.L == -1 {
		return "tile/entries/" + strings.TrimPrefix(rest, "data/")
	}
	return "tile/" + rest
}

// httpTiles is a tlog.TileReader that only GETs C2SP tile paths.
type httpTiles struct {
	client *http.Client
	base   string
}

func (httpTiles) Height() int { return 8 }

func (h httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		resp, err := h.client.Get(h.base + "/" + c2spPath(t))
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s: %s", c2spPath(t), resp.Status, b)
		}
		out[i] = b
	}
	return out, nil
}

func (httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// servedCheckpoint fetches the key from the well-known path and the
// checkpoint, opens the checkpoint with sumdb/note and parses its C2SP
// tlog-checkpoint body by hand.
func (l *testLog) servedCheckpoint(t *testing.T) (tlog.Tree, note.Verifier) {
	t.Helper()
	key := l.mustGet(t, serve.KeyPath)
	assert.Equal(t, "text/plain; charset=utf-8", key.header.Get("Content-Type"))
	v, err := note.NewVerifier(strings.TrimSpace(string(key.body)))
	require.NoError(t, err, "the well-known path serves a note verifier key")
	assert.Equal(t, "serve.test/log", v.Name())

	cp := l.mustGet(t, "/checkpoint")
	assert.Equal(t, "text/plain; charset=utf-8", cp.header.Get("Content-Type"))
	assert.Equal(t, "no-cache", cp.header.Get("Cache-Control"))
	n, err := note.Open(cp.body, note.VerifierList(v))
	require.NoError(t, err, "the log's key signed the checkpoint")
	lines := strings.Split(n.Text, "\n")
	require.GreaterOrEqual(t, len(lines), 4, n.Text)
	assert.Equal(t, v.Name(), lines[0], "the origin is the key's name")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	require.NoError(t, err)
	root, err := base64.StdEncoding.DecodeString(lines[2])
	require.NoError(t, err)
	require.Len(t, root, tlog.HashSize)
	return tlog.Tree{N: size, Hash: tlog.Hash(root)}, v
}

// bundle parses an entry bundle: big-endian uint16 length-prefixed entries.
func bundle(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var entries [][]byte
	for len(b) > 0 {
		require.GreaterOrEqual(t, len(b), 2, "a truncated length")
		n := int(binary.BigEndian.Uint16(b))
		require.GreaterOrEqual(t, len(b)-2, n, "a truncated entry")
		entries = append(entries, b[2:2+n])
		b = b[2+n:]
	}
	return entries
}

// TestPublicLog: a log of 700 operations, served, checked by tlog's own
// tile client over HTTP (its tree hash is the signed root, inclusion
// proofs over served hashes hold), every entry bundle against the served
// level-0 hashes, proofs with what verify-proof uses; then the log grows,
// the tiles past the signed size stay hidden until the next checkpoint,
// which a consistency proof over served tiles ties to the first.
func TestPublicLog(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	const n = 700 // two full tiles and bundles, one partial of 188; level 1 partial of 2
	l.record(t, n, 300)
	l.sign(t)

	tree, v := l.servedCheckpoint(t)
	require.Equal(t, int64(n), tree.N)
	hr := tlog.TileHashReader(tree, httpTiles{client: l.srv.Client(), base: l.srv.URL})
	root, err := tlog.TreeHash(tree.N, hr)
	require.NoError(t, err)
	assert.Equal(t, tree.Hash, root, "the served tiles hash to the signed root")

	var entries [][]byte
	t.Run("EntryBundles", func(t *testing.T) {
		for _, path := range []string{"/tile/entries/000", "/tile/entries/001", "/tile/entries/002.p/188"} {
			r := l.mustGet(t, path)
			assert.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
			entries = append(entries, bundle(t, r.body)...)
		}
		require.Len(t, entries, n)
		indexes := make([]int64, n)
		for i := range indexes {
			indexes[i] = tlog.StoredHashIndex(0, int64(i))
		}
		leafHashes, err := hr.ReadHashes(indexes)
		require.NoError(t, err)
		for i, e := range entries {
			require.Equal(t, leafHashes[i], tlog.RecordHash(e), "entry %d hashes to its served level-0 hash", i)
			op, err := core.DecodeSealed(e)
			require.NoError(t, err)
			require.Equal(t, l.ops[i].OpID, op.OpID, "entry %d is the operation of leaf %d", i, i)
		}
	})
	t.Run("InclusionOverServedTiles", func(t *testing.T) {
		require.Len(t, entries, n)
		for _, i := range []int64{0, 1, 255, 256, 300, 511, 512, 699} {
			proof, err := tlog.ProveRecord(tree.N, i, hr)
			require.NoError(t, err)
			require.NoError(t, tlog.CheckRecord(proof, tree.N, tree.Hash, i, tlog.RecordHash(entries[i])), "leaf %d", i)
		}
	})
	t.Run("Proof", func(t *testing.T) {
		for _, i := range []int{0, 300, 699} {
			r := l.mustGet(t, "/proof/"+strings.ToUpper(l.ops[i].OpID))
			assert.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))
			p, err := ledger.ParseProof(r.body)
			require.NoError(t, err)
			op, cp, err := p.Verify(v, false)
			require.NoError(t, err, "verify-proof accepts the served proof of leaf %d", i)
			assert.Equal(t, int64(i), p.Index)
			assert.Equal(t, l.ops[i].OpID, op.OpID)
			assert.Equal(t, tree.N, cp.Size)
			assert.NotContains(t, string(r.body), "<script>", "the operation travels in base64")
		}
	})
	t.Run("Caching", func(t *testing.T) {
		assert.Equal(t, "public, max-age=31536000, immutable", l.mustGet(t, "/tile/0/001").header.Get("Cache-Control"))
		assert.Equal(t, "public, max-age=31536000, immutable", l.mustGet(t, "/tile/entries/000").header.Get("Cache-Control"))
		for _, path := range []string{"/tile/0/002.p/188", "/tile/1/000.p/2", "/tile/entries/002.p/188", "/tile/0/000.p/5"} {
			r := l.mustGet(t, path)
			assert.Equal(t, "public, max-age=60", r.header.Get("Cache-Control"), path)
		}
		assert.Len(t, l.mustGet(t, "/tile/0/000.p/5").body, 5*tlog.HashSize, "a partial tile of an earlier size is a prefix")
	})

	// The log grows; until a checkpoint covers the new leaves, they are
	// not served.
	l.record(t, 100, -1)
	for _, path := range []string{"/tile/0/002", "/tile/0/002.p/189", "/tile/entries/002.p/189", "/tile/0/003.p/32", "/tile/1/000.p/3"} {
		assert.Equal(t, http.StatusNotFound, l.get(t, path).code, "%s is past the signed size", path)
	}
	l.sign(t)
	bigger, _ := l.servedCheckpoint(t)
	require.Equal(t, int64(n+100), bigger.N)
	hr2 := tlog.TileHashReader(bigger, httpTiles{client: l.srv.Client(), base: l.srv.URL})
	proof, err := tlog.ProveTree(bigger.N, tree.N, hr2)
	require.NoError(t, err)
	require.NoError(t, tlog.CheckTree(proof, bigger.N, bigger.Hash, tree.N, tree.Hash), "the new checkpoint extends the old one")
	assert.Len(t, bundle(t, l.mustGet(t, "/tile/entries/003.p/32").body), 32)
	assert.Len(t, l.mustGet(t, "/tile/0/002").body, 256*tlog.HashSize)
}

// TestPublicLogSecurity: security headers on every response, whatever it
// is; GET and HEAD only; 400 for malformed requests, 404 for what does not
// exist; an operation whose DOID is HTML comes back only as bytes of an
// entry bundle, never as a page.
func TestPublicLogSecurity(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	l.record(t, 20, 7)
	l.sign(t)
	const unknownOp = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/checkpoint", http.StatusOK},
		{http.MethodHead, "/checkpoint", http.StatusOK},
		{http.MethodGet, "/tile/0/000.p/20", http.StatusOK},
		{http.MethodGet, "/tile/entries/000.p/20", http.StatusOK},
		{http.MethodGet, "/proof/" + l.ops[7].OpID, http.StatusOK},
		{http.MethodGet, serve.KeyPath, http.StatusOK},
		{http.MethodPost, "/checkpoint", http.StatusMethodNotAllowed},
		{http.MethodPut, "/tile/0/000.p/20", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/proof/" + l.ops[7].OpID, http.StatusMethodNotAllowed},
		{http.MethodPost, "/nosuch", http.StatusMethodNotAllowed},
		{http.MethodGet, "/nosuch", http.StatusNotFound},
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodGet, "/proof/" + unknownOp, http.StatusNotFound},
		{http.MethodGet, "/proof/not-an-op-id", http.StatusBadRequest},
		{http.MethodGet, "/proof/%3Cscript%3Ealert(1)%3C%2Fscript%3E", http.StatusBadRequest},
		{http.MethodGet, "/tile/0/000", http.StatusNotFound},           // 20 leaves: no full tile
		{http.MethodGet, "/tile/0/000.p/21", http.StatusNotFound},      // wider than the signed tree
		{http.MethodGet, "/tile/0/001.p/1", http.StatusNotFound},       // beyond it
		{http.MethodGet, "/tile/1/000.p/1", http.StatusNotFound},       // no complete level-1 hash
		{http.MethodGet, "/tile/entries/001.p/1", http.StatusNotFound}, // beyond it
		{http.MethodGet, "/tile/0/x001/000.p/1", http.StatusNotFound},  // far beyond it
		{http.MethodGet, "/tile/0/0.p/20", http.StatusBadRequest},      // N not 3 digits
		{http.MethodGet, "/tile/00/000.p/20", http.StatusBadRequest},   // leading zero in L
		{http.MethodGet, "/tile/0/000.p/256", http.StatusBadRequest},   // a full tile has no .p
		{http.MethodGet, "/tile/0/000.p/0", http.StatusBadRequest},
		{http.MethodGet, "/tile/0/000.p/020", http.StatusBadRequest},
		{http.MethodGet, "/tile/64/000.p/1", http.StatusBadRequest},
		{http.MethodGet, "/tile/data/000.p/20", http.StatusBadRequest}, // tlog's name, not C2SP's
		{http.MethodGet, "/tile/8/0/000.p/20", http.StatusBadRequest},  // tlog's path with the height
		{http.MethodGet, "/tile/entries/x000/000.p/1", http.StatusBadRequest},
		{http.MethodGet, "/tile/entries/", http.StatusBadRequest},
	} {
		r := l.do(t, c.method, c.path)
		assert.Equal(t, c.code, r.code, "%s %s: %s", c.method, c.path, r.body)
		h := r.header
		assert.True(t, strings.HasPrefix(h.Get("Content-Security-Policy"), "default-src 'none'"), "%s %s: CSP %q", c.method, c.path, h.Get("Content-Security-Policy"))
		assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), "%s %s", c.method, c.path)
		assert.Equal(t, "DENY", h.Get("X-Frame-Options"), "%s %s", c.method, c.path)
		assert.NotContains(t, h.Get("Content-Type"), "html", "%s %s", c.method, c.path)
		if h.Get("Content-Type") != "application/octet-stream" {
			assert.NotContains(t, string(r.body), "<script>", "%s %s", c.method, c.path)
		}
		if c.code == http.StatusMethodNotAllowed {
			assert.Equal(t, "GET, HEAD", h.Get("Allow"))
		}
		if c.code != http.StatusOK {
			assert.Equal(t, "text/plain; charset=utf-8", h.Get("Content-Type"), "%s %s", c.method, c.path)
		}
		if c.method == http.MethodHead {
			assert.Empty(t, r.body)
			assert.NotEmpty(t, h.Get("Content-Length"))
		}
	}

	// The DOID with HTML is in the log, as bytes of an entry bundle only.
	r := l.mustGet(t, "/tile/entries/000.p/20")
	assert.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
	assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
	entries := bundle(t, r.body)
	require.Len(t, entries, 20)
	op, err := core.DecodeSealed(entries[7])
	require.NoError(t, err)
	assert.Equal(t, "10.1000/"+scriptDOID, op.DOID)
	assert.True(t, bytes.Contains(r.body, []byte(scriptDOID)))
}

// TestPublicLogBeforeCheckpoint: before the first signed checkpoint there
// is nothing to serve but the key, even once operations are sequenced.
func TestPublicLogBeforeCheckpoint(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	r := l.get(t, "/checkpoint")
	assert.Equal(t, http.StatusNotFound, r.code)
	assert.Contains(t, string(r.body), "no signed checkpoint yet")
	l.record(t, 3, -1)
	for _, path := range []string{"/checkpoint", "/tile/0/000.p/3", "/tile/entries/000.p/3", "/proof/" + l.ops[0].OpID} {
		r := l.get(t, path)
		assert.Equal(t, http.StatusNotFound, r.code, path)
		assert.Equal(t, "no-store", r.header.Get("Cache-Control"), path)
	}
	assert.Contains(t, string(l.get(t, "/proof/"+l.ops[0].OpID).body), "no signed checkpoint covers this operation")
	assert.Equal(t, l.vkey+"\n", string(l.mustGet(t, serve.KeyPath).body))
}

// TestPublicLogPrunedEntries: entry bundles that start below the prune
// horizon are 404 (C2SP tlog-tiles' minimum index); their tiles, and the
// bundles above, are still served.
func TestPublicLogPrunedEntries(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	l.record(t, 300, -1)
	l.sign(t)
	require.NoError(t, l.st.SetCursor(context.Background(), ledger.PrunedCursor, "256"))
	r := l.get(t, "/tile/entries/000")
	assert.Equal(t, http.StatusNotFound, r.code)
	assert.Contains(t, string(r.body), "pruned")
	l.mustGet(t, "/tile/0/000")
	assert.Len(t, bundle(t, l.mustGet(t, "/tile/entries/001.p/44").body), 44)
}

// TestPublicLogWrongKey: a checkpoint the configured key does not verify
// is never served; a key that is not one is refused at once.
func TestPublicLogWrongKey(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	l.record(t, 5, -1)
	l.sign(t)
	_, other, err := core.GenerateEd25519("serve.test/log")
	require.NoError(t, err)
	h, err := serve.NewPublicLog(l.st, serve.PublicLogOptions{LogKey: other, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	for _, path := range []string{"/checkpoint", "/tile/0/000.p/5"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		assert.Equal(t, http.StatusInternalServerError, rec.Code, path)
		assert.NotContains(t, rec.Body.String(), "serve.test/log\n", "no checkpoint text")
	}

	_, err = serve.NewPublicLog(l.st, serve.PublicLogOptions{LogKey: "PRIVATE+KEY+x"})
	assert.ErrorContains(t, err, "not a note-format public key")
}
