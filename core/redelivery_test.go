package core_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
)

// runSink is a sequenced sink for one run of a relay: it reports the
// broker's last sequence, records what it is offered, and either accepts
// everything or, as a relay about to be killed, never answers.
type runSink struct {
	last  int64
	hang  bool
	mu    sync.Mutex
	seen  map[string]core.Message
	calls int
}

func (s *runSink) OrderedStream(context.Context) (int64, bool, error) { return s.last, true, nil }
func (s *runSink) EndOrderedStream()                                  {}
func (s *runSink) Close() error                                       { return nil }

func (s *runSink) Publish(ctx context.Context, msgs []core.Message) []error {
	s.mu.Lock()
	s.calls++
	for _, m := range msgs {
		s.seen[m.ID] = m
	}
	s.mu.Unlock()
	if s.hang {
		<-ctx.Done()
		return core.FailAll(len(msgs), core.Unavailable(ctx.Err()))
	}
	return make([]error, len(msgs))
}

// killed is a store whose settles and releases never land, as for a relay
// killed after its claim: the rows stay in flight under its token.
type killed struct{ core.Store }

func (killed) Settle(context.Context, core.SettleParams) (core.SettleResult, error) {
	return core.SettleResult{}, errors.New("killed")
}
func (killed) Release(context.Context, core.ReleaseParams) (int, error) {
	return 0, errors.New("killed")
}

// TestRedeliveryOnlyFromPreviousRun: a relay's run 1 claims operations in
// its ordered stream and dies before recording anything. If run 2 takes
// them back, they are redeliveries (the broker's last sequence says
// whether run 1 got them through). If run 2 instead sent higher ids and
// died too, run 3 must not treat run 1's rows as redeliveries: the broker
// would drop them as copies of what it never had.
func TestRedeliveryOnlyFromPreviousRun(t *testing.T) {
	t.Parallel()
	for _, runs := range []int{2, 3} {
		t.Run(fmt.Sprintf("taken-back-by-run-%d", runs), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := sqlitetest.Open(t, sqlitetest.URL(t))
			c, err := core.NewClient(db, nil, core.Config{Strategy: core.StoreOnly})
			require.NoError(t, err)
			record := func(prefix string, n int) []*core.Operation {
				ops := make([]*core.Operation, n)
				for i := range ops {
					ops[i] = conformance.NewOp(fmt.Sprintf("%s-%d", prefix, i), i)
				}
				require.NoError(t, c.Record(ctx, ops...))
				return ops
			}
			run := func(store core.Store, sink *runSink, lease time.Duration) *core.Engine {
				e, err := core.NewEngine(store, sink, core.EngineConfig{Node: "relay-r", Workers: 1, BatchSize: 10,
					Lease: lease, PublishTimeout: 300 * time.Millisecond, PollInterval: 10 * time.Millisecond,
					RetryPoll: 10 * time.Millisecond, Logger: quietLogger(t)})
				require.NoError(t, err)
				require.NoError(t, e.Start(ctx))
				return e
			}
			inFlight := func(n int64) func() bool {
				return func() bool {
					st, err := db.Stats(ctx)
					return err == nil && st.Counts[core.StateInFlight] == n
				}
			}

			first := record("first", 10) // seqs 1-10
			one := run(killed{db}, &runSink{hang: true, seen: map[string]core.Message{}}, 3*time.Second)
			require.Eventually(t, inFlight(10), 10*time.Second, 10*time.Millisecond)
			one.Stop(ctx) // the settle and release never land: killed

			last := int64(10) // run 1's sends may all be on the broker
			if runs == 3 {
				record("second", 10) // seqs 11-20, sent by run 2, which then dies
				s2 := &runSink{seen: map[string]core.Message{}}
				two := run(killed{db}, s2, time.Minute)
				require.Eventually(t, func() bool { s2.mu.Lock(); defer s2.mu.Unlock(); return len(s2.seen) == 10 }, 10*time.Second, 10*time.Millisecond)
				two.Stop(ctx)
				last = 20
			}
			s := &runSink{last: last, seen: map[string]core.Message{}}
			e := run(db, s, 3*time.Second)
			defer e.Stop(ctx)
			require.Eventually(t, func() bool {
				st, err := db.Stats(ctx)
				return err == nil && st.Counts[core.StatePublished] >= 10
			}, 20*time.Second, 20*time.Millisecond, "run 1's operations are taken back after their lease")
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, op := range first {
				m, ok := s.seen[op.OpID]
				require.True(t, ok, "run %d sent %s", runs, op.OpID)
				assert.Equal(t, runs == 2, m.Redelivery, "a redelivery only when taken back by the very next run")
			}
		})
	}
}
