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

// Every statement uses plain "?" parameters, bound in textual order.
//
// SQLite has no SKIP LOCKED: a claim is one UPDATE ... RETURNING, and the
// database's single writer serialises claims, so two workers can never
// take the same row. INDEXED BY pins each claim to its partial index:
// after ANALYZE on a mostly-pending table the planner otherwise prefers a
// full scan, which is ten times slower.
var queries = sqlstore.Queries{
	ClaimPending: claim(`SELECT seq FROM {{.Op}} INDEXED BY {{.Prefix}}operation_pending
		WHERE state = 0 AND seq > ? ORDER BY seq LIMIT ?`),
	ClaimPendingStrict: claim(`SELECT seq FROM {{.Op}} AS c INDEXED BY {{.Prefix}}operation_pending
		WHERE c.state = 0 AND c.seq > ? AND ` + noEarlier + ` ORDER BY c.seq LIMIT ?`),
	ClaimDue: claim(`SELECT seq FROM {{.Op}} AS c INDEXED BY {{.Prefix}}operation_due
		WHERE c.state IN (1, 2) AND c.due_at <= ` + now + ` AND ` + sticky + ` ORDER BY c.due_at LIMIT ?`),
	ClaimDueStrict: claim(`SELECT seq FROM {{.Op}} AS c INDEXED BY {{.Prefix}}operation_due
		WHERE c.state IN (1, 2) AND c.due_at <= ` + now + ` AND ` + sticky + ` AND ` + noEarlier + ` ORDER BY c.due_at LIMIT ?`),

	SettlePublished: `UPDATE {{.Op}} SET state = 3, published_at = ` + now + `, due_at = NULL, claim_token = NULL,
		updated_at = ` + now + ` WHERE claim_token = ? AND state = 1 AND seq {seqs}`,
	SettleRetry: `WITH {failures} UPDATE {{.Op}} AS o SET state = 2, last_error = v.err,
		due_at = ` + now + ` + v.delay_us, claim_token = NULL, updated_at = ` + now + `
		FROM v WHERE o.seq = v.seq AND o.claim_token = {token} AND o.state = 1`,
	SettleDead: `WITH {failures} UPDATE {{.Op}} AS o SET state = 4, last_error = v.err,
		due_at = NULL, claim_token = NULL, updated_at = ` + now + `
		FROM v WHERE o.seq = v.seq AND o.claim_token = {token} AND o.state = 1`,
	Adopt: `UPDATE {{.Op}} SET claim_token = ?, updated_at = ` + now + ` WHERE claim_token = ? AND state = 1 AND seq {seqs}`,
	// The attempt a released claim made is given back: a row claimed from
	// pending returns to pending, one claimed from retrying to retrying.
	Release: `UPDATE {{.Op}} SET state = CASE WHEN attempts <= 1 THEN 0 ELSE 2 END, attempts = attempts - 1,
		due_at = CASE WHEN attempts <= 1 THEN NULL ELSE ` + now + ` END, claim_token = NULL, updated_at = ` + now + `
		WHERE claim_token = ? AND state = 1 AND seq {seqs}`,
	Restore: `UPDATE {{.Op}} SET claim_token = prev_token, attempts = attempts - 1, due_at = ` + now + `,
		updated_at = ` + now + ` WHERE claim_token = ? AND state = 1 AND prev_token IS NOT NULL AND seq {seqs}`,
	Requeue: `UPDATE {{.Op}} SET state = 0, attempts = 0, due_at = NULL, claim_token = NULL,
		updated_at = ` + now + ` WHERE state = 4 AND op_id {ids}`,
	RequeueAll: `UPDATE {{.Op}} SET state = 0, attempts = 0, due_at = NULL, claim_token = NULL,
		updated_at = ` + now + ` WHERE state = 4`,
	ListDead: `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} INDEXED BY {{.Prefix}}operation_dead
		WHERE state = 4 AND seq > ? ORDER BY seq LIMIT ?`,
	Scan:        `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} WHERE seq > ? ORDER BY seq LIMIT ?`,
	Get:         `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} WHERE op_id = ?`,
	CountStates: `SELECT state, COUNT(*) FROM {{.Op}} GROUP BY state`,
	OldestUnsettled: `SELECT seq, created_at FROM {{.Op}} WHERE seq = (SELECT MIN(m) FROM (
		SELECT MIN(seq) AS m FROM {{.Op}} INDEXED BY {{.Prefix}}operation_pending WHERE state = 0
		UNION ALL SELECT MIN(seq) FROM {{.Op}} INDEXED BY {{.Prefix}}operation_due WHERE state IN (1, 2)))`,
	MaxSeq: `SELECT MAX(seq) FROM {{.Op}}`,
	PruneHorizon: `SELECT MIN(leaf_index) FROM {{.Op}} WHERE leaf_index >= ? AND leaf_index < ?
		AND (state <> 3 OR published_at IS NULL OR published_at >= ` + now + ` - ?)`,
	PruneLeaves: `DELETE FROM {{.Op}} WHERE leaf_index >= ? AND leaf_index < ?`,
	PrunePublished: `DELETE FROM {{.Op}} WHERE seq IN (SELECT seq FROM {{.Op}} WHERE leaf_index IS NULL AND state = 3
		AND published_at < ` + now + ` - ? ORDER BY seq LIMIT ?)`,
	GetCursor: `SELECT cursor_value, updated_at FROM {{.Cursor}} WHERE cursor_key = ?`,
	SetCursor: `INSERT INTO {{.Cursor}} (cursor_key, cursor_value, updated_at) VALUES (?, ?, ` + now + `)
		ON CONFLICT (cursor_key) DO UPDATE SET cursor_value = excluded.cursor_value, updated_at = excluded.updated_at`,

	Unsequenced: `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} INDEXED BY {{.Prefix}}operation_unsequenced
		WHERE leaf_index IS NULL AND seq > ? ORDER BY seq LIMIT ?`,
	Leaves:   `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?`,
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

	LeaseTable: `CREATE TABLE IF NOT EXISTS {{.Lease}} (
		name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL)`,
	LeaseAcquire: `INSERT INTO {{.Lease}} (name, holder, expires_at) VALUES (?, ?, ` + now + ` + ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE {{.Lease}}.expires_at < ` + now,
	LeaseRenew:   `UPDATE {{.Lease}} SET expires_at = ` + now + ` + ? WHERE name = ? AND holder = ?`,
	LeaseRelease: `DELETE FROM {{.Lease}} WHERE name = ? AND holder = ?`,
}

