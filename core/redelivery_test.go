package core_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/testenv"
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
	high  int64 // the highest stream id offered
}

// highest is the highest stream id s was offered: the broker's last
// sequence for the next run if everything reached it.
func (s *runSink) highest() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.high
}

// called waits until s was offered a batch.
func (s *runSink) called(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.calls > 0 }, testenv.Patience(t), 5*time.Millisecond)
}

func (s *runSink) OrderedStream(context.Context) (int64, bool, error) { return s.last, true, nil }
func (s *runSink) EndOrderedStream()                                  {}
func (s *runSink) Close() error                                       { return nil }

func (s *runSink) Publish(ctx context.Context, msgs []core.Message) []error {
	s.mu.Lock()
	s.calls++
	for _, m := range msgs {
		s.seen[m.ID] = m
		if m.Ordered {
			s.high = max(s.high, m.StreamSeq)
		}
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

// positioned is a runSink that says where its stream stood (its last
// sequence) and judges by such a position (core.PositionedSink).
type positioned struct{ *runSink }

func (s positioned) Position() string { return strconv.FormatInt(s.last, 10) }
func (s positioned) HeldAt(pos, _ string, id int64) bool {
	last, err := strconv.ParseInt(pos, 10, 64)
	return err == nil && id <= last
}

// TestRedeliveryFromEarlierRuns: a relay's run 1 claims operations in its
// ordered stream and dies before recording anything. If run 2 takes them
// back, they are redeliveries (the broker's last sequence says whether run
// 1 got them through). If run 2 instead sent higher ids and died too, the
// broker's last sequence no longer says what run 1 got through: run 3 may
// treat run 1's rows as the broker's only if the sink can say where the
// stream stood when run 1 ended (a PositionedSink, which run 2 recorded);
// otherwise the broker would drop them as copies of what it may never
// have had. A PositionedSink judges per partition, so what the broker
// holds is recorded as published without a second send.
func TestRedeliveryFromEarlierRuns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		runs       int
		positioned bool
	}{{2, false}, {3, false}, {2, true}, {3, true}} {
		t.Run(fmt.Sprintf("taken-back-by-run-%d/positioned=%v", tc.runs, tc.positioned), func(t *testing.T) {
			runs := tc.runs
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
			run := func(store core.Store, s *runSink, lease time.Duration) *core.Engine {
				var sink core.Sink = s
				if tc.positioned {
					sink = positioned{s}
				}
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
			s1 := &runSink{hang: true, seen: map[string]core.Message{}}
			one := run(killed{db}, s1, 3*time.Second)
			require.Eventually(t, inFlight(10), testenv.Patience(t), 10*time.Millisecond)
			s1.called(t)
			one.Stop(ctx) // the settle and release never land: killed

			last := s1.highest() // run 1's sends may all be on the broker
			if runs == 3 {
				record("second", 10) // seqs 11-20, sent by run 2, which then dies
				s2 := &runSink{last: last, seen: map[string]core.Message{}}
				two := run(killed{db}, s2, time.Minute)
				require.Eventually(t, func() bool { s2.mu.Lock(); defer s2.mu.Unlock(); return len(s2.seen) == 10 }, testenv.Patience(t), 10*time.Millisecond)
				two.Stop(ctx)
				last = s2.highest()
			}
			s := &runSink{last: last, seen: map[string]core.Message{}}
			e := run(db, s, 3*time.Second)
			defer e.Stop(ctx)
			require.Eventually(t, func() bool {
				st, err := db.Stats(ctx)
				return err == nil && st.Counts[core.StatePublished] >= 10
			}, testenv.Patience(t), 20*time.Millisecond, "run 1's operations are taken back after their lease")
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, op := range first {
				m, ok := s.seen[op.OpID]
				if tc.positioned {
					// Judged per partition: recorded as published, not
					// sent again (the broker would drop it).
					assert.False(t, ok, "run %d sent %s again", runs, op.OpID)
					continue
				}
				require.True(t, ok, "run %d sent %s", runs, op.OpID)
				assert.Equal(t, runs == 2, m.Redelivery, "a redelivery only when taken back by the very next run")
			}
		})
	}
}

// orderedOnly lets a relay claim only in its ordered stream (odd tokens),
// so rows committed while an ordered claim runs wait for the next one
// instead of going out unordered, and nothing is taken back.
type orderedOnly struct{ core.Store }

func (s orderedOnly) Claim(ctx context.Context, p core.ClaimParams) ([]core.Record, error) {
	if p.Token&1 == 0 {
		return nil, nil
	}
	return s.Store.Claim(ctx, p)
}

// TestRenumberedClaimsAreNotRedeliveries: run 1 sends 1-10 in its ordered
// stream, loses an ordered claim of 11-20 (it committed; the relay never
// saw the rows), renumbers, sends 21-30 in order, and dies before
// recording anything; the broker's last sequence is 30. Run 2 must send
// 11-20 as new messages (the broker never had them: as re-sends below 30
// it would drop them), and 1-10 (under the old number, at or below its
// mark) and 21-30 (under the latest) as redeliveries.
func TestRenumberedClaimsAreNotRedeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t, sqlitetest.URL(t))
	c, err := core.NewClient(db, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	var ops []*core.Operation
	record := func(n int) {
		batch := make([]*core.Operation, n)
		for i := range batch {
			batch[i] = conformance.NewOp(fmt.Sprintf("obj-%d", len(ops)+i), len(ops)+i)
		}
		require.NoError(t, c.Record(ctx, batch...))
		ops = append(ops, batch...)
	}
	run := func(store core.Store, sink *runSink) *core.Engine {
		e, err := core.NewEngine(store, sink, core.EngineConfig{Node: "relay-n", Workers: 1, BatchSize: 10,
			Lease: 2 * time.Second, PublishTimeout: 300 * time.Millisecond, PollInterval: 10 * time.Millisecond,
			RetryPoll: 10 * time.Millisecond, Logger: quietLogger(t)})
		require.NoError(t, err)
		require.NoError(t, e.Start(ctx))
		return e
	}
	sent := func(s *runSink, n int) func() bool {
		return func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.seen) == n }
	}

	record(10) // seqs 1-10
	s1 := &runSink{seen: map[string]core.Message{}}
	one := run(&lostClaimCommit{Store: orderedOnly{killed{db}}}, s1)
	require.Eventually(t, sent(s1, 10), testenv.Patience(t), 5*time.Millisecond)
	record(10) // 11-20: the lost claim
	untilCount(t, db, core.StateInFlight, 20, 10*time.Second)
	record(10) // 21-30: the ordered stream goes on
	require.Eventually(t, func() bool {
		s1.mu.Lock()
		defer s1.mu.Unlock()
		for _, op := range ops[20:] {
			if _, ok := s1.seen[op.OpID]; !ok {
				return false
			}
		}
		return true
	}, testenv.Patience(t), 5*time.Millisecond)
	one.Stop(ctx) // nothing recorded: killed
	s1.mu.Lock()
	for _, op := range ops[20:] {
		assert.True(t, s1.seen[op.OpID].Ordered, "run 1 sent %s in its ordered stream", op.OpID)
	}
	s1.mu.Unlock()

	s2 := &runSink{last: s1.highest(), seen: map[string]core.Message{}}
	two := run(db, s2)
	defer two.Stop(ctx)
	require.Eventually(t, sent(s2, 30), testenv.Patience(t), 10*time.Millisecond, "run 2 takes everything back after the lease")
	s2.mu.Lock()
	defer s2.mu.Unlock()
	for i, op := range ops {
		m := s2.seen[op.OpID]
		switch {
		case i < 10:
			assert.True(t, m.Redelivery, "seq %d: sent in order under the old number, up to its mark", m.Seq)
		case i < 20:
			assert.False(t, m.Redelivery, "seq %d: the lost claim's rows were never sent; a re-send would be dropped", m.Seq)
		default:
			assert.True(t, m.Redelivery, "seq %d: sent in run 1's latest ordered stream, re-sent for the broker to drop", m.Seq)
		}
	}
}

