package console_test

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/console"
	"github.com/go-trustlog/trustlog/core"
)

// plainStore hides the driver's optional interfaces (core.Inspector):
// a third-party driver with only core.Store.
type plainStore struct{ core.Store }

func TestOverview(t *testing.T) {
	f := newFixture(t, console.Options{}, nil)
	res, body := f.get(t, "/console/")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	assert.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'none'")
	assert.Contains(t, res.Header.Get("Content-Security-Policy"), "script-src 'self'")
	assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	assert.Equal(t, "DENY", res.Header.Get("X-Frame-Options"))
	assert.Equal(t, "no-store", res.Header.Get("Cache-Control"))
	for id, want := range map[string]int{"count-pending": 3, "count-retrying": len(f.retrying),
		"count-dead": len(f.dead), "count-published": len(f.published), "count-total": len(f.ops), "tree-size": 41} {
		assert.Regexp(t, fmt.Sprintf(`id="%s">%d<`, id, want), body)
	}
	assert.Contains(t, body, `<code class="relay">relay-a</code>`, "the live relay")
	assert.Contains(t, body, "(from heartbeats)")
	assert.Contains(t, body, "read-only", "no admin token: the console says it is read-only")
	assert.NotContains(t, body, "Log in")
	parts, err := f.store.Partitions(context.Background())
	require.NoError(t, err)
	assert.Equal(t, len(parts), strings.Count(body, "<code>relay-a</code>"), "each partition's owner")
	assert.Contains(t, body, base.Add(time.Minute).Format("2006-01-02 15:04:05Z"), "the oldest unpublished operation (operation 1, retrying)")
	assert.Contains(t, body, "No samples yet.")
	assert.Contains(t, body, "none yet", "no checkpoint signed")

	// The chart draws what Run samples.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.con.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool {
		_, body = f.get(t, "/console/")
		return strings.Contains(body, "<polyline")
	}, time.Minute, 10*time.Millisecond, "the backlog chart after the first sample")
}

func TestOverviewAssets(t *testing.T) {
	f := newFixture(t, console.Options{}, nil)
	for path, ctype := range map[string]string{"/console/assets/console.js": "text/javascript", "/console/assets/console.css": "text/css"} {
		res, body := f.get(t, path)
		require.Equal(t, http.StatusOK, res.StatusCode, path)
		assert.Contains(t, res.Header.Get("Content-Type"), ctype, path)
		assert.NotEmpty(t, body)
	}
	_, page := f.get(t, "/console/")
	assert.NotRegexp(t, `<script>[^<]`, page, "no inline script (the CSP forbids it)")
	assert.NotContains(t, page, ` style="`, "no inline style (the CSP forbids it)")
	assert.NotContains(t, page, "http://", "nothing loaded from elsewhere")
	assert.NotContains(t, page, "https://", "nothing loaded from elsewhere")
}

func TestOpsLists(t *testing.T) {
	f := newFixture(t, console.Options{}, nil)
	_, body := f.get(t, "/console/ops?state=dead")
	for _, id := range f.dead {
		assert.Contains(t, body, id)
	}
	for _, id := range f.retrying {
		assert.NotContains(t, body, id)
	}
	_, body = f.get(t, "/console/ops?state=retrying")
	for _, id := range f.retrying {
		assert.Contains(t, body, id)
	}
	for _, id := range f.dead {
		assert.NotContains(t, body, id)
	}
	assert.Contains(t, body, "timeout talking to the broker")

	// Filters: DOID, error text (literally: % and _ are not wildcards),
	// age.
	doid := f.ops[5].DOID
	_, body = f.get(t, "/console/ops?state=dead&doid="+url.QueryEscape(doid))
	for _, id := range f.dead {
		op := f.ops[indexOf(f, id)]
		if op.DOID == doid {
			assert.Contains(t, body, id)
		} else {
			assert.NotContains(t, body, id)
		}
	}
	_, body = f.get(t, "/console/ops?state=dead&error="+url.QueryEscape("100%_sure"))
	assert.Equal(t, len(f.dead), countRows(body), "error text found literally")
	_, body = f.get(t, "/console/ops?state=dead&error="+url.QueryEscape("100%sure"))
	assert.Equal(t, 0, countRows(body), "%% is not a wildcard")
	_, body = f.get(t, "/console/ops?state=dead&older=1h")
	assert.Equal(t, 0, countRows(body), "nothing died an hour ago")
	_, body = f.get(t, "/console/ops?state=dead&older=0s")
	assert.Equal(t, len(f.dead), countRows(body))

	for _, bad := range []string{"state=pending", "older=yesterday", "after=-1", "doid=" + strings.Repeat("x", 600)} {
		res, body := f.get(t, "/console/ops?"+bad)
		assert.Equal(t, http.StatusBadRequest, res.StatusCode, bad)
		assert.Contains(t, body, strings.SplitN(bad, "=", 2)[0]+":", "the error names the parameter")
	}
}

