package sqlite

import (
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// now is the database clock in Unix microseconds. unixepoch('subsec')
// (SQLite >= 3.42) has millisecond resolution, enough for leases and
// backoff; created_at comes from Go with full microseconds.
const now = "CAST(unixepoch('subsec') * 1000000 AS INTEGER)"

// cols and the FROM clauses select records: the operation o with its
// retry row r and its partition p, the state derived from them.
const (
	cols = `SELECT ` + sqlstore.Columns
	// pendingCols select operations known to be pending, from o alone.
	pendingCols = `SELECT ` + sqlstore.PendingColumns
	from        = sqlstore.RecordFrom
	// retryJoin follows the retry table r in a FROM clause.
	retryJoin = ` JOIN {{.Op}} AS o ON o.seq = r.seq LEFT JOIN {{.Partition}} AS p ON p.part = o.part`
	// join follows the operation table o in a FROM clause.
	join     = ` LEFT JOIN {{.Retry}} AS r ON r.seq = o.seq LEFT JOIN {{.Partition}} AS p ON p.part = o.part`
	partCols = `SELECT part, cursor, generation, owner, expires_at FROM {{.Partition}}`
)

// heldExpr is strict order's condition on an operation o read above its
// partition's cursor: an earlier operation of its DOID waits in the retry
// table (dead ones do not count). The (doid, leaf_index) index answers it.
const heldExpr = `EXISTS (SELECT 1 FROM {{.Retry}} AS e INDEXED BY {{.Prefix}}trustlog_retries_doid
	WHERE e.doid = o.doid AND e.leaf_index < o.leaf_index AND e.dead = 0)`

// Every statement uses plain "?" parameters, bound in textual order. The
// database's single writer serialises every write. INDEXED BY pins the
// hot reads to their indexes: after ANALYZE on a big table the planner
// otherwise sometimes prefers a full scan.
var queries = sqlstore.Queries{
	Unsequenced: pendingCols + ` FROM {{.Op}} AS o INDEXED BY {{.Prefix}}operation_unsequenced
		WHERE o.leaf_index IS NULL AND o.seq > ? ORDER BY o.seq LIMIT ?`,
	Leaves: cols + from + ` WHERE o.leaf_index >= ? ORDER BY o.leaf_index LIMIT ?`,
	Scan:   cols + from + ` WHERE o.seq > ? ORDER BY o.seq LIMIT ?`,
	Get:    cols + from + ` WHERE o.op_id = ?`,
	ReadPartition: pendingCols + `, 0 FROM {{.Op}} AS o INDEXED BY {{.Prefix}}operation_part
		WHERE o.part = ? AND o.leaf_index > ? ORDER BY o.leaf_index LIMIT ?`,
	ReadPartitionStrict: pendingCols + `, ` + heldExpr + ` FROM {{.Op}} AS o INDEXED BY {{.Prefix}}operation_part
		WHERE o.part = ? AND o.leaf_index > ? ORDER BY o.leaf_index LIMIT ?`,

	Partitions:      partCols + ` ORDER BY part`,
	CountPartitions: `SELECT COUNT(*) FROM {{.Partition}}`,
	CreatePartition: `INSERT INTO {{.Partition}} (part, updated_at) VALUES (?, ` + now + `) ON CONFLICT (part) DO NOTHING`,
	AdvanceCursor:   `UPDATE {{.Partition}} SET cursor = ?, updated_at = ` + now + ` WHERE part = ? AND generation = ? AND cursor = ?`,
	// The IMMEDIATE transaction already holds the write lock.
	PartitionGeneration: `SELECT generation FROM {{.Partition}} WHERE part = ?`,
	InsertFailures: `WITH {failures} INSERT INTO {{.Retry}} (seq, part, doid, leaf_index, attempts, due_at, last_error, dead, updated_at)
		SELECT o.seq, o.part, o.doid, o.leaf_index, CASE WHEN v.held THEN 0 ELSE 1 END, ` + now + ` + v.delay_us,
			NULLIF(v.err, ''), v.dead, ` + now + `
		FROM v JOIN {{.Op}} AS o ON o.seq = v.seq
		WHERE o.part = {arg1} AND o.leaf_index > {arg2} AND o.leaf_index <= {arg3}`,
	DeleteRetries: `DELETE FROM {{.Retry}} WHERE part = ? AND seq {seqs}`,
	SettleFailures: `WITH {failures} UPDATE {{.Retry}} AS r SET attempts = r.attempts + CASE WHEN v.held THEN 0 ELSE 1 END,
		last_error = COALESCE(NULLIF(v.err, ''), r.last_error), due_at = ` + now + ` + v.delay_us,
		dead = v.dead, updated_at = ` + now + `
		FROM v WHERE r.seq = v.seq AND r.part = {arg1}`,
	DueRetries: cols + ` FROM {{.Retry}} AS r INDEXED BY {{.Prefix}}trustlog_retries_due` + retryJoin + `
		WHERE r.part = ? AND r.dead = 0 AND r.due_at <= ` + now + ` ORDER BY r.leaf_index LIMIT ?`,
	DueRetriesStrict: cols + ` FROM {{.Retry}} AS r INDEXED BY {{.Prefix}}trustlog_retries_due` + retryJoin + `
		WHERE r.part = ? AND r.dead = 0 AND r.due_at <= ` + now + `
		AND NOT EXISTS (SELECT 1 FROM {{.Retry}} AS e INDEXED BY {{.Prefix}}trustlog_retries_doid
			WHERE e.doid = r.doid AND e.leaf_index < r.leaf_index AND e.dead = 0)
		ORDER BY r.leaf_index LIMIT ?`,
	TakePartition: `UPDATE {{.Partition}} SET owner = ?, generation = generation + 1, expires_at = ` + now + ` + ?,
		updated_at = ` + now + ` WHERE part = ? AND (owner = '' OR expires_at IS NULL OR expires_at < ` + now + ` OR owner = ?)`,
	GetPartition:     partCols + ` WHERE part = ?`,
	RenewPartitions:  `UPDATE {{.Partition}} SET expires_at = ` + now + ` + ?, updated_at = ` + now + ` WHERE owner = ?`,
	OwnedPartitions:  partCols + ` WHERE owner = ? ORDER BY part`,
	ReleasePartition: `UPDATE {{.Partition}} SET owner = '', expires_at = NULL, updated_at = ` + now + ` WHERE part = ? AND generation = ?`,
	Heartbeat: `INSERT INTO {{.Relay}} (member, expires_at) VALUES (?, ` + now + ` + ?)
		ON CONFLICT (member) DO UPDATE SET expires_at = excluded.expires_at`,
	ForgetMembers: `DELETE FROM {{.Relay}} WHERE expires_at < ` + now,
	Members:       `SELECT member FROM {{.Relay}} WHERE expires_at >= ` + now,
	Leave:         `DELETE FROM {{.Relay}} WHERE member = ?`,

	Requeue: `UPDATE {{.Retry}} SET dead = 0, attempts = 0, due_at = ` + now + `, updated_at = ` + now + `
		WHERE dead = 1 AND seq IN (SELECT seq FROM {{.Op}} WHERE op_id {ids})`,
	RequeueAll: `UPDATE {{.Retry}} SET dead = 0, attempts = 0, due_at = ` + now + `, updated_at = ` + now + ` WHERE dead = 1`,
	ListDead: cols + ` FROM {{.Retry}} AS r INDEXED BY {{.Prefix}}trustlog_retries_dead` + retryJoin + `
		WHERE r.dead = 1 AND r.seq > ? ORDER BY r.seq LIMIT ?`,
	// Find walks (doid, seq) or (op_actor, seq, created_at) from the seq
	// after, or the retry table for the rest. instr compares bytes (and
	// is case-sensitive) on text.
	FindByDOID:        cols + ` FROM {{.Op}} AS o INDEXED BY {{.Prefix}}operation_doid_seq` + join,
	FindByActor:       cols + ` FROM {{.Op}} AS o INDEXED BY {{.Prefix}}operation_actor_seq` + join,
	FindInRetry:       cols + ` FROM {{.Retry}} AS r` + retryJoin,
	FindDead:          `r.dead = 1`,
	FindRetrying:      `r.dead = 0`,
	FindErrorContains: `instr(r.last_error, {arg}) > 0`,
	// Each partition's backlog is one range of the (part, leaf_index)
	// index, the unsequenced the partial leaf_index IS NULL index, the
	// retry counts (dead, seq); the rest are single rows.
	Counts: `SELECT p.part, p.cursor, p.generation, p.owner, p.expires_at,
		(SELECT COUNT(*) FROM {{.Op}} AS o INDEXED BY {{.Prefix}}operation_part
			WHERE o.part = p.part AND o.leaf_index > p.cursor),
		c.size, c.pruned, c.unsequenced, c.retrying, c.dead, c.max_seq
		FROM (SELECT (SELECT size FROM {{.Tree}} WHERE id = 1) AS size,
			(SELECT cursor_value FROM {{.Cursor}} WHERE cursor_key = ?) AS pruned,
			(SELECT COUNT(*) FROM {{.Op}} INDEXED BY {{.Prefix}}operation_unsequenced WHERE leaf_index IS NULL) AS unsequenced,
			(SELECT COUNT(*) FROM {{.Retry}} WHERE dead = 0) AS retrying, (SELECT COUNT(*) FROM {{.Retry}} WHERE dead = 1) AS dead,
			(SELECT MAX(seq) FROM {{.Op}}) AS max_seq) AS c
		LEFT JOIN {{.Partition}} AS p ON 1 ORDER BY p.part`,
	// Candidates: the first operation without a position, the first
	// retry, and each partition's first operation above its cursor.
	OldestUnsettled: `SELECT MIN(c) FROM (
		SELECT created_at AS c FROM {{.Op}} WHERE seq = (SELECT MIN(seq) FROM {{.Op}} WHERE leaf_index IS NULL)
		UNION ALL SELECT created_at FROM {{.Op}} WHERE seq = (SELECT MIN(seq) FROM {{.Retry}} WHERE dead = 0)
		UNION ALL SELECT (SELECT o.created_at FROM {{.Op}} AS o INDEXED BY {{.Prefix}}operation_part
			WHERE o.part = p.part AND o.leaf_index > p.cursor
			ORDER BY o.leaf_index LIMIT 1) FROM {{.Partition}} AS p)`,
	GetCursor: `SELECT cursor_value, updated_at FROM {{.Cursor}} WHERE cursor_key = ?`,
	SetCursor: `INSERT INTO {{.Cursor}} (cursor_key, cursor_value, updated_at) VALUES (?, ?, ` + now + `)
		ON CONFLICT (cursor_key) DO UPDATE SET cursor_value = excluded.cursor_value, updated_at = excluded.updated_at`,
	CreateCursor: `INSERT INTO {{.Cursor}} (cursor_key, cursor_value, updated_at) VALUES (?, ?, ` + now + `)
		ON CONFLICT (cursor_key) DO NOTHING`,

	TreeSize: `SELECT size FROM {{.Tree}} WHERE id = 1`,
	// The IMMEDIATE transaction already holds the write lock.
	TreeSizeLocked: `SELECT size FROM {{.Tree}} WHERE id = 1`,
	SetTreeSize:    `UPDATE {{.Tree}} SET size = ?, updated_at = ` + now + ` WHERE id = 1 AND size = ?`,
	// "+o.leaf_index": without the unary plus the planner walks every
	// unsequenced row through the leaf_index index and scans the JSON
	// array for each (quadratic); with it, it looks each pair up by seq.
	SetLeaves: `WITH {leaves} UPDATE {{.Op}} AS o SET leaf_index = v.leaf FROM v
		WHERE o.seq = v.seq AND +o.leaf_index IS NULL`,
	ReadHashes:       `SELECT idx, hash FROM {{.Hash}} WHERE idx {ids}`,
	InsertCheckpoint: `INSERT INTO {{.Checkpoint}} (tree_size, root_hash, note, created_at) VALUES (?, ?, ?, ` + now + `)`,
	Checkpoints: `SELECT tree_size, root_hash, note, created_at, published_at FROM {{.Checkpoint}}
		WHERE tree_size > ? ORDER BY tree_size LIMIT ?`,
	UnpublishedCheckpoints: `SELECT tree_size, root_hash, note, created_at, published_at FROM {{.Checkpoint}}
		WHERE tree_size > ? AND published_at IS NULL ORDER BY tree_size LIMIT ?`,
	LatestCheckpoint: `SELECT tree_size, root_hash, note, created_at, published_at FROM {{.Checkpoint}}
		ORDER BY tree_size DESC LIMIT 1`,
	MarkCheckpointPublished: `UPDATE {{.Checkpoint}} SET published_at = ` + now + ` WHERE tree_size = ?`,
	PruneHorizon: `SELECT MIN(o.leaf_index) FROM {{.Op}} AS o LEFT JOIN {{.Partition}} AS p ON p.part = o.part
		WHERE o.leaf_index >= ? AND o.leaf_index < ?
		AND (p.cursor IS NULL OR o.leaf_index > p.cursor OR o.created_at >= ` + now + ` - ?
			OR EXISTS (SELECT 1 FROM {{.Retry}} AS r WHERE r.seq = o.seq))`,
	PruneLeaves: `DELETE FROM {{.Op}} WHERE leaf_index >= ? AND leaf_index < ?`,

	Parts:           `SELECT seq, doid FROM {{.Op}} WHERE seq > ? ORDER BY seq LIMIT ?`,
	SetParts:        `WITH {leaves} UPDATE {{.Op}} AS o SET part = v.leaf FROM v WHERE o.seq = v.seq AND o.part <> v.leaf`,
	LockPartitions:  `SELECT cursor FROM {{.Partition}} ORDER BY part`,
	DropPartitions:  `DELETE FROM {{.Partition}} WHERE part >= ?`,
	ResetPartitions: `UPDATE {{.Partition}} SET cursor = ?, generation = ?, owner = '', expires_at = NULL, updated_at = ` + now,
	RetryParts:      `UPDATE {{.Retry}} AS r SET part = o.part FROM {{.Op}} AS o WHERE o.seq = r.seq AND r.part <> o.part`,
	RetryRows:       `SELECT COUNT(*) FROM {{.Retry}}`,
	UpgradeCursors: `UPDATE {{.Partition}} AS p SET cursor = COALESCE((SELECT MAX(o.leaf_index) FROM {{.Op}} AS o
		WHERE o.part = p.part AND (o.state <> 0 OR o.attempts <> 0 OR o.last_error IS NOT NULL)), -1), updated_at = ` + now,
	UpgradeRetries: `INSERT OR IGNORE INTO {{.Retry}} (seq, part, doid, leaf_index, attempts, due_at, last_error, dead, updated_at)
		SELECT o.seq, o.part, o.doid, o.leaf_index, o.attempts,
			CASE WHEN o.state = 2 AND o.due_at IS NOT NULL THEN o.due_at ELSE ` + now + ` END, o.last_error, o.state = 4, ` + now + `
		FROM {{.Op}} AS o JOIN {{.Partition}} AS p ON p.part = o.part
		WHERE o.leaf_index <= p.cursor AND o.state IN (0, 1, 2, 4)`,

	LeaseTable: `CREATE TABLE IF NOT EXISTS {{.Lease}} (
		name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL)`,
	LeaseAcquire: `INSERT INTO {{.Lease}} (name, holder, expires_at) VALUES (?, ?, ` + now + ` + ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE {{.Lease}}.expires_at < ` + now,
	LeaseRenew:   `UPDATE {{.Lease}} SET expires_at = ` + now + ` + ? WHERE name = ? AND holder = ?`,
	LeaseRelease: `DELETE FROM {{.Lease}} WHERE name = ? AND holder = ?`,
}

// Lists and failure tables are bound as one JSON parameter each: the
// modernc driver matches arguments to parameters in quadratic time, so a
// thousand-element IN (?, ?, …) costs more than the statement itself.

// listOperand is "IN (SELECT value FROM json_each(?))" over a JSON array.
func listOperand(p string, vals any) (string, any) {
	b, _ := json.Marshal(vals)
	return "IN (SELECT value FROM json_each(" + p + "))", string(b)
}

// failureTable is a CTE v(seq, err, delay_us, held, dead) over a JSON
// array of [seq, err, delay_us, held, dead] rows (held and dead 1 or 0).
func failureTable(_ int, fs []core.Failure) (string, []any) {
	rows := make([][5]any, len(fs))
	for i, f := range fs {
		rows[i] = [5]any{f.Seq, f.Err, f.Delay.Microseconds(), bit(f.Held), bit(f.Dead)}
	}
	b, _ := json.Marshal(rows)
	return `v(seq, err, delay_us, held, dead) AS (SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
		FROM json_each(?))`, []any{string(b)}
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// leafTable is a CTE v(seq, leaf) over a JSON array of pairs.
func leafTable(seqs, leaves []int64) (string, []any) {
	pairs := make([][2]int64, len(seqs))
	for i := range seqs {
		pairs[i] = [2]int64{seqs[i], leaves[i]}
	}
	b, _ := json.Marshal(pairs)
	return `v(seq, leaf) AS (SELECT value ->> 0, value ->> 1 FROM json_each(?))`, []any{string(b)}
}

// hashInsert inserts stored hashes from one JSON array of [idx, hex].
func hashInsert(table string, idx []int64, hashes [][]byte) (string, []any) {
	rows := make([][2]any, len(idx))
	for i := range idx {
		rows[i] = [2]any{idx[i], hex.EncodeToString(hashes[i])}
	}
	b, _ := json.Marshal(rows)
	return `INSERT INTO ` + table + ` (idx, hash) SELECT value ->> 0, unhex(value ->> 1) FROM json_each(?)`, []any{string(b)}
}

func dialect() *sqlstore.Dialect {
	mig, _ := fs.Sub(migrationFiles, "migrations")
	return &sqlstore.Dialect{
		Name:               "sqlite",
		Caps:               core.Capabilities{},
		Placeholder:        func(int) string { return "?" },
		TimeArg:            sqlstore.MicrosTime,
		FailureTable:       failureTable,
		ListOperand:        listOperand,
		LeafTable:          leafTable,
		HashInsert:         hashInsert,
		InsertRows:         16, // 304 parameters: see listOperand
		Queries:            queries,
		Migrations:         mig,
		PositionsMigration: "00003",
		SerializeWrites:    true,
	}
}