// TestUnavailableKeepsThePreviousClaim: run 2 takes back run 1's ordered
// claims as redeliveries, but the sink is down at first. The rows go back
// to run 1's claim (not to pending, which would forget who sent them), so
// once the sink is up they still go out as redeliveries, for the broker to
// drop.
func TestUnavailableKeepsThePreviousClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t, sqlitetest.URL(t))
	ops := recordN(t, db, 10, 10)
	run := func(store core.Store, sink core.Sink) *core.Engine {
		e, err := core.NewEngine(store, sink, core.EngineConfig{Node: "relay-g", Workers: 1, BatchSize: 10,
			Lease: time.Second, PublishTimeout: 300 * time.Millisecond, PollInterval: 10 * time.Millisecond,
			RetryPoll: 10 * time.Millisecond, BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond, Logger: quietLogger(t)})
		require.NoError(t, err)
		require.NoError(t, e.Start(ctx))
		return e
	}
	s1 := &runSink{hang: true, seen: map[string]core.Message{}}
	one := run(killed{db}, s1)
	untilCount(t, db, core.StateInFlight, 10, 10*time.Second)
	s1.called(t)
	one.Stop(ctx)

	s := &downFirst{runSink: runSink{last: s1.highest(), seen: map[string]core.Message{}}}
	two := run(db, s)
	defer two.Stop(ctx)
	untilCount(t, db, core.StatePublished, 10, 20*time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	require.GreaterOrEqual(t, s.calls, 2, "refused once, then accepted")
	for _, op := range ops {
		assert.True(t, s.seen[op.OpID].Redelivery, "%s still goes out as a redelivery after the outage", op.OpID)
	}
}

