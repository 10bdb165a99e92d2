package browsertest_test

import (
	"bytes"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/internal/browsertest"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// csp is the policy of the test pages: no inline script or style.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'"

// pages is a tiny site. "/" is a well-behaved page, taller than the
// window, whose script fills #out; "/bad" does everything a page must
// not: an inline script and style (blocked by the policy), an alert, a
// console.error and an uncaught exception, and then says it is done.
func pages() http.Handler {
	files := map[string]struct{ typ, body string }{
		"/": {"text/html; charset=utf-8", `<!doctype html><html lang="en"><head><title>good</title>
<link rel="stylesheet" href="/site.css"><script src="/good.js" defer></script></head>
<body><h1>browsertest</h1><p id="out" data-state="loading">loading</p><div class="tall">bottom</div></body></html>`},
		"/site.css": {"text/css; charset=utf-8", `body { font-family: sans-serif; margin: 2rem }
.tall { height: 2000px; border: 1px solid #888 }`},
		"/good.js": {"text/javascript; charset=utf-8", `"use strict";
const out = document.getElementById("out");
crypto.subtle.digest("SHA-256", new TextEncoder().encode("abc")).then((h) => {
  out.textContent = Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
  out.dataset.state = "ready";
});`},
		"/bad": {"text/html; charset=utf-8", `<!doctype html><html lang="en"><head><title>bad</title></head>
<body><p id="out" style="color: red">loading</p><script>document.title = "inline ran";</script>
<script src="/bad.js"></script></body></html>`},
		"/bad.js": {"text/javascript; charset=utf-8", `"use strict";
alert("hello from bad.js");
console.error("deliberate console error", 42);
setTimeout(() => { document.getElementById("out").dataset.state = "done"; throw new Error("deliberate exception"); });`},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Content-Type", f.typ)
		fmt.Fprint(w, f.body)
	})
}

// TestPage: a page loads, its script runs (WebCrypto included), a DOM
// condition is waited for and holds, nothing is reported, and a
// full-page screenshot is a PNG of the whole page, written where
// TRUSTLOG_SCREENSHOTS says.
func TestPage(t *testing.T) {
	shots := t.TempDir()
	t.Setenv("TRUSTLOG_SCREENSHOTS", shots)
	srv := httptest.NewServer(pages())
	t.Cleanup(srv.Close)

	ctx := browsertest.New(t)
	browsertest.Do(t, ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#out[data-state="ready"]`)),
	)
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#out")))
	require.NoError(t, err)
	assert.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", text, "SHA-256(abc) by crypto.subtle")
	browsertest.Until(t, ctx, `document.title === "good"`)

	path := browsertest.Screenshot(t, ctx, "browsertest-page")
	assert.Equal(t, filepath.Join(shots, "browsertest-page.png"), path)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")), "a PNG file")
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Equal(t, browsertest.Width, img.Bounds().Dx(), "as wide as the window")
	assert.Greater(t, img.Bounds().Dy(), 2000, "the whole page, beyond the window's %d pixels", browsertest.Height)

	assert.Empty(t, browsertest.Problems(t, ctx))
	browsertest.NoProblems(t, ctx)
}

