package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// driverMigrations are the names (version_comment) of a driver's
// migrations, from its migrations directory.
func driverMigrations(t *testing.T, driver string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "drivers", driver, "migrations", "*.up.sql"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var names []string
	for _, f := range files {
		name := filepath.Base(f)
		names = append(names, name[:strings.Index(name, ".")])
	}
	return names
}

// migrationRow finds a migration's line in `migrate list` or `migrate
// status` output.
func migrationRow(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	t.Fatalf("no line for %s in:\n%s", name, out)
	return ""
}

// TestMigrateDownAndList: `migrate list` names every migration with its
// state and whether it can be undone; `migrate down` on an empty store
// removes the schema, and on a store holding operations refuses (exit 2,
// with the reason) and changes nothing.
func TestMigrateDownAndList(t *testing.T) {
	t.Parallel()
	for _, db := range emptyStores {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			store := db.url(t)
			names := driverMigrations(t, db.name)
			run := func(stdin string, args ...string) (int, string, string) {
				return cli(t, ctx, stdin, append([]string{"--store", store}, args...)...)
			}

			// Nothing applied yet: list shows every migration pending, and
			// down has nothing to undo.
			code, out, errOut := run("", "migrate", "list")
			require.Equal(t, 0, code, errOut)
			for _, n := range names {
				assert.Regexp(t, `^`+n+`\s+pending\s+yes`, migrationRow(t, out, n))
			}
			code, out, errOut = run("", "migrate", "down")
			require.Equal(t, 0, code, errOut)
			assert.Contains(t, out, "nothing to roll back")

			code, _, errOut = run("", "migrate", "up")
			require.Equal(t, 0, code, errOut)
			code, out, errOut = run("", "migrate", "list")
			require.Equal(t, 0, code, errOut)
			assert.Contains(t, out, "MIGRATION")
			for _, n := range names {
				assert.Regexp(t, `^`+n+`\s+applied\s+yes`, migrationRow(t, out, n))
			}

			// Empty store: down removes the schema.
			code, out, errOut = run("", "migrate", "down")
			require.Equal(t, 0, code, errOut)
			for _, n := range names {
				assert.Contains(t, out, "rolled back "+n+"\n")
			}
			code, out, errOut = run("", "migrate", "status")
			require.Equal(t, 0, code, errOut)
			for _, n := range names {
				assert.Regexp(t, `^`+n+`\s+pending`, migrationRow(t, out, n))
			}
			assert.NotContains(t, out, "applied ")
			code, _, errOut = run("", "status")
			assert.Equal(t, exitUsage, code, errOut)
			assert.Contains(t, errOut, noSchemaMsg, "the operation table is gone")

			// Up again, record: down is refused, with the reason, and
			// nothing changes.
			code, _, errOut = run("", "migrate", "up")
			require.Equal(t, 0, code, errOut)
			code, _, errOut = run(opLine(1, "down-1")+"\n"+opLine(2, "down-2")+"\n", "record")
			require.Equal(t, 0, code, errOut)
			code, out, errOut = run("", "migrate", "down")
			assert.Equal(t, exitUsage, code, errOut)
			assert.Empty(t, out)
			assert.Contains(t, errOut, "refused")
			assert.Contains(t, errOut, "the operation table holds operations")
			assert.Contains(t, errOut, "nothing was changed")
			code, out, errOut = run("", "migrate", "status")
			require.Equal(t, 0, code, errOut)
			for _, n := range names {
				assert.Regexp(t, `^`+n+`\s+applied`, migrationRow(t, out, n))
			}
			code, out, errOut = run("", "status", "--json")
			require.Equal(t, 0, code, errOut)
			var st struct{ Counts map[string]int64 }
			require.NoError(t, json.Unmarshal([]byte(out), &st))
			assert.Equal(t, int64(2), st.Counts["pending"], "the operations are kept")
			code, out, errOut = run("", "migrate", "list")
			require.Equal(t, 0, code, errOut)
			assert.Regexp(t, regexp.QuoteMeta(names[0])+`\s+applied\s+no: the operation table holds operations`, migrationRow(t, out, names[0]))
		})
	}
}