func TestOpsPaging(t *testing.T) {
	f := newFixture(t, console.Options{}, nil)
	// Page through the dead list with a page size of 100: make 120 more
	// dead operations.
	ctx := context.Background()
	cl, err := core.NewClient(f.store, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	var more []*core.Operation
	for i := range 120 {
		more = append(more, conformance.NewOp("obj-more", 1000+i))
	}
	require.NoError(t, cl.Record(ctx, more...))
	settleAll(t, f.store, true)
	_, body := f.get(t, "/console/ops?state=dead")
	require.Equal(t, 100, countRows(body))
	next := regexp.MustCompile(`href="([^"]+)" id="next"`).FindStringSubmatch(body)
	require.NotNil(t, next, "a next page link")
	_, body = f.get(t, html.UnescapeString(next[1]))
	assert.Equal(t, len(f.dead)+120+len(f.pending)-100, countRows(body), "the rest, the pending ones killed too")
	assert.NotContains(t, body, `id="next"`)
}

func TestOpPage(t *testing.T) {
	f := newFixture(t, console.Options{PublicLog: true}, nil)
	id := f.dead[1]
	res, body := f.get(t, "/console/op/"+id)
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, body, `id="op-state">dead<`)
	assert.Contains(t, body, html.EscapeString("broker said: topic <b>gone</b> 100%_sure"), "the last error, escaped")
	assert.Contains(t, body, f.ops[indexOf(f, id)].DOID)
	assert.Contains(t, body, `href="/op/`+id+`"`, "a link to the in-browser proof check")
	_, body = f.get(t, "/console/op/"+f.pending[0])
	assert.Contains(t, body, `id="op-state">pending<`)
	assert.NotContains(t, body, `id="verify-link"`, "no proof before a position")

	res, _ = f.get(t, "/console/op/no-such-op")
	assert.Equal(t, http.StatusNotFound, res.StatusCode)
	res, _ = f.get(t, "/console/op/"+url.PathEscape("bad id\x01"))
	assert.Equal(t, http.StatusBadRequest, res.StatusCode)
}

func TestScriptIsShownNotRun(t *testing.T) {
	f := newFixture(t, console.Options{}, nil)
	escaped := html.EscapeString(scriptDOID)
	for _, path := range []string{"/console/ops?state=dead", "/console/op/" + f.ops[40].OpID,
		"/console/search?by=doid&q=" + url.QueryEscape(scriptDOID)} {
		_, body := f.get(t, path)
		assert.NotContains(t, body, "<script>alert", path)
		assert.True(t, strings.Contains(body, escaped) || strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;"),
			"%s shows the DOID as text", path)
	}
}

func TestSearch(t *testing.T) {
	f := newFixture(t, console.Options{}, nil)
	// A DOID's history, in order, with each operation's state.
	doid := f.ops[2].DOID
	_, body := f.get(t, "/console/search?by=doid&q="+url.QueryEscape(doid))
	var want []string
	for i, op := range f.ops[:41] {
		if op.DOID == doid {
			want = append(want, op.OpID)
			assert.Regexp(t, regexp.QuoteMeta(op.OpID)+`(?s:.*?)class="state state-`+f.state[op.OpID].String(), body, "operation %d's state", i)
		}
	}
	assert.Equal(t, want, opIDsIn(body), "the history in seq order")

	// An actor's operations in a time range (half-open).
	actor := f.ops[3].Actor
	from, to := base.Add(10*time.Minute), base.Add(31*time.Minute)
	_, body = f.get(t, "/console/search?by=actor&q="+url.QueryEscape(actor)+"&from="+from.Format("2006-01-02T15:04")+
		"&to="+to.Format("2006-01-02T15:04"))
	want = nil
	for _, op := range f.ops {
		if op.Actor == actor && !op.CreatedAt.Before(from) && op.CreatedAt.Before(to) {
			want = append(want, op.OpID)
		}
	}
	require.NotEmpty(t, want)
	assert.Equal(t, want, opIDsIn(body))

	// By op_id: straight to its page.
	res, _ := f.get(t, "/console/search?by=op_id&q="+f.ops[7].OpID)
	assert.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, "/console/op/"+f.ops[7].OpID, res.Header.Get("Location"))

	for _, bad := range []string{"by=everything&q=x", "by=actor&q=x&from=yesterday", "by=op_id&q=" + url.QueryEscape("a b")} {
		res, _ := f.get(t, "/console/search?"+bad)
		assert.Equal(t, http.StatusBadRequest, res.StatusCode, bad)
	}
}

