package mysql_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/internal/legacytest"
	"github.com/go-trustlog/trustlog/internal/sqlstore/storetest"
	"github.com/go-trustlog/trustlog/ledger"
)

// collations returns the collation of each text column of a table.
func collations(t *testing.T, s *storetest.Store, table string) map[string]string {
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
func definitions(t *testing.T, s *storetest.Store, table string) []string {
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

// openV1 opens a store at url in schema v1 (utf8mb4_bin, PAD SPACE, the
// publishing state in the operation row).
func openV1(t *testing.T, url string) *storetest.Store {
	t.Helper()
	s := storetest.OpenRaw(t, url)
	require.NoError(t, s.MigrateUpTo(context.Background(), "00001"))
	return s
}

// sealed returns conformance.NewOp(doid, i), sealed.
func sealed(t *testing.T, doid string, i int) *core.Operation {
	t.Helper()
	op := conformance.NewOp(doid, i)
	require.NoError(t, op.Seal(nil))
	return op
}

// heldInStrictReads reads every partition above its cursor in strict
// order and returns, by op_id, whether each operation is held.
func heldInStrictReads(t *testing.T, s core.Store) map[string]bool {
	t.Helper()
	ctx := context.Background()
	ps, err := s.Partitions(ctx)
	require.NoError(t, err)
	held := map[string]bool{}
	for _, p := range ps {
		recs, err := s.ReadPartition(ctx, core.ReadParams{Part: p.Part, After: p.Cursor, Limit: 100, Strict: true})
		require.NoError(t, err)
		for _, r := range recs {
			held[r.Op.OpID] = r.Held
		}
	}
	return held
}

// TestMigrateToByteForByte: a store at schema v1 (utf8mb4_bin, PAD SPACE)
// holding DOIDs and a cursor name that differ from others only by trailing
// spaces is migrated in place: every row, cursor and checkpoint is kept
// byte for byte, and afterwards those values compare byte for byte (strict
// order, lookups, cursor keys).
func TestMigrateToByteForByte(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openV1(t, mysqltest.NewDatabase(t))
	require.Equal(t, "utf8mb4_bin", collations(t, s, "operation")["doid"], "schema v1")

	published := sealed(t, "x", 1)
	failing := sealed(t, "x", 2)
	dead := sealed(t, "y ", 3)
	next, spaced, upper := sealed(t, "x", 4), sealed(t, "x ", 5), sealed(t, "X", 6)
	ops := []*core.Operation{published, failing, dead, next, spaced, upper}
	pubSeq := s.InsertOld(t, published, storetest.OldState{State: 3})
	s.InsertOld(t, failing, storetest.OldState{State: 2, Attempts: 1, LastError: "poison", Due: time.Now().Add(time.Hour)})
	s.InsertOld(t, dead, storetest.OldState{State: 4, Attempts: 1, LastError: "rejected"})
	for _, op := range []*core.Operation{next, spaced, upper} {
		s.InsertOld(t, op, storetest.OldState{})
	}
	require.NoError(t, s.SetCursor(ctx, "operation_scan", "42"))
	require.NoError(t, s.SetCursor(ctx, "tail ", "7"))
	// The previous release's ledger had sequenced the published one.
	s.Exec(t, `UPDATE {{.Op}} SET leaf_index = 0 WHERE seq = ?`, pubSeq)
	leaf := tlog.RecordHash([]byte("leaf"))
	s.Exec(t, `INSERT INTO {{.Hash}} (idx, hash) VALUES (0, ?)`, leaf[:])
	s.Exec(t, `UPDATE {{.Tree}} SET size = 1 WHERE id = 1`)
	note := "trustlog.example/log\n1\nroot=\n\n— trustlog.example/log sig \n"
	require.NoError(t, s.SaveCheckpoint(ctx, ledger.StoredCheckpoint{Size: 1, Root: tlog.RecordHash([]byte("leaf")), Note: []byte(note)}))

	var n int
	require.NoError(t, s.DB().QueryRow(`SELECT COUNT(*) FROM operation WHERE doid = '10.1000/x'`).Scan(&n))
	require.Equal(t, 4, n, "schema v1 pads: 10.1000/x matches 10.1000/x  too")

	tables := []string{"operation", "trustlog_cursor", "trustlog_checkpoint", "trustlog_hash", "trustlog_tree"}
	defs := map[string][]string{}
	for _, table := range tables {
		defs[table] = definitions(t, s, table)
	}
	opCursor, err := s.Cursor(ctx, "operation_scan")
	require.NoError(t, err)

	// migrate up, in place
	require.NoError(t, s.Migrate(ctx))
	list, err := s.MigrationStatus(ctx)
	require.NoError(t, err)
	files, err := filepath.Glob("migrations/*.up.sql") // one per migration; down files undo them
	require.NoError(t, err)
	assert.Len(t, list, len(files)+1, "every migration is known: the files and the positions migration")
	for _, m := range list {
		assert.True(t, m.Applied, m.Name)
	}
	for _, table := range []string{"operation", "trustlog_cursor", "trustlog_checkpoint", "trustlog_partition", "trustlog_retries", "trustlog_relay"} {
		cols := collations(t, s, table)
		require.NotEmpty(t, cols, table)
		for col, coll := range cols {
			assert.True(t, noPad[coll], "%s.%s has NO PAD binary collation, not %s", table, col, coll)
		}
	}
	for _, table := range tables {
		after := definitions(t, s, table)
		if table == "operation" {
			// The publishing columns went and the partition came: the
			// columns kept are as they were.
			kept := map[string]bool{}
			for _, d := range after {
				kept[d] = true
			}
			for _, d := range defs[table] {
				col := strings.SplitN(d, " | ", 2)[0]
				switch col {
				case "state", "attempts", "due_at", "claim_token", "prev_token", "last_error", "published_at", "trustlog_status":
					continue
				}
				assert.True(t, kept[d], "operation.%s kept as it was: %s", col, d)
			}
			continue
		}
		assert.Equal(t, defs[table], after, "%s: only collations change", table)
	}

	// Every row is kept as it was.
	for _, op := range ops {
		r, err := s.Get(ctx, op.OpID)
		require.NoError(t, err)
		assert.Equal(t, *op, r.Op, "%s kept", op.OpID)
	}
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
	assert.Equal(t, int64(len(ops)), size, "the rest were sequenced after the old leaf")
	pub, err := s.Get(ctx, published.OpID)
	require.NoError(t, err)
	assert.Equal(t, int64(0), pub.LeafIndex)
	assert.Equal(t, core.StatePublished, pub.State)

	// And values now compare byte for byte.
	require.NoError(t, s.DB().QueryRow(`SELECT COUNT(*) FROM operation WHERE doid = '10.1000/x'`).Scan(&n))
	assert.Equal(t, 3, n, "10.1000/x  is another object")
	f, err := s.Get(ctx, failing.OpID)
	require.NoError(t, err)
	assert.Equal(t, core.StateRetrying, f.State)
	held := heldInStrictReads(t, s)
	assert.Equal(t, map[string]bool{next.OpID: true, spaced.OpID: false, upper.OpID: false}, held,
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
	st, err := s.Stats(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Migrate(ctx))
	st2, err := s.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, st.Counts, st2.Counts)
}

// TestMigrateToByteForByteResumes: MySQL commits DDL statement by
// statement, so a crash can leave migration 2 with its first table
// converted and the others not; the next Migrate runs it again and
// finishes.
func TestMigrateToByteForByteResumes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openV1(t, mysqltest.NewDatabase(t))
	failing, spaced := sealed(t, "x", 1), sealed(t, "x ", 2)
	s.InsertOld(t, failing, storetest.OldState{State: 2, Attempts: 1, LastError: "poison", Due: time.Now().Add(time.Hour)})
	s.InsertOld(t, spaced, storetest.OldState{})
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
			assert.True(t, noPad[coll], "%s.%s has NO PAD binary collation, not %s", table, col, coll)
		}
	}
	for _, op := range []*core.Operation{failing, spaced} {
		r, err := s.Get(ctx, op.OpID)
		require.NoError(t, err)
		assert.Equal(t, op.DOID, r.Op.DOID)
	}
	assert.Equal(t, map[string]bool{spaced.OpID: false}, heldInStrictReads(t, s),
		"10.1000/x and 10.1000/x  are two objects")
	_, err = s.Cursor(ctx, "tail")
	assert.ErrorIs(t, err, core.ErrNotFound)
}

