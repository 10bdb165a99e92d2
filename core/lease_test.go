package core_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// stallingStore answers a member's heartbeats and lease renewals only
// until stall is set, then never (until the call's context ends): a
// process whose renewals fall behind under load, while its other
// statements still go through.
type stallingStore struct {
	core.Store
	stall atomic.Bool
}

func (s *stallingStore) wait(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func (s *stallingStore) Heartbeat(ctx context.Context, member string, lease time.Duration) ([]string, error) {
	if s.stall.Load() {
		return nil, s.wait(ctx)
	}
	return s.Store.Heartbeat(ctx, member, lease)
}

func (s *stallingStore) RenewPartitions(ctx context.Context, member string, lease time.Duration) ([]core.Partition, error) {
	if s.stall.Load() {
		return nil, s.wait(ctx)
	}
	return s.Store.RenewPartitions(ctx, member, lease)
}

// TestStalledRenewalStopsSending: a relay whose lease renewals stall
// stops sending before its leases can end, so the relay that takes its
// partitions over neither sends alongside it nor sends again what it
// sent: with operations recorded throughout, every one reaches a sink
// without deduplication exactly once. Without the rule the stalled relay
// sends until its cursor advance is fenced, and the new owner sends that
// batch again.
func TestStalledRenewalStopsSending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := sqlitetest.URL(t)
	a := &stallingStore{Store: sqlitetest.Open(t, url)}
	b := sqlitetest.Open(t, url)
	sink := memory.New(memory.Faults{Latency: 20 * time.Millisecond})
	cfg := func(node string) core.EngineConfig {
		return core.EngineConfig{Node: node, Lease: 2 * time.Second, PublishTimeout: time.Second,
			PollInterval: 10 * time.Millisecond, BatchSize: 8, Logger: quietLogger(t)}
	}
	ea, err := core.NewEngine(a, sink, cfg("a"))
	require.NoError(t, err)
	require.NoError(t, ea.Start(ctx))
	defer ea.Stop(ctx)
	ops := recordN(t, a, 20, 20)
	require.Eventually(t, func() bool { return sink.Len() == 20 }, testenv.Patience(t), 10*time.Millisecond)

	// From now on a's renewals never return; b joins and takes the
	// partitions once a's leases end. Operations keep coming meanwhile.
	a.stall.Store(true)
	t0 := time.Now()
	eb, err := core.NewEngine(b, sink, cfg("b"))
	require.NoError(t, err)
	require.NoError(t, eb.Start(ctx))
	defer eb.Stop(ctx)
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A steady load (a writer's pace, not a wait): two operations
		// every 10 ms.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			more := recordN(t, b, 2, 20)
			mu.Lock()
			ops = append(ops, more...)
			mu.Unlock()
			// Until b owns every partition: a's leases have ended.
			parts, err := b.Partitions(ctx)
			if err == nil && ownedBy(parts, "b") == len(parts) {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-testenv.Context(t).Done():
		t.Fatal("b never took every partition")
	}
	close(stop)
	t.Logf("%s: b owns every partition; %d operations recorded", time.Since(t0), len(ops))
	mu.Lock()
	all := ops
	mu.Unlock()
	require.Eventually(t, func() bool {
		got := map[string]bool{}
		for _, m := range sink.Messages() {
			got[m.ID] = true
		}
		for _, op := range all {
			if !got[op.OpID] {
				return false
			}
		}
		return true
	}, testenv.Patience(t), 10*time.Millisecond, "b publishes everything")
	t.Logf("%s: b published everything", time.Since(t0))
	seen := map[string]int{}
	for _, m := range sink.Messages() {
		seen[m.ID]++
	}
	copies := 0
	for _, op := range all {
		if seen[op.OpID] != 1 {
			copies++
		}
	}
	assert.Zero(t, copies, "of %d operations, %d reached the sink other than once", len(all), copies)
}

// ownedBy counts the partitions whose owner is member (or a worker of it).
func ownedBy(parts []core.Partition, member string) int {
	n := 0
	for _, p := range parts {
		if p.Owner == member || len(p.Owner) > len(member) && p.Owner[:len(member)+1] == member+"/" {
			n++
		}
	}
	return n
}

// TestGivenBackPartitionTakenSoon: a member below its fair share takes a
// partition given back by another member at once, not a third of a lease
// later at its next regular balancing round. With a lease of an hour, a
// regular round is twenty minutes away: the test only passes if the short
// rounds of a member below its share exist. (A relay joining the fleet
// is the case that matters: every partition the others give back for it
// publishes nothing until it is taken.)
func TestGivenBackPartitionTakenSoon(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	s := sqlitetest.Open(t, sqlitetest.URL(t))
	parts, err := s.Partitions(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(parts), 4, "the default partition count")
	// Another member, alive for the hour, holds all partitions but one.
	_, err = s.Heartbeat(ctx, "x", time.Hour)
	require.NoError(t, err)
	var held []core.Partition
	for _, p := range parts[1:] {
		got, err := s.TakePartition(ctx, p.Part, "x", time.Hour)
		require.NoError(t, err)
		held = append(held, got)
	}
	e, err := core.NewEngine(s, memory.New(memory.Faults{}), core.EngineConfig{Node: "b", Lease: time.Hour,
		PublishTimeout: time.Second, Logger: quietLogger(t)})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	defer e.Stop(context.WithoutCancel(ctx))
	owns := func(n int) func() bool {
		return func() bool {
			ps, err := s.Partitions(ctx)
			return err == nil && ownedBy(ps, "b") == n
		}
	}
	require.Eventually(t, owns(1), testenv.Patience(t), 10*time.Millisecond, "b takes the free partition")

	// x gives one back (as a member above its share does when b joins).
	require.NoError(t, s.ReleasePartition(ctx, held[0].Part, held[0].Generation))
	require.Eventually(t, owns(2), testenv.Patience(t), 10*time.Millisecond,
		"b, below its share, takes the partition given back")
}