// downFirst refuses its first batch as unavailable, then accepts.
type downFirst struct{ runSink }

func (s *downFirst) Publish(ctx context.Context, msgs []core.Message) []error {
	s.mu.Lock()
	first := s.calls == 0
	if first {
		s.calls++
	}
	s.mu.Unlock()
	if first {
		return core.FailAll(len(msgs), core.Unavailable(errors.New("injected: broker down")))
	}
	return s.runSink.Publish(ctx, msgs)
}

// TestOrderedUnansweredKeepsItsClaim: run 1 hands its ordered batch to the
// sink, which does not answer in time (the broker may have stored it).
// The rows keep their ordered claim instead of going back to pending, so
// run 2 re-sends them as redeliveries, for the broker to drop, rather
// than as new messages.
func TestOrderedUnansweredKeepsItsClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t, sqlitetest.URL(t))
	ops := recordN(t, db, 10, 10)
	run := func(sink core.Sink) *core.Engine { return startRelay(t, db, sink, "relay-k", 200*time.Millisecond) }
	s1 := &runSink{hang: true, seen: map[string]core.Message{}}
	one := run(s1)
	s1.called(t)
	time.Sleep(300 * time.Millisecond) // past the publish timeout
	require.NoError(t, one.Stop(ctx))
	st, err := db.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(10), st.Counts[core.StateInFlight], "unanswered rows of the ordered stream keep their claim")

	redelivered(t, db, run, s1.highest(), ops)
}

// redelivered runs the next run of a relay (run) with the broker's last
// sequence at last, until ops are published, and checks that every one
// went out as a redelivery.
func redelivered(t *testing.T, db core.Store, run func(core.Sink) *core.Engine, last int64, ops []*core.Operation) {
	t.Helper()
	s := &runSink{last: last, seen: map[string]core.Message{}}
	e := run(s)
	defer e.Stop(context.Background())
	untilCount(t, db, core.StatePublished, int64(len(ops)), 20*time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range ops {
		assert.True(t, s.seen[op.OpID].Redelivery, "%s goes out as a redelivery", op.OpID)
	}
}

// startRelay starts an engine for one run of the relay node over store
// and sink: batches of 10, a one-second lease, publishTimeout, fast polls.
func startRelay(t *testing.T, store core.Store, sink core.Sink, node string, publishTimeout time.Duration) *core.Engine {
	t.Helper()
	e, err := core.NewEngine(store, sink, core.EngineConfig{Node: node, Workers: 1, BatchSize: 10,
		Lease: time.Second, PublishTimeout: publishTimeout, PollInterval: 10 * time.Millisecond,
		RetryPoll: 10 * time.Millisecond, Logger: quietLogger(t)})
	require.NoError(t, err)
	require.NoError(t, e.Start(context.Background()))
	return e
}

// untilCount waits until s holds n operations in state, for at most d.
func untilCount(t *testing.T, s core.Store, state core.State, n int64, d time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := s.Stats(context.Background())
		return err == nil && st.Counts[state] == n
	}, d, 5*time.Millisecond, "%d operations %v", n, state)
}

// stillSending is a sequenced sink whose broker never answers, while its
// producer goes on sending whatever it was handed (as the Pulsar sink's
// ordered stream does): a message offered again is the same send, not a
// new one, so only the first offer of each operation raises the broker's
// last sequence.
type stillSending struct {
	mu    sync.Mutex
	first map[int64]int64 // seq → the stream id of its first offer
}

func (s *stillSending) OrderedStream(context.Context) (int64, bool, error) { return 0, true, nil }
func (s *stillSending) EndOrderedStream()                                  {}
func (s *stillSending) Close() error                                       { return nil }

func (s *stillSending) Publish(ctx context.Context, msgs []core.Message) []error {
	s.mu.Lock()
	for _, m := range msgs {
		if _, ok := s.first[m.Seq]; !ok && m.Ordered {
			s.first[m.Seq] = m.StreamSeq
		}
	}
	s.mu.Unlock()
	<-ctx.Done()
	return core.FailAll(len(msgs), core.Unavailable(ctx.Err()))
}

