package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/sqlstore/storetest"
)

// record records n operations through the store, in one transaction.
func record(t *testing.T, s *storetest.Store, from, n int) {
	t.Helper()
	c, err := core.NewClient(s.Driver, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	ops := make([]*core.Operation, n)
	for i := range ops {
		ops[i] = conformance.NewOp(fmt.Sprintf("obj-%d", (from+i)%7), from+i)
	}
	require.NoError(t, c.Record(context.Background(), ops...))
}

// runDown runs a migration's down file as the migrator would, statement
// by statement.
func runDown(t *testing.T, s *storetest.Store, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("migrations", name+".tx.down.sql"))
	require.NoError(t, err)
	for _, stmt := range strings.Split(string(b), "--bun:split") {
		s.Exec(t, stmt)
	}
	s.Exec(t, `DELETE FROM `+s.Names().Migrations+` WHERE name = ?`, strings.SplitN(name, "_", 2)[0])
}

// hashMap is a tlog.HashReader over hashes kept in memory.
type hashMap map[int64]tlog.Hash

func (m hashMap) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m[x]
	}
	return out, nil
}

// checkLog checks that the store's n operations have positions 0…n-1 in
// seq order and that its Merkle tree is the tree of those leaves.
func checkLog(t *testing.T, s *storetest.Store, n int) {
	t.Helper()
	ctx := context.Background()
	recs, mem := leafTree(t, s, n)
	for i, r := range recs {
		require.Equal(t, int64(i), r.LeafIndex)
		if i > 0 {
			require.Less(t, recs[i-1].Seq, r.Seq, "positions in seq order")
		}
	}
	size, err := s.TreeSize(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(n), size)
	want, err := tlog.TreeHash(int64(n), mem)
	require.NoError(t, err)
	got, err := tlog.TreeHash(int64(n), core.NewHashReader(ctx, s))
	require.NoError(t, err)
	assert.Equal(t, want, got, "the stored tree is the tree of the leaves")
}

// leafTree reads the store's first n leaves and computes their stored
// hashes in memory.
func leafTree(t *testing.T, s *storetest.Store, n int) ([]core.Record, hashMap) {
	t.Helper()
	recs, err := s.Leaves(context.Background(), 0, n+1)
	require.NoError(t, err)
	require.Len(t, recs, n)
	mem := hashMap{}
	for i, r := range recs {
		leaf, err := r.Op.AppendSealed(nil)
		require.NoError(t, err)
		hs, err := tlog.StoredHashes(int64(i), leaf, mem)
		require.NoError(t, err)
		for j, h := range hs {
			mem[tlog.StoredHashIndex(0, int64(i))+int64(j)] = h
		}
	}
	return recs, mem
}

// TestUpgradeFromRowPositions: a store of the schema before 000025 and
// 00006, whose positions are the operation rows' leaf_index column,
// keeps every position and its tree when Migrate moves them to the
// positions table, and the operations it had not sequenced are queued and
// get the next positions.
func TestUpgradeFromRowPositions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.Open(t, postgrestest.NewSchema(t))
	record(t, s, 0, 20)
	n, err := core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	require.Equal(t, 20, n)
	// Back to the previous schema, as its release left stores: positions
	// in the rows, no queue and no trigger.
	runDown(t, s, "00007_queue_in_the_insert")
	runDown(t, s, "00006_positions_out_of_row")
	runDown(t, s, "000025_position_tables")
	var inRows int
	require.NoError(t, s.DB().QueryRow(s.SQL(t, `SELECT COUNT(*) FROM {{.Op}} WHERE leaf_index IS NOT NULL`)).Scan(&inRows))
	require.Equal(t, 20, inRows, "the previous schema holds the positions in the rows")
	// Recorded by the previous release after its last sequencing.
	insertElsewhere(t, s, "-again", 5)

	require.NoError(t, s.Migrate(ctx))
	n, err = core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	assert.Equal(t, 5, n, "the previous release's unsequenced operations, and only they, get positions")
	checkLog(t, s, 25)
	problems, err := s.SchemaProblems(ctx)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// TestUpgradeToQueueInTheInsert: from 000025's statement trigger, which
