package conformance

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// StoreHarness is one fresh, migrated, empty store for one test.
type StoreHarness struct {
	// Store is the store under test.
	Store core.Store
	// DB is a handle on the same database, for the caller transactions
	// RecordTx joins (the suite uses both bun.Tx and *sql.Tx from it).
	DB *bun.DB
	// Reopen, if set, opens another store handle on the same database and
	// tables, as another process would; cluster tests give each engine its
	// own. Without it they share Store.
	Reopen func(t *testing.T) core.Store
}

// NewStoreFunc returns a fresh store harness. It registers its own cleanup
// with t.Cleanup and must isolate the store from every other test (its own
// file, schema, database or table prefix) so tests run in parallel.
type NewStoreFunc func(t *testing.T) StoreHarness

// Received is a message as a consumer read it from the broker.
type Received struct {
	Key     string
	ID      string
	Payload []byte
	Headers map[string]string
}

// SinkHarness is one fresh sink for one test (a new topic, say) and a way
// to read what reached the broker.
type SinkHarness struct {
	Sink core.Sink
	// Read returns every message the broker holds, waiting until there are
	// at least n or ctx ends (then it returns what it has and ctx's error).
	// Messages with the same key must come in the order the broker stored
	// them. Read through the broker's own consumer, not the sink's
	// bookkeeping, so the test proves what a subscriber sees.
	Read func(ctx context.Context, n int) ([]Received, error)
}

// NewSinkFunc returns a fresh sink harness and registers its cleanup.
type NewSinkFunc func(t *testing.T) SinkHarness

// testContext bounds every wait of a test: until shortly before the test
// binary's deadline (go test -timeout), so the suite waits as long as a
// busy machine needs and a stuck wait still fails with its own message.
func testContext(t *testing.T) context.Context {
	return testenv.Context(t)
}

// NewOp returns a valid, unsealed operation on object doid (local part)
// under prefix 10.1000; i varies its content.
func NewOp(doid string, i int) *core.Operation {
	return &core.Operation{
		Source:           core.SourceDOIP,
		Type:             core.OpUpdate,
		DOID:             "10.1000/" + doid,
		DOPrefix:         "10.1000",
		DORepository:     "conformance",
		Actor:            fmt.Sprintf("user-%d", i%7),
		ProducerID:       "trustlog-conformance",
		RequestBodyHash:  fmt.Sprintf("%064x", i),
		ResponseBodyHash: fmt.Sprintf("%064x", i+1),
		ClientIP:         "192.0.2.10",
		ServerIP:         "2001:db8::1",
	}
}

// newOps returns n operations spread over objects doid-0 … doid-(objects-1).
func newOps(n, objects int) []*core.Operation {
	ops := make([]*core.Operation, n)
	for i := range ops {
		ops[i] = NewOp(fmt.Sprintf("obj-%d", i%objects), i)
	}
	return ops
}

// fastEngine is an engine configuration that makes the suite quick:
// short polls, leases and backoff. The engine logs warnings and errors to
// the test's output.
func fastEngine(t *testing.T) core.EngineConfig {
	return core.EngineConfig{
		Logger:         testLogger(t),
		BatchSize:      64,
		Lease:          2 * time.Second,
		PublishTimeout: time.Second,
		PollInterval:   20 * time.Millisecond,
		RetryPoll:      20 * time.Millisecond,
		MaxAttempts:    5,
		BackoffBase:    10 * time.Millisecond,
		BackoffMax:     100 * time.Millisecond,
	}
}

// testLogger writes warnings and errors to t's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startEngine starts an engine and stops it at cleanup.
func startEngine(t *testing.T, store core.Store, sink core.Sink, cfg core.EngineConfig) *core.Engine {
	t.Helper()
	e, err := core.NewEngine(store, sink, cfg)
	require.NoError(t, err)
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(ctx))
	})
	return e
}