func (s *stillSending) Sent(seq int64) (pending, delivered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.first[seq]
	return ok, false
}

// last is the broker's last sequence once every first offer arrived.
func (s *stillSending) last() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var high int64
	for _, id := range s.first {
		high = max(high, id)
	}
	return high
}

// TestPendingSendKeepsItsClaim: run 1 hands its ordered batch to a sink
// that goes on sending it while the broker does not answer, for several
// leases. Claiming the rows again when the lease ends would give them a
// claim whose stream ids never went out, so after a crash run 2 could not
// tell that the broker holds them and would send copies. While the sink
// is still sending them they stay under the claim they were sent with,
// and run 2 re-sends them as redeliveries, for the broker to drop.
func TestPendingSendKeepsItsClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t, sqlitetest.URL(t))
	ops := recordN(t, db, 10, 10)
	run := func(sink core.Sink) *core.Engine { return startRelay(t, db, sink, "relay-p", 100*time.Millisecond) }
	s1 := &stillSending{first: map[int64]int64{}}
	one := run(s1)
	require.Eventually(t, func() bool { return s1.last() > 0 }, testenv.Patience(t), 5*time.Millisecond)
	time.Sleep(3500 * time.Millisecond) // three leases
	require.NoError(t, one.Stop(ctx))
	untilCount(t, db, core.StateInFlight, 10, time.Second)

	redelivered(t, db, run, s1.last(), ops)
}

// lender is a takeover sink whose broker lends any stream name at once
// (as it does while the owner's producer is reconnecting after an outage)
// and holds nothing under it. With hang set it never answers a publish,
// as for an owner whose sends are stuck; otherwise it records what it is
// offered.
type lender struct {
	runSink
	name string
}

func (s *lender) StreamName() string { return s.name }
func (s *lender) Borrow(context.Context, string) (core.BorrowedStream, error) {
	return emptyStream{}, nil
}

type emptyStream struct{}

func (emptyStream) Holds(string, int64) bool { return false }
func (emptyStream) Publish(_ context.Context, msgs []core.Message) []error {
	return core.FailAll(len(msgs), errors.New("holds nothing"))
}
func (emptyStream) Release() {}

// pendingOnly claims only pending operations: the owner never takes its
// own expired claims back, so another relay takes them over.
type pendingOnly struct{ core.Store }

func (s pendingOnly) Claim(ctx context.Context, p core.ClaimParams) ([]core.Record, error) {
	if p.Source == core.ClaimDue {
		return nil, nil
	}
	return s.Store.Claim(ctx, p)
}

// TestTakeOverOnlyFromTheDead: relay A's sends are stuck and its claims
// expire; relay B, taking them over, can borrow A's stream name (A's
// producer is not connected) and finds nothing held under it. Were B to
// send them as new messages, A's pending sends would land after them:
// copies. While A runs it holds its alive lease, so B gives the rows back
// to A's claim, however often it finds them expired (with a 1 s lease
// and grace, about once a second: the wait covers several give-backs);
// once A is gone, B takes them over.
func TestTakeOverOnlyFromTheDead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t, sqlitetest.URL(t))
	ops, one, _ := startOwner(t, db, pendingOnly{db})
	b := newLender("relay-b", false)
	two := startRelay(t, db, b, "relay-b", 100*time.Millisecond)
	defer two.Stop(ctx)

	nothingTakenOver(t, db, b, 8*time.Second, "while A is alive")
	require.NoError(t, one.Stop(ctx))
	takenOver(t, db, b, ops)
}

// startOwner records ten operations in db and starts relay A over store
// (db, wrapped), whose sends never answer, until it offered them: they
// stay in flight under A's ordered claims.
func startOwner(t *testing.T, db, store core.Store) ([]*core.Operation, *core.Engine, *lender) {
	t.Helper()
	ops := recordN(t, db, 10, 10)
	a := newLender("relay-a", true)
	e := startRelay(t, store, a, "relay-a", 100*time.Millisecond)
	a.called(t)
	return ops, e, a
}

func newLender(name string, hang bool) *lender {
	return &lender{runSink: runSink{hang: hang, seen: map[string]core.Message{}}, name: name}
}

// nothingTakenOver waits for d, past the expiry and grace of another
// relay's claims on ten operations, and checks that b sent none of them:
// they are still in flight under their claim.
func nothingTakenOver(t *testing.T, db core.Store, b *lender, d time.Duration, while string) {
	t.Helper()
	time.Sleep(d)
	b.mu.Lock()
	assert.Zero(t, len(b.seen), "operations taken over %s", while)
	b.mu.Unlock()
	st, err := db.Stats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64(10), st.Counts[core.StateInFlight], "the rows are back under their claim")
}

