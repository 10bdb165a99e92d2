package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// Sessions.
const (
	// cookieName carries a session. The __Host- prefix makes browsers
	// refuse it unless it is Secure, host-only and for path /.
	cookieName = "__Host-trustlog-session"
	// sessionTTL is how long a login lasts.
	sessionTTL = 8 * time.Hour
	// maxSessions bounds the sessions kept in memory; the oldest goes.
	maxSessions = 1000
	// maxRequeue bounds the op_ids of one requeue.
	maxRequeue = core.FindLimitMax
)

// sessions checks the admin token and keeps the logins made with it.
type sessions struct {
	tokenSum [sha256.Size]byte // compared in constant time, whatever the length
	mu       sync.Mutex
	m        map[string]*session
}

// session is one login.
type session struct {
	id, csrf string
	expires  time.Time
}

func newSessions(token string) *sessions {
	return &sessions{tokenSum: sha256.Sum256([]byte(token)), m: map[string]*session{}}
}

// valid says whether token is the admin token.
func (s *sessions) valid(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return token != "" && subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// random returns 32 random bytes in URL-safe base64.
func random() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// open starts a session.
func (s *sessions) open() *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for id, ss := range s.m {
		if now.After(ss.expires) {
			delete(s.m, id)
		}
	}
	if len(s.m) >= maxSessions {
		var oldest *session
		for _, ss := range s.m {
			if oldest == nil || ss.expires.Before(oldest.expires) {
				oldest = ss
			}
		}
		delete(s.m, oldest.id)
	}
	ss := &session{id: random(), csrf: random(), expires: now.Add(sessionTTL)}
	s.m[ss.id] = ss
	return ss
}

// session returns the request's live session, or nil. s may be nil (a
// read-only console).
func (s *sessions) session(r *http.Request) *session {
	if s == nil {
		return nil
	}
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[ck.Value]
	if ss == nil || time.Now().After(ss.expires) {
		return nil
	}
	return ss
}

// close ends a session.
func (s *sessions) close(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, ss.id)
}

// sameOrigin refuses a browser request sent from another site: its
// Origin header, when present, must be this server.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	return o == "http://"+r.Host || o == "https://"+r.Host
}

// localPath returns p if it is a path of the console, else the overview.
func localPath(p string) string {
	if strings.HasPrefix(p, Prefix) && !strings.HasPrefix(p, "//") && !strings.ContainsAny(p, "\\\r\n") {
		return p
	}
	return Prefix
}

// loginForm renders GET /console/login.
func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	if c.auth == nil {
		c.fail(w, r, http.StatusNotFound, "This console is read-only: start trustlog serve with --admin-token-file to enable writes.")
		return
	}
	c.render(w, r, http.StatusOK, "login", page{Title: "Log in", Data: localPath(r.URL.Query().Get("next"))})
}

// login handles POST /console/login: the admin token for a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.auth == nil {
		c.fail(w, r, http.StatusNotFound, "This console is read-only: start trustlog serve with --admin-token-file to enable writes.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !sameOrigin(r) || r.ParseForm() != nil {
		c.fail(w, r, http.StatusForbidden, "The login form must be sent from this console.")
		return
	}
	next := localPath(r.PostForm.Get("next"))
	if !c.auth.valid(r.PostForm.Get("token")) {
		c.log.Warn("console: login refused (wrong token)", "remote", r.RemoteAddr)
		c.render(w, r, http.StatusUnauthorized, "login", page{Title: "Log in", Flash: "Wrong token.", Data: next})
		return
	}
	ss := c.auth.open()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: ss.id, Path: "/", Expires: ss.expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	c.log.Info("console: admin logged in", "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout handles POST /console/logout.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ss := c.auth.session(r); ss != nil && c.checkCSRF(r, ss) {
		c.auth.close(ss)
		c.log.Info("console: admin logged out", "remote", r.RemoteAddr)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// checkCSRF says whether a session's form post is genuine: sent from
// this console, with the session's CSRF token.
func (c *Console) checkCSRF(r *http.Request, ss *session) bool {
	r.ParseForm()
	got := r.PostForm.Get("csrf")
	return sameOrigin(r) && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(ss.csrf)) == 1
}

// authorize says who may write, or answers why not and returns "".
func (c *Console) authorize(w http.ResponseWriter, r *http.Request) string {
	if c.auth == nil {
		c.fail(w, r, http.StatusForbidden, "This console is read-only: start trustlog serve with --admin-token-file to enable writes.")
		return ""
	}
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || !c.auth.valid(tok) {
			c.log.Warn("console: write refused (wrong bearer token)", "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="trustlog console"`)
			c.fail(w, r, http.StatusUnauthorized, "Wrong bearer token.")
			return ""
		}
		return "bearer"
	}
	ss := c.auth.session(r)
	if ss == nil {
		c.fail(w, r, http.StatusUnauthorized, "Log in with the admin token first.")
		return ""
	}
	if !c.checkCSRF(r, ss) {
		c.log.Warn("console: write refused (CSRF check)", "path", r.URL.Path, "remote", r.RemoteAddr)
		c.fail(w, r, http.StatusForbidden, "This form was not sent from this console's page (CSRF check failed): reload the page and try again.")
		return ""
	}
	return "session"
}

// requeue handles POST /console/requeue: op_id (repeated) names dead
// operations to make due again.
func (c *Console) requeue(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 256<<10)
	who := c.authorize(w, r)
	if who == "" {
		return
	}
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "The request's form cannot be read.")
		return
	}
	ids := r.PostForm["op_id"]
	if len(ids) == 0 || len(ids) > maxRequeue {
		c.fail(w, r, http.StatusBadRequest, fmt.Sprintf("op_id: name 1 to %d operations to requeue", maxRequeue))
		return
	}
	for _, id := range ids {
		if !validOpID(id) {
			c.fail(w, r, http.StatusBadRequest, "op_id: 1 to 64 printable ASCII characters")
			return
		}
	}
	ctx, cancel := c.storeCtx(r)
	defer cancel()
	n, err := c.store.Requeue(ctx, core.RequeueParams{OpIDs: ids})
	if err != nil {
		c.storeFailed(w, r, "requeueing", err)
		return
	}
	shown := ids
	if len(shown) > 20 {
		shown = shown[:20]
	}
	c.log.Info("console: requeued dead operations", "requeued", n, "asked", len(ids), "op_ids", shown,
		"by", who, "remote", r.RemoteAddr)
	if who == "bearer" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "requeued %d of %d\n", n, len(ids))
		return
	}
	back, err := url.Parse(localPath(r.PostForm.Get("back")))
	if err != nil {
		back = &url.URL{Path: Prefix}
	}
	q := back.Query()
	q.Set("requeued", strconv.Itoa(n))
	back.RawQuery = q.Encode()
	http.Redirect(w, r, back.RequestURI(), http.StatusSeeOther)
}
