package sqlstore

import (
	"context"
	"database/sql"
	"io/fs"
	"strings"
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
	// Partitions is the number of partitions the driver's URL asked for
	// ("partitions"), 0 if it did not: Migrate creates that many in a new
	// store (core.PartitionsDefault when 0) and refuses a different
	// explicit number on an existing one.
	Partitions int
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
	// ArrayInsert, if set, inserts rows with one array argument per
	// column (PostgreSQL's unnest) when the caller's handle binds
	// arguments (not bun's, which formats them into the text): it renders
	// the INSERT INTO table of the InsertColumns and binds ops' values,
	// updated_at now and each operation's partition out of parts. One
	// statement text for any row count, 19 arguments instead of 19 per
	// row: less to encode and bind than the multi-row VALUES list.
	ArrayInsert func(table string, ops []*core.Operation, now time.Time, parts int) (string, []any)
	// TimeArg converts a time to the bind argument of a time column.
	TimeArg func(time.Time) any
	// FailureTable renders a derived table "v(seq, err, delay_us, held,
	// dead)" for failures, its parameters starting at first, and binds
	// them: err is the error text ("" for none), delay_us the backoff in
	// microseconds, held and dead 1 or 0.
	FailureTable func(first int, f []core.Failure) (string, []any)
	// Queries are the driver's statements; see Queries for their arguments.
	// They are text/template sources rendered with Names.
	Queries Queries
	// Migrations holds bun/migrate SQL files (text/template sources
	// rendered with Names).
	Migrations fs.FS
	// PositionsMigration is the version ("00003") of the Go migration
	// that sqlstore registers between the driver's SQL migration adding
	// the partition and retry tables and the one dropping the operation
	// table's publishing columns: it gives every operation a position and
	// carries each one's publishing state over (see upgradePositions).
	PositionsMigration string
	// BeforeMigrate, if set, runs under the migration lease before
	// bun/migrate: drivers adopt the original SDK's tables here.
	BeforeMigrate func(ctx context.Context, s *Store) error
	// WrapInsert, if set, rewrites the multi-row INSERT statement (wake-up
	// notifications and PostgreSQL's queue rows ride along with the
	// insert, in the same round trip).
	WrapInsert func(insert string) string
	// MarkColumn and MarkValue, if set, are a column the store's own
	// inserts write and the constant they write in it, after
	// InsertColumns (PostgreSQL: queued, true; its trigger queues the
	// rows of every other insert, the store's INSERT its own). The
	// ArrayInsert of a dialect that sets them writes them too.
	MarkColumn, MarkValue string
	// SerializeWrites: the database has one writer at a time (SQLite). The
	// store runs its own writes one after the other behind a mutex instead
	// of letting its goroutines spin on the database's busy lock; other
	// processes still wait through the busy timeout.
	SerializeWrites bool
	// OverlapAppends: one Append's writes may run while the previous
	// Append commits (core.OverlappingAppender). Only where the earlier
	// append never waits for the later one's locks: a second write
	// transaction of SQLite waits for the first's lock, and on MariaDB the
	// duplicate check of the unique leaf_index index takes a next-key lock
	// on the next entry, the later batch's uncommitted position (the
	// conformance test AppendAfterCommitsInOrder ends in a lock wait
	// timeout there).
	OverlapAppends bool
	// UniqueViolation, wanted with OverlapAppends, says a write was
	// refused by a unique index (without it such an append fails with the
	// database's error instead). An overlapped append writes before it
	// checks the tree's size, so at a stale size its positions and hashes
	// meet the committed leaves' in the unique indexes: a conflict
	// (core.ErrConflict), as the size check would have said.
	UniqueViolation func(error) bool
	// WriteTx, if set, are the options of the store's write transactions
	// (Advance, SettleRetries, the partition leases): their isolation
	// level.
	WriteTx *sql.TxOptions
	// Retryable, if set, says an error rolled back a statement or
	// transaction that may simply run again (a deadlock victim); the store
	// retries it a few times with a short backoff.
	Retryable func(error) bool
	// LeafTable renders a derived table "v(seq, leaf)" of pairs (placed
	// where a query says {leaves}) and binds it: positions for SetLeaves,
	// partitions for SetParts.
	LeafTable func(seqs, leaves []int64) (string, []any)
	// LeafPartTable, if set, renders "v(seq, leaf, part)" for
	// Queries.SetLeavesParts: an append whose caller knows each
	// operation's partition (core.OverlappingAppender) writes it with the
	// position instead of reading the operation's row again.
	LeafPartTable func(seqs, leaves []int64, parts []int) (string, []any)
	// HashInsert renders the INSERT of stored hashes into table and binds
	// it.
	HashInsert func(table string, idx []int64, hashes [][]byte) (string, []any)
	// QueryRaw, if set, runs a query that returns records on one of db's
	// connections through the driver's own interface, calling each for
	// every row (scanned into the same destinations as a *sql.Rows), and
	// returns ErrNoRawQuery, having read nothing, when the connection is
	// not its driver's. PostgreSQL: pgx's own rows skip database/sql's
	// driver.Value per column and its conversion of each, a third of the
	// relay's decoding (BENCHMARKS.md).
	QueryRaw func(ctx context.Context, db *sql.DB, q string, args []any, each func(RowScanner) error) error
	// NewLocker returns the store's Locker; nil uses lease rows.
	NewLocker func(s *Store) core.Locker
	// PerPartition, if set, returns the sources of Counts and
	// OldestUnsettled (templates, rendered with Names) for a store of
	// parts partitions (parts > 0), which Stats uses instead of the
	// Queries' own: for a database that range-scans an index only on
	// constants, not on a correlated partition's cursor (MySQL and
	// MariaDB), one branch per partition with its number written out.
	PerPartition func(parts int) (counts, oldest string)
}