// takenOver waits until ops are published and checks that b sent them.
func takenOver(t *testing.T, db core.Store, b *lender, ops []*core.Operation) {
	t.Helper()
	untilCount(t, db, core.StatePublished, int64(len(ops)), 20*time.Second)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, op := range ops {
		assert.Contains(t, b.seen, op.OpID, "%s taken over", op.OpID)
	}
}

// halfSending is a sequenced sink whose broker never answers: it goes on
// sending the first five operations it is offered (Sending), and gives up
// the others at once. It counts the offers of each operation.
type halfSending struct {
	mu     sync.Mutex
	offers map[int64]int
}

func (s *halfSending) OrderedStream(context.Context) (int64, bool, error) { return 0, true, nil }
func (s *halfSending) EndOrderedStream()                                  {}
func (s *halfSending) Close() error                                       { return nil }

func (s *halfSending) Publish(ctx context.Context, msgs []core.Message) []error {
	s.mu.Lock()
	for _, m := range msgs {
		s.offers[m.Seq]++
	}
	s.mu.Unlock()
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		if m.Seq > 5 {
			errs[i] = core.Unavailable(errors.New("injected: given up"))
		}
	}
	<-ctx.Done()
	for i := range errs {
		if errs[i] == nil {
			errs[i] = core.Unavailable(ctx.Err())
		}
	}
	return errs
}

func (s *halfSending) Sent(seq int64) (pending, delivered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return seq <= 5 && s.offers[seq] > 0, false
}

func (s *halfSending) offered(seq int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offers[seq]
}

// failingRestore is a store whose restores fail while fail is set.
type failingRestore struct {
	core.Store
	fail atomic.Bool
}

func (s *failingRestore) Release(ctx context.Context, p core.ReleaseParams) (int, error) {
	if p.Restore && s.fail.Load() {
		return 0, errors.New("injected: restore lost")
	}
	return s.Store.Release(ctx, p)
}

// TestOrderedBatchSendsNothingUntilItsRestoresAreRecorded: an ordered
// batch takes back expired claims, five still being sent by the sink
// (they go back to the claim they were sent with) and five to send
// again. Were the five to go out while the others still carried the
// batch's claim (the restore not yet recorded), a crash then would leave
// those under the batch's ids, below ids that reached the broker: the
// next run would take them for sent, and the broker would drop their
// re-send. So nothing of the batch goes out until the restore is
// recorded.
func TestOrderedBatchSendsNothingUntilItsRestoresAreRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t, sqlitetest.URL(t))
	recordN(t, db, 10, 10)
	store := &failingRestore{Store: db}
	store.fail.Store(true)
	sink := &halfSending{offers: map[int64]int{}}
	e := startRelay(t, store, sink, "relay-h", 100*time.Millisecond)
	defer e.Stop(ctx)
	require.Eventually(t, func() bool { return sink.offered(10) > 0 }, testenv.Patience(t), 5*time.Millisecond)
	time.Sleep(3 * time.Second) // the lease ends; the claims come due, again and again
	for seq := int64(6); seq <= 10; seq++ {
		assert.Equal(t, 1, sink.offered(seq), "seq %d not sent again while the restore of 1-5 fails", seq)
	}
	store.fail.Store(false)
	require.Eventually(t, func() bool { return sink.offered(10) > 1 }, testenv.Patience(t), 5*time.Millisecond,
		"sent again once the restore is recorded")
}

// deliveredSink accepts the first five operations it is offered and gives
// the others up at once (not pending); offered again, those go out, and
// it notes whether the first five were recorded as published by then.
type deliveredSink struct {
	db         core.Store
	mu         sync.Mutex
	offers     map[int64]int
	delivered  map[int64]bool
	violations []string
}

func (s *deliveredSink) OrderedStream(context.Context) (int64, bool, error) { return 0, true, nil }
func (s *deliveredSink) EndOrderedStream()                                  {}
func (s *deliveredSink) Close() error                                       { return nil }

func (s *deliveredSink) Publish(ctx context.Context, msgs []core.Message) []error {
	errs := make([]error, len(msgs))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range msgs {
		s.offers[m.Seq]++
		switch {
		case m.Seq <= 5:
			s.delivered[m.Seq] = true
		case s.offers[m.Seq] == 1:
			errs[i] = core.Unavailable(errors.New("injected: given up"))
		default:
			// The probe reads with its own context: the send's is bounded
			// by the publish timeout, which a loaded machine can outlast.
			st, err := s.db.Stats(context.WithoutCancel(ctx))
			if err != nil || st.Counts[core.StatePublished] < 5 {
				s.violations = append(s.violations, fmt.Sprintf("seq %d went out before the delivered ones were recorded (published %d, err %v)", m.Seq, st.Counts[core.StatePublished], err))
			}
		}
	}
	return errs
}

