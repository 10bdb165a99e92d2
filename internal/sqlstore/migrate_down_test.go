package sqlstore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

// TestMigrateDownRefusesAStepWithoutDown: a group holding a migration with
// no down file is not rolled back at all, and the refusal says why.
func TestMigrateDownRefusesAStepWithoutDown(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "down.db"))
	require.NoError(t, err)
	defer s.Close()
	files := fstest.MapFS{}
	for _, name := range []string{"00001_schema.tx.up.sql", "00001_schema.tx.down.sql"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "drivers", "sqlite", "migrations", name))
		require.NoError(t, err)
		files[name] = &fstest.MapFile{Data: b}
	}
	files["00002_extra.tx.up.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE {{.Prefix}}extra (x INTEGER);`)}
	sqlstore.SetMigrations(s.Store, files)

	require.ErrorIs(t, s.CheckSchema(ctx), sqlstore.ErrNoSchema, "never migrated")
	list, err := s.MigrationList(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.True(t, list[0].Reversible)
	assert.False(t, list[1].Reversible)
	assert.Contains(t, list[1].Reason, "no down migration")

	require.NoError(t, s.Migrate(ctx))
	require.NoError(t, s.CheckSchema(ctx))
	_, err = s.MigrateDown(ctx)
	var refused *sqlstore.DownRefusedError
	require.ErrorAs(t, err, &refused)
	assert.ErrorIs(t, err, sqlstore.ErrDownRefused)
	assert.Equal(t, "00002_extra", refused.Migration)
	assert.Contains(t, err.Error(), "no down migration")
	assert.Contains(t, err.Error(), "nothing was changed")
	assert.Empty(t, refused.RolledBack)
	ms, err := s.MigrationStatus(ctx)
	require.NoError(t, err)
	for _, m := range ms {
		assert.True(t, m.Applied, m.Name)
	}
	_, err = s.Stats(ctx)
	assert.NoError(t, err, "the schema is still there")
}

// TestMigrateDownSQLite: an empty store rolls back to no schema (CheckSchema
// says so, status lists every migration pending, nothing is created by
// asking); one holding a cursor is refused.
func TestMigrateDownSQLite(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "down.db"))
	require.NoError(t, err)
	defer s.Close()
	names, err := s.MigrateDown(ctx)
	require.NoError(t, err)
	assert.Empty(t, names, "nothing applied, nothing rolled back")
	ms, err := s.MigrationStatus(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	var tables int
	require.NoError(t, s.DB().QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'`).Scan(&tables))
	assert.Zero(t, tables, "status, down and the schema check create nothing")

	require.NoError(t, s.Migrate(ctx))
	require.NoError(t, s.SetCursor(ctx, "export", "7"))
	_, err = s.MigrateDown(ctx)
	assert.ErrorIs(t, err, sqlstore.ErrDownRefused)
	assert.Contains(t, err.Error(), "the cursor table holds cursors")
	c, err := s.Cursor(ctx, "export")
	require.NoError(t, err)
	assert.Equal(t, "7", c.Value)

	_, err = s.DB().Exec(`DELETE FROM trustlog_cursor`)
	require.NoError(t, err)
	names, err = s.MigrateDown(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"00001_schema"}, names)
	assert.ErrorIs(t, s.CheckSchema(ctx), sqlstore.ErrNoSchema)
	_, err = s.Stats(ctx)
	assert.Error(t, err, "the operation table is gone")
	require.NoError(t, s.Migrate(ctx), "and comes back")
	require.NoError(t, s.CheckSchema(ctx))
}

// TestMySQLNopadDown: 00002_nopad_collation rolls back to utf8mb4_bin
// unless two cursor names (or op_ids) differ only in trailing spaces,
// which PAD SPACE would make one key.
func TestMySQLNopadDown(t *testing.T) {
	ctx := context.Background()
	url := mysqltest.NewDatabase(t)
	s := mysqltest.Open(t, url)
	db := s.DB()
	collation := func() string {
		var c string
		require.NoError(t, db.QueryRow(`SELECT COLLATION_NAME FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'trustlog_cursor' AND COLUMN_NAME = 'cursor_key'`).Scan(&c))
		return c
	}
	nopad := collation()
	require.NotEqual(t, "utf8mb4_bin", nopad)
	// As on a store migrated before 00002 existed: 00002 is a group of
	// its own.
	_, err := db.Exec(`UPDATE trustlog_migrations SET group_id = group_id + 1 WHERE name = '00002'`)
	require.NoError(t, err)
	require.NoError(t, s.SetCursor(ctx, "k", "1"))
	require.NoError(t, s.SetCursor(ctx, "k ", "2"))

	_, err = s.MigrateDown(ctx)
	var refused *sqlstore.DownRefusedError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, "00002_nopad_collation", refused.Migration)
	assert.Contains(t, refused.Reason, "two cursor names differ only in trailing spaces")
	assert.Equal(t, nopad, collation(), "nothing changed")
	list, err := s.MigrationList(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.False(t, list[1].Reversible)
	assert.False(t, list[0].Reversible, "cursors are stored")

	_, err = db.Exec("DELETE FROM trustlog_cursor WHERE cursor_key = 'k '")
	require.NoError(t, err)
	names, err := s.MigrateDown(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"00002_nopad_collation"}, names, "the last group only")
	assert.Equal(t, "utf8mb4_bin", collation())
	c, err := s.Cursor(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "1", c.Value)
	require.NoError(t, s.CheckSchema(ctx), "00001 is still applied")

	_, err = s.MigrateDown(ctx)
	assert.ErrorIs(t, err, sqlstore.ErrDownRefused, "00001: the cursor is kept")
	require.NoError(t, s.Migrate(ctx))
	assert.Equal(t, nopad, collation(), "up again")
	require.NoError(t, s.CheckSchema(ctx))
}

// TestMySQLNopadDownOpIDs: op_ids (the original SDK's adopted ones may be
// any text) that differ only in trailing spaces refuse the rollback of
// 00002 too, whether or not the one without spaces exists.
func TestMySQLNopadDownOpIDs(t *testing.T) {
	ctx := context.Background()
	s := mysqltest.Open(t, mysqltest.NewDatabase(t))
	db := s.DB()
	_, err := db.Exec(`UPDATE trustlog_migrations SET group_id = group_id + 1 WHERE name = '00002'`)
	require.NoError(t, err)
	insert := func(id string) {
		t.Helper()
		_, err := db.Exec(`INSERT INTO operation (op_id, op_actor, doid, producer_id, op_source, op_type, do_prefix, created_at, updated_at)
			VALUES (?, 'a', '10.1/x', 'p', 'DOIP', 'Op.Create', '10.1', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))`, id)
		require.NoError(t, err)
	}
	for _, ids := range [][]string{{"legacy-1", "legacy-1 "}, {"legacy-2 ", "legacy-2  "}} {
		_, err := db.Exec(`DELETE FROM operation`)
		require.NoError(t, err)
		for _, id := range ids {
			insert(id)
		}
		_, err = s.MigrateDown(ctx)
		var refused *sqlstore.DownRefusedError
		require.ErrorAs(t, err, &refused, "%q", ids)
		assert.Equal(t, "00002_nopad_collation", refused.Migration)
		assert.Contains(t, refused.Reason, "two op_ids differ only in trailing spaces")
	}
	_, err = db.Exec(`DELETE FROM operation WHERE op_id = 'legacy-2  '`)
	require.NoError(t, err)
	names, err := s.MigrateDown(ctx)
	require.NoError(t, err, "one op_id with trailing spaces clashes with nothing")
	assert.Equal(t, []string{"00002_nopad_collation"}, names)
}