func TestWithoutInspector(t *testing.T) {
	f := newFixture(t, console.Options{}, func(s core.Store) core.Store { return plainStore{s} })
	_, body := f.get(t, "/console/")
	assert.Contains(t, body, "(from partition owners)")
	assert.Contains(t, body, `<code class="relay">relay-a</code>`)
	_, body = f.get(t, "/console/ops?state=dead")
	assert.Equal(t, len(f.dead), countRows(body), "the dead list comes from ListDead")
	_, body = f.get(t, "/console/ops?state=retrying")
	assert.Contains(t, body, "does not implement core.Inspector")
	_, body = f.get(t, "/console/search?by=doid&q=x")
	assert.Contains(t, body, "does not implement core.Inspector")
}

func TestRequeueReadOnly(t *testing.T) {
	f := newFixture(t, console.Options{}, nil)
	req := form(t, f, "/console/requeue", url.Values{"op_id": {f.dead[0]}})
	req.Header.Set("Authorization", "Bearer anything")
	res, body := f.do(t, req)
	assert.Equal(t, http.StatusForbidden, res.StatusCode)
	assert.Contains(t, body, "read-only")
	assert.Equal(t, core.StateDead, f.stateOf(t, f.dead[0]))
	res, _ = f.get(t, "/console/login")
	assert.Equal(t, http.StatusNotFound, res.StatusCode)
}

func TestRequeueBearer(t *testing.T) {
	f := newFixture(t, console.Options{AdminToken: adminToken}, nil)
	send := func(auth string, ids ...string) (*http.Response, string) {
		req := form(t, f, "/console/requeue", url.Values{"op_id": ids})
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return f.do(t, req)
	}
	res, _ := send("", f.dead[0])
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "no token")
	res, _ = send("Bearer wrong", f.dead[0])
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "wrong token")
	res, _ = send("Basic "+adminToken, f.dead[0])
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "not a bearer token")
	assert.Equal(t, core.StateDead, f.stateOf(t, f.dead[0]))

	res, body := send("Bearer "+adminToken, f.dead[0], f.dead[1])
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	assert.Equal(t, "requeued 2 of 2\n", body)
	assert.Equal(t, core.StateRetrying, f.stateOf(t, f.dead[0]), "due again")
	assert.Equal(t, core.StateRetrying, f.stateOf(t, f.dead[1]))
	assert.Equal(t, core.StateDead, f.stateOf(t, f.dead[2]), "only those named")

	res, _ = send("Bearer "+adminToken, "bad id")
	assert.Equal(t, http.StatusBadRequest, res.StatusCode)
	res, _ = send("Bearer " + adminToken)
	assert.Equal(t, http.StatusBadRequest, res.StatusCode, "no op_id")

	logs := f.logs.String()
	assert.Contains(t, logs, "requeued dead operations")
	assert.Contains(t, logs, "by=bearer")
	assert.Contains(t, logs, f.dead[0])
	assert.NotContains(t, logs, adminToken, "the token never reaches a log")
}

