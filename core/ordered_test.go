package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// sequencedSink offers an ordered stream over the memory sink, fails one
// operation's first offer, and checks, at every later batch of the ordered
// stream, that the failure was recorded before it went out.
type sequencedSink struct {
	*memory.Sink
	store  core.Store
	failID string

	mu         sync.Mutex
	failed     bool
	orderedLen []int // sizes of the ordered batches offered after the failure
	violations []string
}

func (s *sequencedSink) OrderedStream(context.Context) (int64, bool, error) { return 0, true, nil }
func (s *sequencedSink) EndOrderedStream()                                  {}

func (s *sequencedSink) Publish(ctx context.Context, msgs []core.Message) []error {
	s.mu.Lock()
	failedBefore := s.failed
	s.mu.Unlock()
	if failedBefore && msgs[0].Ordered {
		r, err := s.store.Get(ctx, s.failID)
		s.mu.Lock()
		s.orderedLen = append(s.orderedLen, len(msgs))
		// In flight under its first claim: the failure is unrecorded (a
		// retry's claim counts a second attempt).
		if err != nil || r.State == core.StateInFlight && r.Attempts == 1 {
			s.violations = append(s.violations, fmt.Sprintf("ordered batch from seq %d went out while the failure was unrecorded (state %v, err %v)", msgs[0].Seq, r.State, err))
		}
		s.mu.Unlock()
	}
	errs := s.Sink.Publish(ctx, msgs)
	for i, m := range msgs {
		if m.ID == s.failID {
			s.mu.Lock()
			if !s.failed {
				s.failed = true
				errs[i] = errors.New("injected: not stored")
			}
			s.mu.Unlock()
		}
	}
	return errs
}

// slowSettle records outcomes late (and fails the first settle with a
// failure in it, when failSettle is set), over a real SQLite store.
type slowSettle struct {
	core.Store
	delay   time.Duration
	failFor int // settles with a failure in them to fail
	mu      sync.Mutex
}

func (s *slowSettle) Settle(ctx context.Context, p core.SettleParams) (core.SettleResult, error) {
	time.Sleep(s.delay)
	s.mu.Lock()
	fail := s.failFor > 0 && len(p.Failed) > 0
	if fail {
		s.failFor--
	}
	s.mu.Unlock()
	if fail {
		return core.SettleResult{}, errors.New("injected: settle lost")
	}
	return s.Store.Settle(ctx, p)
}

// TestOrderedStreamRecordsFailuresFirst: after a batch of the ordered
// stream in which a message failed, the next ordered batch goes out only
// once the failure is recorded (if the store fails, the engine tries
// again); if it cannot be recorded within a lease, the run takes the next
// run number first (renumber), so that the failed message's claim belongs
// to an older run. Otherwise a crash in between would have
// the next run re-send the failed message as a redelivery below the
// sink's last sequence, which a deduplicating broker drops: a loss.
// TestRenumberedClaimsAreNotRedeliveries shows that next run.
func TestOrderedStreamRecordsFailuresFirst(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failFor int
	}{{"recorded", 0}, {"settle-recovers", 1}, {"settle-fails", 1 << 30}} {
		t.Run(tc.name, func(t *testing.T) {
			lost := tc.failFor > 1
			t.Parallel()
			ctx := context.Background()
			db := sqlitetest.Open(t, sqlitetest.URL(t))
			ops := make([]*core.Operation, 60)
			for i := range ops {
				ops[i] = conformance.NewOp(fmt.Sprintf("obj-%d", i%6), i)
			}
			c, err := core.NewClient(db, nil, core.Config{Strategy: core.StoreOnly})
			require.NoError(t, err)
			require.NoError(t, c.Record(ctx, ops...))

			store := &slowSettle{Store: db, delay: 100 * time.Millisecond, failFor: tc.failFor}
			sink := &sequencedSink{Sink: memory.New(memory.Faults{}), store: db, failID: ops[4].OpID}
			e, err := core.NewEngine(store, sink, core.EngineConfig{
				Node:    "relay-o",
				Workers: 1, BatchSize: 10, Lease: 2 * time.Second, PublishTimeout: time.Second,
				PollInterval: 10 * time.Millisecond, RetryPoll: 10 * time.Millisecond,
				BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})),
			})
			require.NoError(t, err)
			require.NoError(t, e.Start(ctx))
			defer e.Stop(context.Background())
			started := runNumber(t, db, "relay-o")
			require.Eventually(t, func() bool {
				st, err := db.Stats(ctx)
				return err == nil && st.Counts[core.StatePublished] == int64(len(ops))
			}, testenv.Patience(t), 10*time.Millisecond, "everything is published")

			sink.mu.Lock()
			defer sink.mu.Unlock()
			assert.NotEmpty(t, sink.orderedLen, "the ordered stream went on after the failure")
			if lost {
				// Stream ids: batch number << 20 | seq (the first run
				// number's batches numbered from 1).
				run := latestRun(t, db, "relay-o")
				assert.Equal(t, int64(started+1), run.N[0], "renumbered once, before the next ordered batch")
				assert.Equal(t, [][3]int64{{int64(started), 1, 1<<20 | 4}}, run.M,
					"the old number's claims up to seq 4 of its first batch, below the failed 5, went out in order")
				return
			}
			assert.Empty(t, sink.violations)
			assert.Equal(t, started, runNumber(t, db, "relay-o"), "nothing to renumber")
		})
	}
}

