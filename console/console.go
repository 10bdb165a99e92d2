package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// Prefix is the path the console's pages live under.
const Prefix = "/console/"

// Defaults of Options.
const (
	// DefaultSampleEvery is how often the overview's chart is sampled.
	DefaultSampleEvery = 10 * time.Second
	// DefaultWindow is how far back the chart reaches.
	DefaultWindow = time.Hour
	// DefaultRefreshEvery is how often an open page refreshes.
	DefaultRefreshEvery = 5 * time.Second
	// DefaultRequestTimeout bounds the store calls of one request.
	DefaultRequestTimeout = 10 * time.Second
	// pageSize is the rows of one list page.
	pageSize = 100
)

// Options configure New.
type Options struct {
	// AdminToken, if set, enables writes (requeue) for whoever presents
	// it (see the package documentation). Empty: the console is
	// read-only. It is compared in constant time and never shown or
	// logged.
	AdminToken string
	// Logger receives every write (who, from where, what) and the
	// failures behind 500 responses; default slog.Default().
	Logger *slog.Logger
	// SampleEvery is how often Run samples the store for the chart
	// (default DefaultSampleEvery); Window how far back the chart reaches
	// (default DefaultWindow).
	SampleEvery, Window time.Duration
	// RequestTimeout bounds the store calls of one request (default
	// DefaultRequestTimeout).
	RequestTimeout time.Duration
	// RefreshEvery is how often an open page refreshes its live parts
	// (default DefaultRefreshEvery).
	RefreshEvery time.Duration
	// PublicLog says the same server serves the public log (package
	// serve): an operation's page then links to its in-browser proof
	// check at /op/<op_id>.
	PublicLog bool
}

// Console serves the operator console of one store. It is an
// http.Handler for the paths under Prefix; Run samples the store for
// the overview's chart.
type Console struct {
	store   core.Store
	inspect core.Inspector // nil if the store cannot be searched
	opts    Options
	log     *slog.Logger
	pages   map[string]*template.Template
	mux     *http.ServeMux
	history *history
	auth    *sessions
	now     func() time.Time // the chart's clock
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// New returns the console of store.
func New(store core.Store, opts Options) (*Console, error) {
	if store == nil {
		return nil, errors.New("console: nil store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = DefaultSampleEvery
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.RefreshEvery <= 0 {
		opts.RefreshEvery = DefaultRefreshEvery
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	c := &Console{store: store, opts: opts, log: opts.Logger,
		history: newHistory(int(opts.Window/opts.SampleEvery) + 1), now: time.Now}
	c.inspect, _ = store.(core.Inspector)
	if opts.AdminToken != "" {
		c.auth = newSessions(opts.AdminToken)
	}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

// parseTemplates parses each page with the shared layout.
func (c *Console) parseTemplates() error {
	c.pages = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("console: template %s: %w", n, err)
		}
		c.pages[base] = t
	}
	return nil
}

// routes registers the console's handlers.
func (c *Console) routes() {
	m := http.NewServeMux()
	assets, _ := fs.Sub(assetFS, "assets")
	files := http.StripPrefix(Prefix+"assets/", http.FileServerFS(assets))
	m.Handle("GET "+Prefix+"assets/", cacheFor(files, "public, max-age=300"))
	m.HandleFunc("GET "+Prefix+"{$}", c.overview)
	m.HandleFunc("GET "+Prefix+"ops", c.ops)
	m.HandleFunc("GET "+Prefix+"op/{opid}", c.op)
	m.HandleFunc("GET "+Prefix+"search", c.search)
	m.HandleFunc("GET "+Prefix+"login", c.loginForm)
	m.HandleFunc("POST "+Prefix+"login", c.login)
	m.HandleFunc("POST "+Prefix+"logout", c.logout)
	m.HandleFunc("POST "+Prefix+"requeue", c.requeue)
	c.mux = m
}

// ServeHTTP implements http.Handler with the console's response policy.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// cacheFor sets Cache-Control on h's responses.
func cacheFor(h http.Handler, v string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", v)
		h.ServeHTTP(w, r)
	})
}

// Run samples the store every SampleEvery for the overview's chart until
// ctx ends. Without it the chart stays empty; the rest of the console
// works.
func (c *Console) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.SampleEvery)
	defer t.Stop()
	for {
		c.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample adds one point to the chart's history.
func (c *Console) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	st, err := c.store.Stats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("console: sampling the store failed", "err", err)
		}
		return
	}
	c.history.add(point{at: c.now(), published: st.Counts[core.StatePublished],
		backlog: st.Counts[core.StatePending] + st.Counts[core.StateRetrying]})
}

// page is the data every template gets.
type page struct {
	Title  string
	Nav    string // the nav entry to mark current
	Admin  bool   // writes are enabled on this server
	Signed bool   // this request carries a session
	CSRF   string // the session's CSRF token, for forms
	Flash  string
	Self   string // this page's URL, where a form returns to
	// Refresh is how often the page refreshes its live parts, in ms.
	Refresh int64
	Data    any
}

// render writes a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t := c.pages[name]
	p.Admin = c.auth != nil
	self := *r.URL
	q := self.Query()
	q.Del("requeued")
	self.RawQuery = q.Encode()
	p.Self = self.RequestURI()
	p.Refresh = c.opts.RefreshEvery.Milliseconds()
	if s := c.auth.session(r); s != nil {
		p.Signed, p.CSRF = true, s.csrf
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout.html", p); err != nil {
		c.internal(w, r, "rendering "+name, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

// fail renders an error page with a message that never quotes secrets.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", page{Title: http.StatusText(status), Data: msg})
}

// internal answers 500 and logs the cause.
func (c *Console) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	c.log.Error("console: "+what, "path", r.URL.Path, "err", err)
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "internal error: "+what, http.StatusInternalServerError)
}

// storeCtx bounds one request's store calls.
func (c *Console) storeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), c.opts.RequestTimeout)
}

// history keeps the chart's samples in a ring.
type history struct {
	mu  sync.Mutex
	pts []point
	max int
}

// point is one sample.
type point struct {
	at        time.Time
	published int64
	backlog   int64
}

func newHistory(max int) *history { return &history{max: max} }

func (h *history) add(p point) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.pts) == h.max {
		copy(h.pts, h.pts[1:])
		h.pts = h.pts[:h.max-1]
	}
	h.pts = append(h.pts, p)
}

func (h *history) points() []point {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]point(nil), h.pts...)
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	// when prints a time in UTC to the second, or "—" for zero.
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	// pos prints a position or cursor, "—" before the first (-1).
	"pos": func(n int64) string {
		if n < 0 {
			return "—"
		}
		return strconv.FormatInt(n, 10)
	},
	// opURL is an operation's console page.
	"opURL": func(id string) string { return Prefix + "op/" + url.PathEscape(id) },
	// records is the argument of the "records" table template.
	"records": func(rs []core.Record, selectable bool) any {
		return struct {
			Records []core.Record
			Select  bool
		}{rs, selectable}
	},
}