func (s *deliveredSink) Sent(seq int64) (pending, delivered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return false, s.delivered[seq]
}

// lostFirstSettle loses the first settle, as a database restart does.
type lostFirstSettle struct {
	core.Store
	lost atomic.Bool
}

func (s *lostFirstSettle) Settle(ctx context.Context, p core.SettleParams) (core.SettleResult, error) {
	if s.lost.CompareAndSwap(false, true) {
		return core.SettleResult{}, errors.New("injected: settle lost")
	}
	return s.Store.Settle(ctx, p)
}

// TestDeliveredIsRecordedBeforeTheRestGoesOut: an ordered batch whose
// settle was lost comes due again; five of its operations this process
// had delivered, five it must send again. The five delivered are recorded
// as published, not sent again, and before the others go out: claimed
// anew and left under the new batch's claim, a crash would have them
// count as sent under ids they never went out with.
func TestDeliveredIsRecordedBeforeTheRestGoesOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t, sqlitetest.URL(t))
	recordN(t, db, 10, 10)
	sink := &deliveredSink{db: db, offers: map[int64]int{}, delivered: map[int64]bool{}}
	e := startRelay(t, &lostFirstSettle{Store: db}, sink, "relay-d", 100*time.Millisecond)
	defer e.Stop(ctx)
	untilCount(t, db, core.StatePublished, 10, 20*time.Second)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	assert.Empty(t, sink.violations)
	for seq := int64(1); seq <= 10; seq++ {
		want := map[bool]int{true: 1, false: 2}[seq <= 5]
		assert.Equal(t, want, sink.offers[seq], "seq %d offered", seq)
	}
}

// blindCursors is a store whose cursor reads fail while blind is set, as
// right after a database restart.
type blindCursors struct {
	core.Store
	blind atomic.Bool
}

func (s *blindCursors) Cursor(ctx context.Context, name string) (core.Cursor, error) {
	if s.blind.Load() {
		return core.Cursor{}, errors.New("injected: connection refused")
	}
	return s.Store.Cursor(ctx, name)
}

// TestTakeOverWaitsForTheStore: relay B takes over the expired claims of
// relay A, which is gone, while the store cannot say who A was (its
// cursor reads fail). B must not send them as new messages (copies of
// what A may have sent); it gives them back, and takes them over once it
// can read A's records.
func TestTakeOverWaitsForTheStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t, sqlitetest.URL(t))
	ops, one, _ := startOwner(t, db, killed{db})
	require.NoError(t, one.Stop(ctx)) // gone, its claims in flight

	store := &blindCursors{Store: db}
	store.blind.Store(true)
	b := newLender("relay-b", false)
	two := startRelay(t, store, b, "relay-b", 100*time.Millisecond)
	defer two.Stop(ctx)
	nothingTakenOver(t, db, b, 3*time.Second, "while the store cannot say who A was")
	store.blind.Store(false)
	takenOver(t, db, b, ops)
}

// holding is a takeover sink whose broker holds every message sent under
// one stream name (its owner's sends got through before it died) and
// nothing under any other. It counts the borrows.
type holding struct {
	*lender
	name     string
	borrowed atomic.Int32
}

func (s *holding) Borrow(_ context.Context, name string) (core.BorrowedStream, error) {
	s.borrowed.Add(1)
	return heldStream{all: name == s.name}, nil
}

type heldStream struct {
	emptyStream
	all bool
}

func (h heldStream) Holds(string, int64) bool { return h.all }

