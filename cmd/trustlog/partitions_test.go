package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

// TestPartitionsSet: the hand-over from the command line. Refused (exit
// 2, saying what to do, changing nothing) while operations wait to be
// published; done once a relay published them and stopped; a relay then
// publishes by the new partitions.
func TestPartitionsSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := "sqlite:" + filepath.Join(t.TempDir(), "parts.db")
	code, _, errOut := cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	records := func(from, n int) string {
		var in strings.Builder
		for i := from; i < from+n; i++ {
			in.WriteString(opLine(i, fmt.Sprintf("obj-%d", i%10)) + "\n")
		}
		return in.String()
	}
	code, _, errOut = cli(t, ctx, records(0, 40), "--store", store, "record")
	require.Equal(t, 0, code, errOut)
	s, err := core.OpenStore(ctx, store)
	require.NoError(t, err)
	_, err = core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	code, out, errOut := cli(t, ctx, "", "--store", store, "partitions", "set", "4")
	assert.Equal(t, exitUsage, code, errOut)
	assert.Contains(t, errOut, "40 operations with a position are not published yet")
	assert.Contains(t, errOut, "trustlog cursor status")
	assert.Empty(t, out)
	code, out, _ = cli(t, ctx, "", "--store", store, "cursor", "status")
	require.Equal(t, 0, code)
	assert.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 1+16, "nothing changed")

	code, errOut = relayUntilPublished(t, ctx, store, 40, "--sink", "memory://", "relay", "--poll", "10ms")
	require.Equal(t, 0, code, errOut)
	code, out, errOut = cli(t, ctx, "", "--store", store, "partitions", "set", "4")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "the store has 4 partitions (it had 16); 40 operations looked at\n", out)
	code, out, _ = cli(t, ctx, "", "--store", store, "cursor", "status")
	require.Equal(t, 0, code)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 1+4, out)
	for _, l := range lines[1:] {
		assert.Regexp(t, `^\d\s+39\s+0\s+`, l, "every cursor at the last position, no backlog")
	}

	code, _, errOut = cli(t, ctx, records(40, 10), "--store", store, "record")
	require.Equal(t, 0, code, errOut)
	code, errOut = relayUntilPublished(t, ctx, store, 50, "--sink", "memory://", "relay", "--poll", "10ms")
	require.Equal(t, 0, code, errOut)
	s, err = core.OpenStore(ctx, store)
	require.NoError(t, err)
	defer s.Close()
	recs, err := s.Scan(ctx, core.ScanParams{Limit: 100})
	require.NoError(t, err)
	require.Len(t, recs, 50)
	for _, r := range recs {
		assert.Equal(t, core.PartitionOf(r.Op.DOID, 4), r.Part, "seq %d", r.Seq)
		assert.Equal(t, core.StatePublished, r.State, "seq %d", r.Seq)
	}

	for _, args := range [][]string{{"partitions", "set", "0"}, {"partitions", "set", "many"}, {"partitions", "set"}, {"partitions"}} {
		code, _, errOut = cli(t, ctx, "", append([]string{"--store", store}, args...)...)
		assert.Equal(t, exitUsage, code, "%v: %s", args, errOut)
	}
}
