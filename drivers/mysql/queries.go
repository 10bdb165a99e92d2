package mysql

import (
	"database/sql"
	"embed"
	"errors"
	"io/fs"
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

// Parameters are "?" (interpolated client-side: one round trip per
// statement, no server-side prepare), bound in textual order.
//
// Every UPDATE of claimed rows names them by seq and is pinned to the
// primary key: left to itself the optimizer prefers the (state, seq)
// index for "state = 1 AND seq IN (…)", locks a range of it, and deadlocks
// against concurrent claims moving rows into that range.
//
// MySQL's UPDATE has no RETURNING, so a claim is a short transaction: a
// locking SELECT of the candidates with FOR UPDATE SKIP LOCKED, then an
// UPDATE of exactly those rows by primary key (ClaimUpdate). FORCE INDEX
// keeps each claim on its (state, …) index: with most rows published the
// optimizer otherwise sometimes walks the primary key.
var queries = sqlstore.Queries{
	ClaimPending: `SELECT ` + sqlstore.ClaimSelectColumns + ` FROM {{.Op}} FORCE INDEX ({{.Prefix}}operation_state_seq)
		WHERE state = 0 AND seq > ? ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED`,
	ClaimPendingStrict: `SELECT ` + sqlstore.ClaimSelectColumns + ` FROM {{.Op}} AS c FORCE INDEX ({{.Prefix}}operation_state_seq)
		WHERE c.state = 0 AND c.seq > ? AND ` + noEarlier + ` ORDER BY c.seq LIMIT ? FOR UPDATE SKIP LOCKED`,
	ClaimDue: `SELECT ` + sqlstore.ClaimSelectColumns + ` FROM {{.Op}} AS c FORCE INDEX ({{.Prefix}}operation_state_due)
		WHERE c.state IN (1, 2) AND c.due_at <= ` + now + ` AND ` + sticky + ` ORDER BY c.due_at LIMIT ? FOR UPDATE SKIP LOCKED`,
	ClaimDueStrict: `SELECT ` + sqlstore.ClaimSelectColumns + ` FROM {{.Op}} AS c FORCE INDEX ({{.Prefix}}operation_state_due)
		WHERE c.state IN (1, 2) AND c.due_at <= ` + now + ` AND ` + sticky + ` AND ` + noEarlier + ` ORDER BY c.due_at LIMIT ? FOR UPDATE SKIP LOCKED`,
	ClaimUpdate: `UPDATE {{.Op}} FORCE INDEX (PRIMARY) SET state = 1, prev_token = ` + sqlstore.PrevTokenOnClaim + `, claim_token = ?, attempts = attempts + 1, due_at = ` + after("?") + `,
		updated_at = ` + now + ` WHERE seq {seqs}`,

	SettlePublished: `UPDATE {{.Op}} FORCE INDEX (PRIMARY) SET state = 3, published_at = ` + now + `, due_at = NULL, claim_token = NULL,
		updated_at = ` + now + ` WHERE claim_token = ? AND state = 1 AND seq {seqs}`,
	SettleRetry: `UPDATE {{.Op}} AS o FORCE INDEX (PRIMARY) JOIN {failures} ON o.seq = v.seq SET o.state = 2, o.last_error = v.err,
		o.due_at = ` + after("v.delay_us") + `, o.claim_token = NULL, o.updated_at = ` + now + `
		WHERE o.claim_token = {token} AND o.state = 1`,
	SettleDead: `UPDATE {{.Op}} AS o FORCE INDEX (PRIMARY) JOIN {failures} ON o.seq = v.seq SET o.state = 4, o.last_error = v.err,
		o.due_at = NULL, o.claim_token = NULL, o.updated_at = ` + now + `
		WHERE o.claim_token = {token} AND o.state = 1`,
	Adopt: `UPDATE {{.Op}} FORCE INDEX (PRIMARY) SET claim_token = ?, updated_at = ` + now + `
		WHERE claim_token = ? AND state = 1 AND seq {seqs}`,
	// MySQL evaluates SET from left to right with the values already
	// assigned, so state and due_at read attempts before it is decremented.
	Release: `UPDATE {{.Op}} FORCE INDEX (PRIMARY) SET state = CASE WHEN attempts <= 1 THEN 0 ELSE 2 END,
		due_at = CASE WHEN attempts <= 1 THEN NULL ELSE ` + now + ` END, attempts = attempts - 1,
		claim_token = NULL, updated_at = ` + now + ` WHERE claim_token = ? AND state = 1 AND seq {seqs}`,
	Restore: `UPDATE {{.Op}} FORCE INDEX (PRIMARY) SET claim_token = prev_token, attempts = attempts - 1,
		due_at = ` + now + `, updated_at = ` + now + ` WHERE claim_token = ? AND state = 1 AND prev_token IS NOT NULL AND seq {seqs}`,
	Requeue: `UPDATE {{.Op}} SET state = 0, attempts = 0, due_at = NULL, claim_token = NULL, updated_at = ` + now + `
		WHERE state = 4 AND op_id {ids}`,
	RequeueAll: `UPDATE {{.Op}} SET state = 0, attempts = 0, due_at = NULL, claim_token = NULL, updated_at = ` + now + `
		WHERE state = 4`,
	ListDead: `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} FORCE INDEX ({{.Prefix}}operation_state_seq)
		WHERE state = 4 AND seq > ? ORDER BY seq LIMIT ?`,
	Scan:        `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} WHERE seq > ? ORDER BY seq LIMIT ?`,
	Get:         `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} WHERE op_id = ?`,
	CountStates: `SELECT state, COUNT(*) FROM {{.Op}} GROUP BY state`,
	// LEAST is NULL if either side is: each side falls back to the other.
	OldestUnsettled: `SELECT o.seq, o.created_at FROM {{.Op}} AS o JOIN (SELECT
		(SELECT MIN(seq) FROM {{.Op}} WHERE state = 0) AS p,
		(SELECT MIN(seq) FROM {{.Op}} WHERE state IN (1, 2)) AS d) AS m
		ON o.seq = LEAST(COALESCE(m.p, m.d), COALESCE(m.d, m.p))`,
	MaxSeq: `SELECT MAX(seq) FROM {{.Op}}`,

	Unsequenced: `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} FORCE INDEX ({{.Prefix}}operation_leaf)
		WHERE leaf_index IS NULL AND seq > ? ORDER BY seq LIMIT ?`,
	Leaves: `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} FORCE INDEX ({{.Prefix}}operation_leaf)
		WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?`,
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
	PruneHorizon: `SELECT MIN(leaf_index) FROM {{.Op}} WHERE leaf_index >= ? AND leaf_index < ?
		AND (state <> 3 OR published_at IS NULL OR published_at >= DATE_SUB(` + now + `, INTERVAL ? MICROSECOND))`,
	StrictRecheck: `SELECT c.seq FROM {{.Op}} AS c WHERE c.seq {seqs} AND EXISTS (SELECT 1 FROM {{.Op}} AS e FORCE INDEX ({{.Prefix}}operation_doid)
		WHERE e.doid = c.doid AND e.state IN (0, 1, 2) AND e.seq < c.seq)`,
	PruneLeaves: `DELETE FROM {{.Op}} WHERE leaf_index >= ? AND leaf_index < ?`,
	PrunePublished: `DELETE FROM {{.Op}} WHERE leaf_index IS NULL AND state = 3
		AND published_at < DATE_SUB(` + now + `, INTERVAL ? MICROSECOND) ORDER BY seq LIMIT ?`,
	GetCursor: `SELECT cursor_value, updated_at FROM {{.Cursor}} WHERE cursor_key = ?`,
	SetCursor: `INSERT INTO {{.Cursor}} (cursor_key, cursor_value, updated_at) VALUES (?, ?, ` + now + `)
		ON DUPLICATE KEY UPDATE cursor_value = VALUES(cursor_value), updated_at = VALUES(updated_at)`,
}

// sticky lets a node take back its own expired claims as soon as they
// expire, and others only after a grace period: a relay that restarts
// quickly re-sends what it was sending. Args: node tag, grace (µs).
const sticky = `(c.state = 2 OR c.claim_token >> 40 = ? OR c.due_at <= ` + "DATE_SUB(" + now + ", INTERVAL ? MICROSECOND))"

// noEarlier is strict order's condition on a candidate c: no earlier
// operation of its DOID is pending, in flight or retrying. The
// (doid, state, seq) index answers it with three short range probes.
const noEarlier = `NOT EXISTS (SELECT 1 FROM {{.Op}} AS e FORCE INDEX ({{.Prefix}}operation_doid)
	WHERE e.doid = c.doid AND e.state IN (0, 1, 2) AND e.seq < c.seq)`

// failureTable is a derived table v(seq, err, delay_us) of UNION ALL rows.
func failureTable(_ int, fs []core.Failure) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 3*len(fs))
	b.WriteString("(")
	for i, f := range fs {
		if i == 0 {
			b.WriteString("SELECT ? AS seq, ? AS err, ? AS delay_us")
		} else {
			b.WriteString(" UNION ALL SELECT ?, ?, ?")
		}
		args = append(args, f.Seq, f.Err, f.Delay.Microseconds())
	}
	b.WriteString(") AS v")
	return b.String(), args
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
		Name:         "mysql",
		Caps:         core.Capabilities{SkipLocked: true, SessionLeases: true},
		Placeholder:  func(int) string { return "?" },
		TimeArg:      sqlstore.NativeTime,
		FailureTable: failureTable,
		LeafTable:    leafTable,
		HashInsert:   hashInsert,
		Queries:      queries,
		Migrations:   mig,
		Retryable:    retryable,
		// READ COMMITTED: the locking read takes record locks only, no gap
		// locks, so a claim never blocks an application inserting new
		// operations, whatever plan the optimizer picks. It is as fast as
		// REPEATABLE READ here (BenchmarkClaimIsolation) and as safe: SKIP
		// LOCKED reads the latest committed rows under either level, and
		// the UPDATE touches only the rows the SELECT locked.
		ClaimTx: &sql.TxOptions{Isolation: sql.LevelReadCommitted},
	}
}

// retryable: deadlocks (1213) and lock wait timeouts (1205) roll the
// statement or transaction back; running it again is safe.
func retryable(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}