// queued every insert, to the store's INSERT queueing its own rows
// (00007): what the previous release queued is sequenced once, and after
// the upgrade both the store's operations and those inserted by hand
// are, each exactly once.
func TestUpgradeToQueueInTheInsert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.Open(t, postgrestest.NewSchema(t))
	record(t, s, 0, 10)
	n, err := core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	require.Equal(t, 10, n)
	runDown(t, s, "00007_queue_in_the_insert")
	// Recorded under the previous schema, queued by its trigger.
	insertElsewhere(t, s, "-before", 3)
	var queued int
	require.NoError(t, s.DB().QueryRow(s.SQL(t, `SELECT COUNT(*) FROM {{.Unsequenced}}`)).Scan(&queued))
	require.Equal(t, 3, queued, "the statement trigger queued them")

	require.NoError(t, s.Migrate(ctx))
	record(t, s, 10, 2)
	insertElsewhere(t, s, "-after", 2)
	n, err = core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	assert.Equal(t, 7, n, "each operation queued once: by the old trigger, the store's INSERT or the new trigger")
	checkLog(t, s, 17)
	problems, err := s.SchemaProblems(ctx)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// TestOperationsDeletedBeforeTheirPosition: operations deleted by hand
// while still queued, more of them than a batch and before every live
// one, do not stop the sequencer (each pass would take their seqs first
// and find no row): a short read drops them from the queue and reads
// again, and every remaining operation gets its position; a role that
// may only read gets the same operations and changes nothing. A store looks
// at its first short read (a relay started after the deletion, here) and
// then at most every 10 s (a relay already running).
func TestOperationsDeletedBeforeTheirPosition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := postgrestest.NewSchema(t)
	s := storetest.Open(t, u)
	record(t, s, 0, 10)
	s.Exec(t, `DELETE FROM {{.Op}} WHERE seq IN (SELECT seq FROM {{.Op}} ORDER BY seq LIMIT 6)`)
	var queued int
	require.NoError(t, s.DB().QueryRow(s.SQL(t, `SELECT COUNT(*) FROM {{.Unsequenced}}`)).Scan(&queued))
	require.Equal(t, 10, queued, "the queue still holds the deleted operations' seqs")

	// A role that may only read (an auditor's verify) reads the
	// operations there are and changes nothing.
	schema := s.Names().Schema
	role := schema + "_reader"
	db := postgrestest.DB(t)
	_, err := db.Exec(`CREATE ROLE "` + role + `"`)
	require.NoError(t, err)
	t.Cleanup(func() {
		db.Exec(`DROP OWNED BY "` + role + `"`)
		db.Exec(`DROP ROLE "` + role + `"`)
	})
	for _, g := range []string{`GRANT USAGE ON SCHEMA "%[1]s" TO "%[2]s"`, `GRANT SELECT ON ALL TABLES IN SCHEMA "%[1]s" TO "%[2]s"`} {
		_, err := db.Exec(fmt.Sprintf(g, schema, role))
		require.NoError(t, err)
	}
	reader := storetest.OpenRaw(t, u+"&role="+role)
	recs, err := reader.Unsequenced(ctx, 0, 100)
	require.NoError(t, err)
	assert.Len(t, recs, 4)
	_, err = reader.DB().ExecContext(ctx, s.SQL(t, `DELETE FROM {{.Unsequenced}}`))
	require.Error(t, err, "the reader may not write")
	require.NoError(t, s.DB().QueryRow(s.SQL(t, `SELECT COUNT(*) FROM {{.Unsequenced}}`)).Scan(&queued))
	require.Equal(t, 10, queued, "the reader changed nothing")

	n, err := core.SequenceAll(ctx, storetest.OpenRaw(t, u), 4)
	require.NoError(t, err)
	assert.Equal(t, 4, n, "every operation still there, past a batch of deleted ones")
	require.NoError(t, s.DB().QueryRow(s.SQL(t, `SELECT COUNT(*) FROM {{.Unsequenced}}`)).Scan(&queued))
	assert.Zero(t, queued)
	checkLog(t, s, 4)
}

// TestInsertQueuesWithoutNotify: with notify=false the INSERT has no
// NOTIFY to ride with and still queues its operations, in both of its
// forms (a VALUES list, and the arrays of 16 operations or more).
func TestInsertQueuesWithoutNotify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.Open(t, postgrestest.NewSchema(t)+"&notify=false")
	record(t, s, 0, 1)
	record(t, s, 1, 20)
	n, err := core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	assert.Equal(t, 21, n)
	checkLog(t, s, 21)
}

