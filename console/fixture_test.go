package console_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/console"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// scriptDOID is a DOID an attacker hopes a browser runs.
const scriptDOID = "10.1000/<script>alert(1)</script>"

// adminToken is the fixture's admin token.
const adminToken = "console-test-token-0123456789abcdef"

// base is the created_at of the fixture's first operation, three hours
// ago; operation i was created i minutes later.
var base = time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Hour)

// fixture is a SQLite store holding operations in every state, served
// by a console.
type fixture struct {
	store     core.Store
	con       *console.Console
	srv       *httptest.Server
	logs      *testenv.Buffer
	ops       []*core.Operation // in record order; ops[i] was created at base+i min
	state     map[string]core.State
	dead      []string // op_ids, in seq order
	retrying  []string
	published []string
	pending   []string
}

// newFixture fills a store: operations 0…40 sequenced and handed over
// by relay "relay-a" (i%5 == 0 dead, i%5 == 1 retrying, the rest
// published; operation 40 is on scriptDOID), then 3 pending ones. wrap,
// if set, wraps the store the console sees.
func newFixture(t testing.TB, opts console.Options, wrap func(core.Store) core.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	st := sqlitetest.Open(t, sqlitetest.URL(t))
	f := &fixture{store: st, logs: &testenv.Buffer{}, state: map[string]core.State{}}
	c, err := core.NewClient(st, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	index := map[string]int{}
	for i := 0; i <= 40; i++ {
		op := conformance.NewOp(fmt.Sprintf("obj-%d", i%5), i)
		if i == 40 {
			op.DOID = scriptDOID
		}
		op.CreatedAt = base.Add(time.Duration(i) * time.Minute)
		require.NoError(t, c.Record(ctx, op))
		f.ops = append(f.ops, op)
		index[op.OpID] = i
	}
	_, err = core.SequenceAll(ctx, st, 0)
	require.NoError(t, err)
	advanceAll(t, st, func(r core.Record) (core.Failure, bool) {
		switch index[r.Op.OpID] % 5 {
		case 0:
			return core.Failure{Seq: r.Seq, Err: "broker said: topic <b>gone</b> 100%_sure", Dead: true}, true
		case 1:
			return core.Failure{Seq: r.Seq, Err: "timeout talking to the broker", Delay: time.Hour}, true
		}
		return core.Failure{}, false
	})
	for i := 41; i < 44; i++ {
		op := conformance.NewOp("obj-pending", i)
		op.CreatedAt = base.Add(time.Duration(i) * time.Minute)
		require.NoError(t, c.Record(ctx, op))
		f.ops = append(f.ops, op)
	}
	_, err = st.Heartbeat(ctx, "relay-a", time.Hour)
	require.NoError(t, err)
	for i, op := range f.ops {
		s := core.StatePublished
		switch {
		case i > 40:
			s = core.StatePending
			f.pending = append(f.pending, op.OpID)
		case i%5 == 0:
			s = core.StateDead
			f.dead = append(f.dead, op.OpID)
		case i%5 == 1:
			s = core.StateRetrying
			f.retrying = append(f.retrying, op.OpID)
		default:
			f.published = append(f.published, op.OpID)
		}
		f.state[op.OpID] = s
	}
	opts.Logger = slog.New(slog.NewTextHandler(f.logs, nil))
	seen := core.Store(st)
	if wrap != nil {
		seen = wrap(st)
	}
	f.con, err = console.New(seen, opts)
	require.NoError(t, err)
	f.srv = httptest.NewServer(f.con)
	t.Cleanup(f.srv.Close)
	return f
}

// get fetches path and returns the response and its body.
func (f *fixture) get(t testing.TB, path string) (*http.Response, string) {
	t.Helper()
	return f.do(t, mustRequest(t, http.MethodGet, f.srv.URL+path, nil))
}

// do sends req without following redirects.
func (f *fixture) do(t testing.TB, req *http.Request) (*http.Response, string) {
	t.Helper()
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := cl.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(res.Body)
	require.NoError(t, err)
	return res, b.String()
}

func mustRequest(t testing.TB, method, url string, body *bytes.Buffer) *http.Request {
	t.Helper()
	var req *http.Request
	var err error
	if body == nil {
		req, err = http.NewRequest(method, url, nil)
	} else {
		req, err = http.NewRequest(method, url, body)
	}
	require.NoError(t, err)
	return req
}

// stateOf reads an operation's state from the store.
func (f *fixture) stateOf(t testing.TB, opID string) core.State {
	t.Helper()
	r, err := f.store.Get(context.Background(), opID)
	require.NoError(t, err)
	return r.State
}

// advanceAll hands every sequenced operation above the cursors over as
// relay "relay-a" would: published, or in the retry table when failed
// says so.
func advanceAll(t testing.TB, s core.Store, failed func(core.Record) (core.Failure, bool)) {
	t.Helper()
	ctx := context.Background()
	parts, err := s.Partitions(ctx)
	require.NoError(t, err)
	for _, p := range parts {
		taken, err := s.TakePartition(ctx, p.Part, "relay-a", time.Hour)
		require.NoError(t, err)
		recs, err := s.ReadPartition(ctx, core.ReadParams{Part: p.Part, After: taken.Cursor, Limit: 1000})
		require.NoError(t, err)
		if len(recs) == 0 {
			continue
		}
		var fs []core.Failure
		for _, r := range recs {
			if f, ok := failed(r); ok {
				fs = append(fs, f)
			}
		}
		require.NoError(t, s.Advance(ctx, core.AdvanceParams{Part: p.Part, Generation: taken.Generation,
			From: taken.Cursor, To: recs[len(recs)-1].LeafIndex, Failed: fs}))
	}
}
