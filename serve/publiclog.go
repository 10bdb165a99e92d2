package serve

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
)

// TileHeight is the height of the served hash tiles: C2SP tlog-tiles
// fixes it at 8, so a full tile holds 256 hashes and a full entry bundle
// 256 entries.
const TileHeight = 8

// tileWidth is the number of hashes of a full tile, entries of a full
// bundle.
const tileWidth = 1 << TileHeight

// KeyPath is where the log's public key is served.
const KeyPath = "/.well-known/trustlog/log.pub"

// Cache-Control values.
const (
	cacheImmutable = "public, max-age=31536000, immutable" // full tiles and bundles never change
	cachePartial   = "public, max-age=60"                  // replaced by the full one as the log grows
	cacheKey       = "public, max-age=3600"
	cacheNone      = "no-cache" // the checkpoint and proofs follow the log
)

// PublicLogOptions configure NewPublicLog.
type PublicLogOptions struct {
	// LogKey is the log's public key in the note verifier format, as
	// `trustlog keygen` writes it to OUT.pub (name+hash+key). Its name is
	// the log's origin. The server publishes it at KeyPath and serves only
	// checkpoints it verifies. Required.
	LogKey string
	// Logger receives the failures behind 500 responses (the store
	// failed, a checkpoint does not verify); default slog.Default().
	Logger *slog.Logger
}

// NewPublicLog returns the HTTP handler of store's public log (see the
// package documentation for the paths). store must keep a ledger
// (ledger.Storage: the three built-in drivers do). The handler reads the
// store on each request; it writes nothing.
func NewPublicLog(store core.Store, opts PublicLogOptions) (http.Handler, error) {
	st, ok := store.(ledger.Storage)
	if !ok {
		return nil, errors.New("serve: this store keeps no ledger (ledger.Storage)")
	}
	key := strings.TrimSpace(opts.LogKey)
	v, err := note.NewVerifier(key)
	if err != nil {
		return nil, fmt.Errorf("serve: the log key is not a note-format public key: %v", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// The key's name+hash, without the key material (whose base64 may
	// hold '+' too; the name may not): what the pages show.
	hashed := v.Name() + "+" + strings.SplitN(key, "+", 3)[1]
	pg, err := newPages(v.Name(), hashed)
	if err != nil {
		return nil, err
	}
	p := &publicLog{st: st, verifier: v, key: key, log: opts.Logger, pages: pg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkpoint", p.checkpoint)
	mux.HandleFunc("GET /tile/entries/{path...}", p.entries)
	mux.HandleFunc("GET /tile/{path...}", p.tile)
	mux.HandleFunc("GET /proof/{opid}", p.proof)
	mux.HandleFunc("GET "+KeyPath, p.logKey)
	mux.HandleFunc("GET /op/{opid}", p.opPage)
	mux.HandleFunc("GET "+AssetsPath+"{name}", pg.assets.serveAsset)
	return Secure(mux), nil
}

// Secure wraps h with the public log's response policy: every response
// carries Content-Security-Policy default-src 'none' (nothing served is
// a page to render or run, except the HTML pages, which replace it with
// a policy that allows their own script and style files and nothing
// else), X-Content-Type-Options nosniff (no browser guesses HTML from
// bytes) and X-Frame-Options DENY, and only GET and HEAD reach h
// (anything else is 405 with Allow: GET, HEAD).
func Secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			hd.Set("Allow", "GET, HEAD")
			fail(w, http.StatusMethodNotAllowed, "only GET and HEAD are allowed")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// publicLog serves one store's log.
type publicLog struct {
	st       ledger.Storage
	verifier note.Verifier
	key      string
	log      *slog.Logger
	pages    *pages
}

// fail answers an error in plain text, never cached. The text never
// quotes the request.
func fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, code)
}

// internal answers 500 and logs the cause, which the public does not see.
func (p *publicLog) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	p.log.Error("serve: "+what, "path", r.URL.Path, "err", err)
	fail(w, http.StatusInternalServerError, "internal error: "+what)
}

