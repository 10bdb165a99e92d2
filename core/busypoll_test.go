package core_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// lateStore records one more operation right after the sequencer's first
// append, once the read that ran alongside that append has returned: the
// pass that gave the first position cannot have seen it.
type lateStore struct {
	core.Store
	reads   atomic.Int32
	readTwo chan struct{} // closed when the second Unsequenced returned
	once    sync.Once
	late    func()
}

func (s *lateStore) Unsequenced(ctx context.Context, afterSeq int64, limit int) ([]core.Record, error) {
	recs, err := s.Store.Unsequenced(ctx, afterSeq, limit)
	if s.reads.Add(1) == 2 {
		close(s.readTwo)
	}
	return recs, err
}

func (s *lateStore) Append(ctx context.Context, oldSize int64, seqs []int64, hashes []tlog.Hash) error {
	err := s.Store.Append(ctx, oldSize, seqs, hashes)
	s.once.Do(func() {
		<-s.readTwo
		s.late()
	})
	return err
}

// TestBusySequencerLooksAgainSoon: on a store without commit
// notifications, a sequencer whose pass gave positions looks again soon
// (busyPoll), not a PollInterval later: under a steady load, operations
// committed during a pass would otherwise wait a whole poll. With polls
// an hour apart, only that short look sequences the operation committed
// just after the pass read.
func TestBusySequencerLooksAgainSoon(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	inner := sqlitetest.Open(t, sqlitetest.URL(t))
	c, err := core.NewClient(inner, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	second := conformance.NewOp("busy", 1)
	st := &lateStore{Store: inner, readTwo: make(chan struct{}), late: func() {
		if err := c.Record(ctx, second); err != nil {
			t.Error(err)
		}
	}}
	sink := memory.New(memory.Faults{})
	e, err := core.NewEngine(st, sink, core.EngineConfig{PollInterval: time.Hour, RetryPoll: time.Hour, Logger: quietLogger(t)})
	require.NoError(t, err)
	require.NoError(t, c.Record(ctx, conformance.NewOp("busy", 0)))
	require.NoError(t, e.Start(ctx))
	defer e.Stop(context.WithoutCancel(ctx))
	require.NoError(t, sink.WaitFor(ctx, 2), "the operation committed after the first pass is published without a wake")
}
