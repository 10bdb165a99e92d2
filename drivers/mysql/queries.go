package mysql

import (
	"database/sql"
	"embed"
	"errors"
	"io/fs"
	"strconv"
	"strings"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

const now = "UTC_TIMESTAMP(6)"

// after is now plus a parameter of microseconds.
func after(p string) string { return "DATE_ADD(" + now + ", INTERVAL " + p + " MICROSECOND)" }

// cols and the FROM clauses select records: the operation o with its
// retry row r and its partition p, the state derived from them. CURSOR
// and MEMBER are reserved words in MySQL, hence the backquotes.
const (
	cols = `SELECT ` + sqlstore.Columns
	// pendingCols select operations known to be pending, from o alone.
	pendingCols = `SELECT ` + sqlstore.PendingColumns
	// join is the rest of a record's FROM clause after the operation o.
	join = ` LEFT JOIN {{.Retry}} AS r ON r.seq = o.seq LEFT JOIN {{.Partition}} AS p ON p.part = o.part`
	from = ` FROM {{.Op}} AS o` + join
	// fromRetry reads records through the retry table (r, index named).
	fromRetry = ` FROM {{.Retry}} AS r FORCE INDEX ({{.Prefix}}trustlog_retries_%s) JOIN {{.Op}} AS o ON o.seq = r.seq
		LEFT JOIN {{.Partition}} AS p ON p.part = o.part`
	partCols = "SELECT part, `cursor`, generation, owner, expires_at FROM {{.Partition}}"
)

// heldExpr is strict order's condition on an operation o read above its
// partition's cursor: an earlier operation of its DOID waits in the retry
// table (dead ones do not count). The (doid, leaf_index) index answers it.
const heldExpr = `EXISTS (SELECT 1 FROM {{.Retry}} AS e FORCE INDEX ({{.Prefix}}trustlog_retries_doid)
	WHERE e.doid = o.doid AND e.leaf_index < o.leaf_index AND e.dead = 0)`

// Parameters are "?" (interpolated client-side: one round trip per
// statement, no server-side prepare), bound in textual order. FORCE
// INDEX keeps each read on its index: with most rows published the
// optimizer otherwise sometimes walks the primary key.
var queries = sqlstore.Queries{
	Unsequenced: pendingCols + ` FROM {{.Op}} AS o FORCE INDEX ({{.Prefix}}operation_leaf)
		WHERE o.leaf_index IS NULL AND o.seq > ? ORDER BY o.seq LIMIT ?`,
	Leaves: cols + ` FROM {{.Op}} AS o FORCE INDEX ({{.Prefix}}operation_leaf)` + join + `
		WHERE o.leaf_index >= ? ORDER BY o.leaf_index LIMIT ?`,
	Scan: cols + from + ` WHERE o.seq > ? ORDER BY o.seq LIMIT ?`,
	Get:  cols + from + ` WHERE o.op_id = ?`,
	ReadPartition: pendingCols + `, 0 FROM {{.Op}} AS o FORCE INDEX ({{.Prefix}}operation_part)
		WHERE o.part = ? AND o.leaf_index > ? ORDER BY o.leaf_index LIMIT ?`,
	ReadPartitionStrict: pendingCols + `, ` + heldExpr + ` FROM {{.Op}} AS o FORCE INDEX ({{.Prefix}}operation_part)
		WHERE o.part = ? AND o.leaf_index > ? ORDER BY o.leaf_index LIMIT ?`,

	Partitions:          partCols + ` ORDER BY part`,
	CountPartitions:     `SELECT COUNT(*) FROM {{.Partition}}`,
	CreatePartition:     `INSERT IGNORE INTO {{.Partition}} (part, updated_at) VALUES (?, ` + now + `)`,
	AdvanceCursor:       "UPDATE {{.Partition}} SET `cursor` = ?, updated_at = " + now + " WHERE part = ? AND generation = ? AND `cursor` = ?",
	PartitionGeneration: `SELECT generation FROM {{.Partition}} WHERE part = ? FOR UPDATE`,
	InsertFailures: `INSERT INTO {{.Retry}} (seq, part, doid, leaf_index, attempts, due_at, last_error, dead, updated_at)
		SELECT o.seq, o.part, o.doid, o.leaf_index, CASE WHEN v.held THEN 0 ELSE 1 END, ` + after("v.delay_us") + `,
			NULLIF(v.err, ''), v.dead, ` + now + `
		FROM {failures} JOIN {{.Op}} AS o FORCE INDEX (PRIMARY) ON o.seq = v.seq
		WHERE o.part = {arg1} AND o.leaf_index > {arg2} AND o.leaf_index <= {arg3}`,
	DeleteRetries: `DELETE FROM {{.Retry}} WHERE part = ? AND seq {seqs}`,
	// MySQL assigns SET from left to right, each seeing the ones before:
	// no assignment here reads a column an earlier one changed.
	SettleFailures: `UPDATE {{.Retry}} AS r JOIN {failures} ON r.seq = v.seq
		SET r.attempts = r.attempts + CASE WHEN v.held THEN 0 ELSE 1 END,
		r.last_error = COALESCE(NULLIF(v.err, ''), r.last_error), r.due_at = ` + after("v.delay_us") + `,
		r.dead = v.dead, r.updated_at = ` + now + ` WHERE r.part = {arg1}`,
	DueRetries: cols + strings.Replace(fromRetry, "%s", "due", 1) + `
		WHERE r.part = ? AND r.dead = 0 AND r.due_at <= ` + now + ` ORDER BY r.leaf_index LIMIT ?`,
	DueRetriesStrict: cols + strings.Replace(fromRetry, "%s", "due", 1) + `
		WHERE r.part = ? AND r.dead = 0 AND r.due_at <= ` + now + `
		AND NOT EXISTS (SELECT 1 FROM {{.Retry}} AS e FORCE INDEX ({{.Prefix}}trustlog_retries_doid)
			WHERE e.doid = r.doid AND e.leaf_index < r.leaf_index AND e.dead = 0)
		ORDER BY r.leaf_index LIMIT ?`,
	TakePartition: `UPDATE {{.Partition}} SET owner = ?, generation = generation + 1, expires_at = ` + after("?") + `,
		updated_at = ` + now + ` WHERE part = ? AND (owner = '' OR expires_at IS NULL OR expires_at < ` + now + ` OR owner = ?)`,
	GetPartition:     partCols + ` WHERE part = ?`,
	RenewPartitions:  `UPDATE {{.Partition}} SET expires_at = ` + after("?") + `, updated_at = ` + now + ` WHERE owner = ?`,
	OwnedPartitions:  partCols + ` WHERE owner = ? ORDER BY part`,
	ReleasePartition: `UPDATE {{.Partition}} SET owner = '', expires_at = NULL, updated_at = ` + now + ` WHERE part = ? AND generation = ?`,
	Heartbeat: "INSERT INTO {{.Relay}} (`member`, expires_at) VALUES (?, " + after("?") + `)
		ON DUPLICATE KEY UPDATE expires_at = VALUES(expires_at)`,
	ForgetMembers: `DELETE FROM {{.Relay}} WHERE expires_at < ` + now,
	Members:       "SELECT `member` FROM {{.Relay}} WHERE expires_at >= " + now,
	Leave:         "DELETE FROM {{.Relay}} WHERE `member` = ?",

	Requeue: `UPDATE {{.Retry}} AS r JOIN {{.Op}} AS o ON o.seq = r.seq
		SET r.dead = 0, r.attempts = 0, r.due_at = ` + now + `, r.updated_at = ` + now + `
		WHERE r.dead = 1 AND o.op_id {ids}`,
	RequeueAll: `UPDATE {{.Retry}} SET dead = 0, attempts = 0, due_at = ` + now + `, updated_at = ` + now + ` WHERE dead = 1`,
	ListDead:   cols + strings.Replace(fromRetry, "%s", "dead", 1) + ` WHERE r.dead = 1 AND r.seq > ? ORDER BY r.seq LIMIT ?`,
	// Find walks (doid, seq) or (op_actor, seq, created_at) from the seq
	// after (the time range checked in the index), or the retry table's
	// (dead, seq) for a state. The error text is compared as bytes: a
	// binary string makes LOCATE case-sensitive whatever the
	// collations.
	FindByDOID:        cols + ` FROM {{.Op}} AS o FORCE INDEX ({{.Prefix}}operation_doid_seq)` + join,
	FindByActor:       cols + ` FROM {{.Op}} AS o FORCE INDEX ({{.Prefix}}operation_actor_seq)` + join,
	FindInRetry:       cols + ` FROM {{.Retry}} AS r JOIN {{.Op}} AS o ON o.seq = r.seq LEFT JOIN {{.Partition}} AS p ON p.part = o.part`,
	FindDead:          `r.dead = 1`,
	FindRetrying:      `r.dead = 0`,
	FindErrorContains: `LOCATE(CAST({arg} AS BINARY), CAST(r.last_error AS BINARY)) > 0`,
	// The correlated forms of Counts and OldestUnsettled read each
	// partition's whole (part, leaf_index) index: MySQL and MariaDB
	// range-scan an index only on constants. The store uses them only
	// when it has no partitions; otherwise perPartition's.
	Counts: "SELECT p.part, p.`cursor`, p.generation, p.owner, p.expires_at," +
		" (SELECT COUNT(*) FROM {{.Op}} AS o FORCE INDEX ({{.Prefix}}operation_part)" +
		" WHERE o.part = p.part AND o.leaf_index > p.`cursor`), " + storeFigures +
		" LEFT JOIN {{.Partition}} AS p ON TRUE ORDER BY p.part",
	// Candidates: the first operation without a position, the first
	// retry, and each partition's first operation above its cursor.
	OldestUnsettled: oldestHead +
		" UNION ALL SELECT (SELECT o.created_at FROM {{.Op}} AS o FORCE INDEX ({{.Prefix}}operation_part)" +
		" WHERE o.part = p.part AND o.leaf_index > p.`cursor`" +
		" ORDER BY o.leaf_index LIMIT 1) FROM {{.Partition}} AS p) AS u",
	GetCursor: `SELECT cursor_value, updated_at FROM {{.Cursor}} WHERE cursor_key = ?`,
	SetCursor: `INSERT INTO {{.Cursor}} (cursor_key, cursor_value, updated_at) VALUES (?, ?, ` + now + `)
		ON DUPLICATE KEY UPDATE cursor_value = VALUES(cursor_value), updated_at = VALUES(updated_at)`,
	CreateCursor: `INSERT IGNORE INTO {{.Cursor}} (cursor_key, cursor_value, updated_at) VALUES (?, ?, ` + now + `)`,

	TreeSize:       `SELECT size FROM {{.Tree}} WHERE id = 1`,
	TreeSizeLocked: `SELECT size FROM {{.Tree}} WHERE id = 1 FOR UPDATE`,
	SetTreeSize:    `UPDATE {{.Tree}} SET size = ?, updated_at = ` + now + ` WHERE id = 1 AND size = ?`,
	SetLeaves: `UPDATE {{.Op}} AS o FORCE INDEX (PRIMARY) JOIN {leaves} ON o.seq = v.seq
		SET o.leaf_index = v.leaf WHERE o.leaf_index IS NULL`,
	ReadHashes:       `SELECT idx, hash FROM {{.Hash}} WHERE idx {ids}`,
	InsertCheckpoint: `INSERT INTO {{.Checkpoint}} (tree_size, root_hash, note, created_at) VALUES (?, ?, ?, ` + now + `)`,
	Checkpoints: `SELECT tree_size, root_hash, note, created_at, published_at FROM {{.Checkpoint}}
		WHERE tree_size > ? ORDER BY tree_size LIMIT ?`,
	UnpublishedCheckpoints: `SELECT tree_size, root_hash, note, created_at, published_at FROM {{.Checkpoint}}
		WHERE tree_size > ? AND published_at IS NULL ORDER BY tree_size LIMIT ?`,
	LatestCheckpoint: `SELECT tree_size, root_hash, note, created_at, published_at FROM {{.Checkpoint}}
		ORDER BY tree_size DESC LIMIT 1`,
	MarkCheckpointPublished: `UPDATE {{.Checkpoint}} SET published_at = ` + now + ` WHERE tree_size = ?`,
	PruneHorizon: `SELECT MIN(o.leaf_index) FROM {{.Op}} AS o FORCE INDEX ({{.Prefix}}operation_leaf)
		LEFT JOIN {{.Partition}} AS p ON p.part = o.part
		WHERE o.leaf_index >= ? AND o.leaf_index < ?
		AND (p.` + "`cursor`" + ` IS NULL OR o.leaf_index > p.` + "`cursor`" + `
			OR o.created_at >= DATE_SUB(` + now + `, INTERVAL ? MICROSECOND)
			OR EXISTS (SELECT 1 FROM {{.Retry}} AS r WHERE r.seq = o.seq))`,
	PruneLeaves: `DELETE FROM {{.Op}} WHERE leaf_index >= ? AND leaf_index < ?`,

	Parts: `SELECT seq, doid FROM {{.Op}} WHERE seq > ? ORDER BY seq LIMIT ?`,
	SetParts: `UPDATE {{.Op}} AS o FORCE INDEX (PRIMARY) JOIN {leaves} ON o.seq = v.seq
		SET o.part = v.leaf WHERE o.part <> v.leaf`,
	LockPartitions:  "SELECT `cursor` FROM {{.Partition}} ORDER BY part FOR UPDATE",
	DropPartitions:  `DELETE FROM {{.Partition}} WHERE part >= ?`,
	ResetPartitions: "UPDATE {{.Partition}} SET `cursor` = ?, generation = ?, owner = '', expires_at = NULL, updated_at = " + now,
	RetryParts:      `UPDATE {{.Retry}} AS r JOIN {{.Op}} AS o ON o.seq = r.seq SET r.part = o.part WHERE r.part <> o.part`,
	RetryRows:       `SELECT COUNT(*) FROM {{.Retry}}`,
	UpgradeCursors: "UPDATE {{.Partition}} AS p SET p.`cursor` = COALESCE((SELECT MAX(o.leaf_index) FROM {{.Op}} AS o" +
		" WHERE o.part = p.part AND (o.state <> 0 OR o.attempts <> 0 OR o.last_error IS NOT NULL)), -1), p.updated_at = " + now,
	UpgradeRetries: `INSERT IGNORE INTO {{.Retry}} (seq, part, doid, leaf_index, attempts, due_at, last_error, dead, updated_at)
		SELECT o.seq, o.part, o.doid, o.leaf_index, o.attempts,
			CASE WHEN o.state = 2 AND o.due_at IS NOT NULL THEN o.due_at ELSE ` + now + ` END, o.last_error, o.state = 4, ` + now + `
		FROM {{.Op}} AS o JOIN {{.Partition}} AS p ON p.part = o.part
		WHERE o.leaf_index <= p.` + "`cursor`" + ` AND o.state IN (0, 1, 2, 4)`,
}

// storeFigures are Counts' columns after the partition's and its FROM
// clause up to the partitions: the tree size, the prune horizon's cursor
// (the argument), the operations without a position (the leaf_index
// index's NULLs), the retry counts (dead, seq), the largest seq.
const storeFigures = "c.size, c.pruned, c.unsequenced, c.retrying, c.dead, c.max_seq" +
	" FROM (SELECT (SELECT size FROM {{.Tree}} WHERE id = 1) AS size," +
	" (SELECT cursor_value FROM {{.Cursor}} WHERE cursor_key = ?) AS pruned," +
	" (SELECT COUNT(*) FROM {{.Op}} FORCE INDEX ({{.Prefix}}operation_leaf) WHERE leaf_index IS NULL) AS unsequenced," +
	" (SELECT COUNT(*) FROM {{.Retry}} WHERE dead = 0) AS retrying, (SELECT COUNT(*) FROM {{.Retry}} WHERE dead = 1) AS dead," +
	" (SELECT MAX(seq) FROM {{.Op}}) AS max_seq) AS c"

// oldestHead is OldestUnsettled's first candidates: the first operation
// without a position and the first retry; the partitions' follow.
const oldestHead = "SELECT MIN(c) FROM (" +
	" SELECT created_at AS c FROM {{.Op}} WHERE seq = (SELECT MIN(seq) FROM {{.Op}} WHERE leaf_index IS NULL)" +
	" UNION ALL SELECT created_at FROM {{.Op}} WHERE seq = (SELECT MIN(seq) FROM {{.Retry}} WHERE dead = 0)"

// perPartition writes Counts and OldestUnsettled out for a store of
// parts partitions (sqlstore.Dialect.PerPartition): one branch per
// partition, its number a constant and its cursor an uncorrelated
// subquery on the partition's primary key, which the optimizer reads
// before it plans, so each branch is one range of the (part, leaf_index)
// index from the cursor: on a million operations, milliseconds instead
// of the whole index (a third of a second, twice).
func perPartition(parts int) (counts, oldest string) {
	var backlog, first strings.Builder
	for i := 0; i < parts; i++ {
		n := strconv.Itoa(i)
		if i > 0 {
			backlog.WriteString(" UNION ALL ")
		}
		above := " FROM {{.Op}} AS o FORCE INDEX ({{.Prefix}}operation_part) WHERE o.part = " + n +
			" AND o.leaf_index > (SELECT `cursor` FROM {{.Partition}} WHERE part = " + n + ")"
		backlog.WriteString("SELECT " + n + " AS part, (SELECT COUNT(*)" + above + ") AS backlog")
		first.WriteString(" UNION ALL SELECT (SELECT o.created_at" + above + " ORDER BY o.leaf_index LIMIT 1)")
	}
	counts = "SELECT p.part, p.`cursor`, p.generation, p.owner, p.expires_at, b.backlog, " + storeFigures +
		" LEFT JOIN ({{.Partition}} AS p JOIN (" + backlog.String() + ") AS b ON b.part = p.part) ON TRUE ORDER BY p.part"
	return counts, oldestHead + first.String() + ") AS u"
}

// failureTable is a derived table v(seq, err, delay_us, held, dead) of
// UNION ALL rows.
func failureTable(_ int, fs []core.Failure) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 5*len(fs))
	b.WriteString("(")
	for i, f := range fs {
		if i == 0 {
			b.WriteString("SELECT ? AS seq, ? AS err, ? AS delay_us, ? AS held, ? AS dead")
		} else {
			b.WriteString(" UNION ALL SELECT ?, ?, ?, ?, ?")
		}
		args = append(args, f.Seq, f.Err, f.Delay.Microseconds(), bit(f.Held), bit(f.Dead))
	}
	b.WriteString(") AS v")
	return b.String(), args
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// leafTable is a derived table v(seq, leaf) of UNION ALL rows.
func leafTable(seqs, leaves []int64) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 2*len(seqs))
	b.WriteString("(")
	for i := range seqs {
		if i == 0 {
			b.WriteString("SELECT ? AS seq, ? AS leaf")
		} else {
			b.WriteString(" UNION ALL SELECT ?, ?")
		}
		args = append(args, seqs[i], leaves[i])
	}
	b.WriteString(") AS v")
	return b.String(), args
}

