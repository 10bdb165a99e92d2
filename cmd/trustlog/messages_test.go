package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMessagesDoNotMislead: what the CLI says in the corners a newcomer
// meets first is true.
func TestMessagesDoNotMislead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("an unknown scheme names packages that exist", func(t *testing.T) {
		t.Parallel()
		code, _, errOut := cli(t, ctx, "", "--store", "sqlite3:x.db", "status")
		assert.NotEqual(t, 0, code)
		assert.NotContains(t, errOut, "drivers/sqlite3", "there is no such package")
		assert.Contains(t, errOut, "drivers/sqlite")
	})
	t.Run("status --json has no zero time when nothing is pending", func(t *testing.T) {
		t.Parallel()
		store := newStore(t)
		code, out, errOut := cli(t, ctx, "", "--store", store, "status", "--json")
		require.Equal(t, 0, code, errOut)
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
		assert.NotContains(t, out, "0001-01-01")
		_, has := doc["oldest_unsettled"]
		assert.False(t, has, "omitted when nothing is unsettled: %s", out)
	})
}

// TestMigrateSaysWhatItDid: migrate up says it applied migrations when it
// did, and that the schema was up to date only when it was.
func TestMigrateSaysWhatItDid(t *testing.T) {
	t.Parallel()
	store := "sqlite:" + filepath.Join(t.TempDir(), "m.db")
	code, _, errOut := cli(t, context.Background(), "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, `"msg":"schema migrated"`)
	assert.NotContains(t, errOut, "up to date")
	code, _, errOut = cli(t, context.Background(), "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "schema is up to date")
}