// Queries are a dialect's statements. "{seqs}" and "{ids}" stand for a list
// operand the store renders ("IN (?, ?)" or "= ANY($n)"), "{failures}" for
// the dialect's FailureTable, "{leaves}" for its LeafTable; "{arg1}",
// "{arg2}", … after a failure table are the parameters that follow its
// own. Every time arithmetic uses the database's clock; durations are
// bound as microseconds.
//
// The operation table is read as o, joined to its retry row r and its
// partition p (see Columns and RecordFrom): every statement returning
// records selects Columns.
type Queries struct {
	// Unsequenced lists operations without a position in seq order. Args:
	// after seq, limit. Returns Columns.
	Unsequenced string
	// UnsequencedExcept, if set, is Unsequenced from the start without the
	// seqs of a list (the sequencer's batch in flight). Args: the seqs as
	// one array, limit. Without it the store reads those seqs too and
	// drops them.
	UnsequencedExcept string
	// UnqueueMissing, if set (a queue of operations without a position,
	// PostgreSQL), deletes from the queue those of its first seqs whose
	// operation row is gone (deleted by hand before it got a position):
	// they would be read first by every pass, and a batch of them would
	// stop the sequencer. Args: how many of the first seqs to look at.
	UnqueueMissing string
	// Leaves lists sequenced operations in position order. Args: first
	// position, limit. Returns Columns.
	Leaves string
	// Scan lists operations in seq order. Args: after seq, limit. Returns
	// Columns.
	Scan string
	// Get returns one operation by op_id. Returns Columns.
	Get string
	// ReadPartition lists a partition's operations above a position, in
	// position order. Args: part, after, limit. Returns Columns and a
	// held column (always false). ReadPartitionStrict likewise, held
	// telling whether an earlier operation of the DOID is in the retry
	// table and not dead.
	ReadPartition, ReadPartitionStrict string

	// Partitions lists the partitions (part, cursor, generation, owner,
	// expires_at) in order. CountPartitions counts them.
	Partitions, CountPartitions string
	// CreatePartition inserts partition $1 unless it exists.
	CreatePartition string
	// AdvanceCursor moves a cursor. Args: to, part, generation, from.
	// Affects one row unless fenced.
	AdvanceCursor string
	// PartitionGeneration reads a partition's generation, locking its row
	// for the transaction. Args: part.
	PartitionGeneration string
	// InsertFailures puts failed operations in the retry table, copying
	// part, doid and leaf_index from the operation row, with attempts 1
	// (0 if held), last_error (NULL if empty), due after delay_us, dead.
	// Args: {failures}, then {arg1} part, {arg2} from, {arg3} to: only
	// operations of the partition with a position in (from, to] are
	// inserted.
	InsertFailures string
	// DeleteRetries removes published retries. Args: part, {seqs}.
	DeleteRetries string
	// SettleFailures records failed retries: attempts + 1 (unless held),
	// last_error (kept if empty), due after delay_us, dead. Args:
	// {failures}, then {arg1} part.
	SettleFailures string
	// DueRetries lists a partition's due retries that are not dead, in
	// position order. Args: part, limit. Returns Columns.
	// DueRetriesStrict likewise, only those with no earlier retry of
	// their DOID that is not dead.
	DueRetries, DueRetriesStrict string
	// TakePartition makes a member the owner of a partition that is free,
	// expired or already its own, incrementing its generation. Args:
	// member, ttl (µs), part, member. Affects one row when taken.
	TakePartition string
	// GetPartition returns one partition as Partitions does. Args: part.
	GetPartition string
	// RenewPartitions extends a member's leases. Args: ttl (µs), member.
	// OwnedPartitions lists them as Partitions does. Args: member.
	RenewPartitions, OwnedPartitions string
	// ReleasePartition frees a partition held at a generation. Args:
	// part, generation.
	ReleasePartition string
	// Heartbeat upserts a relay member's row. Args: member, ttl (µs).
	// ForgetMembers deletes expired ones; Members lists the rest. Leave
	// deletes one. Args: member.
	Heartbeat, ForgetMembers, Members, Leave string

	// Requeue makes dead retries due again. Args: {ids} (op_ids).
	// RequeueAll has none.
	Requeue, RequeueAll string
	// ListDead lists dead operations in seq order. Args: after seq,
	// limit. Returns Columns.
	ListDead string
	// FindByDOID, FindByActor and FindInRetry select Columns for
	// Inspector.Find, up to the WHERE clause the store appends
	// (conditions on o and r, "seq > after", ORDER BY seq, LIMIT): from
	// the operation table o through its (doid, seq) or (op_actor, seq,
	// created_at) index, or from the retry table r joined to its
	// operation.
	FindByDOID, FindByActor, FindInRetry string
	// FindDead and FindRetrying are the conditions on r of those states.
	// FindErrorContains is the condition "r.last_error contains the
	// parameter {arg}", compared byte for byte, with no wildcard.
	FindDead, FindRetrying, FindErrorContains string
	// Counts returns one row per partition, in order: its part, cursor,
	// generation, owner and expires_at (as Partitions) and its backlog
	// (operations with a position above its cursor), then the store's
	// figures, the same in every row: the tree size, the value of the
	// cursor named by the argument (the prune horizon; NULL if none),
	// operations without a position, retrying, dead, the largest seq
	// (NULL when empty). With no partition it returns one row whose
	// partition columns are NULL. Every figure is an index read or a
	// single row, none counts the operation table (see Stats); one
	// statement, so they agree with each other. Args: cursor name.
	Counts string
	// OldestUnsettled returns the smallest created_at of the operations
	// that are neither published nor dead (NULL when none).
	OldestUnsettled string
	// GetCursor returns (cursor_value, updated_at). Args: name.
	GetCursor string
	// SetCursor upserts a cursor. Args: name, value.
	SetCursor string
	// CreateCursor inserts a cursor unless it exists. Args: name, value.
	CreateCursor string

	// TreeSize reads the tree size; TreeSizeLocked reads it locking the
	// row for the transaction. SetTreeSize args: new size, old size.
	TreeSize, TreeSizeLocked, SetTreeSize string
	// SetLeaves gives unsequenced rows their position. Args: {leaves}.
	SetLeaves string
	// ReadHashRuns (with Names.HashRun) returns (first_idx, hashes) of
	// each run holding one of the stored-hash indexes of $1 (an array),
	// once each; InsertHashRuns inserts runs from two arrays, first
	// indexes ($1) and concatenated hashes ($2). Both empty where
	// ReadHashes reads Hash.
	ReadHashRuns, InsertHashRuns string
	// SetStoredHash and DeleteStoredHashes change stored hashes in place,
	// for the tamper tests that play an attacker with write access (bun's
	// ? placeholders): replace the hash at an index (hash, idx), delete
	// the hashes from an index on (idx).
	SetStoredHash, DeleteStoredHashes string
	// SetLeavesParts, if set (with Dialect.LeafPartTable), is SetLeaves
	// given each operation's partition in v.part.
	SetLeavesParts string
	// AppendNotify, if set, runs last in Append's transaction (a NOTIFY
	// waking relays when positions appear).
	AppendNotify string
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

	// PruneHorizon returns the lowest position in [$1, $2) whose
	// operation is not yet prunable: not published (above its
	// partition's cursor, or in the retry table), or recorded (created_at)
	// less than $3 µs ago; NULL when every one is. PruneLeaves deletes the
	// operations with a position in [$1, $2).
	PruneHorizon, PruneLeaves string

	// Upgrade statements, run once by the positions migration on the
	// operation table as the first schema left it (state, attempts,
	// due_at, last_error columns).
	//
	// Parts lists (seq, doid) after a seq in seq order. Args: after seq,
	// limit. SetParts sets part from {leaves} (seq, part) where it
	// differs.
	Parts, SetParts string
	// Repartition statements (Store.Repartition). DropPartitions deletes
	// the partition rows from a part on (arg: n); ResetPartitions gives
	// every partition row a cursor and a generation and takes its owner
	// away (args: cursor, generation); RetryParts copies each retry row's
	// partition from its operation's.
	DropPartitions, ResetPartitions, RetryParts string
	// LockPartitions locks every partition row for the transaction and
	// returns how many have a cursor (not -1); RetryRows counts the
	// retry table.
	LockPartitions, RetryRows string
	// UpgradeCursors sets each partition's cursor to the largest position
	// in it of an operation that is not pending and untried (state 0, no
	// attempts, no error), -1 if none.
	UpgradeCursors string
	// UpgradeRetries puts every operation at or below its partition's
	// cursor that is pending, in flight, retrying or dead (state 0, 1, 2,
	// 4) in the retry table: due now (retrying ones at their due_at),
	// attempts and last_error kept, dead ones dead.
	UpgradeRetries string
	// SchemaProblems, if set, returns one row (a text) per fault of the
	// schema that the migrations table cannot show: on PostgreSQL, the
	// operation table's queue trigger dropped or disabled. No rows: none.
	SchemaProblems string
	// AdoptPositions, if set, runs first: where positions live in a table
	// of their own (PostgreSQL), it moves there those the operation rows
	// of the previous release hold and takes them off the queue of
	// operations without one.
	AdoptPositions string
}

