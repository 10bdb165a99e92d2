package mysql_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/migrate"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/internal/legacytest"
	"github.com/go-trustlog/trustlog/ledger"
)

// migrateTo applies the driver's migrations numbered up to upto (the SQL
// files in ./migrations), with the options the store's Migrate uses, as a
// store of that schema version had them.
func migrateTo(t *testing.T, s *mysql.Store, upto int) {
	t.Helper()
	ctx := context.Background()
	entries, err := os.ReadDir("migrations")
	require.NoError(t, err)
	fsys := fstest.MapFS{}
	for _, e := range entries {
		n, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		require.NoError(t, err, e.Name())
		if n > upto {
			continue
		}
		b, err := os.ReadFile("migrations/" + e.Name())
		require.NoError(t, err)
		fsys[e.Name()] = &fstest.MapFile{Data: b}
	}
	require.NotEmpty(t, fsys)
	ms := migrate.NewMigrations()
	require.NoError(t, ms.Discover(fsys))
	names := s.Names()
	m := migrate.NewMigrator(s.Bun(), ms, migrate.WithTableName(names.Migrations),
		migrate.WithLocksTableName(names.MigrationLocks), migrate.WithTemplateData(names),
		migrate.WithMarkAppliedOnSuccess(true))
	require.NoError(t, m.Init(ctx))
	_, err = m.Migrate(ctx)
	require.NoError(t, err)
}

// collations returns the collation of each text column of a table.
func collations(t *testing.T, s *mysql.Store, table string) map[string]string {
	t.Helper()
	rows, err := s.DB().Query(`SELECT COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLLATION_NAME IS NOT NULL`, table)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var col, coll string
		require.NoError(t, rows.Scan(&col, &coll))
		out[col] = coll
	}
	require.NoError(t, rows.Err())
	return out
}