// TestTakeOverKilledBeforeRecording: relay A dies with ten operations in
// flight, unrecorded; relay B takes A's expired claims over and dies
// before recording what it did with them; relay C takes them over after
// B's lease. C must judge each row by the claim that may have sent it,
// and send nothing the broker holds:
//   - judged: the broker holds A's sends; B found that but could not
//     record it. Had B's claim replaced A's as the one that may have sent
//     the rows, C would find nothing of B's on the broker: ten copies.
//   - sent: the broker holds nothing of A's; B sent the rows as new
//     messages. Had B's claim stayed tentative (A's behind it) while they
//     went out, C would judge by A's and send them again: ten copies.
func TestTakeOverKilledBeforeRecording(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, held string // the stream whose sends the broker holds
	}{{"judged", "relay-a"}, {"sent", "relay-b"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := sqlitetest.Open(t, sqlitetest.URL(t))
			_, one, _ := startOwner(t, db, killed{db})
			require.NoError(t, one.Stop(ctx)) // gone, its claims in flight

			b := &holding{lender: newLender("relay-b", false), name: tc.held}
			two := startRelay(t, killed{db}, b, "relay-b", 100*time.Millisecond)
			require.Eventually(t, func() bool {
				b.mu.Lock()
				defer b.mu.Unlock()
				return b.borrowed.Load() > 0 && (tc.held == "relay-a" || len(b.seen) == 10)
			}, testenv.Patience(t), 5*time.Millisecond, "B takes A's claims over")
			require.NoError(t, two.Stop(ctx)) // gone before recording anything

			c := &holding{lender: newLender("relay-c", false), name: tc.held}
			three := startRelay(t, db, c, "relay-c", 100*time.Millisecond)
			defer three.Stop(ctx)
			untilCount(t, db, core.StatePublished, 10, 20*time.Second)
			c.mu.Lock()
			defer c.mu.Unlock()
			assert.Zero(t, len(c.seen), "C sent copies of what the broker holds from %s", tc.held)
		})
	}
}

// storeDown is a store that cannot be reached while down is set: claims
// and cursor reads and writes fail, as with the database restarting.
type storeDown struct {
	core.Store
	down atomic.Bool
}

var errStoreDown = errors.New("injected: dial tcp: connection refused")

func (s *storeDown) Claim(ctx context.Context, p core.ClaimParams) ([]core.Record, error) {
	if s.down.Load() {
		return nil, errStoreDown
	}
	return s.Store.Claim(ctx, p)
}

func (s *storeDown) Cursor(ctx context.Context, name string) (core.Cursor, error) {
	if s.down.Load() {
		return core.Cursor{}, errStoreDown
	}
	return s.Store.Cursor(ctx, name)
}

func (s *storeDown) SetCursor(ctx context.Context, name, value string) error {
	if s.down.Load() {
		return errStoreDown
	}
	return s.Store.SetCursor(ctx, name, value)
}

// TestRunStartedWhileTheStoreIsDown: run 1 sends ten operations in its
// ordered stream and dies before recording anything; run 2 starts while
// the database restarts, so it cannot read the node's run history yet.
// Were it to claim anyway, it could not tell run 1's claims from new
// ones: it would send them as new messages (copies of what the broker
// holds), and its first renumbering would write a history without run 1.
// Its ordered stream waits for the history instead, and then sends run
// 1's operations as redeliveries.
func TestRunStartedWhileTheStoreIsDown(t *testing.T) {
	t.Parallel()
	db := sqlitetest.Open(t, sqlitetest.URL(t))
	ops, s1 := killedRun(t, db, "relay-d", func(s *runSink) core.Sink { return s })

	down := &storeDown{Store: db}
	down.down.Store(true)
	redelivered(t, db, func(s core.Sink) *core.Engine {
		e := startRelay(t, down, s, "relay-d", 300*time.Millisecond)
		time.Sleep(500 * time.Millisecond) // the restart
		down.down.Store(false)
		return e
	}, s1.highest(), ops)
}

// killedRun records ten operations in db and runs node's first process
// over them through wrap(sink), a sink whose sends never answer, until it
// sent them; then the process stops without recording anything (killed),
// leaving the rows in flight under its ordered claims. It returns the
// operations and the sink (what the run sent).
func killedRun(t *testing.T, db core.Store, node string, wrap func(*runSink) core.Sink) ([]*core.Operation, *runSink) {
	t.Helper()
	ops := recordN(t, db, 10, 10)
	s := &runSink{hang: true, seen: map[string]core.Message{}}
	e := startRelay(t, killed{db}, wrap(s), node, 300*time.Millisecond)
	s.called(t)
	e.Stop(context.Background()) // nothing recorded: killed
	return ops, s
}

// claimsNothing is a store from which a relay claims nothing: a run of it
// records itself in the node's run history and leaves every row alone.
type claimsNothing struct{ core.Store }

func (claimsNothing) Claim(context.Context, core.ClaimParams) ([]core.Record, error) { return nil, nil }

