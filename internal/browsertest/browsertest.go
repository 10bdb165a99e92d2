// Package browsertest runs tests of trustlog's web pages in a real,
// headless Chromium, driven through the DevTools protocol by
// github.com/chromedp/chromedp.
//
// # Why
//
// The pages trustlog serves do their work in the browser: the public
// operation page verifies a proof with WebCrypto, under a
// Content-Security-Policy that forbids inline script and style. A Go
// test of the HTML a handler writes sees none of that: not whether the
// script runs, not whether the policy blocks something the page needs,
// not whether user-supplied text ends up as markup. Only a browser does,
// so these tests load the page in one and check what a person would see
// (a DOM condition), and fail on what a person would not notice: an
// error in the console, an uncaught exception, a Content-Security-Policy
// violation or a JavaScript dialog (an alert that injected text opened).
//
// # Use
//
//	ctx := browsertest.New(t) // skips when there is no browser
//	browsertest.Do(t, ctx,
//		chromedp.Navigate(srv.URL+"/op/"+id),
//		chromedp.WaitVisible(chromedp.CSS(`#result[data-state="verified"]`)),
//	)
//	browsertest.Screenshot(t, ctx, "public-op-verified")
//	browsertest.NoProblems(t, ctx) // console errors, exceptions, CSP violations, dialogs
//
// New starts one browser per call (about a second); the
// returned context is its one tab, for the one goroutine of the test.
// Waits are conditions, never sleeps: chromedp's Wait* queries, or Until
// for a JavaScript predicate; both end, at the latest, shortly before
// the test binary's deadline (testenv.Patience).
//
// # Environment
//
//	TRUSTLOG_CHROMIUM           the browser to run (a path or a name on PATH); otherwise the
//	                            first of chromium, chromium-browser, google-chrome on PATH
//	TRUSTLOG_REQUIRE_SERVICES=1 no browser fails the test instead of skipping it (CI)
//	TRUSTLOG_SCREENSHOTS        an absolute directory Screenshot writes its PNGs to, e.g.
//	                            TRUSTLOG_SCREENSHOTS=$PWD/docs/img go test ./... refreshes
//	                            the documentation's images; otherwise they go to t.TempDir()
//
// Debian's package is `chromium` (apt-get install chromium). As root, as
// in CI, the browser runs without its sandbox, which needs user
// namespaces a root process in a container often does not get.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/go-trustlog/trustlog/internal/testenv"
)

// Window size of the browser, in CSS pixels: fixed, so that screenshots
// of the same page are the same size on every machine.
const (
	Width  = 1280
	Height = 900
)

// candidates are the browser names looked up on PATH, in this order,
// when TRUSTLOG_CHROMIUM is not set.
var candidates = []string{"chromium", "chromium-browser", "google-chrome"}

// howToGet ends the message of a test that finds no browser.
const howToGet = "install one (`apt-get install chromium`) or set TRUSTLOG_CHROMIUM to a Chromium or Chrome binary"

// findBrowser returns the path of the browser to run, or a one-line
// reason why there is none. An explicit TRUSTLOG_CHROMIUM that does not
// resolve is an error of its own (fatal: someone asked for that one).
func findBrowser() (path, missing string, err error) {
	if name := os.Getenv("TRUSTLOG_CHROMIUM"); name != "" {
		p, err := exec.LookPath(name)
		if err != nil {
			return "", "", fmt.Errorf("TRUSTLOG_CHROMIUM=%s: %v", name, err)
		}
		return p, "", nil
	}
	for _, name := range candidates {
		if p, err := exec.LookPath(name); err == nil {
			return p, "", nil
		}
	}
	return "", "no Chromium for browser tests (none of " + strings.Join(candidates, ", ") + " on PATH): " + howToGet, nil
}

// Kind says what a Problem is.
type Kind string

// The kinds of problems a page can report.
const (
	ConsoleError Kind = "console error" // console.error, or an error of the browser's log (a failed load)
	Exception    Kind = "exception"     // an uncaught exception or unhandled promise rejection
	CSPViolation Kind = "CSP violation" // something the Content-Security-Policy blocked
	Dialog       Kind = "dialog"        // alert, confirm, prompt or beforeunload (dismissed at once)
)

// Problem is something a page reported that a test of it must not
// ignore.
type Problem struct {
	Kind Kind
	// Text is the message as the DevTools console shows it (for an
	// exception, its description without the stack; for a dialog, its
	// message).
	Text string
	// URL and Line say where it came from, when the browser says.
	URL  string
	Line int64
}

// String returns the problem on one line.
func (p Problem) String() string {
	s := string(p.Kind) + ": " + p.Text
	if p.URL != "" {
		s += fmt.Sprintf(" (%s:%d)", p.URL, p.Line+1)
	}
	return s
}

// recorder collects the problems of one tab. Its listen method runs on
// the tab's event loop: it must return at once and run no command.
type recorder struct {
	mu       sync.Mutex
	problems []Problem
	dialogs  chan struct{} // a dialog opened: dismiss it
}

