package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-trustlog/trustlog/core"
)

// maxParam is the longest query parameter the console accepts (a DOID is
// at most 512 bytes, an actor 256).
const maxParam = 512

// listData is the content of a list of operations (the retry and dead
// lists, and search results).
type listData struct {
	Records  []core.Record
	Next     string // the next page's URL, "" if none
	Filters  filters
	Message  string // why there is no list (bad query, no search)
	CanFind  bool
	Selected string // for search: what was searched
}

// filters are a list's or a search's parameters, echoed in its forms.
type filters struct {
	State, DOID, Error, Older string
	By, Q, From, To           string
}

// badParam is a query parameter the console refuses.
type badParam struct{ name, why string }

func (e *badParam) Error() string { return e.name + ": " + e.why }

// param returns the query parameter name, trimmed and bounded.
func param(r *http.Request, name string) (string, error) {
	v := strings.TrimSpace(r.URL.Query().Get(name))
	if len(v) > maxParam {
		return "", &badParam{name, fmt.Sprintf("longer than %d bytes", maxParam)}
	}
	if !utf8.ValidString(v) {
		return "", &badParam{name, "not valid UTF-8"}
	}
	return v, nil
}

// params reads the named query parameters.
func params(r *http.Request, names ...string) (map[string]string, error) {
	m := map[string]string{}
	for _, n := range names {
		v, err := param(r, n)
		if err != nil {
			return nil, err
		}
		m[n] = v
	}
	return m, nil
}

// afterSeq reads the paging parameter "after".
func afterSeq(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, &badParam{"after", "not a seq (a non-negative integer)"}
	}
	return n, nil
}

// ops renders GET /console/ops: the retrying or dead operations.
func (c *Console) ops(w http.ResponseWriter, r *http.Request) {
	p, err := params(r, "state", "doid", "error", "older", "after")
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if p["state"] == "" {
		p["state"] = "dead"
	}
	f := filters{State: p["state"], DOID: p["doid"], Error: p["error"], Older: p["older"]}
	d := listData{Filters: f, CanFind: c.inspect != nil}
	q := core.FindQuery{DOID: f.DOID, ErrorContains: f.Error, Limit: pageSize + 1}
	switch f.State {
	case "dead":
		q.State = core.StateDead
	case "retrying":
		q.State = core.StateRetrying
	default:
		c.fail(w, r, http.StatusBadRequest, `state: "retrying" or "dead"`)
		return
	}
	if f.Older != "" {
		age, err := time.ParseDuration(f.Older)
		if err != nil || age < 0 {
			c.fail(w, r, http.StatusBadRequest, `older: a duration such as "90s", "15m" or "2h"`)
			return
		}
		q.ChangedBefore = time.Now().Add(-age)
	}
	if q.AfterSeq, err = afterSeq(p["after"]); err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := c.storeCtx(r)
	defer cancel()
	switch {
	case c.inspect != nil:
		d.Records, err = c.inspect.Find(ctx, q)
	case q.State == core.StateDead && q.DOID == "" && q.ErrorContains == "" && q.ChangedBefore.IsZero():
		d.Records, err = c.store.ListDead(ctx, core.ListParams{AfterSeq: q.AfterSeq, Limit: q.Limit})
	default:
		d.Message = "This store's driver cannot list retrying operations or filter (it does not implement core.Inspector)."
	}
	if err != nil {
		c.storeFailed(w, r, "listing operations", err)
		return
	}
	d.Next = nextPage(r, &d.Records)
	title := map[string]string{"dead": "Dead operations", "retrying": "Retrying operations"}[f.State]
	c.render(w, r, http.StatusOK, "ops", page{Title: title, Nav: f.State, Flash: requeuedFlash(r), Data: d})
}

// nextPage trims a page read with one row more than pageSize and returns
// the next page's URL, or "" if this was the last.
func nextPage(r *http.Request, recs *[]core.Record) string {
	if len(*recs) <= pageSize {
		return ""
	}
	*recs = (*recs)[:pageSize]
	q := r.URL.Query()
	q.Set("after", strconv.FormatInt((*recs)[pageSize-1].Seq, 10))
	q.Del("requeued")
	u := *r.URL
	u.RawQuery = q.Encode()
	return u.RequestURI()
}

// storeFailed answers a store error: 400 for a query the store refused,
// 504 for a timeout, 500 otherwise.
func (c *Console) storeFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, core.ErrInvalidQuery):
		c.fail(w, r, http.StatusBadRequest, err.Error())
	case errors.Is(err, r.Context().Err()) && r.Context().Err() != nil:
		return // the client went away
	case errors.Is(err, context.DeadlineExceeded):
		c.fail(w, r, http.StatusGatewayTimeout, what+" took longer than the console's request timeout")
	default:
		c.internal(w, r, what, err)
	}
}

