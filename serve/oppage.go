package serve

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// web holds the operation page's template and its static assets.
//
//go:embed web/page.html web/assets
var web embed.FS

// pageCSP is the Content-Security-Policy of the HTML pages: their own
// script and style files only, fetches to this origin only, nothing
// inline (no inline script, no <style>, no style attribute), no plugin,
// no frame, no <base>, and not framed anywhere.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// AssetsPath is where the pages' static assets (script, style sheet, icon) are
// served: /assets/<name> (Cache-Control no-cache, with an ETag) and
// /assets/<stem>.<version>.<ext>, the versioned name the pages link to,
// which never changes and is cached as immutable.
const AssetsPath = "/assets/"

// asset is one embedded static file.
type asset struct {
	name      string // verify.js
	versioned string // verify.0123456789ab.js: the content's SHA-256 in the name
	ctype     string
	etag      string
	body      []byte
}

// assets are the embedded static files, by name and by versioned name.
type assets map[string]*asset

// loadAssets reads the embedded assets.
func loadAssets() (assets, error) {
	m := assets{}
	entries, err := fs.ReadDir(web, "web/assets")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		body, err := fs.ReadFile(web, "web/assets/"+e.Name())
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		version := hex.EncodeToString(sum[:6])
		ext := path.Ext(e.Name())
		a := &asset{
			name:      e.Name(),
			versioned: strings.TrimSuffix(e.Name(), ext) + "." + version + ext,
			etag:      `"` + version + `"`,
			body:      body,
		}
		switch ext {
		case ".js":
			a.ctype = "text/javascript; charset=utf-8"
		case ".css":
			a.ctype = "text/css; charset=utf-8"
		case ".svg":
			a.ctype = "image/svg+xml"
		default:
			return nil, fmt.Errorf("serve: asset %s: no content type for %q", e.Name(), ext)
		}
		m[a.name], m[a.versioned] = a, a
	}
	return m, nil
}

// url is the asset's versioned URL relative to a page one level below
// the root (/op/<op_id>), so the pages work under a path prefix too.
func (as assets) url(name string) string {
	return ".." + AssetsPath + as[name].versioned
}

// serveAsset answers GET /assets/<name>.
func (as assets) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := as[r.PathValue("name")]
	if !ok {
		fail(w, http.StatusNotFound, "not found: no such asset")
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("ETag", a.etag)
	if r.PathValue("name") == a.versioned {
		hd.Set("Cache-Control", cacheImmutable)
	} else {
		hd.Set("Cache-Control", cacheNone)
	}
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}

// pages renders the HTML pages.
type pages struct {
	tmpl   *template.Template
	assets assets
	origin string // the log's origin, its key's name
	key    string // the log's key, name+hash (without the key material)
}

func newPages(origin, key string) (*pages, error) {
	as, err := loadAssets()
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"verify.js", "page.css", "icon.svg"} {
		if as[name] == nil {
			return nil, fmt.Errorf("serve: the embedded asset %s is missing", name)
		}
	}
	tmpl, err := template.ParseFS(web, "web/page.html")
	if err != nil {
		return nil, err
	}
	return &pages{tmpl: tmpl, assets: as, origin: origin, key: key}, nil
}

// field is one row of the operation's table: its name in the message
// format (docs/message-format.md), which verify.js finds it by, a label,
// and the value as the store holds it.
type field struct {
	Key, Label, Value string
}

// layout is what every page shows.
type layout struct {
	Title  string
	Origin string
	CSS    string
	Icon   string
	JS     string // empty: the page runs no script
}

// opView is the operation page's data.
type opView struct {
	layout
	OpID      string
	Key       string
	ProofURL  string
	KeyURL    string
	LeafIndex string // empty until the sequencer gave it one
	Fields    []field
}

// errorView is an error page's data. Its text never quotes the request.
type errorView struct {
	layout
	Status  int
	Heading string
	Message string
}

// createdAtFormat is how created_at is shown: UTC to the microsecond, as
// verify.js writes it from the entry.
const createdAtFormat = "2006-01-02T15:04:05.000000Z"