func (r *recorder) add(p Problem) {
	r.mu.Lock()
	r.problems = append(r.problems, p)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []Problem {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Problem(nil), r.problems...)
}

func (r *recorder) listen(ev any) {
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			p := Problem{Kind: ConsoleError, Text: consoleText(e.Args)}
			if st := e.StackTrace; st != nil && len(st.CallFrames) > 0 {
				p.URL, p.Line = st.CallFrames[0].URL, st.CallFrames[0].LineNumber
			}
			r.add(p)
		}
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			desc, _, _ := strings.Cut(d.Exception.Description, "\n    at ")
			text += " " + desc
		}
		r.add(Problem{Kind: Exception, Text: text, URL: d.URL, Line: d.LineNumber})
	case *cdplog.EventEntryAdded:
		en := e.Entry
		switch {
		case en.Source == cdplog.EntrySourceSecurity && strings.Contains(en.Text, "Content Security Policy"):
			r.add(Problem{Kind: CSPViolation, Text: en.Text, URL: en.URL, Line: en.LineNumber})
		case en.Level == cdplog.EntryLevelError:
			r.add(Problem{Kind: ConsoleError, Text: en.Text, URL: en.URL, Line: en.LineNumber})
		}
	case *page.EventJavascriptDialogOpening:
		r.add(Problem{Kind: Dialog, Text: string(e.Type) + ": " + e.Message, URL: e.URL})
		select {
		case r.dialogs <- struct{}{}:
		default: // one is pending already
		}
	}
}

// consoleText renders a console call's arguments: strings as they are,
// other values by their description.
func consoleText(args []*runtime.RemoteObject) string {
	var parts []string
	for _, a := range args {
		var str string
		switch {
		case a.Type == runtime.RemoteObjectTypeString && json.Unmarshal(a.Value, &str) == nil:
			parts = append(parts, str)
		case a.Description != "":
			parts = append(parts, a.Description)
		case len(a.Value) > 0:
			parts = append(parts, string(a.Value))
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

// syncBuffer keeps the browser's output (for a failure report).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 1<<20 {
		s.b.Write(p)
	}
	return len(p), nil
}

// tail returns the last n bytes of the output, without the lines about
// D-Bus, which a browser in a container without one writes by the dozen.
func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keep []string
	for line := range strings.Lines(s.b.String()) {
		if !strings.Contains(line, "dbus") && !strings.Contains(line, "D-Bus") {
			keep = append(keep, line)
		}
	}
	out := strings.Join(keep, "")
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.TrimSpace(out)
}

// recorderKey is the context key of a tab's recorder.
type recorderKey struct{}

// New starts a headless Chromium for t and returns the context of its
// one tab, to run chromedp actions with (chromedp.Do, chromedp.Run, or
// this package's Do). Everything the page reports that a test must not ignore is
// recorded from the start (see Problems). The browser stops, and its
// profile directory goes, when t ends; it stops at the latest shortly
// before the test binary's deadline, so a wait that never ends fails the
// test with its own message.
//
// With no browser (see the package documentation) New skips t with one
// line saying how to get one, or fails it when TRUSTLOG_REQUIRE_SERVICES=1.
// The browser runs headless, with --disable-gpu, a window of Width ×
// Height and, as root, --no-sandbox.
func New(t testing.TB) context.Context {
	t.Helper()
	path, missing, err := findBrowser()
	switch {
	case err != nil:
		t.Fatal("browsertest: " + err.Error())
	case missing != "" && testenv.Required():
		t.Fatal(missing + "; TRUSTLOG_REQUIRE_SERVICES=1 makes this a failure")
	case missing != "":
		t.Skip(missing)
	}

	out := &syncBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(Width, Height),
		chromedp.Flag("lang", "en-US"),
		chromedp.CombinedOutput(out),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	base := testenv.Context(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	rec := &recorder{dialogs: make(chan struct{}, 1)}
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(rec.listen))
	ctx = context.WithValue(ctx, recorderKey{}, rec)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		wg.Wait()
		if t.Failed() {
			if s := out.tail(4 << 10); s != "" {
				t.Logf("browsertest: the browser's last output (D-Bus complaints left out):\n%s", s)
			}
		}
	})

	// Start the browser and open the tab now, so a browser that cannot
	// start fails here, with its output, not in the test's first step.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(Width, Height)); err != nil {
		t.Fatalf("browsertest: starting %s: %v\n%s", path, err, out.tail(4<<10))
	}

	// A JavaScript dialog blocks the page until answered: dismiss each
	// one (it is recorded as a problem). The listener may not run
	// commands, so a goroutine does.
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-rec.dialogs:
				_, err := chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
				if err != nil && ctx.Err() == nil {
					rec.add(Problem{Kind: Dialog, Text: "dismissing the dialog failed: " + err.Error()})
				}
			}
		}
	})
	return ctx
}

// recorderOf returns the recorder of a context New returned.
func recorderOf(t testing.TB, ctx context.Context) *recorder {
	t.Helper()
	rec, ok := ctx.Value(recorderKey{}).(*recorder)
	if !ok {
		t.Fatal("browsertest: the context does not come from browsertest.New")
	}
	return rec
}

