package postgres

import (
	"embed"
	"encoding/hex"
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// micros turns a bigint parameter of microseconds into an interval.
func micros(p string) string { return "(" + p + "::bigint * interval '1 microsecond')" }

// Positions are not in the operation row (as on MySQL and SQLite) but in
// the narrow table {{.Position}} (leaf_index, seq, part), and the
// operations without one are queued in {{.Unsequenced}} by the store's
// INSERT and, for rows inserted otherwise, by a trigger on the operation
// table (migrations 000025 and 00007): giving a position inserts a
// narrow row instead of rewriting the wide one, whose UPDATE wrote a new
// version of the row and of each of its indexes.
//
// opRow is the operation table as the shared column lists
// (sqlstore.Columns) see it: the row with its position, looked up by seq
// for each row a statement keeps. The lookup is a lateral subquery that
// PostgreSQL may not turn into a join (OFFSET 0): a join planned once for
// any parameters merged the whole positions table by seq (40 ms a page of
// 1,000 at 200,000 operations), and a subquery in the select list is
// evaluated, and costed, once per use of the column (twice in Columns),
// which put simple pages above the cost at which PostgreSQL compiles
// queries (jit_above_cost: 13-90 ms more each). Statements that select by
// position (Leaves, the partition reads) read the positions first and
// join the rows instead.
var opRow = `(SELECT ` + sqlstore.Qualified("op.", "seq, "+sqlstore.InsertColumns) + `, xl.leaf_index FROM {{.Op}} AS op
	LEFT JOIN LATERAL (SELECT x.leaf_index FROM {{.Position}} AS x WHERE x.seq = op.seq OFFSET 0) AS xl ON true)`

// cols and from select records: the operation o with its retry row r and
// its partition p, the state derived from them.
var (
	cols = `SELECT ` + sqlstore.Columns
	from = ` FROM ` + opRow + ` AS o LEFT JOIN {{.Retry}} AS r ON r.seq = o.seq LEFT JOIN {{.Partition}} AS p ON p.part = o.part`
	// positionedCols select operations known to be pending above their
	// partition's cursor, from the operation o and its position x.
	positionedCols = `SELECT ` + strings.Replace(sqlstore.PendingColumns, "o.leaf_index", "x.leaf_index", 1)
	// unsequencedCols select operations that have no position, from o.
	unsequencedCols = `SELECT ` + strings.Replace(sqlstore.PendingColumns, "o.leaf_index", "NULL::bigint", 1)
	// byPositionCols select records from positions x and their rows
	// (see firstPositions), with r and p joined by byPositionJoins.
	byPositionCols  = `SELECT ` + strings.ReplaceAll(sqlstore.Columns, "o.leaf_index", "x.leaf_index")
	byPositionJoins = ` LEFT JOIN {{.Retry}} AS r ON r.seq = o.seq LEFT JOIN {{.Partition}} AS p ON p.part = o.part`
	// fromRetry reads records through the retry table.
	fromRetry = ` FROM {{.Retry}} AS r JOIN ` + opRow + ` AS o ON o.seq = r.seq LEFT JOIN {{.Partition}} AS p ON p.part = o.part`
)

const (
	// partCols are a partition row's columns.
	partCols = `SELECT part, cursor, generation, owner, expires_at FROM {{.Partition}}`
	// partRow selects them from the partition p.
	partRow = `SELECT p.part, p.cursor, p.generation, p.owner, p.expires_at`
)

// heldExpr is strict order's condition on an operation o at position x
// read above its partition's cursor: an earlier operation of its DOID
// waits in the retry table (dead ones do not count). The (doid,
// leaf_index) index answers it.
const heldExpr = `EXISTS (SELECT 1 FROM {{.Retry}} AS e WHERE e.doid = o.doid AND e.leaf_index < x.leaf_index AND e.dead = false)`

// abovePart is "position x is in partition $p, above $c". A relay's read
// walks the (part, leaf_index) index from (p, c) in order and joins each
// position to its row by seq. Written with "part = p", a generic plan
// (pgx prepares statements; PostgreSQL plans them once for any
// parameters after five executions) estimates a sixteenth of the
// positions per partition and takes that walk, with or without the
// table's statistics. The row comparison "(part, leaf_index) > (p, c)
// AND part <= p" that the wide row needed is estimated at a ninth of the
// table here, and the generic plan for it gathered two parallel workers
// or sorted a bitmap scan: 9-13 ms a read of 1,000 against 3-4 ms, and up
// to 110 ms in a drain (BENCHMARKS.md).
func abovePart(p, c string) string {
	return "x.part = " + p + " AND x.leaf_index > " + c
}

// positioned joins each position x to its operation o.
const positioned = ` FROM {{.Position}} AS x JOIN {{.Op}} AS o ON o.seq = x.seq`

// firstPositions joins to their operations o the first positions x
// (leaf_index, seq) the condition where selects, limit of them, in
// position order: the positions are picked before any row is read, so
// that a plan made without the tables' statistics (a store just filled)
// cannot join every row of a partition's backlog and sort them to keep a
// batch (70 ms a read of 1,000 at 200,000 operations).
func firstPositions(where, limit string) string {
	return ` FROM (SELECT leaf_index, seq FROM {{.Position}} AS x WHERE ` + where + ` ORDER BY leaf_index LIMIT ` + limit +
		`) AS x JOIN {{.Op}} AS o ON o.seq = x.seq`
}

// firstQueued reads the rows of the first seqs of the queue of operations
// without a position that the condition where selects, limit of them, in
// seq order, each by its primary key (a lateral subquery that is never a
// join): planned once for any limit, a join of the queue's seqs with the
// operation table hashed the whole table on every pass of the sequencer
// (11-15 ms a pass at 1,000 operations a second on a table of some
// 10,000, more as it grows).
func firstQueued(where, limit string) string {
	return ` FROM (SELECT u.seq FROM {{.Unsequenced}} AS u WHERE ` + where + ` ORDER BY u.seq LIMIT ` + limit + `) AS u
		CROSS JOIN LATERAL (SELECT * FROM {{.Op}} AS op WHERE op.seq = u.seq OFFSET 0) AS o ORDER BY u.seq`
}

// Writes are short transactions on a handful of rows. A relay's read of
// its partition walks the positions' (part, leaf_index) index above the
// cursor (abovePart); positions become visible in order (each Append
// extends the tree its predecessor committed), so a reader never sees a
// position before a lower one of the same partition.
var queries = sqlstore.Queries{
	// Unsequenced takes the first seqs of the queue, then their rows.
	Unsequenced: unsequencedCols + firstQueued("u.seq > $1", "$2"),
	// UnsequencedExcept: an anti join of the queue with the array, merged
	// in seq order ("seq <> ALL($1)" would compare each entry with the
	// whole array once the plan is generic).
	UnsequencedExcept: unsequencedCols + firstQueued("NOT EXISTS (SELECT 1 FROM unnest($1::bigint[]) AS a(seq) WHERE a.seq = u.seq)", "$2"),
	// UnqueueMissing: the first queued seqs whose operation was deleted.
	UnqueueMissing: `DELETE FROM {{.Unsequenced}} AS u WHERE u.seq IN (SELECT seq FROM {{.Unsequenced}} ORDER BY seq LIMIT $1)
		AND NOT EXISTS (SELECT 1 FROM {{.Op}} AS o WHERE o.seq = u.seq)`,
	Leaves:              byPositionCols + firstPositions("x.leaf_index >= $1", "$2") + byPositionJoins + ` ORDER BY x.leaf_index`,
	Scan:                cols + from + ` WHERE o.seq > $1 ORDER BY o.seq LIMIT $2`,
	Get:                 cols + from + ` WHERE o.op_id = $1`,
	ReadPartition:       positionedCols + `, false` + firstPositions(abovePart("$1", "$2"), "$3") + ` ORDER BY x.leaf_index`,
	ReadPartitionStrict: positionedCols + `, ` + heldExpr + firstPositions(abovePart("$1", "$2"), "$3") + ` ORDER BY x.leaf_index`,

	Partitions:          partCols + ` ORDER BY part`,
	CountPartitions:     `SELECT COUNT(*) FROM {{.Partition}}`,
	CreatePartition:     `INSERT INTO {{.Partition}} (part, updated_at) VALUES ($1, now()) ON CONFLICT (part) DO NOTHING`,
	AdvanceCursor:       `UPDATE {{.Partition}} SET cursor = $1, updated_at = now() WHERE part = $2 AND generation = $3 AND cursor = $4`,
	PartitionGeneration: `SELECT generation FROM {{.Partition}} WHERE part = $1 FOR UPDATE`,
	InsertFailures: `INSERT INTO {{.Retry}} (seq, part, doid, leaf_index, attempts, due_at, last_error, dead, updated_at)
		SELECT o.seq, o.part, o.doid, o.leaf_index, CASE WHEN v.held THEN 0 ELSE 1 END, now() + ` + micros("v.delay_us") + `,
			NULLIF(v.err, ''), v.dead, now()
		FROM {failures} JOIN ` + opRow + ` AS o ON o.seq = v.seq
		WHERE o.part = {arg1} AND o.leaf_index > {arg2} AND o.leaf_index <= {arg3}`,
	DeleteRetries: `DELETE FROM {{.Retry}} WHERE part = $1 AND seq {seqs}`,
	SettleFailures: `UPDATE {{.Retry}} AS r SET attempts = r.attempts + CASE WHEN v.held THEN 0 ELSE 1 END,
		last_error = COALESCE(NULLIF(v.err, ''), r.last_error), due_at = now() + ` + micros("v.delay_us") + `,
		dead = v.dead, updated_at = now()
		FROM {failures} WHERE r.seq = v.seq AND r.part = {arg1}`,
	DueRetries: cols + fromRetry + ` WHERE r.part = $1 AND r.dead = false AND r.due_at <= now()
		ORDER BY r.leaf_index LIMIT $2`,
	DueRetriesStrict: cols + fromRetry + ` WHERE r.part = $1 AND r.dead = false AND r.due_at <= now()
		AND NOT EXISTS (SELECT 1 FROM {{.Retry}} AS e WHERE e.doid = r.doid AND e.leaf_index < r.leaf_index AND e.dead = false)
		ORDER BY r.leaf_index LIMIT $2`,
	TakePartition: `UPDATE {{.Partition}} SET owner = $1, generation = generation + 1, expires_at = now() + ` + micros("$2") + `,
		updated_at = now() WHERE part = $3 AND (owner = '' OR expires_at IS NULL OR expires_at < now() OR owner = $4)`,
	GetPartition:     partCols + ` WHERE part = $1`,
	RenewPartitions:  `UPDATE {{.Partition}} SET expires_at = now() + ` + micros("$1") + `, updated_at = now() WHERE owner = $2`,
	OwnedPartitions:  partCols + ` WHERE owner = $1 ORDER BY part`,
	ReleasePartition: `UPDATE {{.Partition}} SET owner = '', expires_at = NULL, updated_at = now() WHERE part = $1 AND generation = $2`,
	Heartbeat: `INSERT INTO {{.Relay}} (member, expires_at) VALUES ($1, now() + ` + micros("$2") + `)
		ON CONFLICT (member) DO UPDATE SET expires_at = excluded.expires_at`,
	ForgetMembers: `DELETE FROM {{.Relay}} WHERE expires_at < now()`,
	Members:       `SELECT member FROM {{.Relay}} WHERE expires_at >= now()`,
	Leave:         `DELETE FROM {{.Relay}} WHERE member = $1`,

	Requeue: `UPDATE {{.Retry}} AS r SET dead = false, attempts = 0, due_at = now(), updated_at = now()
		FROM {{.Op}} AS o WHERE o.seq = r.seq AND r.dead = true AND o.op_id {ids}`,
	RequeueAll: `UPDATE {{.Retry}} SET dead = false, attempts = 0, due_at = now(), updated_at = now() WHERE dead = true`,
	ListDead:   cols + fromRetry + ` WHERE r.dead = true AND r.seq > $1 ORDER BY r.seq LIMIT $2`,
	// Find: the planner walks (doid, seq) or (op_actor, seq, created_at)
	// from the seq after (the time range checked in the index), or the
	// retry table's (dead, seq) for a state.
	FindByDOID:        cols + from,
	FindByActor:       cols + from,
	FindInRetry:       cols + fromRetry,
	FindDead:          `r.dead = true`,
	FindRetrying:      `r.dead = false`,
	FindErrorContains: `strpos(r.last_error, {arg}) > 0`,
	// Each partition's backlog is one range of the (part, leaf_index)
	// index, the unsequenced the queue (those whose row is still there),
	// the retry counts (dead, seq); the rest are single rows.
	Counts: partRow + `, (SELECT COUNT(*) FROM {{.Position}} AS x WHERE ` + abovePart("p.part", "p.cursor") + `),
		c.size, c.pruned, c.unsequenced, c.retrying, c.dead, c.max_seq
		FROM (SELECT (SELECT size FROM {{.Tree}} WHERE id = 1) AS size,
			(SELECT cursor_value FROM {{.Cursor}} WHERE cursor_key = $1) AS pruned,
			(SELECT COUNT(*) FROM {{.Unsequenced}} AS u JOIN {{.Op}} AS o ON o.seq = u.seq) AS unsequenced,
			(SELECT COUNT(*) FROM {{.Retry}} WHERE dead = false) AS retrying, (SELECT COUNT(*) FROM {{.Retry}} WHERE dead = true) AS dead,
			(SELECT MAX(seq) FROM {{.Op}}) AS max_seq) AS c
		LEFT JOIN {{.Partition}} AS p ON true ORDER BY p.part`,
	// Candidates: the first operation without a position, the first
	// retry, and each partition's first operation above its cursor.
	OldestUnsettled: `SELECT MIN(c) FROM (
		SELECT created_at AS c FROM {{.Op}} WHERE seq = (SELECT MIN(u.seq) FROM {{.Unsequenced}} AS u
			JOIN {{.Op}} AS o ON o.seq = u.seq)
		UNION ALL SELECT created_at FROM {{.Op}} WHERE seq = (SELECT MIN(seq) FROM {{.Retry}} WHERE dead = false)
		UNION ALL SELECT (SELECT o.created_at` + firstPositions(abovePart("p.part", "p.cursor"), "1") + `)
			FROM {{.Partition}} AS p) AS u`,
	GetCursor: `SELECT cursor_value, updated_at FROM {{.Cursor}} WHERE cursor_key = $1`,
	SetCursor: `INSERT INTO {{.Cursor}} (cursor_key, cursor_value, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (cursor_key) DO UPDATE SET cursor_value = excluded.cursor_value, updated_at = excluded.updated_at`,
	CreateCursor: `INSERT INTO {{.Cursor}} (cursor_key, cursor_value, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (cursor_key) DO NOTHING`,

	TreeSize:       `SELECT size FROM {{.Tree}} WHERE id = 1`,
	TreeSizeLocked: `SELECT size FROM {{.Tree}} WHERE id = 1 FOR UPDATE`,
	SetTreeSize:    `UPDATE {{.Tree}} SET size = $1, updated_at = now() WHERE id = 1 AND size = $2`,
	// SetLeaves takes the batch off the queue and inserts the positions
	// of those it took: fewer rows than the batch when some had a
	// position already (the store reports a conflict).
	// ($1 is the batch's seqs, the first array of leafTable.)
	//
	// Written so that no plan reads a whole table whatever the
	// statistics say. In a store just filled, before autovacuum analyzed
	// it, the join of the batch with the queue and the operation table
	// hashed both whole (224 ms for 4,000 of 200,000 against 34 ms once
	// analyzed; the relay drained 200,000 from scratch at 26k ops/s). The
	// queue is read by the range of the batch's seqs (the batch is the
	// queue's first seqs; a range of unknown bounds is estimated at 0.5 %
	// of a table, an index scan), each partition by primary key in a
	// lateral subquery that cannot be flattened into a join.
	SetLeaves: takeBatch + `SELECT v.leaf, v.seq, o.part FROM {leaves} JOIN d ON d.seq = v.seq
		CROSS JOIN LATERAL (SELECT x.part FROM {{.Op}} AS x WHERE x.seq = v.seq OFFSET 0) AS o`,
	// SetLeavesParts is SetLeaves with each partition given ({leaves}
	// has v.part): no read of the operation table at all.
	SetLeavesParts: takeBatch + `SELECT v.leaf, v.seq, v.part FROM {leaves} JOIN d ON d.seq = v.seq`,
	ReadHashes:     `SELECT idx, hash FROM {{.Hash}} WHERE idx {ids}`,
	// The run holding index i is the one with the greatest first_idx <= i
	// (a backward step on the primary key); each run once.
	ReadHashRuns: `SELECT first_idx, hashes FROM {{.HashRun}} WHERE first_idx IN (SELECT (SELECT max(r.first_idx)
		FROM {{.HashRun}} AS r WHERE r.first_idx <= i.idx) FROM unnest($1::bigint[]) AS i(idx))`,
	InsertHashRuns: `INSERT INTO {{.HashRun}} (first_idx, hashes) SELECT * FROM unnest($1::bigint[], $2::bytea[])`,
	SetStoredHash: `UPDATE {{.HashRun}} SET hashes = overlay(hashes PLACING ?0 FROM ((?1 - first_idx) * 32 + 1)::int)
		WHERE first_idx = (SELECT max(first_idx) FROM {{.HashRun}} WHERE first_idx <= ?1) AND ?1 < first_idx + octet_length(hashes) / 32`,
	DeleteStoredHashes: `WITH d AS (DELETE FROM {{.HashRun}} WHERE first_idx >= ?0)
		UPDATE {{.HashRun}} SET hashes = substring(hashes FROM 1 FOR ((?0 - first_idx) * 32)::int)
		WHERE first_idx < ?0 AND first_idx + octet_length(hashes) / 32 > ?0`,
	InsertCheckpoint: `INSERT INTO {{.Checkpoint}} (tree_size, root_hash, note, created_at) VALUES ($1, $2, $3, now())`,
	Checkpoints: `SELECT tree_size, root_hash, note, created_at, published_at FROM {{.Checkpoint}}
		WHERE tree_size > $1 ORDER BY tree_size LIMIT $2`,
	UnpublishedCheckpoints: `SELECT tree_size, root_hash, note, created_at, published_at FROM {{.Checkpoint}}
		WHERE tree_size > $1 AND published_at IS NULL ORDER BY tree_size LIMIT $2`,
	LatestCheckpoint: `SELECT tree_size, root_hash, note, created_at, published_at FROM {{.Checkpoint}}
		ORDER BY tree_size DESC LIMIT 1`,
	MarkCheckpointPublished: `UPDATE {{.Checkpoint}} SET published_at = now() WHERE tree_size = $1`,
	PruneHorizon: `SELECT MIN(x.leaf_index)` + positioned + ` LEFT JOIN {{.Partition}} AS p ON p.part = x.part
		WHERE x.leaf_index >= $1 AND x.leaf_index < $2
		AND (p.cursor IS NULL OR x.leaf_index > p.cursor OR o.created_at >= now() - ` + micros("$3") + `
			OR EXISTS (SELECT 1 FROM {{.Retry}} AS r WHERE r.seq = o.seq))`,
	PruneLeaves: `WITH d AS (DELETE FROM {{.Position}} WHERE leaf_index >= $1 AND leaf_index < $2 RETURNING seq)
		DELETE FROM {{.Op}} WHERE seq IN (SELECT seq FROM d)`,

	Parts: `SELECT seq, doid FROM {{.Op}} WHERE seq > $1 ORDER BY seq LIMIT $2`,
	// SetParts moves the operations and their positions.
	SetParts: `WITH v AS (SELECT * FROM {leaves}),
		x AS (UPDATE {{.Position}} AS x SET part = v.leaf FROM v WHERE x.seq = v.seq AND x.part <> v.leaf)
		UPDATE {{.Op}} AS o SET part = v.leaf FROM v WHERE o.seq = v.seq AND o.part <> v.leaf`,
	LockPartitions:  `SELECT cursor FROM {{.Partition}} ORDER BY part FOR UPDATE`,
	DropPartitions:  `DELETE FROM {{.Partition}} WHERE part >= $1`,
	ResetPartitions: `UPDATE {{.Partition}} SET cursor = $1, generation = $2, owner = '', expires_at = NULL, updated_at = now()`,
	RetryParts:      `UPDATE {{.Retry}} AS r SET part = o.part FROM {{.Op}} AS o WHERE o.seq = r.seq AND r.part <> o.part`,
	RetryRows:       `SELECT COUNT(*) FROM {{.Retry}}`,
	// SchemaProblems: the queue trigger, once 000025 made the queue.
	SchemaProblems: `SELECT 'the operation table''s insert trigger {{.Prefix}}trustlog_queue is '
			|| CASE WHEN t.tgname IS NULL THEN 'missing' ELSE 'disabled' END
			|| ': operations other writers insert (not trustlog itself) never get a position without it (docs/operating.md, "Indexes", says how to repair)'
		FROM (SELECT 1) AS one LEFT JOIN pg_trigger AS t ON t.tgrelid = to_regclass('{{.Op}}') AND t.tgname = '{{.Prefix}}trustlog_queue'
		WHERE to_regclass('{{.Unsequenced}}') IS NOT NULL AND (t.tgname IS NULL OR t.tgenabled = 'D')`,
	// The upgrade's statements run in the positions migration (00003),
	// after 000025 made the positions tables and AdoptPositions moved
	// there the positions the previous release's rows held.
	AdoptPositions: `WITH m AS (INSERT INTO {{.Position}} (leaf_index, seq, part)
			SELECT leaf_index, seq, part FROM {{.Op}} WHERE leaf_index IS NOT NULL ON CONFLICT DO NOTHING RETURNING seq)
		DELETE FROM {{.Unsequenced}} AS u WHERE u.seq IN (SELECT seq FROM m)
			OR EXISTS (SELECT 1 FROM {{.Position}} AS x WHERE x.seq = u.seq)`,
	UpgradeCursors: `UPDATE {{.Partition}} AS p SET cursor = COALESCE((SELECT MAX(x.leaf_index)` + positioned + `
		WHERE x.part = p.part AND (o.state <> 0 OR o.attempts <> 0 OR o.last_error IS NOT NULL)), -1), updated_at = now()`,
	UpgradeRetries: `INSERT INTO {{.Retry}} (seq, part, doid, leaf_index, attempts, due_at, last_error, dead, updated_at)
		SELECT o.seq, x.part, o.doid, x.leaf_index, o.attempts,
			CASE WHEN o.state = 2 AND o.due_at IS NOT NULL THEN o.due_at ELSE now() END, o.last_error, o.state = 4, now()
		` + positioned + ` JOIN {{.Partition}} AS p ON p.part = x.part
		WHERE x.leaf_index <= p.cursor AND o.state IN (0, 1, 2, 4)
		ON CONFLICT (seq) DO NOTHING`,
}

// takeBatch starts SetLeaves and SetLeavesParts: it takes the batch's
// seqs ($1) off the queue, by their range (see SetLeaves), and inserts
// positions for those it took, from the SELECT that follows.
const takeBatch = `WITH d AS (DELETE FROM {{.Unsequenced}} AS u WHERE u.seq = ANY($1::bigint[])
			AND u.seq BETWEEN (SELECT min(a) FROM unnest($1::bigint[]) AS a) AND (SELECT max(a) FROM unnest($1::bigint[]) AS a)
			RETURNING u.seq)
		INSERT INTO {{.Position}} (leaf_index, seq, part)
		`

// failureTable unnests five arrays into v(seq, err, delay_us, held,
// dead): five parameters whatever the number of failures.
func failureTable(first int, fs []core.Failure) (string, []any) {
	seqs, errs, delays := make([]int64, len(fs)), make([]string, len(fs)), make([]int64, len(fs))
	held, dead := make([]bool, len(fs)), make([]bool, len(fs))
	for i, f := range fs {
		seqs[i], errs[i], delays[i], held[i], dead[i] = f.Seq, f.Err, f.Delay.Microseconds(), f.Held, f.Dead
	}
	p := func(i int) string { return "$" + strconv.Itoa(first+i) }
	return "unnest(" + p(0) + "::bigint[], " + p(1) + "::text[], " + p(2) + "::bigint[], " + p(3) + "::boolean[], " + p(4) +
			"::boolean[]) AS v(seq, err, delay_us, held, dead)",
		[]any{seqs, errs, delays, held, dead}
}

// leafTable unnests two arrays into v(seq, leaf).
func leafTable(seqs, leaves []int64) (string, []any) {
	return "unnest($1::bigint[], $2::bigint[]) AS v(seq, leaf)", []any{seqs, leaves}
}

// leafPartTable unnests three arrays into v(seq, leaf, part).
func leafPartTable(seqs, leaves []int64, parts []int) (string, []any) {
	ps := make([]int32, len(parts))
	for i, p := range parts {
		ps[i] = int32(p)
	}
	return "unnest($1::bigint[], $2::bigint[], $3::integer[]) AS v(seq, leaf, part)", []any{seqs, leaves, ps}
}

// hashInsert inserts stored hashes from two arrays.
func hashInsert(table string, idx []int64, hashes [][]byte) (string, []any) {
	return "INSERT INTO " + table + " (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])", []any{idx, hashes}
}

// markColumn is true in the rows the store inserts: its INSERT queues
// them itself (queueInsert), and the table's trigger (migration 00007)
// queues only the rows of other inserts, where it is false.
const markColumn, markValue = "queued", "true"

// queueInsert makes insert, an INSERT of operations with markColumn
// true, queue them for the sequencer in the same statement, then run
// then (a SELECT, or "" for nothing).
func queueInsert(insert, unsequenced, then string) string {
	ins := "WITH ins AS (" + insert + " RETURNING seq)"
	queue := "INSERT INTO " + unsequenced + " (seq) SELECT seq FROM ins"
	if then == "" {
		return ins + " " + queue
	}
	return ins + ", queue AS (" + queue + ") " + then
}

// arrayInsert inserts operations from one array per column
// (sqlstore.Dialect.ArrayInsert); a NULL IP is an empty one.
func arrayInsert(table string, ops []*core.Operation, now time.Time, parts int) (string, []any) {
	n := len(ops)
	text := func() []string { return make([]string, n) }
	id, src, typ, doid, prefix, repo, actor, producer := text(), text(), text(), text(), text(), text(), text(), text()
	alg, req, resp, opHash, signer, sign := text(), text(), text(), text(), text(), text()
	clientIP, serverIP := make([]*string, n), make([]*string, n)
	created, updated := make([]time.Time, n), make([]time.Time, n)
	part := make([]int32, n)
	ip := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	now = now.UTC()
	for i, op := range ops {
		id[i], src[i], typ[i], doid[i], prefix[i], repo[i] = op.OpID, string(op.Source), op.Type, op.DOID, op.DOPrefix, op.DORepository
		actor[i], producer[i], alg[i], req[i], resp[i] = op.Actor, op.ProducerID, string(op.HashAlg), op.RequestBodyHash, op.ResponseBodyHash
		clientIP[i], serverIP[i], created[i] = ip(op.ClientIP), ip(op.ServerIP), op.CreatedAt.UTC()
		opHash[i], signer[i], sign[i], updated[i] = op.OpHash, op.Signer, hex.EncodeToString(op.Sign), now
		part[i] = int32(core.PartitionOf(op.DOID, parts))
	}
	q := "INSERT INTO " + table + " (" + sqlstore.InsertColumns + ", " + markColumn + ") SELECT *, " + markValue + " FROM unnest(" +
		"$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], " +
		"$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], " +
		"$15::text[], $16::text[], $17::text[], $18::timestamptz[], $19::smallint[])"
	return q, []any{id, src, typ, doid, prefix, repo, actor, producer, alg, req, resp, clientIP, serverIP, created,
		opHash, signer, sign, updated, part}
}

func dialect() *sqlstore.Dialect {
	mig, _ := fs.Sub(migrationFiles, "migrations")
	return &sqlstore.Dialect{
		Name:               "postgres",
		Caps:               core.Capabilities{ListenNotify: true, SessionLeases: true},
		Placeholder:        func(n int) string { return "$" + strconv.Itoa(n) },
		ListOperand:        func(p string, vals any) (string, any) { return "= ANY(" + p + ")", vals },
		TimeArg:            sqlstore.NativeTime,
		FailureTable:       failureTable,
		LeafTable:          leafTable,
		LeafPartTable:      leafPartTable,
		QueryRaw:           queryRaw,
		HashInsert:         hashInsert,
		ArrayInsert:        arrayInsert,
		MarkColumn:         markColumn,
		MarkValue:          markValue,
		Queries:            queries,
		Migrations:         mig,
		PositionsMigration: "00003",
		Retryable:          retryable,
		OverlapAppends:     true,
		UniqueViolation:    uniqueViolation,
	}
}

// retryable: deadlock_detected and serialization_failure roll the
// statement or transaction back; running it again is safe.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// uniqueViolation: unique_violation, a write refused by a unique index.
func uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