// fields lists op's fields in the message format's order, as verify.js
// decodes them from the entry.
func fields(op *core.Operation) []field {
	hashAlg := string(op.HashAlg)
	if hashAlg == "" {
		hashAlg = string(core.HashSHA256)
	}
	return []field{
		{"op_id", "Operation ID", op.OpID},
		{"op_source", "Source", string(op.Source)},
		{"op_type", "Type", op.Type},
		{"doid", "DOID", op.DOID},
		{"do_prefix", "Prefix", op.DOPrefix},
		{"do_repository", "Repository", op.DORepository},
		{"op_actor", "Actor", op.Actor},
		{"producer_id", "Producer", op.ProducerID},
		{"hash_alg", "Hash algorithm", hashAlg},
		{"request_body_hash", "Request body hash", op.RequestBodyHash},
		{"response_body_hash", "Response body hash", op.ResponseBodyHash},
		{"client_ip", "Client IP", op.ClientIP},
		{"server_ip", "Server IP", op.ServerIP},
		{"created_at", "Created at (UTC)", op.CreatedAt.UTC().Format(createdAtFormat)},
		{"op_hash", "Operation hash (SHA-256)", op.OpHash},
		{"signer", "Signed by", op.Signer},
	}
}

// render writes template name with data as an HTML page with status
// code, or a plain 500 if the template fails (nothing is written before
// it has rendered whole).
func (pg *pages) render(w http.ResponseWriter, code int, name string, data any) error {
	var b bytes.Buffer
	if err := pg.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		fail(w, http.StatusInternalServerError, "internal error: rendering the page")
		return err
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", pageCSP)
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", cacheNone)
	if code != http.StatusOK {
		hd.Set("Cache-Control", "no-store")
	}
	hd.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(code)
	w.Write(b.Bytes())
	return nil
}

func (pg *pages) layout(title string, script bool) layout {
	l := layout{Title: title, Origin: pg.origin, CSS: pg.assets.url("page.css"), Icon: pg.assets.url("icon.svg")}
	if script {
		l.JS = pg.assets.url("verify.js")
	}
	return l
}

// errorPage answers an error as an HTML page.
func (pg *pages) errorPage(w http.ResponseWriter, code int, heading, msg string) error {
	return pg.render(w, code, "error", errorView{
		layout: pg.layout(heading, false), Status: code, Heading: heading, Message: msg,
	})
}

// opPage answers GET /op/{opid}: the operation as the store holds it,
// and the script that verifies it against the signed log in the browser.
func (p *publicLog) opPage(w http.ResponseWriter, r *http.Request) {
	pg := p.pages
	id := r.PathValue("opid")
	if core.CheckOpID(id) != nil {
		p.pageErr(r, pg.errorPage(w, http.StatusBadRequest, "Malformed operation ID",
			"An operation ID is a UUID: 8-4-4-4-12 hexadecimal digits."))
		return
	}
	id = strings.ToLower(id)
	rec, err := p.st.Get(r.Context(), id)
	switch {
	case errors.Is(err, core.ErrNotFound):
		p.pageErr(r, pg.errorPage(w, http.StatusNotFound, "No such operation",
			"This log holds no operation with the ID "+id+"."))
		return
	case err != nil:
		p.log.Error("serve: reading the operation", "path", r.URL.Path, "err", err)
		p.pageErr(r, pg.errorPage(w, http.StatusInternalServerError, "Internal error",
			"The server could not read the operation. Try again later."))
		return
	}
	v := opView{
		layout:   pg.layout("Operation "+id, true),
		OpID:     id,
		Key:      pg.key,
		ProofURL: "../proof/" + id,
		KeyURL:   ".." + KeyPath,
		Fields:   fields(&rec.Op),
	}
	if rec.LeafIndex >= 0 {
		v.LeafIndex = strconv.FormatInt(rec.LeafIndex, 10)
	}
	p.pageErr(r, pg.render(w, http.StatusOK, "op", v))
}

// pageErr logs a page that failed to render.
func (p *publicLog) pageErr(r *http.Request, err error) {
	if err != nil {
		p.log.Error("serve: rendering a page", "path", r.URL.Path, "err", err)
	}
}