// definitions returns every column of a table but its collation: type,
// nullability, default, extra, position.
func definitions(t *testing.T, s *mysql.Store, table string) []string {
	t.Helper()
	rows, err := s.DB().Query(`SELECT CONCAT_WS(' | ', COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COALESCE(COLUMN_DEFAULT, '<none>'),
		EXTRA, COALESCE(GENERATION_EXPRESSION, ''), CHARACTER_SET_NAME) FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, table)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		require.NoError(t, rows.Scan(&d))
		out = append(out, d)
	}
	require.NoError(t, rows.Err())
	return out
}

// noPad are the NO PAD binary collations migration 2 uses: MariaDB's and
// MySQL's.
var noPad = map[string]bool{"utf8mb4_nopad_bin": true, "utf8mb4_0900_bin": true}

// TestMigrateToByteForByte: a store at schema v1 (utf8mb4_bin, PAD SPACE)
// holding DOIDs and a cursor name that differ from others only by trailing
// spaces is migrated in place: every row, cursor and checkpoint is kept
// byte for byte, and afterwards those values compare byte for byte (strict
// order, lookups, cursor keys).
func TestMigrateToByteForByte(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := mysqltest.NewDatabase(t)
	s, err := mysql.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	migrateTo(t, s, 1)
	require.Equal(t, "utf8mb4_bin", collations(t, s, "operation")["doid"], "schema v1")

	c, err := core.NewClient(s, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	step := func(op *core.Operation, token int64, settle func(seq int64) core.SettleParams) {
		t.Helper()
		require.NoError(t, c.Record(ctx, op))
		got, err := s.Claim(ctx, core.ClaimParams{Token: token, Limit: 10, Lease: time.Minute})
		require.NoError(t, err)
		require.Len(t, got, 1)
		p := settle(got[0].Seq)
		p.Token = token
		_, err = s.Settle(ctx, p)
		require.NoError(t, err)
	}
	published := conformance.NewOp("x", 1)
	step(published, 1, func(seq int64) core.SettleParams { return core.SettleParams{Published: []int64{seq}} })
	failing := conformance.NewOp("x", 2)
	step(failing, 2, func(seq int64) core.SettleParams {
		return core.SettleParams{Failed: []core.Failure{{Seq: seq, Err: "poison", Delay: time.Hour}}}
	})
	dead := conformance.NewOp("y ", 3)
	step(dead, 3, func(seq int64) core.SettleParams {
		return core.SettleParams{Failed: []core.Failure{{Seq: seq, Err: "rejected", Dead: true}}}
	})
	next, spaced, upper := conformance.NewOp("x", 4), conformance.NewOp("x ", 5), conformance.NewOp("X", 6)
	require.NoError(t, c.Record(ctx, next, spaced, upper))
	require.NoError(t, s.SetCursor(ctx, "operation_scan", "42"))
	require.NoError(t, s.SetCursor(ctx, "tail ", "7"))
	pub, err := s.Get(ctx, published.OpID)
	require.NoError(t, err)
	require.NoError(t, s.Append(ctx, 0, []int64{pub.Seq}, []tlog.Hash{tlog.RecordHash([]byte("leaf"))}))
	note := "trustlog.example/log\n1\nroot=\n\n— trustlog.example/log sig \n"
	require.NoError(t, s.SaveCheckpoint(ctx, ledger.StoredCheckpoint{Size: 1, Root: tlog.RecordHash([]byte("leaf")), Note: []byte(note)}))

	var n int
	require.NoError(t, s.DB().QueryRow(`SELECT COUNT(*) FROM operation WHERE doid = '10.1000/x'`).Scan(&n))
	require.Equal(t, 4, n, "schema v1 pads: 10.1000/x matches 10.1000/x  too")

	scanAll := func() []core.Record {
		recs, err := s.Scan(ctx, core.ScanParams{Limit: 100})
		require.NoError(t, err)
		return recs
	}
	before := scanAll()
	tables := []string{"operation", "trustlog_cursor", "trustlog_checkpoint", "trustlog_hash", "trustlog_tree"}
	defs := map[string][]string{}
	for _, table := range tables {
		defs[table] = definitions(t, s, table)
	}
	require.Len(t, before, 6)
	opCursor, err := s.Cursor(ctx, "operation_scan")
	require.NoError(t, err)

	// migrate up, in place
	require.NoError(t, s.Migrate(ctx))
	list, err := s.MigrationStatus(ctx)
	require.NoError(t, err)
	files, err := filepath.Glob("migrations/*.up.sql") // one per migration; down files undo them
	require.NoError(t, err)
	assert.Len(t, list, len(files), "every migration is known")
	for _, m := range list {
		assert.True(t, m.Applied, m.Name)
	}
	for _, table := range []string{"operation", "trustlog_cursor", "trustlog_checkpoint"} {
		cols := collations(t, s, table)
		require.NotEmpty(t, cols)
		for col, coll := range cols {
			if col == "trustlog_status" {
				continue // derived, never compared by trustlog
			}
			assert.True(t, noPad[coll], "%s.%s has NO PAD binary collation, not %s", table, col, coll)
		}
	}

	for _, table := range tables {
		assert.Equal(t, defs[table], definitions(t, s, table), "%s: only collations change", table)
	}

	// Every row is kept as it was.
	after := scanAll()
	require.Equal(t, len(before), len(after))
	for i := range before {
		assert.Equal(t, before[i], after[i], "seq %d kept", before[i].Seq)
	}
	assert.Equal(t, []byte(spaced.DOID), []byte(after[4].Op.DOID), "the trailing space is kept")
	got, err := s.Cursor(ctx, "operation_scan")
	require.NoError(t, err)
	assert.Equal(t, opCursor, got)
	tail, err := s.Cursor(ctx, "tail ")
	require.NoError(t, err)
	assert.Equal(t, "7", tail.Value)
	cps, err := s.Checkpoints(ctx, ledger.CheckpointQuery{})
	require.NoError(t, err)
	require.Len(t, cps, 1)
	assert.Equal(t, note, string(cps[0].Note), "checkpoint notes are kept byte for byte")
	assert.Equal(t, tlog.RecordHash([]byte("leaf")), cps[0].Root)
	size, err := s.TreeSize(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), size)

	// And values now compare byte for byte.
	require.NoError(t, s.DB().QueryRow(`SELECT COUNT(*) FROM operation WHERE doid = '10.1000/x'`).Scan(&n))
	assert.Equal(t, 3, n, "10.1000/x  is another object")
	claimed, err := s.Claim(ctx, core.ClaimParams{Token: 4, Limit: 10, Lease: time.Minute, Strict: true})
	require.NoError(t, err)
	var claimedIDs []string
	for _, r := range claimed {
		claimedIDs = append(claimedIDs, r.Op.OpID)
	}
	assert.Equal(t, []string{spaced.OpID, upper.OpID}, claimedIDs,
		"the failing operation on 10.1000/x holds back its own object only")
	_, err = s.Get(ctx, spaced.OpID+" ")
	assert.ErrorIs(t, err, core.ErrNotFound)
	_, err = s.Cursor(ctx, "tail")
	assert.ErrorIs(t, err, core.ErrNotFound, `"tail" is another cursor than "tail "`)
	require.NoError(t, s.SetCursor(ctx, "tail", "8"))
	tail, err = s.Cursor(ctx, "tail ")
	require.NoError(t, err)
	assert.Equal(t, "7", tail.Value)
	k, err := s.Requeue(ctx, core.RequeueParams{OpIDs: []string{dead.OpID + " "}})
	require.NoError(t, err)
	assert.Zero(t, k)

	// Migrating again changes nothing.
	require.NoError(t, s.Migrate(ctx))
	assert.Len(t, scanAll(), len(before))
	assert.Equal(t, "utf8mb4_bin", collations(t, s, "operation")["trustlog_status"], "the derived status is left alone")
}

// TestMigrateToByteForByteResumes: MySQL commits DDL statement by
// statement, so a crash can leave migration 2 with its first table
// converted and the others not; the next Migrate runs it again and
// finishes.
func TestMigrateToByteForByteResumes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := mysqltest.NewDatabase(t)
	s, err := mysql.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	migrateTo(t, s, 1)
	ops := []*core.Operation{conformance.NewOp("x", 1), conformance.NewOp("x ", 2)}
	c, err := core.NewClient(s, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	require.NoError(t, c.Record(ctx, ops...))
	require.NoError(t, s.SetCursor(ctx, "tail ", "7"))

	// The first statement of migration 2 ran, then the process died.
	src, err := os.ReadFile("migrations/00002_nopad_collation.up.sql")
	require.NoError(t, err)
	tmpl, err := template.New("m").Parse(string(src))
	require.NoError(t, err)
	var b strings.Builder
	require.NoError(t, tmpl.Execute(&b, s.Names()))
	first := strings.Split(b.String(), "--bun:split")[0]
	_, err = s.DB().ExecContext(ctx, first)
	require.NoError(t, err)
	require.True(t, noPad[collations(t, s, "operation")["doid"]])
	require.Equal(t, "utf8mb4_bin", collations(t, s, "trustlog_cursor")["cursor_key"])

	require.NoError(t, s.Migrate(ctx))
	for _, table := range []string{"operation", "trustlog_cursor", "trustlog_checkpoint"} {
		for col, coll := range collations(t, s, table) {
			if col != "trustlog_status" {
				assert.True(t, noPad[coll], "%s.%s has NO PAD binary collation, not %s", table, col, coll)
			}
		}
	}
	for _, op := range ops {
		r, err := s.Get(ctx, op.OpID)
		require.NoError(t, err)
		assert.Equal(t, op.DOID, r.Op.DOID)
	}
	got, err := s.Claim(ctx, core.ClaimParams{Token: 1, Limit: 10, Lease: time.Minute, Strict: true})
	require.NoError(t, err)
	assert.Len(t, got, 2, "10.1000/x and 10.1000/x  are two objects")
	_, err = s.Cursor(ctx, "tail")
	assert.ErrorIs(t, err, core.ErrNotFound)
}

// TestUpgradeFromOriginalComparesByteForByte: tables adopted from the
// original SDK (converted to utf8mb4_bin on adoption) end with the NO PAD
// collation too.
func TestUpgradeFromOriginalComparesByteForByte(t *testing.T) {
	t.Parallel()
	url := mysqltest.NewDatabase(t)
	db := mysqltest.DB(t, url)
	for _, q := range originalDDL {
		_, err := db.Exec(q)
		require.NoError(t, err, q)
	}
	legacytest.Fill(t, db, legacytest.Tables{Operation: "operation", Cursor: "trustlog_cursor", Retry: "trustlog_retry"},
		func(int) string { return "?" })
	s := mysqltest.Open(t, url)
	for table, cols := range map[string][]string{
		"operation":       {"op_id", "doid", "op_actor", "producer_id", "do_prefix", "do_repository", "op_hash", "sign", "last_error"},
		"trustlog_cursor": {"cursor_key", "cursor_value"},
	} {
		got := collations(t, s, table)
		for _, col := range cols {
			assert.True(t, noPad[got[col]], "%s.%s has NO PAD binary collation, not %s", table, col, got[col])
		}
	}
	ctx := context.Background()
	c, err := s.Cursor(ctx, "operation_scan")
	require.NoError(t, err)
	assert.NotEmpty(t, c.Value, "the adopted cursor is kept")
	_, err = s.Cursor(ctx, "operation_scan ")
	assert.ErrorIs(t, err, core.ErrNotFound)
}
