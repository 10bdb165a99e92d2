package sqlstore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
	"github.com/go-trustlog/trustlog/internal/sqlstore/storetest"
)

// TestMigrateDownRefusesAStepWithoutDown: a group holding a migration with
// no down file is not rolled back at all, and the refusal says why.
func TestMigrateDownRefusesAStepWithoutDown(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "down.db"))
	require.NoError(t, err)
	defer s.Close()
	files := fstest.MapFS{}
	dir := filepath.Join("..", "..", "drivers", "sqlite", "migrations")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = &fstest.MapFile{Data: b}
	}
	files["00006_extra.tx.up.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE {{.Prefix}}extra (x INTEGER);`)}
	sqlstore.SetMigrations(s.Store, files)

	require.ErrorIs(t, s.CheckSchema(ctx), sqlstore.ErrNoSchema, "never migrated")
	list, err := s.MigrationList(ctx)
	require.NoError(t, err)
	require.Len(t, list, 6)
	for _, m := range list[:5] {
		assert.True(t, m.Reversible, m.Name)
	}
	assert.Equal(t, "00003_positions", list[2].Name, "the Go migration is listed with the files")
	assert.False(t, list[5].Reversible)
	assert.Contains(t, list[5].Reason, "no down migration")

	require.NoError(t, s.Migrate(ctx))
	require.NoError(t, s.CheckSchema(ctx))
	_, err = s.MigrateDown(ctx)
	var refused *sqlstore.DownRefusedError
	require.ErrorAs(t, err, &refused)
	assert.ErrorIs(t, err, sqlstore.ErrDownRefused)
	assert.Equal(t, "00006_extra", refused.Migration)
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

	_, err = s.DB().Exec(`DELETE FROM trustlog_cursor WHERE cursor_key = 'export'`)
	require.NoError(t, err)
	all := []string{"00005_find_indexes", "00004_derived_state", "00003_positions", "00002_partitions", "00001_schema"}
	names, err = s.MigrateDown(ctx)
	require.NoError(t, err, "the log identity Migrate wrote does not count")
	assert.Equal(t, all, names)
	assert.ErrorIs(t, s.CheckSchema(ctx), sqlstore.ErrNoSchema)
	_, err = s.Stats(ctx)
	assert.Error(t, err, "the operation table is gone")
	require.NoError(t, s.Migrate(ctx), "and comes back")
	require.NoError(t, s.CheckSchema(ctx))
	_, err = s.Stats(ctx)
	require.NoError(t, err)

	// A store holding an operation: refused by the newest migration
	// that would lose it (the indexes of 00005 would come back, the
	// columns of 00004 would not).
	op := &core.Operation{Source: core.SourceDOIP, Type: core.OpCreate, DOID: "10.1/x", DOPrefix: "10.1", Actor: "a", ProducerID: "p"}
	require.NoError(t, op.Seal(nil))
	require.NoError(t, s.Insert(ctx, nil, []*core.Operation{op}))
	_, err = s.MigrateDown(ctx)
	var refused *sqlstore.DownRefusedError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, "00004_derived_state", refused.Migration)
	assert.Contains(t, refused.Reason, "the operation table holds operations")
	_, err = s.DB().Exec(`DELETE FROM operation`)
	require.NoError(t, err)
	names, err = s.MigrateDown(ctx)
	require.NoError(t, err)
	assert.Equal(t, all, names)
}

// separateGroups records the migrations of a MySQL store as applied by
// three releases: 00001, 00002, then the partitions and the search's
// indexes (00003 to 00006), so that MigrateDown undoes them in three
// steps.
func separateGroups(t *testing.T, s *storetest.Store) {
	t.Helper()
	_, err := s.DB().Exec(`UPDATE trustlog_migrations SET group_id = CASE WHEN name = '00001' THEN 1 WHEN name = '00002' THEN 2 ELSE 3 END`)
	require.NoError(t, err)
	names, err := s.MigrateDown(context.Background())
	require.NoError(t, err, "an empty store's partitions roll back")
	assert.Equal(t, []string{"00006_find_indexes", "00005_derived_state", "00004_positions", "00003_partitions"}, names)
}

// TestMySQLNopadDown: 00002_nopad_collation rolls back to utf8mb4_bin
// unless two cursor names (or op_ids) differ only in trailing spaces,
// which PAD SPACE would make one key.
func TestMySQLNopadDown(t *testing.T) {
	ctx := context.Background()
	url := storetest.MySQLURL(t)
	s := storetest.Open(t, url)
	db := s.DB()
	collation := func() string {
		var c string
		require.NoError(t, db.QueryRow(`SELECT COLLATION_NAME FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'trustlog_cursor' AND COLUMN_NAME = 'cursor_key'`).Scan(&c))
		return c
	}
	nopad := collation()
	require.NotEqual(t, "utf8mb4_bin", nopad)
	require.NoError(t, s.SetCursor(ctx, "k", "1"))
	require.NoError(t, s.SetCursor(ctx, "k ", "2"))
	// As on a store migrated before 00002 existed: 00002 is a group of
	// its own.
	separateGroups(t, s)

	_, err := s.MigrateDown(ctx)
	var refused *sqlstore.DownRefusedError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, "00002_nopad_collation", refused.Migration)
	assert.Contains(t, refused.Reason, "two cursor names differ only in trailing spaces")
	assert.Equal(t, nopad, collation(), "nothing changed")
	list, err := s.MigrationList(ctx)
	require.NoError(t, err)
	require.Len(t, list, 6)
	assert.False(t, list[1].Reversible)
	assert.False(t, list[0].Reversible, "cursors are stored")
	assert.False(t, list[2].Applied)

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
	s := storetest.Open(t, storetest.MySQLURL(t))
	db := s.DB()
	separateGroups(t, s)
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
	_, err := db.Exec(`DELETE FROM operation WHERE op_id = 'legacy-2  '`)
	require.NoError(t, err)
	names, err := s.MigrateDown(ctx)
	require.NoError(t, err, "one op_id with trailing spaces clashes with nothing")
	assert.Equal(t, []string{"00002_nopad_collation"}, names)
}