// TestSchemaProblemsNameTheQueueTrigger: the store's own INSERT queues
// its operations whatever the trigger's state; an operation someone else
// inserts while the queue trigger is disabled gets no position.
// SchemaProblems says so (disabled, then dropped), and the repair
// docs/operating.md gives queues it again.
func TestSchemaProblemsNameTheQueueTrigger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.Open(t, postgrestest.NewSchema(t))
	problems, err := s.SchemaProblems(ctx)
	require.NoError(t, err)
	assert.Empty(t, problems, "as migrated")

	s.Exec(t, `ALTER TABLE {{.Op}} DISABLE TRIGGER {{.Prefix}}trustlog_queue`)
	problems, err = s.SchemaProblems(ctx)
	require.NoError(t, err)
	require.Len(t, problems, 1)
	assert.Contains(t, problems[0], "trustlog_queue is disabled")
	record(t, s, 0, 3)
	n, err := core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "the store's INSERT queues its own operations")
	insertElsewhere(t, s, "-by-hand", 2)
	n, err = core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	assert.Zero(t, n, "inserted by hand without the trigger: not queued, not sequenced")

	// The repair of docs/operating.md.
	s.Exec(t, `ALTER TABLE {{.Op}} ENABLE TRIGGER {{.Prefix}}trustlog_queue`)
	s.Exec(t, `INSERT INTO {{.Unsequenced}} (seq) SELECT o.seq FROM {{.Op}} AS o
		WHERE NOT EXISTS (SELECT 1 FROM {{.Position}} AS x WHERE x.seq = o.seq) ON CONFLICT DO NOTHING`)
	problems, err = s.SchemaProblems(ctx)
	require.NoError(t, err)
	assert.Empty(t, problems)
	n, err = core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	checkLog(t, s, 5)
	insertElsewhere(t, s, "-with-the-trigger", 2)
	n, err = core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "queued by the trigger")

	s.Exec(t, `DROP TRIGGER {{.Prefix}}trustlog_queue ON {{.Op}}`)
	problems, err = s.SchemaProblems(ctx)
	require.NoError(t, err)
	require.Len(t, problems, 1)
	assert.Contains(t, problems[0], "trustlog_queue is missing")
}

// insertElsewhere inserts copies of the store's first n operations (op_id
// + suffix) as an application writing the table by hand would: without
// the queued column, in one statement.
func insertElsewhere(t *testing.T, s *storetest.Store, suffix string, n int) {
	t.Helper()
	s.Exec(t, `INSERT INTO {{.Op}} (op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor, producer_id,
		hash_alg, request_body_hash, response_body_hash, created_at, op_hash, signer, sign, updated_at, part)
		SELECT op_id || '`+suffix+`', op_source, op_type, doid, do_prefix, do_repository, op_actor, producer_id,
		hash_alg, request_body_hash, response_body_hash, created_at, op_hash, signer, sign, updated_at, part
		FROM {{.Op}} ORDER BY seq LIMIT `+strconv.Itoa(n))
}

// TestQueueTriggerOutsideTheStoresSession: an operation inserted by
// another session (the original SDK's, another service's), whose
// search_path does not name the store's tables and whose role may insert
// operations but has no grant on the queue, is queued and sequenced all
// the same: the trigger's function keeps the migration's search_path and
// runs as its owner.
func TestQueueTriggerOutsideTheStoresSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, err := url.Parse(postgrestest.NewSchema(t))
	require.NoError(t, err)
	q := u.Query()
	schema := q.Get("schema")
	// The store names its tables unqualified and finds them through the
	// connection's search_path.
	q.Del("schema")
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db := postgrestest.DB(t)
	_, err = db.Exec(`CREATE SCHEMA "` + schema + `"`)
	require.NoError(t, err)
	s := storetest.Open(t, u.String())
	record(t, s, 0, 2)

	role := schema + "_app"
	_, err = db.Exec(`CREATE ROLE "` + role + `"`)
	require.NoError(t, err)
	t.Cleanup(func() {
		db.Exec(`DROP OWNED BY "` + role + `"`)
		db.Exec(`DROP ROLE "` + role + `"`)
	})
	for _, g := range []string{
		`GRANT USAGE ON SCHEMA "%[1]s" TO "%[2]s"`,
		`GRANT SELECT, INSERT ON "%[1]s".operation TO "%[2]s"`,
		`GRANT USAGE ON ALL SEQUENCES IN SCHEMA "%[1]s" TO "%[2]s"`,
	} {
		_, err := db.Exec(fmt.Sprintf(g, schema, role))
		require.NoError(t, err)
	}
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback()
	_, err = tx.Exec(`SET LOCAL search_path = public`)
	require.NoError(t, err)
	_, err = tx.Exec(`SET LOCAL ROLE "` + role + `"`)
	require.NoError(t, err)
	_, err = tx.Exec(`INSERT INTO "` + schema + `".operation (op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor,
		producer_id, hash_alg, request_body_hash, response_body_hash, created_at, op_hash, signer, sign, updated_at, part)
		SELECT op_id || '-elsewhere', op_source, op_type, doid, do_prefix, do_repository, op_actor,
		producer_id, hash_alg, request_body_hash, response_body_hash, created_at, op_hash, signer, sign, updated_at, part
		FROM "` + schema + `".operation ORDER BY seq LIMIT 1`)
	require.NoError(t, err, "an insert from another session, as another role")
	require.NoError(t, tx.Commit())

	n, err := core.SequenceAll(ctx, s, 0)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "queued by the trigger, whoever inserted")
}