// Problems returns what the tab of ctx (from New) has reported so far:
// console errors, uncaught exceptions, Content-Security-Policy
// violations and dialogs, in the order they came. Warnings and
// other console output are not problems.
func Problems(t testing.TB, ctx context.Context) []Problem {
	t.Helper()
	return recorderOf(t, ctx).snapshot()
}

// NoProblems fails t, listing them, if the tab of ctx (from New) has
// reported any problem (see Problems) so far. Call it after the page
// reached the state the test waits for: a problem reported later is not
// seen.
func NoProblems(t testing.TB, ctx context.Context) {
	t.Helper()
	ps := Problems(t, ctx)
	if len(ps) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the page reported %d problem(s):", len(ps))
	for _, p := range ps {
		b.WriteString("\n\t" + p.String())
	}
	t.Error(b.String())
}

// Do runs chromedp actions on the tab of ctx (from New) in order, and
// fails t at the first error, with the page's URL and the problems it
// reported so far: a wait that ends with the test's patience is easier
// to understand with the exception that stopped the page.
func Do(t testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(failure(t, ctx, err))
	}
}

// failure describes a failed step.
func failure(t testing.TB, ctx context.Context, err error) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "browsertest: %v", err)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		b.WriteString(" (the test's patience ran out: the condition waited for never held)")
	}
	// A short context of its own: ctx may be the one that ended.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if url, err := chromedp.Run(sctx, chromedp.Location()); err == nil {
		fmt.Fprintf(&b, "\n\tpage: %s", url)
	}
	for _, p := range recorderOf(t, ctx).snapshot() {
		b.WriteString("\n\t" + p.String())
	}
	return b.String()
}

// Until waits until the JavaScript expression, evaluated in the page
// of ctx's tab (from New) on each animation frame, is truthy. It fails t,
// with the page's problems, if it is not before the test's patience runs
// out (or the page navigates away while it waits).
func Until(t testing.TB, ctx context.Context, expression string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+expression+")", chromedp.WithPollingTimeout(testenv.Patience(t))))
	if err != nil {
		t.Fatal(failure(t, ctx, fmt.Errorf("waiting until %s: %w", expression, err)))
	}
}

// nameRE is what a screenshot may be named: a file name without its
// extension that needs no quoting anywhere.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// pngMagic starts every PNG file.
const pngMagic = "\x89PNG\r\n\x1a\n"

// Screenshot takes a PNG of the whole page of ctx's tab (from New), not
// only of the window, and writes it as name.png to the directory in
// TRUSTLOG_SCREENSHOTS (absolute; created if need be), or to a t.TempDir()
// otherwise, and returns its path. name is lower-case letters, digits,
// '.', '_' and '-'. A screenshot is taken either way, so a test run
// without TRUSTLOG_SCREENSHOTS checks that it can be.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	if !nameRE.MatchString(name) {
		t.Fatalf("browsertest: screenshot name %q: want lower-case letters, digits, '.', '_' and '-'", name)
	}
	png, err := chromedp.Run(ctx, fullPage)
	if err != nil {
		t.Fatal(failure(t, ctx, fmt.Errorf("screenshot %s: %w", name, err)))
	}
	if !bytes.HasPrefix(png, []byte(pngMagic)) {
		t.Fatalf("browsertest: screenshot %s: the browser did not return a PNG", name)
	}
	dir := os.Getenv("TRUSTLOG_SCREENSHOTS")
	switch {
	case dir == "":
		dir = t.TempDir()
	case !filepath.IsAbs(dir):
		// go test runs each package in its own directory.
		t.Fatalf("browsertest: TRUSTLOG_SCREENSHOTS=%s: want an absolute directory (e.g. $PWD/docs/img)", dir)
	default:
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("browsertest: TRUSTLOG_SCREENSHOTS: %v", err)
		}
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("browsertest: screenshot %s: %v", name, err)
	}
	if os.Getenv("TRUSTLOG_SCREENSHOTS") != "" {
		t.Logf("browsertest: wrote %s", path)
	}
	return path
}

// fullPage captures the whole page as a PNG: the layout's content size
// at scale 1, beyond the window when the page is taller.
func fullPage(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
	m, err := cdp.Call(ctx, tg, page.GetLayoutMetrics, cdp.Empty{})
	if err != nil {
		return nil, err
	}
	w, h := float64(Width), float64(Height)
	if r := m.CSSContentSize; r != nil {
		w, h = max(w, r.Width), max(h, r.Height)
	}
	res, err := cdp.Call(ctx, tg, page.CaptureScreenshot, page.CaptureScreenshotParams{
		Format:                page.CaptureScreenshotFormatPng,
		CaptureBeyondViewport: new(true),
		FromSurface:           new(true),
		Clip:                  &page.Viewport{X: 0, Y: 0, Width: w, Height: h, Scale: 1},
	})
	return res.Data, err
}