// Columns is the column list every record-returning statement selects, in
// this order (see scanRecord), from the operation table o left-joined to
// its retry row r and its partition p (RecordFrom). The state is derived
// as core.State documents: dead or retrying from the retry row, published
// at or below the partition's cursor, pending otherwise.
const Columns = "o.seq, o.op_id, o.op_source, o.op_type, o.doid, o.do_prefix, o.do_repository, o.op_actor, o.producer_id, " +
	"o.hash_alg, o.request_body_hash, o.response_body_hash, o.client_ip, o.server_ip, o.created_at, " +
	"o.op_hash, o.signer, o.sign, " + StateExpr + ", COALESCE(r.attempts, 0), r.last_error, r.due_at, " +
	"COALESCE(r.updated_at, o.updated_at), o.leaf_index, o.part"

// PendingColumns is Columns for operations known to be pending (no
// position yet, or above their partition's cursor): they have no retry
// row and their state is pending by definition, so the statements that
// read only such rows (Unsequenced, ReadPartition) read the operation
// table alone, with no join for the planner to get wrong on a table whose
// statistics lag behind a burst of inserts.
const PendingColumns = "o.seq, o.op_id, o.op_source, o.op_type, o.doid, o.do_prefix, o.do_repository, o.op_actor, o.producer_id, " +
	"o.hash_alg, o.request_body_hash, o.response_body_hash, o.client_ip, o.server_ip, o.created_at, " +
	"o.op_hash, o.signer, o.sign, 0, 0, NULL, NULL, o.updated_at, o.leaf_index, o.part"