// reply writes body with its content type and caching.
func reply(w http.ResponseWriter, contentType, cache string, body []byte) {
	hd := w.Header()
	hd.Set("Content-Type", contentType)
	hd.Set("Cache-Control", cache)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// errNoCheckpoint: nothing has been signed yet.
var errNoCheckpoint = errors.New("no signed checkpoint yet")

// latest returns the latest signed checkpoint's note and content, after
// checking its signature with the log's key. It fails with
// errNoCheckpoint when there is none.
func (p *publicLog) latest(ctx context.Context) ([]byte, ledger.Checkpoint, error) {
	cs, err := p.st.Checkpoints(ctx, ledger.CheckpointQuery{Latest: true})
	if err != nil {
		return nil, ledger.Checkpoint{}, err
	}
	if len(cs) == 0 {
		return nil, ledger.Checkpoint{}, errNoCheckpoint
	}
	cp, err := ledger.OpenCheckpoint(cs[0].Note, p.verifier)
	if err != nil {
		return nil, cp, fmt.Errorf("the latest checkpoint (size %d) does not verify with the log key %s: %w", cs[0].Size, p.verifier.Name(), err)
	}
	return cs[0].Note, cp, nil
}

// size returns the tree size of the latest signed checkpoint, or answers
// the request (404 before the first checkpoint, 500 on failure) and
// returns false.
func (p *publicLog) size(w http.ResponseWriter, r *http.Request) (int64, bool) {
	_, cp, err := p.latest(r.Context())
	switch {
	case errors.Is(err, errNoCheckpoint):
		fail(w, http.StatusNotFound, "not found: the log has no signed checkpoint yet")
		return 0, false
	case err != nil:
		p.internal(w, r, "reading the latest checkpoint", err)
		return 0, false
	}
	return cp.Size, true
}

func (p *publicLog) checkpoint(w http.ResponseWriter, r *http.Request) {
	msg, _, err := p.latest(r.Context())
	switch {
	case errors.Is(err, errNoCheckpoint):
		fail(w, http.StatusNotFound, "no signed checkpoint yet: a relay with a ledger key (trustlog relay --ledger-key-file) signs one once operations are sequenced")
	case err != nil:
		p.internal(w, r, "reading the latest checkpoint", err)
	default:
		reply(w, "text/plain; charset=utf-8", cacheNone, msg)
	}
}

func (p *publicLog) logKey(w http.ResponseWriter, _ *http.Request) {
	reply(w, "text/plain; charset=utf-8", cacheKey, []byte(p.key+"\n"))
}

// parseTile parses the C2SP tile path after "tile/": "<L>/<N>[.p/<W>]",
// or for an entry bundle (entries set) "<N>[.p/<W>]". C2SP's paths are
// tlog's tile coordinate paths without the height (always 8) and with
// "entries" for tlog's "data" level, so tlog.ParseTilePath parses them,
// canonical form included (no leading zeros, W below 256).
func parseTile(rest string, entries bool) (tlog.Tile, bool) {
	prefix := "tile/8/"
	if entries {
		prefix += "data/"
	} else if strings.HasPrefix(rest, "data/") {
		return tlog.Tile{}, false // tlog's name for the entries level, not C2SP's
	}
	t, err := tlog.ParseTilePath(prefix + rest)
	if err != nil || t.L > 63 || t.N < 0 {
		return tlog.Tile{}, false
	}
	return t, true
}

// within reports whether tile t (entries: level -1, counted as 0) exists
// in a tree of size n: its W hashes at its level are all complete.
func within(t tlog.Tile, n int64) bool {
	level := max(t.L, 0)
	if TileHeight*level >= 63 {
		return false
	}
	hashes := n >> uint(TileHeight*level) // complete hashes at this level
	if t.N > hashes>>TileHeight {
		return false
	}
	return t.N<<TileHeight+int64(t.W) <= hashes
}

// cacheOf is the Cache-Control of a tile or bundle.
func cacheOf(t tlog.Tile) string {
	if t.W == tileWidth {
		return cacheImmutable
	}
	return cachePartial
}

func (p *publicLog) tile(w http.ResponseWriter, r *http.Request) {
	t, ok := parseTile(r.PathValue("path"), false)
	if !ok {
		fail(w, http.StatusBadRequest, "malformed tile path: want /tile/<L>/<N>[.p/<W>] (C2SP tlog-tiles)")
		return
	}
	n, ok := p.size(w, r)
	if !ok {
		return
	}
	if !within(t, n) {
		fail(w, http.StatusNotFound, "not found: the tile is beyond the latest signed checkpoint")
		return
	}
	data, err := tlog.ReadTileData(t, core.NewHashReader(r.Context(), p.st))
	if err != nil {
		p.internal(w, r, "reading the tile's hashes", err)
		return
	}
	reply(w, "application/octet-stream", cacheOf(t), data)
}

func (p *publicLog) entries(w http.ResponseWriter, r *http.Request) {
	t, ok := parseTile(r.PathValue("path"), true)
	if !ok {
		fail(w, http.StatusBadRequest, "malformed entry bundle path: want /tile/entries/<N>[.p/<W>] (C2SP tlog-tiles)")
		return
	}
	n, ok := p.size(w, r)
	if !ok {
		return
	}
	if !within(t, n) {
		fail(w, http.StatusNotFound, "not found: the entry bundle is beyond the latest signed checkpoint")
		return
	}
	start := t.N << TileHeight
	pruned, err := ledger.PrunedBelow(r.Context(), p.st)
	if err != nil {
		p.internal(w, r, "reading the prune horizon", err)
		return
	}
	if start < pruned {
		fail(w, http.StatusNotFound, fmt.Sprintf("not found: the entries below leaf %d were pruned (their hashes are still in the tiles)", pruned))
		return
	}
	recs, err := p.st.Leaves(r.Context(), start, t.W)
	if err != nil {
		p.internal(w, r, "reading the entries", err)
		return
	}
	var bundle []byte
	for i := range t.W {
		if i >= len(recs) || recs[i].LeafIndex != start+int64(i) {
			p.internal(w, r, "reading the entries", fmt.Errorf("leaf %d is missing from the store", start+int64(i)))
			return
		}
		leaf, err := ledger.LeafData(&recs[i].Op)
		if err == nil && len(leaf) > 0xffff {
			err = fmt.Errorf("leaf %d is %d bytes, more than an entry bundle's uint16 length holds", start+int64(i), len(leaf))
		}
		if err != nil {
			p.internal(w, r, "encoding the entries", err)
			return
		}
		bundle = binary.BigEndian.AppendUint16(bundle, uint16(len(leaf)))
		bundle = append(bundle, leaf...)
	}
	reply(w, "application/octet-stream", cacheOf(t), bundle)
}

func (p *publicLog) proof(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("opid")
	if core.CheckOpID(id) != nil {
		fail(w, http.StatusBadRequest, "malformed op_id: want a UUID (8-4-4-4-12 hex digits)")
		return
	}
	pr, err := ledger.Prove(r.Context(), p.st, strings.ToLower(id))
	switch {
	case errors.Is(err, core.ErrNotFound):
		fail(w, http.StatusNotFound, "not found: no operation has this op_id")
	case errors.Is(err, ledger.ErrNotSequenced):
		fail(w, http.StatusNotFound, "not found yet: no signed checkpoint covers this operation; try again shortly")
	case err != nil:
		p.internal(w, r, "proving the operation", err)
	default:
		reply(w, "text/plain; charset=utf-8", cacheNone, pr.Marshal())
	}
}
