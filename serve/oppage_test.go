package serve_test

import (
	"html"
	"net/http"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
)

// pageCSP is the policy of the HTML pages.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// assertPageHeaders checks the headers of an HTML page.
func assertPageHeaders(t *testing.T, r response, what string) {
	t.Helper()
	h := r.header
	assert.Equal(t, "text/html; charset=utf-8", h.Get("Content-Type"), what)
	assert.Equal(t, pageCSP, h.Get("Content-Security-Policy"), what)
	assert.Len(t, h.Values("Content-Security-Policy"), 1, what)
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), what)
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"), what)
	assert.Equal(t, "no-referrer", h.Get("Referrer-Policy"), what)
}

var (
	// tagRE finds the opening tags of script and style elements.
	tagRE = regexp.MustCompile(`<(script|style)\b[^>]*>`)
	// linkRE finds the page's asset URLs: icon, style sheet, script.
	linkRE = regexp.MustCompile(`(?:src|href)="\.\./assets/([a-z]+\.[0-9a-f]{12}\.(?:js|css|svg))"`)
)

// assertNothingInline checks a page has no inline script or style: the
// policy would block it, and a page that relies on it is broken.
func assertNothingInline(t *testing.T, body, what string) {
	t.Helper()
	for _, m := range tagRE.FindAllStringSubmatch(body, -1) {
		assert.Equal(t, "script", m[1], "%s: no <style> element", what)
		assert.Regexp(t, `^<script src="[^"]+" defer>$`, m[0], "%s: script from a file only", what)
		assert.Contains(t, body, m[0]+"</script>", "%s: an empty script element", what)
	}
	assert.NotRegexp(t, `\sstyle=`, body, "%s: no style attribute", what)
	assert.NotRegexp(t, `\son[a-z]+=`, body, "%s: no event handler attribute", what)
}

// fieldCell returns the served value cell of the operation table's row.
func fieldCell(t *testing.T, body, field string) string {
	t.Helper()
	m := regexp.MustCompile(`<tr data-field="` + field + `"><th scope="row">[^<]*</th><td>([^<]*)</td></tr>`).FindStringSubmatch(body)
	require.NotNil(t, m, "row %s", field)
	return m[1]
}

// TestOpPage: the operation page of a sequenced, signed operation: its
// headers, its fields escaped (a DOID that is HTML is text), nothing
// inline, links to its proof and the key, and its versioned assets.
func TestOpPage(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	l.record(t, 20, 7)
	l.sign(t)

	op := l.ops[7]
	r := l.mustGet(t, "/op/"+op.OpID)
	assertPageHeaders(t, r, "op page")
	assert.Equal(t, "no-cache", r.header.Get("Cache-Control"))
	body := string(r.body)
	assertNothingInline(t, body, "op page")

	assert.NotContains(t, body, scriptDOID, "the DOID is not markup")
	assert.Equal(t, "10.1000/&lt;script&gt;alert(1)&lt;/script&gt;", fieldCell(t, body, "doid"))
	assert.Equal(t, op.OpID, fieldCell(t, body, "op_id"))
	assert.Equal(t, op.Actor, fieldCell(t, body, "op_actor"))
	assert.Equal(t, op.OpHash, fieldCell(t, body, "op_hash"))
	assert.Equal(t, op.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000Z"), fieldCell(t, body, "created_at"))
	assert.Equal(t, "sha256", fieldCell(t, body, "hash_alg"))
	assert.Empty(t, fieldCell(t, body, "signer"))
	assert.Contains(t, body, `data-op-id="`+op.OpID+`"`)
	assert.Contains(t, body, `data-proof-url="../proof/`+op.OpID+`"`)
	assert.Contains(t, body, `data-key-url="../.well-known/trustlog/log.pub"`)
	assert.Contains(t, body, `<dd data-proof="index">7</dd>`)
	nameHash := strings.Join(strings.SplitN(l.vkey, "+", 3)[:2], "+") // the key's base64 may hold '+'
	key := regexp.MustCompile(`<dd data-proof="key">([^<]*)</dd>`).FindStringSubmatch(body)
	require.NotNil(t, key)
	assert.Equal(t, nameHash, html.UnescapeString(key[1]), "the key's name and hash")
	assert.Contains(t, body, `id="result" data-state="running"`)

	// The op_id in any case; the page is the canonical one's.
	upper := l.mustGet(t, "/op/"+strings.ToUpper(op.OpID))
	assert.Equal(t, body, string(upper.body))

	// Its script and style sheet: versioned (immutable) and not.
	links := linkRE.FindAllStringSubmatch(body, -1)
	require.Len(t, links, 3, "an icon, a style sheet and a script")
	for _, m := range links {
		a := l.mustGet(t, "/assets/"+m[1])
		assert.Equal(t, "public, max-age=31536000, immutable", a.header.Get("Cache-Control"), m[1])
		assert.Equal(t, map[string]string{
			".js":  "text/javascript; charset=utf-8",
			".css": "text/css; charset=utf-8",
			".svg": "image/svg+xml",
		}[path.Ext(m[1])], a.header.Get("Content-Type"), m[1])
		assert.Equal(t, "nosniff", a.header.Get("X-Content-Type-Options"))
		assert.Equal(t, "default-src 'none'; frame-ancestors 'none'", a.header.Get("Content-Security-Policy"))

		name := regexp.MustCompile(`\.[0-9a-f]{12}\.`).ReplaceAllString(m[1], ".")
		plain := l.mustGet(t, "/assets/"+name)
		assert.Equal(t, "no-cache", plain.header.Get("Cache-Control"), name)
		assert.Equal(t, a.body, plain.body, name)
		etag := plain.header.Get("ETag")
		require.NotEmpty(t, etag)
		req, err := http.NewRequest(http.MethodGet, l.srv.URL+"/assets/"+name, nil)
		require.NoError(t, err)
		req.Header.Set("If-None-Match", etag)
		resp, err := l.srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNotModified, resp.StatusCode, "%s revalidates", name)
	}
}

