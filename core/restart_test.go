package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// TestRestartUnderTheSameNode: a relay that died holding its partitions
// (their leases an hour long) and comes back under the same node name
// takes them again at once, fencing the dead process's generation,
// instead of renewing leases it runs nothing for until they expire.
func TestRestartUnderTheSameNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := sqlitetest.Open(t, sqlitetest.URL(t))
	cfg := core.EngineConfig{Node: "relay-a", Lease: time.Hour, PollInterval: 10 * time.Millisecond, Logger: quietLogger(t)}
	first := memory.New(memory.Faults{})
	e1, err := core.NewEngine(store, first, cfg)
	require.NoError(t, err)
	require.NoError(t, e1.Start(ctx))
	recordN(t, store, 20, 20)
	require.Eventually(t, func() bool { return first.Len() == 20 }, testenv.Patience(t), 10*time.Millisecond)
	// A stop that cannot finish: calls aborted, partitions not given back,
	// as a process killed would leave them.
	dead, cancel := context.WithCancel(ctx)
	cancel()
	_ = e1.Stop(dead)
	before, err := store.Partitions(ctx)
	require.NoError(t, err)
	owned := 0
	for _, p := range before {
		if p.Owner == "relay-a" {
			owned++
		}
	}
	require.Positive(t, owned, "the stopped engine left partitions leased under its name")

	second := memory.New(memory.Faults{})
	e2, err := core.NewEngine(store, second, cfg)
	require.NoError(t, err)
	require.NoError(t, e2.Start(ctx))
	defer e2.Stop(ctx)
	ops := recordN(t, store, 20, 20)
	require.Eventually(t, func() bool {
		for _, op := range ops {
			if r, err := store.Get(ctx, op.OpID); err != nil || r.State != core.StatePublished {
				return false
			}
		}
		return true
	}, testenv.Patience(t), 10*time.Millisecond, "the restarted relay publishes at once, not after the hour-long leases")
	// (It may also send again the last batch the stopped engine sent but
	// could not record.)
	assert.GreaterOrEqual(t, second.Len(), 20)
	after, err := store.Partitions(ctx)
	require.NoError(t, err)
	for i, p := range after {
		if before[i].Owner == "relay-a" {
			assert.Greater(t, p.Generation, before[i].Generation, "partition %d taken again under a new generation", p.Part)
		}
	}
}