// opData is the content of one operation's page.
type opData struct {
	R         core.Record
	Fields    [][2]string
	PublicLog bool
}

// validOpID says whether s can be an op_id: 1 to 64 printable ASCII
// characters, no space.
func validOpID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// op renders GET /console/op/{opid}.
func (c *Console) op(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("opid")
	if !validOpID(id) {
		c.fail(w, r, http.StatusBadRequest, "op_id: 1 to 64 printable ASCII characters")
		return
	}
	ctx, cancel := c.storeCtx(r)
	defer cancel()
	rec, err := c.store.Get(ctx, id)
	if errors.Is(err, core.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, "No operation has this op_id.")
		return
	}
	if err != nil {
		c.storeFailed(w, r, "reading the operation", err)
		return
	}
	o := rec.Op
	d := opData{R: rec, PublicLog: c.opts.PublicLog, Fields: [][2]string{
		{"op_id", o.OpID}, {"doid", o.DOID}, {"op_actor", o.Actor}, {"op_type", o.Type},
		{"op_source", string(o.Source)}, {"do_prefix", o.DOPrefix}, {"do_repository", o.DORepository},
		{"producer_id", o.ProducerID}, {"created_at", o.CreatedAt.UTC().Format(time.RFC3339Nano)},
		{"hash_alg", string(o.HashAlg)}, {"request_body_hash", o.RequestBodyHash},
		{"response_body_hash", o.ResponseBodyHash}, {"client_ip", o.ClientIP}, {"server_ip", o.ServerIP},
		{"op_hash", o.OpHash}, {"signer", o.Signer}, {"signed", strconv.FormatBool(len(o.Sign) > 0)},
	}}
	c.render(w, r, http.StatusOK, "op", page{Title: "Operation " + id, Flash: requeuedFlash(r), Data: d})
}

// search renders GET /console/search.
func (c *Console) search(w http.ResponseWriter, r *http.Request) {
	p, err := params(r, "by", "q", "from", "to", "after")
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	f := filters{By: p["by"], Q: p["q"], From: p["from"], To: p["to"]}
	if f.By == "" {
		f.By = "doid"
	}
	d := listData{Filters: f, CanFind: c.inspect != nil}
	pg := page{Title: "Search", Nav: "search", Data: &d}
	if f.Q == "" {
		c.render(w, r, http.StatusOK, "search", pg)
		return
	}
	q := core.FindQuery{Limit: pageSize + 1}
	switch f.By {
	case "op_id":
		if !validOpID(f.Q) {
			c.fail(w, r, http.StatusBadRequest, "op_id: 1 to 64 printable ASCII characters")
			return
		}
		http.Redirect(w, r, Prefix+"op/"+url.PathEscape(f.Q), http.StatusSeeOther)
		return
	case "doid":
		q.DOID = f.Q
		d.Selected = "the history of DOID " + f.Q
	case "actor":
		q.Actor = f.Q
		d.Selected = "operations of actor " + f.Q
		if q.From, err = formTime("from", f.From); err == nil {
			q.To, err = formTime("to", f.To)
		}
		if err != nil {
			c.fail(w, r, http.StatusBadRequest, err.Error())
			return
		}
	default:
		c.fail(w, r, http.StatusBadRequest, `by: "op_id", "doid" or "actor"`)
		return
	}
	if q.AfterSeq, err = afterSeq(p["after"]); err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if c.inspect == nil {
		d.Message = "This store's driver cannot search by DOID or actor (it does not implement core.Inspector); search by op_id."
		c.render(w, r, http.StatusOK, "search", pg)
		return
	}
	ctx, cancel := c.storeCtx(r)
	defer cancel()
	if d.Records, err = c.inspect.Find(ctx, q); err != nil {
		c.storeFailed(w, r, "searching", err)
		return
	}
	d.Next = nextPage(r, &d.Records)
	c.render(w, r, http.StatusOK, "search", pg)
}

// formTime parses a time from a form: an HTML datetime-local value
// (taken as UTC) or RFC 3339; empty is zero.
func formTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, &badParam{name, "a time such as 2026-12-05T14:30 (UTC) or RFC 3339"}
}

// requeuedFlash is the message after a requeue redirected here.
func requeuedFlash(r *http.Request) string {
	k, err := strconv.Atoi(r.URL.Query().Get("requeued"))
	if err != nil {
		return ""
	}
	return fmt.Sprintf("Requeued %d operation(s).", k)
}