// TestOpPageErrors: junk in the URL is 400 and never quoted, an unknown
// operation is 404, both as HTML pages with the pages' policy; other
// methods are 405; an operation not yet in a signed checkpoint has its
// page (the script then says it cannot be verified yet).
func TestOpPageErrors(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	l.record(t, 3, -1)

	for _, c := range []struct {
		path string
		code int
		text string
	}{
		{"/op/not-an-op-id", http.StatusBadRequest, "An operation ID is a UUID"},
		{"/op/%3Cscript%3Ealert(1)%3C%2Fscript%3E", http.StatusBadRequest, "An operation ID is a UUID"},
		{"/op/0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b%22%3E%3Cscript%3E", http.StatusBadRequest, "An operation ID is a UUID"},
		{"/op/{0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b}", http.StatusBadRequest, "An operation ID is a UUID"},
		{"/op/0190A1B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B", http.StatusNotFound, "no operation with the ID 0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b."},
	} {
		r := l.get(t, c.path)
		assert.Equal(t, c.code, r.code, c.path)
		assertPageHeaders(t, r, c.path)
		assert.Equal(t, "no-store", r.header.Get("Cache-Control"), c.path)
		body := string(r.body)
		assert.Contains(t, body, c.text, c.path)
		assert.NotContains(t, body, "<script", c.path)
		assert.NotContains(t, body, "not-an-op-id", "%s: the request is not quoted", c.path)
		assert.NotContains(t, body, "alert(1)", "%s: the request is not quoted", c.path)
		assertNothingInline(t, body, c.path)
	}
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/op/", http.StatusNotFound},
		{http.MethodGet, "/op/" + l.ops[0].OpID + "/x", http.StatusNotFound},
		{http.MethodGet, "/assets/nosuch.js", http.StatusNotFound},
		{http.MethodGet, "/assets/verify.000000000000.js", http.StatusNotFound},
		{http.MethodPost, "/op/" + l.ops[0].OpID, http.StatusMethodNotAllowed},
		{http.MethodDelete, "/assets/verify.js", http.StatusMethodNotAllowed},
	} {
		r := l.do(t, c.method, c.path)
		assert.Equal(t, c.code, r.code, "%s %s", c.method, c.path)
		assert.Equal(t, "default-src 'none'; frame-ancestors 'none'", r.header.Get("Content-Security-Policy"), "%s %s", c.method, c.path)
		assert.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"), "%s %s", c.method, c.path)
	}

	head := l.do(t, http.MethodHead, "/op/"+l.ops[0].OpID)
	assert.Equal(t, http.StatusOK, head.code)
	assert.Empty(t, head.body)
	assert.NotEmpty(t, head.header.Get("Content-Length"))

	// Sequenced, no checkpoint yet: the page, with its leaf index.
	r := l.mustGet(t, "/op/"+l.ops[1].OpID)
	assert.Contains(t, string(r.body), `<dd data-proof="index">1</dd>`)
	// Recorded, not sequenced yet.
	op := conformance.NewOp("unsequenced", 99)
	require.NoError(t, l.client.Record(t.Context(), op))
	r = l.mustGet(t, "/op/"+op.OpID)
	assert.Contains(t, string(r.body), `<dd data-proof="index">not in the log yet</dd>`)
}