// eventually polls cond every 10ms until it holds or the test times out.
func eventually(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	for {
		ok, err := cond()
		require.NoError(t, err, what)
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// settled waits until the store has no pending, in-flight or retrying
// operation.
func settled(t *testing.T, ctx context.Context, s core.Store) core.Stats {
	t.Helper()
	var st core.Stats
	eventually(t, ctx, "every operation is published or dead", func() (bool, error) {
		var err error
		st, err = s.Stats(ctx)
		return err == nil && st.Counts[core.StatePending]+st.Counts[core.StateInFlight]+st.Counts[core.StateRetrying] == 0, err
	})
	return st
}

// ids returns the op_ids of ops.
func ids(ops []*core.Operation) []string {
	out := make([]string, len(ops))
	for i, op := range ops {
		out[i] = op.OpID
	}
	return out
}

// countIDs counts received messages per op_id.
func countIDs(msgs []Received) map[string]int {
	m := make(map[string]int, len(msgs))
	for _, r := range msgs {
		m[r.ID]++
	}
	return m
}

// faultSink wraps any sink and fails chosen operations before they reach
// it, so failure scenarios run against every real sink.
type faultSink struct {
	core.Sink
	mu      sync.Mutex
	fail    map[string]int // op_id → failures left (-1: forever)
	offered map[string][]time.Time
	until   time.Time     // everything fails before this (an outage)
	outage  time.Duration // an outage that starts at the next Publish
}

// down makes every message fail for d from the next Publish on: a broker
// outage the engine is sure to meet, however long its start takes.
func (f *faultSink) down(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outage = d
}

func newFaultSink(inner core.Sink) *faultSink {
	return &faultSink{Sink: inner, fail: map[string]int{}, offered: map[string][]time.Time{}}
}

// failFor makes op fail its next n offers (n < 0: forever).
func (f *faultSink) failFor(opID string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[opID] = n
}

// offers returns when op was offered to the sink.
func (f *faultSink) offers(opID string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.offered[opID])
}

func (f *faultSink) Publish(ctx context.Context, msgs []core.Message) []error {
	errs := make([]error, len(msgs))
	pass := make([]core.Message, 0, len(msgs))
	idx := make([]int, 0, len(msgs))
	f.mu.Lock()
	now := time.Now()
	if f.outage > 0 {
		f.until, f.outage = now.Add(f.outage), 0
	}
	for i, m := range msgs {
		f.offered[m.ID] = append(f.offered[m.ID], now)
		if now.Before(f.until) {
			errs[i] = core.Unavailable(fmt.Errorf("conformance: injected outage"))
			continue
		}
		if n := f.fail[m.ID]; n != 0 {
			if n > 0 {
				f.fail[m.ID] = n - 1
			}
			errs[i] = fmt.Errorf("conformance: injected failure for %s", m.ID)
			continue
		}
		pass = append(pass, m)
		idx = append(idx, i)
	}
	f.mu.Unlock()
	if len(pass) > 0 {
		res := f.Sink.Publish(ctx, pass)
		if len(res) != len(pass) {
			res = core.FailAll(len(pass), fmt.Errorf("sink returned %d results for %d messages", len(res), len(pass)))
		}
		for j, err := range res {
			errs[idx[j]] = err
		}
	}
	return errs
}

// ReadFrom builds a SinkHarness's Read from a core.Replayer: it replays
// the topic until at least n messages arrived or ctx ends.
func ReadFrom(r core.Replayer) func(ctx context.Context, n int) ([]Received, error) {
	return func(ctx context.Context, n int) ([]Received, error) {
		for {
			var got []Received
			err := r.Replay(ctx, time.Time{}, func(d core.Delivered) error {
				got = append(got, Received{Key: d.Key, ID: d.ID, Payload: d.Payload, Headers: d.Headers})
				return nil
			})
			if err == nil && len(got) >= n {
				return got, nil
			}
			select {
			case <-ctx.Done():
				if err == nil {
					err = fmt.Errorf("%d of %d messages arrived: %w", len(got), n, ctx.Err())
				}
				return got, err
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}