// hashInsert inserts stored hashes as multi-row VALUES.
func hashInsert(table string, idx []int64, hashes [][]byte) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 2*len(idx))
	b.WriteString("INSERT INTO " + table + " (idx, hash) VALUES ")
	for i := range idx {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?)")
		args = append(args, idx[i], hashes[i])
	}
	return b.String(), args
}

func dialect() *sqlstore.Dialect {
	mig, _ := fs.Sub(migrationFiles, "migrations")
	return &sqlstore.Dialect{
		Name:               "mysql",
		Caps:               core.Capabilities{SessionLeases: true},
		Placeholder:        func(int) string { return "?" },
		TimeArg:            sqlstore.NativeTime,
		FailureTable:       failureTable,
		LeafTable:          leafTable,
		HashInsert:         hashInsert,
		Queries:            queries,
		Migrations:         mig,
		PositionsMigration: "00004",
		PerPartition:       perPartition,
		Retryable:          retryable,
		// READ COMMITTED: a write transaction's reads of other tables
		// (Advance copies doid and position from the operation rows) take
		// no shared next-key locks, so they never block an application
		// inserting operations.
		WriteTx: &sql.TxOptions{Isolation: sql.LevelReadCommitted},
	}
}

// retryable: deadlocks (1213) and lock wait timeouts (1205) roll the
// statement or transaction back; running it again is safe.
func retryable(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}