func TestRequeueSession(t *testing.T) {
	f := newFixture(t, console.Options{AdminToken: adminToken}, nil)
	// Logged out: the page offers to log in, and no requeue form.
	_, body := f.get(t, "/console/ops?state=dead")
	assert.Contains(t, body, `id="login"`)
	assert.NotContains(t, body, `id="requeue-selected"`)

	// A wrong token.
	res, _ := f.do(t, form(t, f, "/console/login", url.Values{"token": {"wrong"}}))
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
	assert.Empty(t, res.Cookies())
	// A login from another site.
	req := form(t, f, "/console/login", url.Values{"token": {adminToken}})
	req.Header.Set("Origin", "https://evil.example")
	res, _ = f.do(t, req)
	assert.Equal(t, http.StatusForbidden, res.StatusCode)

	res, _ = f.do(t, form(t, f, "/console/login", url.Values{"token": {adminToken}, "next": {"/console/ops?state=dead"}}))
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, "/console/ops?state=dead", res.Header.Get("Location"))
	require.Len(t, res.Cookies(), 1)
	ck := res.Cookies()[0]
	assert.Equal(t, "__Host-trustlog-session", ck.Name)
	assert.True(t, ck.HttpOnly && ck.Secure, "HttpOnly and Secure")
	assert.Equal(t, http.SameSiteStrictMode, ck.SameSite)
	assert.NotContains(t, ck.Value, adminToken)

	req = mustRequest(t, http.MethodGet, f.srv.URL+"/console/ops?state=dead", nil)
	req.AddCookie(ck)
	_, body = f.do(t, req)
	assert.Contains(t, body, `id="requeue-selected"`)
	assert.NotContains(t, body, adminToken, "the token is never rendered")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	require.NotNil(t, m)
	csrf := m[1]

	post := func(v url.Values, origin string) *http.Response {
		req := form(t, f, "/console/requeue", v)
		req.AddCookie(ck)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, _ := f.do(t, req)
		return res
	}
	res = post(url.Values{"op_id": {f.dead[0]}}, "")
	assert.Equal(t, http.StatusForbidden, res.StatusCode, "no CSRF token")
	res = post(url.Values{"op_id": {f.dead[0]}, "csrf": {"forged"}}, "")
	assert.Equal(t, http.StatusForbidden, res.StatusCode, "a wrong CSRF token")
	res = post(url.Values{"op_id": {f.dead[0]}, "csrf": {csrf}}, "https://evil.example")
	assert.Equal(t, http.StatusForbidden, res.StatusCode, "from another site")
	assert.Equal(t, core.StateDead, f.stateOf(t, f.dead[0]))
	assert.Contains(t, f.logs.String(), "CSRF check")

	res = post(url.Values{"op_id": {f.dead[0], f.dead[2]}, "csrf": {csrf}, "back": {"/console/ops?state=dead"}}, f.srv.URL)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, "/console/ops?requeued=2&state=dead", res.Header.Get("Location"))
	assert.Equal(t, core.StateRetrying, f.stateOf(t, f.dead[0]))
	assert.Equal(t, core.StateRetrying, f.stateOf(t, f.dead[2]))
	assert.Contains(t, f.logs.String(), "by=session")

	// An off-site "back" is ignored.
	res = post(url.Values{"op_id": {f.dead[3]}, "csrf": {csrf}, "back": {"https://evil.example/"}}, "")
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, "/console/?requeued=1", res.Header.Get("Location"))

	// Logging out ends the session.
	req = form(t, f, "/console/logout", url.Values{"csrf": {csrf}})
	req.AddCookie(ck)
	res, _ = f.do(t, req)
	assert.Equal(t, http.StatusSeeOther, res.StatusCode)
	res = post(url.Values{"op_id": {f.dead[4]}, "csrf": {csrf}}, "")
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "the session is over")
	assert.NotContains(t, f.logs.String(), adminToken)
}

// form is a POST of v as a form.
func form(t testing.TB, f *fixture, path string, v url.Values) *http.Request {
	t.Helper()
	req := mustRequest(t, http.MethodPost, f.srv.URL+path, bytes.NewBufferString(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// countRows counts the operations listed on a page.
func countRows(body string) int { return len(opIDsIn(body)) }

// opIDsIn returns the op_ids a page's table lists, in order.
func opIDsIn(body string) []string {
	var ids []string
	for _, m := range regexp.MustCompile(`<a href="/console/op/[^"]*"><code>([^<]+)</code>`).FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func indexOf(f *fixture, opID string) int {
	for i, op := range f.ops {
		if op.OpID == opID {
			return i
		}
	}
	panic("no operation " + opID)
}

// settleAll sequences every pending operation and publishes it, or with
// dead sends it to dead, as relay "relay-a" would.
func settleAll(t testing.TB, s core.Store, dead bool) {
	t.Helper()
	_, err := core.SequenceAll(context.Background(), s, 0)
	require.NoError(t, err)
	advanceAll(t, s, func(r core.Record) (core.Failure, bool) {
		return core.Failure{Seq: r.Seq, Err: "refused", Dead: true}, dead
	})
}