// lostClaimCommit commits the second claim of the ordered stream that
// finds rows but reports an error, as a connection lost during COMMIT
// does.
type lostClaimCommit struct {
	core.Store
	mu     sync.Mutex
	claims int
}

func (s *lostClaimCommit) Claim(ctx context.Context, p core.ClaimParams) ([]core.Record, error) {
	recs, err := s.Store.Claim(ctx, p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && len(recs) > 0 && p.Token&1 == 1 {
		if s.claims++; s.claims == 2 {
			return nil, errors.New("injected: connection lost during COMMIT")
		}
	}
	return recs, err
}

// runNumber reads a node's run number (epoch) from its run history.
func runNumber(t *testing.T, s core.Store, node string) int {
	t.Helper()
	return int(latestRun(t, s, node).N[0])
}

// recordedRun is a run in a node's run history: its number and first
// batch number, and [number, first batch, mark] for earlier numbers.
type recordedRun struct {
	N   [2]int64
	M   [][3]int64
	End string
}

// latestRun reads the latest run of a node's run history cursor.
func latestRun(t *testing.T, s core.Store, node string) recordedRun {
	t.Helper()
	c, err := s.Cursor(context.Background(), "trustlog.node."+node+".epoch")
	require.NoError(t, err)
	var h struct{ Runs []recordedRun }
	require.NoError(t, json.Unmarshal([]byte(c.Value), &h), c.Value)
	require.NotEmpty(t, h.Runs)
	return h.Runs[0]
}

// TestOrderedStreamRenumbersOnUnknownClaim: when an ordered claim's
// outcome is unknown (it may have committed), the run takes the next run
// number and the ordered stream goes on above the lost claim's rows;
// every operation is still published (the lost claim's rows after their
// lease).
func TestOrderedStreamRenumbersOnUnknownClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t, sqlitetest.URL(t))
	ops := make([]*core.Operation, 60)
	for i := range ops {
		ops[i] = conformance.NewOp(fmt.Sprintf("obj-%d", i%6), i)
	}
	c, err := core.NewClient(db, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	require.NoError(t, c.Record(ctx, ops[:10]...))
	store := &lostClaimCommit{Store: db}
	sink := &orderedCounter{Sink: memory.New(memory.Faults{})}
	e, err := core.NewEngine(store, sink, core.EngineConfig{
		Node:    "relay-u",
		Workers: 1, BatchSize: 10, Lease: time.Second, PublishTimeout: 500 * time.Millisecond,
		PollInterval: 10 * time.Millisecond, RetryPoll: 10 * time.Millisecond, Logger: quietLogger(t),
	})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	defer e.Stop(context.Background())
	started := runNumber(t, db, "relay-u")
	require.Eventually(t, func() bool { return sink.Len() == 10 }, testenv.Patience(t), 10*time.Millisecond)
	require.NoError(t, c.Record(ctx, ops[10:]...)) // the next ordered claim is the lost one
	require.Eventually(t, func() bool {
		st, err := db.Stats(ctx)
		return err == nil && st.Counts[core.StatePublished] == int64(len(ops))
	}, testenv.Patience(t), 10*time.Millisecond, "everything is published, the lost claim's rows after their lease")
	sink.mu.Lock()
	defer sink.mu.Unlock()
	assert.Greater(t, sink.ordered, 10, "the ordered stream went on after the lost claim")
	run := latestRun(t, db, "relay-u")
	assert.Equal(t, int64(started+1), run.N[0], "renumbered once")
	assert.Equal(t, [][3]int64{{int64(started), 1, 1<<20 | 10}}, run.M,
		"the old number's claims up to seq 10 of its first batch, below the lost second one, went out in order")
}