// TestRedeliveryManyRunsLater: run 1 sends ten operations in its ordered
// stream and dies before recording anything; then the node restarts six
// times in a row without taking them back (each process dies before their
// claims expire, as relays killed every two seconds, or during a database
// restart, do). The seventh run still judges them by where the stream
// stood when run 1 ended: the broker holds them, so they are recorded as
// published and not sent again. With only the last four runs kept in the
// history, run 1 was forgotten and they went out as new messages: copies.
func TestRedeliveryManyRunsLater(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t, sqlitetest.URL(t))
	ops, s1 := killedRun(t, db, "relay-m", func(s *runSink) core.Sink { return positioned{s} })
	last := s1.highest()
	for range 6 {
		e := startRelay(t, claimsNothing{db}, positioned{&runSink{last: last, seen: map[string]core.Message{}}}, "relay-m", 300*time.Millisecond)
		require.NoError(t, e.Stop(ctx))
	}
	s := &runSink{last: last, seen: map[string]core.Message{}}
	e := startRelay(t, db, positioned{s}, "relay-m", 300*time.Millisecond)
	defer e.Stop(ctx)
	untilCount(t, db, core.StatePublished, 10, 20*time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range ops {
		assert.NotContains(t, s.seen, op.OpID, "run 1's send of %s is on the broker", op.OpID)
	}
}

// brokerAway is a lender whose broker is away while down is set: it
// refuses every publish and borrow as unavailable. It counts borrows.
type brokerAway struct {
	lender
	down    atomic.Bool
	refused atomic.Bool // a publish was refused
	borrows atomic.Int64
}

func (s *brokerAway) Publish(ctx context.Context, msgs []core.Message) []error {
	if s.down.Load() {
		s.refused.Store(true)
		return core.FailAll(len(msgs), core.Unavailable(errors.New("injected: broker away")))
	}
	return s.lender.Publish(ctx, msgs)
}

func (s *brokerAway) Borrow(ctx context.Context, name string) (core.BorrowedStream, error) {
	s.borrows.Add(1)
	if s.down.Load() {
		return nil, core.Unavailable(errors.New("injected: broker away"))
	}
	return s.lender.Borrow(ctx, name)
}

// keepRecording records an operation every 50 ms for d (an application
// at work) and returns how many.
func keepRecording(t *testing.T, db core.Store, d time.Duration) int {
	t.Helper()
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		recordN(t, db, 1, 1)
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

// dueAfter counts the rows claimed as due (expired claims, retries) once
// after is set.
type dueAfter struct {
	core.Store
	after func() bool
	n     atomic.Int64
}

func (s *dueAfter) Claim(ctx context.Context, p core.ClaimParams) ([]core.Record, error) {
	recs, err := s.Store.Claim(ctx, p)
	if p.Source == core.ClaimDue && s.after() {
		s.n.Add(int64(len(recs)))
	}
	return recs, err
}

// TestNothingDueWhileTheBrokerIsAway: relay A sends ten operations in
// its ordered stream and dies before recording anything; the next relay,
// A's next run or another relay B, finds the broker away while A's claims
// expire. Claiming them now would overwrite what says A may have sent
// them, and the row would wait to be judged until the broker is back (B
// waits to borrow A's stream; a batch waits behind batches that wait for
// the broker): killed meanwhile, the relay would leave them looking sent
// by its own claim, and the next sender would send copies. So nothing is
// claimed as due while the broker is away; once it is back, A's run 2
// sends them as redeliveries and B takes them over.
func TestNothingDueWhileTheBrokerIsAway(t *testing.T) {
	t.Parallel()
	for _, next := range []string{"relay-a", "relay-b"} {
		t.Run(next, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := sqlitetest.Open(t, sqlitetest.URL(t))
			ops, one, a := startOwner(t, db, killed{db})
			one.Stop(ctx) // nothing recorded: killed

			s := &brokerAway{lender: *newLender(next, false)}
			s.last = a.highest() // A's sends are on the broker
			s.down.Store(true)
			store := &dueAfter{Store: db, after: s.refused.Load}
			two := startRelay(t, store, s, next, 100*time.Millisecond)
			defer two.Stop(ctx)
			// A's claims expire after 1 s (B's grace is 1 s more);
			// meanwhile the relay's own work is refused: it sees the
			// broker away.
			n := keepRecording(t, db, 4*time.Second)
			assert.Zero(t, store.n.Load(), "rows claimed as due while the broker was away")
			assert.Zero(t, s.borrows.Load(), "borrows while the broker was away")

			s.down.Store(false)
			untilCount(t, db, core.StatePublished, int64(len(ops)+n), 20*time.Second)
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, op := range ops {
				m, ok := s.seen[op.OpID]
				assert.True(t, ok, "%s sent once the broker is back", op.OpID)
				assert.Equal(t, next == "relay-a", m.Redelivery, "%s a redelivery only from A's own next run", op.OpID)
			}
		})
	}
}