// TestMigrateResumesEachStep: a Migrate that died after any statement of
// the partition and index migrations (MySQL commits DDL one statement at
// a time) is finished by the next one.
func TestMigrateResumesEachStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, name := range []string{"00003_partitions.up.sql", "00005_derived_state.up.sql", "00006_find_indexes.up.sql"} {
		src, err := os.ReadFile("migrations/" + name)
		require.NoError(t, err)
		for k := 1; ; k++ {
			s := storetest.OpenRaw(t, mysqltest.NewDatabase(t))
			require.NoError(t, s.MigrateUpTo(ctx, fmt.Sprintf("%05d", mustAtoi(t, name[:5])-1)))
			tmpl, err := template.New("m").Parse(string(src))
			require.NoError(t, err)
			var b strings.Builder
			require.NoError(t, tmpl.Execute(&b, s.Names()))
			stmts := strings.Split(b.String(), "--bun:split")
			if k >= len(stmts) {
				break
			}
			// The first k statements ran, on one connection as bun runs
			// them, then the process died.
			conn, err := s.DB().Conn(ctx)
			require.NoError(t, err)
			for _, q := range stmts[:k] {
				_, err := conn.ExecContext(ctx, q)
				require.NoError(t, err, "%s: %s", name, q)
			}
			conn.Close()
			require.NoError(t, s.Migrate(ctx), "%s after %d statements", name, k)
			op := sealed(t, "after", 1)
			require.NoError(t, s.Insert(ctx, nil, []*core.Operation{op}), name)
			st, err := s.Stats(ctx)
			require.NoError(t, err, name)
			assert.Equal(t, int64(1), st.Counts[core.StatePending], name)
		}
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
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
	s := storetest.Open(t, url)
	for table, cols := range map[string][]string{
		"operation":        {"op_id", "doid", "op_actor", "producer_id", "do_prefix", "do_repository", "op_hash", "sign"},
		"trustlog_cursor":  {"cursor_key", "cursor_value"},
		"trustlog_retries": {"doid", "last_error"},
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