// orderedCounter counts the messages offered as part of the ordered stream.
type orderedCounter struct {
	*memory.Sink
	mu      sync.Mutex
	ordered int
}

func (s *orderedCounter) OrderedStream(context.Context) (int64, bool, error) { return 0, true, nil }
func (s *orderedCounter) EndOrderedStream()                                  {}

func (s *orderedCounter) Publish(ctx context.Context, msgs []core.Message) []error {
	s.mu.Lock()
	for _, m := range msgs {
		if m.Ordered {
			s.ordered++
		}
	}
	s.mu.Unlock()
	return s.Sink.Publish(ctx, msgs)
}

// streamLog is a sequenced sink that records, in order, what it is
// offered.
type streamLog struct {
	mu   sync.Mutex
	msgs []core.Message
}

func (s *streamLog) OrderedStream(context.Context) (int64, bool, error) { return 0, true, nil }
func (s *streamLog) EndOrderedStream()                                  {}
func (s *streamLog) Close() error                                       { return nil }
func (s *streamLog) Publish(_ context.Context, msgs []core.Message) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, msgs...)
	return make([]error, len(msgs))
}

// TestOrderedBatchStaysInOneBlock: a stream id carries the low 20 bits of
// the seq under the batch's number, so a batch whose seqs cross a
// multiple of 2^20 would send a lower id after a higher one (which a
// deduplicating broker drops as a copy). The engine sends the batch up to
// the crossing and gives the rest back for the next batch: every
// operation goes out once, in the ordered stream, with rising ids.
func TestOrderedBatchStaysInOneBlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t, sqlitetest.URL(t))
	recordN(t, db, 1, 1)
	res, err := db.DB().ExecContext(ctx, "UPDATE sqlite_sequence SET seq = ? WHERE name LIKE '%operation'", 1<<20-5)
	require.NoError(t, err)
	n, err := res.RowsAffected()
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	recordN(t, db, 10, 10) // seqs 2^20-4 ... 2^20+5
	sink := &streamLog{}
	e, err := core.NewEngine(db, sink, core.EngineConfig{Node: "relay-b", Workers: 1, BatchSize: 20,
		PollInterval: 10 * time.Millisecond, RetryPoll: 10 * time.Millisecond, Logger: quietLogger(t)})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	defer e.Stop(ctx)
	untilCount(t, db, core.StatePublished, 11, 10*time.Second)

	sink.mu.Lock()
	defer sink.mu.Unlock()
	require.Len(t, sink.msgs, 11, "every operation once")
	var last int64
	seqs := make([]int64, len(sink.msgs))
	for i, m := range sink.msgs {
		seqs[i] = m.Seq
		assert.True(t, m.Ordered, "seq %d in the ordered stream", m.Seq)
		assert.Greater(t, m.StreamSeq, last, "seq %d: ids rise in the order they are sent", m.Seq)
		last = m.StreamSeq
	}
	assert.Equal(t, []int64{1, 1<<20 - 4, 1<<20 - 3, 1<<20 - 2, 1<<20 - 1, 1 << 20, 1<<20 + 1, 1<<20 + 2, 1<<20 + 3, 1<<20 + 4, 1<<20 + 5}, seqs)
}