// StateExpr is an operation's derived state (core.State) over o, r and p.
const StateExpr = "CASE WHEN r.seq IS NOT NULL THEN CASE WHEN r.dead THEN 4 ELSE 2 END " +
	"WHEN o.leaf_index <= p.cursor THEN 3 ELSE 0 END"

// RecordFrom is the FROM clause of Columns: the operation table o, its
// retry row r and its partition p. Templates render {{.Op}} and the rest.
const RecordFrom = " FROM {{.Op}} AS o LEFT JOIN {{.Retry}} AS r ON r.seq = o.seq LEFT JOIN {{.Partition}} AS p ON p.part = o.part"

// InsertColumns is the column list of inserts, in bind order.
const InsertColumns = "op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor, producer_id, " +
	"hash_alg, request_body_hash, response_body_hash, client_ip, server_ip, created_at, " +
	"op_hash, signer, sign, updated_at, part"

const insertColumnCount = 19

// Qualified prefixes each name of a comma-separated column list (such as
// InsertColumns) with alias ("o."), for statements that join.
func Qualified(alias, list string) string {
	names := strings.Split(list, ",")
	for i, n := range names {
		names[i] = alias + strings.TrimSpace(n)
	}
	return strings.Join(names, ", ")
}

// Names are the store's table names, quoted and qualified for the
// dialect, and the raw prefix for index names. Templates see them as
// {{.Op}}, {{.Cursor}}, {{.Lease}}, {{.Partition}}, {{.Retry}},
// {{.Relay}}, {{.Status}}, {{.Position}}, {{.Unsequenced}},
// {{.QueueFunc}}, {{.Prefix}}.
type Names struct {
	Prefix string
	// Schema is the PostgreSQL schema, empty elsewhere.
	Schema string
	// Op is the operation table, Cursor the cursor table, Lease the lease
	// table; Hash, Tree and Checkpoint are the ledger's.
	Op, Cursor, Lease, Hash, Tree, Checkpoint string
	// Partition holds the partitions' cursors and leases, Retry the
	// operations the sink refused, Relay the live relay members; Status
	// is the view of each operation's original SDK status.
	Partition, Retry, Relay, Status string
	// Position and Unsequenced are PostgreSQL's narrow tables of positions
	// (leaf_index, seq, part) and of the operations without one (seq),
	// which a trigger, QueueFunc, fills; empty elsewhere, where the
	// position is the operation row's leaf_index.
	Position, Unsequenced, QueueFunc string
	// HashRun is PostgreSQL's table of stored hashes in runs (first_idx,
	// hashes: the hashes of consecutive stored-hash indexes from
	// first_idx, 32 bytes each), which replaces Hash from migration 00008;
	// empty elsewhere, where Hash holds one row per stored hash.
	HashRun string
	// Migrations and MigrationLocks are bun/migrate's tables, unquoted as
	// bun wants them.
	Migrations, MigrationLocks string
}
