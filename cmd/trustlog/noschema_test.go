package main

import (
	"context"
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/internal/testenv"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
)

// emptyStores are stores on each database that nothing has migrated: a
// new SQLite file, a PostgreSQL schema that does not exist yet, an empty
// MySQL/MariaDB database.
var emptyStores = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "empty.db") }},
	{"postgres", func(t *testing.T) string { return postgrestest.NewSchema(t) }},
	{"mysql", func(t *testing.T) string { return mysqltest.NewDatabase(t) }},
}

const noSchemaMsg = "the store has no trustlog schema: run `trustlog migrate up`"

// TestNoSchemaIsAUsageError: status, record and relay on a store that was
// never migrated say so and how to fix it, exit 2 at once (the relay does
// not take it for a database still starting and retry), instead of failing
// with the database's "no such table: operation".
func TestNoSchemaIsAUsageError(t *testing.T) {
	t.Parallel()
	for _, db := range emptyStores {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			store := db.url(t)
			for _, args := range [][]string{
				{"status"},
				{"status", "--json"},
				{"record"},
				{"cursor", "status"},
				{"dead", "list"},
			} {
				code, out, errOut := cli(t, ctx, opLine(1, "noschema")+"\n", append([]string{"--store", store}, args...)...)
				assert.Equal(t, exitUsage, code, "%v: %s", args, errOut)
				assert.Contains(t, errOut, noSchemaMsg, args)
				assert.Empty(t, out, args)
			}

			// The relay: exits 2 promptly, does not retry.
			rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
			defer rcancel()
			start := time.Now()
			code, _, errOut := cli(t, rctx, "", "--store", store, "--sink", "memory://", "relay", "--poll", "10ms")
			assert.Equal(t, exitUsage, code, errOut)
			assert.Contains(t, errOut, noSchemaMsg+" (or --migrate)")
			assert.NotContains(t, errOut, "retrying")
			assert.Less(t, time.Since(start), 10*time.Second, "the relay gave up at once")

			// Likewise while the sink is down: not a wait for the broker.
			rctx, rcancel = context.WithTimeout(ctx, 20*time.Second)
			defer rcancel()
			start = time.Now()
			code, _, errOut = cli(t, rctx, "", "--store", store, "--sink", "pulsar://127.0.0.1:1/persistent://public/default/noschema?operation_timeout=300ms", "relay")
			assert.Equal(t, exitUsage, code, errOut)
			assert.Contains(t, errOut, noSchemaMsg+" (or --migrate)")
			assert.Less(t, time.Since(start), 10*time.Second, "the relay gave up at once")

			// Checking created nothing: status still finds no schema, and
			// relay --migrate creates it and runs.
			code, _, errOut = cli(t, ctx, "", "--store", store, "status")
			assert.Equal(t, exitUsage, code, errOut)
			// The relay counts as running once it published an operation
			// recorded after its migration (a cancel during the migration
			// itself would rightly exit 1).
			rctx, rcancel = context.WithCancel(ctx)
			type result struct {
				code   int
				stderr string
			}
			done := make(chan result, 1)
			go func() {
				code, _, errOut := cli(t, rctx, "", "--store", store, "--sink", "memory://", "relay", "--migrate", "--poll", "10ms")
				done <- result{code, errOut}
			}()
			require.Eventually(t, func() bool {
				// The schema is whole once every migration is applied
				// (MySQL's DDL is not transactional: the tables appear one
				// by one, and the partitions before the last migrations).
				code, out, _ := cli(t, ctx, "", "--store", store, "migrate", "status")
				return code == 0 && strings.Contains(out, "applied") && !strings.Contains(out, "pending")
			}, testenv.Patience(t), 50*time.Millisecond, "relay --migrate creates the schema")
			code, _, errOut = cli(t, ctx, opLine(1, "schema")+"\n", "--store", store, "record")
			require.Equal(t, 0, code, errOut)
			require.Eventually(t, func() bool {
				_, out, _ := cli(t, ctx, "", "--store", store, "status", "--json")
				var st struct{ Counts map[string]int64 }
				return json.Unmarshal([]byte(out), &st) == nil && st.Counts["published"] == 1
			}, testenv.Patience(t), 20*time.Millisecond, "the relay publishes what is recorded after its migration")
			rcancel()
			r := <-done
			assert.Equal(t, 0, r.code, r.stderr)
		})
	}
}

// TestOlderSchemaIsAUsageError: a store whose schema lacks a migration
// this build has (a release upgraded without `migrate up`) is refused at
// open, naming the migration and the fix, instead of failing its first
// INSERT with PostgreSQL's "column queued does not exist"; `migrate up`
// applies it and the commands work.
func TestOlderSchemaIsAUsageError(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := postgrestest.NewSchema(t)
	code, _, errOut := cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	u, err := url.Parse(store)
	require.NoError(t, err)
	schema := `"` + u.Query().Get("schema") + `"`
	// The schema as the previous release left it: 00007 undone.
	db := postgrestest.DB(t)
	for _, q := range []string{
		`DROP TRIGGER trustlog_queue ON ` + schema + `.operation`,
		`ALTER TABLE ` + schema + `.operation DROP COLUMN queued`,
		`DELETE FROM ` + schema + `.trustlog_migrations WHERE name = '00007'`,
	} {
		_, err := db.ExecContext(ctx, q)
		require.NoError(t, err, q)
	}

	for _, args := range [][]string{{"record"}, {"status"}} {
		code, out, errOut := cli(t, ctx, opLine(1, "older")+"\n", append([]string{"--store", store}, args...)...)
		assert.Equal(t, exitUsage, code, "%v: %s", args, errOut)
		assert.Contains(t, errOut, "the store's schema is older than this trustlog (not applied: 00007_queue_in_the_insert): run `trustlog migrate up`", args)
		assert.NotContains(t, errOut, "does not exist", args)
		assert.Empty(t, out, args)
	}
	code, _, errOut = cli(t, ctx, "", "--store", store, "--sink", "memory://", "relay", "--poll", "10ms")
	assert.Equal(t, exitUsage, code, errOut)
	assert.Contains(t, errOut, "run `trustlog migrate up` (or --migrate)")

	code, _, errOut = cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	code, _, errOut = cli(t, ctx, opLine(1, "older")+"\n", "--store", store, "record")
	require.Equal(t, 0, code, errOut)
	code, out, errOut := cli(t, ctx, "", "--store", store, "status", "--json")
	require.Equal(t, 0, code, errOut)
	var st struct{ Counts map[string]int64 }
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	assert.Equal(t, int64(1), st.Counts["pending"], out)
}
