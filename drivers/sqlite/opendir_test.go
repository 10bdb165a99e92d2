package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
)

// TestOpenMissingDirectory: a database file in a directory that does not
// exist is a configuration error naming the directory (SQLite itself says
// "unable to open database file: out of memory (14)").
func TestOpenMissingDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "no-such-dir")
	_, err := sqlite.Open(context.Background(), "sqlite:"+filepath.Join(dir, "x.db"))
	require.Error(t, err)
	var ce *core.ConfigError
	assert.True(t, errors.As(err, &ce), "%T: %v", err, err)
	assert.Contains(t, err.Error(), dir)
	assert.Contains(t, err.Error(), "does not exist")
	assert.NotContains(t, err.Error(), "out of memory")
}
