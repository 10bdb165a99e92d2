package postgres

import (
	"embed"
	"errors"
	"io/fs"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// micros turns a bigint parameter of microseconds into an interval.
func micros(p string) string { return "(" + p + "::bigint * interval '1 microsecond')" }

// Claims: one statement each. The candidate subquery locks its rows with
// FOR UPDATE SKIP LOCKED, so concurrent claimers pass over each other's
// rows instead of waiting; = ANY(ARRAY(…)) makes the planner run it once,
// with its LIMIT, rather than as a semi-join. Rows another claimer updated
// since this statement's snapshot are re-checked against state = 0 and
// dropped (READ COMMITTED's recheck), so no row is claimed twice.
var queries = sqlstore.Queries{
	ClaimPending: claim(`SELECT seq FROM {{.Op}} WHERE state = 0 AND seq > $3 ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED`),
	ClaimPendingStrict: claim(`SELECT seq FROM {{.Op}} AS c WHERE c.state = 0 AND c.seq > $3 AND ` + noEarlier + `
		ORDER BY c.seq LIMIT $4 FOR UPDATE SKIP LOCKED`),
	ClaimDue: claim(`SELECT seq FROM {{.Op}} AS c WHERE c.state IN (1, 2) AND c.due_at <= now() AND ` + sticky + `
		ORDER BY c.due_at LIMIT $5 FOR UPDATE SKIP LOCKED`),
	ClaimDueStrict: claim(`SELECT seq FROM {{.Op}} AS c WHERE c.state IN (1, 2) AND c.due_at <= now() AND ` + sticky + `
		AND ` + noEarlier + ` ORDER BY c.due_at LIMIT $5 FOR UPDATE SKIP LOCKED`),

	SettlePublished: `UPDATE {{.Op}} SET state = 3, published_at = now(), due_at = NULL, claim_token = NULL,
		updated_at = now() WHERE claim_token = $1 AND ` + claimedRow + ` AND seq {seqs}`,
	SettleRetry: `UPDATE {{.Op}} AS o SET state = 2, last_error = v.err, due_at = now() + ` + micros("v.delay_us") + `,
		claim_token = NULL, updated_at = now()
		FROM {failures} WHERE o.seq = v.seq AND o.claim_token = {token} AND o.` + claimedRow,
	SettleDead: `UPDATE {{.Op}} AS o SET state = 4, last_error = v.err, due_at = NULL, claim_token = NULL, updated_at = now()
		FROM {failures} WHERE o.seq = v.seq AND o.claim_token = {token} AND o.` + claimedRow,
	Adopt: `UPDATE {{.Op}} SET claim_token = $1, updated_at = now() WHERE claim_token = $2 AND ` + claimedRow + ` AND seq {seqs}`,
	Release: `UPDATE {{.Op}} SET state = CASE WHEN attempts <= 1 THEN 0 ELSE 2 END, attempts = attempts - 1,
		due_at = CASE WHEN attempts <= 1 THEN NULL ELSE now() END, claim_token = NULL, updated_at = now()
		WHERE claim_token = $1 AND ` + claimedRow + ` AND seq {seqs}`,
	Restore: `UPDATE {{.Op}} SET claim_token = prev_token, attempts = attempts - 1, due_at = now(), updated_at = now()
		WHERE claim_token = $1 AND ` + claimedRow + ` AND prev_token IS NOT NULL AND seq {seqs}`,
	Requeue: `UPDATE {{.Op}} SET state = 0, attempts = 0, due_at = NULL, claim_token = NULL, updated_at = now()
		WHERE state = 4 AND op_id {ids}`,
	RequeueAll: `UPDATE {{.Op}} SET state = 0, attempts = 0, due_at = NULL, claim_token = NULL, updated_at = now()
		WHERE state = 4`,
	ListDead:    `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} WHERE state = 4 AND seq > $1 ORDER BY seq LIMIT $2`,
	Scan:        `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} WHERE seq > $1 ORDER BY seq LIMIT $2`,
	Get:         `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} WHERE op_id = $1`,
	CountStates: `SELECT state, COUNT(*) FROM {{.Op}} GROUP BY state`,
	// LEAST ignores NULLs: the smaller of the first pending and the first
	// in-flight or retrying seq, each found through its partial index.
	OldestUnsettled: `SELECT seq, created_at FROM {{.Op}} WHERE seq = LEAST(
		(SELECT MIN(seq) FROM {{.Op}} WHERE state = 0), (SELECT MIN(seq) FROM {{.Op}} WHERE state IN (1, 2)))`,
	MaxSeq: `SELECT MAX(seq) FROM {{.Op}}`,

	Unsequenced:    `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} WHERE leaf_index IS NULL AND seq > $1 ORDER BY seq LIMIT $2`,
	Leaves:         `SELECT ` + sqlstore.Columns + ` FROM {{.Op}} WHERE leaf_index >= $1 ORDER BY leaf_index LIMIT $2`,
	TreeSize:       `SELECT size FROM {{.Tree}} WHERE id = 1`,
	TreeSizeLocked: `SELECT size FROM {{.Tree}} WHERE id = 1 FOR UPDATE`,
	SetTreeSize:    `UPDATE {{.Tree}} SET size = $1, updated_at = now() WHERE id = 1 AND size = $2`,
	SetLeaves: `UPDATE {{.Op}} AS o SET leaf_index = v.leaf FROM {leaves}
		WHERE o.seq = v.seq AND o.leaf_index IS NULL`,
	ReadHashes:       `SELECT idx, hash FROM {{.Hash}} WHERE idx {ids}`,
	InsertCheckpoint: `INSERT INTO {{.Checkpoint}} (tree_size, root_hash, note, created_at) VALUES ($1, $2, $3, now())`,
	Checkpoints: `SELECT tree_size, root_hash, note, created_at, published_at FROM {{.Checkpoint}}
		WHERE tree_size > $1 ORDER BY tree_size LIMIT $2`,
	UnpublishedCheckpoints: `SELECT tree_size, root_hash, note, created_at, published_at FROM {{.Checkpoint}}
		WHERE tree_size > $1 AND published_at IS NULL ORDER BY tree_size LIMIT $2`,
	LatestCheckpoint: `SELECT tree_size, root_hash, note, created_at, published_at FROM {{.Checkpoint}}
		ORDER BY tree_size DESC LIMIT 1`,
	MarkCheckpointPublished: `UPDATE {{.Checkpoint}} SET published_at = now() WHERE tree_size = $1`,
	PruneHorizon: `SELECT MIN(leaf_index) FROM {{.Op}} WHERE leaf_index >= $1 AND leaf_index < $2
		AND (state <> 3 OR published_at IS NULL OR published_at >= now() - ` + micros("$3") + `)`,
	PruneLeaves: `DELETE FROM {{.Op}} WHERE leaf_index >= $1 AND leaf_index < $2`,
	PrunePublished: `DELETE FROM {{.Op}} WHERE seq = ANY(ARRAY(SELECT seq FROM {{.Op}} WHERE leaf_index IS NULL AND state = 3
		AND published_at < now() - ` + micros("$1") + ` ORDER BY seq LIMIT $2))`,
	GetCursor: `SELECT cursor_value, updated_at FROM {{.Cursor}} WHERE cursor_key = $1`,
	SetCursor: `INSERT INTO {{.Cursor}} (cursor_key, cursor_value, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (cursor_key) DO UPDATE SET cursor_value = excluded.cursor_value, updated_at = excluded.updated_at`,
}

// claimedRow is the settles' and the release's "still in flight" check,
// state = 1, written so that no partial index's predicate matches it. The
// planner's statistics, taken when few rows were in flight, rate
// operation_due (state IN (1, 2)) as nearly empty, so for "state = 1 AND
// seq = ANY($2)" it walks that whole index, whose dead entries of settled
// rows pile up between vacuums, instead of probing the primary key once
// per seq: during a four-relay drain of 200,000 rows each settle read
// about 100,000 index entries and took 29 ms. "state + 0" leaves the
// primary key as the only index that fits.
const claimedRow = `state + 0 = 1`

// sticky lets a node take back its own expired claims as soon as they
// expire, and others only after a grace period: a relay that restarts
// quickly re-sends what it was sending. Args $3: node tag, $4: grace (µs).
const sticky = `(c.state = 2 OR c.claim_token >> 40 = $3 OR c.due_at <= now() - ` + "($4::bigint * interval '1 microsecond'))"

// noEarlier is strict order's condition on a candidate c: no earlier
// operation of its DOID is pending, in flight or retrying.
const noEarlier = `NOT EXISTS (SELECT 1 FROM {{.Op}} AS e
	WHERE e.doid = c.doid AND e.seq < c.seq AND e.state IN (0, 1, 2))`

// claim wraps a candidate SELECT into the claiming UPDATE. Args: token,
// lease (µs), [after seq,] limit. PostgreSQL evaluates every SET with the
// row's old values, so prev_token is worked out from the old claim_token.
func claim(candidates string) string {
	return `UPDATE {{.Op}} SET state = 1, prev_token = ` + sqlstore.PrevTokenOnClaim + `, claim_token = $1, attempts = attempts + 1,
		due_at = now() + ` + micros("$2") + `, updated_at = now()
		WHERE seq = ANY(ARRAY(` + candidates + `)) RETURNING ` + sqlstore.Columns
}

// failureTable unnests three arrays into v(seq, err, delay_us): three
// parameters whatever the number of failures.
func failureTable(first int, fs []core.Failure) (string, []any) {
	seqs, errs, delays := make([]int64, len(fs)), make([]string, len(fs)), make([]int64, len(fs))
	for i, f := range fs {
		seqs[i], errs[i], delays[i] = f.Seq, f.Err, f.Delay.Microseconds()
	}
	p := func(i int) string { return "$" + strconv.Itoa(first+i) }
	return "unnest(" + p(0) + "::bigint[], " + p(1) + "::text[], " + p(2) + "::bigint[]) AS v(seq, err, delay_us)",
		[]any{seqs, errs, delays}
}

// leafTable unnests two arrays into v(seq, leaf).
func leafTable(seqs, leaves []int64) (string, []any) {
	return "unnest($1::bigint[], $2::bigint[]) AS v(seq, leaf)", []any{seqs, leaves}
}

// hashInsert inserts stored hashes from two arrays.
func hashInsert(table string, idx []int64, hashes [][]byte) (string, []any) {
	return "INSERT INTO " + table + " (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])", []any{idx, hashes}
}

func dialect() *sqlstore.Dialect {
	mig, _ := fs.Sub(migrationFiles, "migrations")
	return &sqlstore.Dialect{
		Name:         "postgres",
		Caps:         core.Capabilities{SkipLocked: true, ListenNotify: true, SessionLeases: true},
		Placeholder:  func(n int) string { return "$" + strconv.Itoa(n) },
		ListOperand:  func(p string, vals any) (string, any) { return "= ANY(" + p + ")", vals },
		TimeArg:      sqlstore.NativeTime,
		FailureTable: failureTable,
		LeafTable:    leafTable,
		HashInsert:   hashInsert,
		Queries:      queries,
		Migrations:   mig,
		Retryable:    retryable,
	}
}

// retryable: deadlock_detected and serialization_failure roll the
// statement or transaction back; running it again is safe.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}