// sticky lets a node take back its own expired claims as soon as they
// expire, and others only after a grace period: a relay that restarts
// quickly re-sends what it was sending. Args: node tag, grace (µs).
const sticky = `(c.state = 2 OR c.claim_token >> 40 = ? OR c.due_at <= ` + now + ` - ?)`

// noEarlier is strict order's condition on a candidate c: no earlier
// operation of its DOID is pending, in flight or retrying.
const noEarlier = `NOT EXISTS (SELECT 1 FROM {{.Op}} AS e INDEXED BY {{.Prefix}}operation_doid
	WHERE e.doid = c.doid AND e.seq < c.seq AND e.state IN (0, 1, 2))`

// claim wraps a candidate SELECT ([after seq,] limit) into the claiming
// UPDATE. Args: token, lease (µs), [after seq,] limit. SQLite evaluates
// every SET with the row's old values, so prev_token is worked out from
// the old claim_token.
func claim(candidates string) string {
	return `UPDATE {{.Op}} SET state = 1, prev_token = ` + sqlstore.PrevTokenOnClaim + `, claim_token = ?, attempts = attempts + 1,
		due_at = ` + now + ` + ?, updated_at = ` + now + `
		WHERE seq IN (` + candidates + `) RETURNING ` + sqlstore.Columns
}

// Lists and failure tables are bound as one JSON parameter each: the
// modernc driver matches arguments to parameters in quadratic time, so a
// thousand-element IN (?, ?, …) costs more than the statement itself.

// listOperand is "IN (SELECT value FROM json_each(?))" over a JSON array.
func listOperand(p string, vals any) (string, any) {
	b, _ := json.Marshal(vals)
	return "IN (SELECT value FROM json_each(" + p + "))", string(b)
}

// failureTable is a CTE v(seq, err, delay_us) over a JSON array of
// [seq, err, delay_us] triples.
func failureTable(_ int, fs []core.Failure) (string, []any) {
	rows := make([][3]any, len(fs))
	for i, f := range fs {
		rows[i] = [3]any{f.Seq, f.Err, f.Delay.Microseconds()}
	}
	b, _ := json.Marshal(rows)
	return `v(seq, err, delay_us) AS (SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?))`, []any{string(b)}
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
		Name:            "sqlite",
		Caps:            core.Capabilities{},
		Placeholder:     func(int) string { return "?" },
		TimeArg:         sqlstore.MicrosTime,
		FailureTable:    failureTable,
		ListOperand:     listOperand,
		LeafTable:       leafTable,
		HashInsert:      hashInsert,
		InsertRows:      16, // 288 parameters: see listOperand
		Queries:         queries,
		Migrations:      mig,
		SerializeWrites: true,
	}
}