// TestScreenshotTempDir: without TRUSTLOG_SCREENSHOTS the screenshot is
// still taken, into a temporary directory.
func TestScreenshotTempDir(t *testing.T) {
	t.Setenv("TRUSTLOG_SCREENSHOTS", "")
	srv := httptest.NewServer(pages())
	t.Cleanup(srv.Close)
	ctx := browsertest.New(t)
	browsertest.Do(t, ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#out[data-state="ready"]`)))
	path := browsertest.Screenshot(t, ctx, "temp")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	_, err = png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Equal(t, "temp.png", filepath.Base(path))
}

// fakeT records what NoProblems reports instead of failing the test.
type fakeT struct {
	testing.TB
	errors []string
}

func (f *fakeT) Error(args ...any) { f.errors = append(f.errors, fmt.Sprint(args...)) }

// TestProblems: a CSP violation (inline script, inline style), a dialog,
// a console error and an uncaught exception are each recorded, the
// dialog does not block the page, and NoProblems reports them all.
func TestProblems(t *testing.T) {
	srv := httptest.NewServer(pages())
	t.Cleanup(srv.Close)
	ctx := browsertest.New(t)
	browsertest.Do(t, ctx,
		chromedp.Navigate(srv.URL+"/bad"),
		chromedp.WaitVisible(chromedp.CSS(`#out[data-state="done"]`)), // after the alert was dismissed
	)
	title, err := chromedp.Run(ctx, chromedp.Title())
	require.NoError(t, err)
	assert.Equal(t, "bad", title, "the inline script did not run")

	want := []browsertest.Kind{browsertest.CSPViolation, browsertest.Dialog, browsertest.ConsoleError, browsertest.Exception}
	has := func() map[browsertest.Kind][]string {
		got := map[browsertest.Kind][]string{}
		for _, p := range browsertest.Problems(t, ctx) {
			got[p.Kind] = append(got[p.Kind], p.Text)
		}
		return got
	}
	// The exception is thrown right after the attribute is set: its event
	// may still be on its way.
	require.Eventually(t, func() bool { return len(has()) == len(want) }, testenv.Patience(t), 10*time.Millisecond,
		"problems recorded: %v", browsertest.Problems(t, ctx))
	got := has()
	assert.Len(t, got[browsertest.CSPViolation], 2, "the inline script and the inline style")
	assert.Contains(t, strings.Join(got[browsertest.CSPViolation], "\n"), "script-src 'self'")
	assert.Contains(t, strings.Join(got[browsertest.CSPViolation], "\n"), "style-src 'self'")
	assert.Equal(t, []string{"alert: hello from bad.js"}, got[browsertest.Dialog])
	assert.Equal(t, []string{"deliberate console error 42"}, got[browsertest.ConsoleError])
	require.Len(t, got[browsertest.Exception], 1)
	assert.Contains(t, got[browsertest.Exception][0], "deliberate exception")

	f := &fakeT{TB: t}
	browsertest.NoProblems(f, ctx)
	require.Len(t, f.errors, 1, "one failure listing every problem")
	for _, k := range want {
		assert.Contains(t, f.errors[0], string(k)+": ")
	}
	assert.Contains(t, f.errors[0], srv.URL+"/bad.js:", "where it came from")
}

// stopT records how New stopped the test (Skip or Fatal) and ends its
// goroutine as the real ones do.
type stopT struct {
	testing.TB
	how, msg string
}

func (s *stopT) Skip(args ...any)  { s.stop("skip", args...) }
func (s *stopT) Fatal(args ...any) { s.stop("fatal", args...) }
func (s *stopT) stop(how string, args ...any) {
	s.how, s.msg = how, fmt.Sprint(args...)
	runtime.Goexit()
}

// newStops runs New on a stopT and returns how it stopped.
func newStops(t *testing.T) *stopT {
	s := &stopT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		browsertest.New(s)
	}()
	<-done
	return s
}

// TestNoBrowser: without a browser New skips with one line saying how to
// get one, or fails when TRUSTLOG_REQUIRE_SERVICES=1; a TRUSTLOG_CHROMIUM
// that names nothing fails.
func TestNoBrowser(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("TRUSTLOG_CHROMIUM", "")
	t.Setenv("TRUSTLOG_REQUIRE_SERVICES", "")
	s := newStops(t)
	assert.Equal(t, "skip", s.how)
	assert.NotContains(t, s.msg, "\n", "one line")
	assert.Contains(t, s.msg, "apt-get install chromium")
	assert.Contains(t, s.msg, "TRUSTLOG_CHROMIUM")

	t.Setenv("TRUSTLOG_REQUIRE_SERVICES", "1")
	s = newStops(t)
	assert.Equal(t, "fatal", s.how)
	assert.Contains(t, s.msg, "apt-get install chromium")
	assert.Contains(t, s.msg, "TRUSTLOG_REQUIRE_SERVICES=1")

	t.Setenv("TRUSTLOG_REQUIRE_SERVICES", "")
	t.Setenv("TRUSTLOG_CHROMIUM", filepath.Join(t.TempDir(), "no-such-browser"))
	s = newStops(t)
	assert.Equal(t, "fatal", s.how)
	assert.Contains(t, s.msg, "TRUSTLOG_CHROMIUM=")
}
