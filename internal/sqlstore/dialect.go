package sqlstore

import (
	"context"
	"database/sql"
	"io/fs"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// Dialect is everything about a store that differs between databases. A
// driver fills one in, with its SQL written out in full next to it.
type Dialect struct {
	// Name is the driver's name, used in errors.
	Name string
	// Caps is what the database can do.
	Caps core.Capabilities
	// Placeholder returns bind parameter n (1-based): "$n" or "?".
	Placeholder func(n int) string
	// ListOperand, if set, renders a list condition's operand for one
	// parameter and converts the list into that parameter's value: one
	// array ("= ANY($n)") or one JSON text ("IN (SELECT value FROM
	// json_each(?))"). Without it a list binds one parameter per element
	// ("IN (?, ?, …)").
	ListOperand func(placeholder string, vals any) (string, any)
	// InsertRows caps the rows of one multi-row INSERT (default 1000).
	InsertRows int
	// TimeArg converts a time to the bind argument of a time column.
	TimeArg func(time.Time) any
	// FailureTable renders a derived table "v(seq, err, delay_us)" for n
	// failures, its parameters starting at first, and binds them.
	FailureTable func(first int, f []core.Failure) (string, []any)
	// Queries are the driver's statements; see Queries for their arguments.
	// They are text/template sources rendered with Names.
	Queries Queries
	// Migrations holds bun/migrate SQL files (text/template sources
	// rendered with Names).
	Migrations fs.FS
	// BeforeMigrate, if set, runs under the migration lease before
	// bun/migrate: drivers adopt the original SDK's tables here.
	BeforeMigrate func(ctx context.Context, s *Store) error
	// WrapInsert, if set, rewrites the multi-row INSERT statement (wake-up
	// notifications ride along with the insert, in the same round trip).
	WrapInsert func(insert string) string
	// SerializeWrites: the database has one writer at a time (SQLite). The
	// store runs its own writes one after the other behind a mutex instead
	// of letting its goroutines spin on the database's busy lock; other
	// processes still wait through the busy timeout.
	SerializeWrites bool
	// ClaimTx, if set, are the options of a two-step claim's transaction
	// (its isolation level).
	ClaimTx *sql.TxOptions
	// Retryable, if set, says an error rolled back a statement or
	// transaction that may simply run again (a deadlock victim); the store
	// retries it a few times with a short backoff.
	Retryable func(error) bool
	// LeafTable renders a derived table "v(seq, leaf)" (placed where the
	// SetLeaves query says {leaves}) and binds it.
	LeafTable func(seqs, leaves []int64) (string, []any)
	// HashInsert renders the INSERT of stored hashes into table and binds
	// it.
	HashInsert func(table string, idx []int64, hashes [][]byte) (string, []any)
	// NewLocker returns the store's Locker; nil uses lease rows.
	NewLocker func(s *Store) core.Locker
}

// Queries are a dialect's statements. "{seqs}" and "{ids}" stand for a list
// operand the store renders ("IN (?, ?)" or "= ANY($n)"), "{failures}" for
// the dialect's FailureTable. Every time arithmetic uses the database's
// clock; durations are bound as microseconds.
type Queries struct {
	// ClaimPending, ClaimPendingStrict, ClaimDue, ClaimDueStrict claim a
	// batch, setting prev_token to PrevTokenOnClaim (the claim_token the
	// row had, unless that was tentative). Args:
	// token, lease (µs), then for the pending claims the seq to claim
	// after and for the due claims the node tag and the grace (µs), then
	// limit. They return Columns.
	//
	// When ClaimUpdate is set they are instead SELECT ... FOR UPDATE SKIP
	// LOCKED statements (args: as above without token and lease) returning
	// ClaimSelectColumns before the claim, and ClaimUpdate (args: token,
	// lease (µs), {seqs}) marks the selected rows in the same transaction.
	ClaimPending, ClaimPendingStrict, ClaimDue, ClaimDueStrict string
	ClaimUpdate                                                string
	// SettlePublished marks rows published. Args: token, {seqs}.
	SettlePublished string
	// SettleRetry and SettleDead mark failed rows. Args: {failures}, then
	// the token at the parameter "{token}" stands for.
	SettleRetry, SettleDead string
	// Adopt turns a tentative claim into a plain one (see
	// core.TentativeClaim): claim_token = the plain token where it is the
	// tentative one. Args: plain token, tentative token, {seqs}.
	Adopt string
	// Release returns claimed rows to pending (no attempts left) or
	// retrying. Args: token, {seqs}.
	Release string
	// Restore returns claimed rows to the claim they were taken from:
	// claim_token = prev_token (rows with one), due now, attempt given
	// back. Args: token, {seqs}.
	Restore string
	// Requeue moves dead rows to pending. Args: {ids}. RequeueAll has none.
	Requeue, RequeueAll string
	// ListDead lists dead rows. Args: after seq, limit. Returns Columns.
	ListDead string
	// Scan lists rows in seq order. Args: after seq, limit. Returns
	// Columns.
	Scan string
	// Get returns one row by op_id. Returns Columns.
	Get string
	// CountStates returns (state, count) rows.
	CountStates string
	// OldestUnsettled returns (seq, created_at) of the unsettled row with
	// the smallest seq, or no row.
	OldestUnsettled string
	// MaxSeq returns the largest seq (NULL when empty).
	MaxSeq string
	// GetCursor returns (cursor_value, updated_at). Args: name.
	GetCursor string
	// SetCursor upserts a cursor. Args: name, value.
	SetCursor string
	// Unsequenced lists operations without a leaf index in seq order.
	// Args: after seq, limit. Returns Columns.
	Unsequenced string
	// Leaves lists sequenced operations in leaf order. Args: first leaf
	// index, limit. Returns Columns.
	Leaves string
	// TreeSize reads the tree size; TreeSizeLocked reads it locking the
	// row for the transaction. SetTreeSize args: new size, old size.
	TreeSize, TreeSizeLocked, SetTreeSize string
	// SetLeaves gives unsequenced rows their leaf index. Args: {leaves}.
	SetLeaves string
	// ReadHashes returns (idx, hash) rows. Args: {ids}.
	ReadHashes string
	// InsertCheckpoint args: tree size, root hash (hex), note.
	InsertCheckpoint string
	// Checkpoints lists (tree_size, root_hash, note, created_at,
	// published_at) from a size, in size order. Args: after size, limit.
	// UnpublishedCheckpoints likewise, only those not yet published.
	// LatestCheckpoint has no args and returns at most one row.
	Checkpoints, UnpublishedCheckpoints, LatestCheckpoint string
	// MarkCheckpointPublished args: tree size.
	MarkCheckpointPublished string
	// LeaseTable creates the lease table if the dialect uses lease rows;
	// Migrate runs it first, since the migration lease needs it.
	LeaseTable string
	// LeaseAcquire inserts or takes over an expired lease row. Args: name,
	// holder, ttl (µs). Affects one row when acquired.
	LeaseAcquire string
	// LeaseRenew extends a held lease. Args: ttl (µs), name, holder.
	LeaseRenew string
	// LeaseRelease deletes a held lease. Args: name, holder.
	LeaseRelease string
	// StrictRecheck, for dialects whose claim is a locking SELECT
	// (ClaimUpdate set), returns those of the locked candidates ({seqs})
	// that have an earlier operation of their DOID pending, in flight or
	// retrying. It runs as a second statement, after the candidates are
	// locked: under InnoDB a locking scan reads the latest committed rows
	// while a subquery of the same statement reads the snapshot taken when
	// the statement began, so a claim running while an earlier and then a
	// later operation of one object commit could lock the later one
	// without seeing the earlier.
	StrictRecheck string

	// PruneHorizon returns the lowest leaf index in [$1, $2) whose
	// operation is not yet prunable: not published, or published less than
	// $3 µs ago (NULL when every one is). PruneLeaves deletes the
	// operations with leaf index in [$1, $2). PrunePublished deletes up to
	// $2 unsequenced operations published more than $1 µs ago, oldest
	// first (retention without a ledger).
	PruneHorizon, PruneLeaves, PrunePublished string
}

// Columns is the column list every row-returning statement selects, in
// this order (see scanRecord).
const Columns = "seq, op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor, producer_id, " +
	"hash_alg, request_body_hash, response_body_hash, client_ip, server_ip, created_at, " +
	"op_hash, signer, sign, state, attempts, last_error, due_at, published_at, updated_at, leaf_index, prev_token"

// ClaimSelectColumns is Columns for a two-step claim's SELECT: what
// becomes the row's prev_token (PrevTokenOnClaim) in prev_token's place.
const ClaimSelectColumns = "seq, op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor, producer_id, " +
	"hash_alg, request_body_hash, response_body_hash, client_ip, server_ip, created_at, " +
	"op_hash, signer, sign, state, attempts, last_error, due_at, published_at, updated_at, leaf_index, " + PrevTokenOnClaim

// PrevTokenOnClaim is the prev_token a claim writes, evaluated on the
// row before the claim: its claim_token, unless that is a tentative
// claim's (core.TentativeClaim), which leaves the earlier prev_token in
// place. NULL (a row claimed from pending or retrying) stays NULL.
const PrevTokenOnClaim = "CASE WHEN claim_token & " + tentative + " <> 0 THEN prev_token ELSE claim_token END"

// tentative is core.TentativeClaim as an SQL literal; the two constants
// below keep them equal (either is negative, a compile error, otherwise).
const tentative = "2147483648"

const (
	_ = uint64(2147483648 - core.TentativeClaim)
	_ = uint64(core.TentativeClaim - 2147483648)
)

// InsertColumns is the column list of inserts, in bind order.
const InsertColumns = "op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor, producer_id, " +
	"hash_alg, request_body_hash, response_body_hash, client_ip, server_ip, created_at, " +
	"op_hash, signer, sign, updated_at"

const insertColumnCount = 18

// Names are the store's table names, quoted and qualified for the
// dialect, and the raw prefix for index names. Templates see them as
// {{.Op}}, {{.Cursor}}, {{.Lease}}, {{.Prefix}}.
type Names struct {
	Prefix string
	// Schema is the PostgreSQL schema, empty elsewhere.
	Schema string
	// Op is the operation table, Cursor the cursor table, Lease the lease
	// table; Hash, Tree and Checkpoint are the ledger's.
	Op, Cursor, Lease, Hash, Tree, Checkpoint string
	// Migrations and MigrationLocks are bun/migrate's tables, unquoted as
	// bun wants them.
	Migrations, MigrationLocks string
}
