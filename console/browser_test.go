package console_test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/console"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/browsertest"
)

// TestConsoleInBrowser clicks through the console in headless Chromium:
// the overview (refreshing itself without a reload), logging in,
// requeueing a dead operation, a search by DOID (one holding a <script>
// tag, shown and not run) and an operation's page; and a console
// without a token offering no writes. It saves the screenshots
// docs/operating.md shows, and fails on any console error, exception,
// CSP violation or dialog.
func TestConsoleInBrowser(t *testing.T) {
	f := newFixture(t, console.Options{AdminToken: adminToken, RefreshEvery: 100 * time.Millisecond}, nil)
	chartHistory(t, f)
	ctx := browsertest.New(t)
	// text reads an element's text in one step of the page's script: the
	// page swaps its live parts every 100 ms, and a query that found a
	// node could otherwise read it after it was replaced.
	text := func(sel string) string {
		t.Helper()
		browsertest.Until(t, ctx, fmt.Sprintf(`document.querySelector(%q) !== null`, sel))
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
		require.NoError(t, err, sel)
		return strings.TrimSpace(s)
	}

	// The overview.
	browsertest.Do(t, ctx, chromedp.Navigate(f.srv.URL+"/console/"), chromedp.WaitVisible(chromedp.CSS("#count-dead")))
	assert.Equal(t, strconv.Itoa(len(f.dead)), text("#count-dead"))
	assert.Equal(t, strconv.Itoa(len(f.retrying)), text("#count-retrying"))
	assert.Contains(t, text("#relays"), "relay-a")
	browsertest.Until(t, ctx, `document.querySelectorAll("svg.chart polyline").length === 2`)
	browsertest.Screenshot(t, ctx, "console-overview")

	// It refreshes itself: new operations show up without a reload.
	pending := text("#count-pending")
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
	record(t, f.store, 5, "late")
	n, err := strconv.Atoi(pending)
	require.NoError(t, err)
	browsertest.Until(t, ctx, fmt.Sprintf(`document.getElementById("count-pending").textContent === "%d" && window.notReloaded`, n+5))

	// The dead list: logged out, no requeue; log in, requeue one.
	browsertest.Do(t, ctx, chromedp.Navigate(f.srv.URL+"/console/ops?state=dead"), chromedp.WaitVisible(chromedp.CSS("table.ops")))
	assert.Equal(t, 0, count(t, ctx, "#requeue-selected, input[name=op_id]"), "no requeue before logging in")
	browsertest.Do(t, ctx,
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "wrong-token"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#flash")))
	assert.Equal(t, "Wrong token.", text("#flash"))
	browsertest.Do(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#token"), adminToken),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#requeue-selected")))
	assert.Equal(t, len(f.dead), count(t, ctx, `input[name=op_id][form=requeue]`), "a box per dead operation")
	victim := f.dead[1]
	// Tick it in one step of the page's script (the list refreshes itself
	// until a box in it is ticked).
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector('input[value=%q]').click()`, victim)))
	browsertest.Until(t, ctx, fmt.Sprintf(`document.querySelector('input[value=%q]').checked`, victim))
	browsertest.Screenshot(t, ctx, "console-dead")
	browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#requeue-selected")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	assert.Equal(t, "Requeued 1 operation(s).", text("#flash"))
	assert.Equal(t, core.StateRetrying, f.stateOf(t, victim))
	assert.Equal(t, len(f.dead)-1, count(t, ctx, `input[name=op_id][form=requeue]`))
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("select-all").click()`))
	browsertest.Until(t, ctx, `[...document.querySelectorAll("input[name=op_id]")].every(b => b.checked)`)
	assert.Contains(t, f.logs.String(), "requeued dead operations")

	// Search an object's history, then the DOID holding a script.
	browsertest.Do(t, ctx, chromedp.Navigate(f.srv.URL+"/console/search"),
		chromedp.WaitVisible(chromedp.CSS("#q")),
		chromedp.SendKeys(chromedp.CSS("#q"), f.ops[2].DOID),
		chromedp.Click(chromedp.CSS("#search")),
		chromedp.WaitVisible(chromedp.CSS("#results")))
	assert.Equal(t, 8, count(t, ctx, "#results tbody tr"), "obj-2's history: operations 2, 7, …, 37")
	browsertest.Screenshot(t, ctx, "console-search")
	browsertest.Do(t, ctx, chromedp.Navigate(f.srv.URL+"/console/search"),
		chromedp.WaitVisible(chromedp.CSS("#q")),
		chromedp.SendKeys(chromedp.CSS("#q"), scriptDOID),
		chromedp.Click(chromedp.CSS("#search")),
		chromedp.WaitVisible(chromedp.CSS("#results")))
	assert.Equal(t, scriptDOID, text("#results td.doid"), "the DOID is shown as text")

	// An operation's page, from the results.
	browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#results tbody a[href^='/console/op/']")),
		chromedp.WaitVisible(chromedp.CSS("#op-state")))
	assert.Equal(t, "dead", text("#op-state"))
	browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.CSS("#requeue-one")))

	// Logging out ends the writes.
	browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login")))
	onlyWrongToken(t, ctx)

	// A console started without a token offers no writes at all.
	ro := newFixture(t, console.Options{}, nil)
	browsertest.Do(t, ctx, chromedp.Navigate(ro.srv.URL+"/console/ops?state=dead"), chromedp.WaitVisible(chromedp.CSS("table.ops")))
	assert.Equal(t, "read-only", text(".ro"))
	assert.Equal(t, 0, count(t, ctx, "#login, #requeue-selected, input[name=op_id]"))
	onlyWrongToken(t, ctx)
}

// onlyWrongToken fails t if the pages reported any problem but the one
// the wrong token's login caused: the browser logs its 401 as a console
// error.
func onlyWrongToken(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, p := range browsertest.Problems(t, ctx) {
		if p.Kind == browsertest.ConsoleError && strings.Contains(p.Text, "status of 401") && strings.HasSuffix(p.URL, "/console/login") {
			continue
		}
		t.Errorf("the page reported: %s", p)
	}
}

// count counts the elements sel matches.
func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	require.NoError(t, err)
	return n
}

// record records n pending operations on objects prefix-0 … prefix-4.
func record(t testing.TB, s core.Store, n int, prefix string) {
	t.Helper()
	c, err := core.NewClient(s, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	ops := make([]*core.Operation, n)
	for i := range ops {
		ops[i] = conformance.NewOp(fmt.Sprintf("%s-%d", prefix, i%5), 5000+i)
	}
	require.NoError(t, c.Record(context.Background(), ops...))
}

// chartHistory gives the overview's chart an hour of samples, a minute
// apart on a made-up clock: operations arrive in waves, and each sample
// finds the previous minute's published.
func chartHistory(t testing.TB, f *fixture) {
	t.Helper()
	now := time.Now().Add(-time.Hour)
	f.con.SetClock(func() time.Time { return now })
	for i := range 60 {
		now = now.Add(time.Minute)
		settleAll(t, f.store, false)
		record(t, f.store, 40+int(30*math.Sin(float64(i)/6))+i%3*5, "wave")
		f.con.Sample(context.Background())
	}
}
