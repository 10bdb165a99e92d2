package core

import (
	"context"
	"database/sql"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Execer is what RecordTx needs from the caller's transaction. *sql.Tx,
// *sql.DB, *sql.Conn, bun.Tx, *bun.DB and bun.Conn all satisfy it, so an
// operation commits or rolls back with the caller's own change.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Capabilities is what a store's database can do. The engine and the
// conformance suite branch on it instead of a driver faking what it cannot
// do.
type Capabilities struct {
	// ListenNotify: the store implements Notifier and wakes engines when an
	// operation commits and when the sequencer gives operations their
	// positions. Without it engines poll when idle.
	ListenNotify bool
	// SessionLeases: named leases end as soon as their holder's database
	// session dies (advisory locks). Without it they end when their TTL
	// runs out (a lease row).
	SessionLeases bool
}

// PartitionsDefault is how many partitions Migrate creates in a new store
// unless told otherwise (a driver's "partitions" URL parameter). A
// partition is the unit relays share: at most one relay publishes a
// partition at a time, so P bounds how many relays help; each owned
// partition costs its owner one read per poll and, on Pulsar, one
// producer. 16 lets up to 16 relays share a store while an idle relay
// owning all of them makes 16 small index reads per poll.
const PartitionsDefault = 16

// MaxPartitions is the most partitions a store may have.
const MaxPartitions = 1024

// PartitionOf returns the partition of an operation on doid in a store
// of n partitions: FNV-1a (32 bit) of the DOID's UTF-8 bytes, modulo n.
// Every driver stores it in the operation row at insert (the "part"
// column), so a relay reads one partition through an index.
func PartitionOf(doid string, n int) int {
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for i := 0; i < len(doid); i++ {
		h ^= uint32(doid[i])
		h *= prime
	}
	return int(h % uint32(n))
}

// Failure is an operation that goes to the retry table.
type Failure struct {
	Seq int64
	// Err is the error text stored as last_error ("" for a held
	// operation).
	Err string
	// Delay is the backoff before the next attempt (0: due now).
	Delay time.Duration
	// Dead sends the operation to dead now (a permanent error, or its
	// last attempt).
	Dead bool
	// Held: the operation was not sent; it waits behind an earlier
	// operation of its DOID (strict order). Its attempts stay 0 and it is
	// due at once, but DueRetries in strict mode returns it only when no
	// earlier operation of its DOID is left in the table (dead ones do
	// not count).
	Held bool
}

// Partition is one partition's publishing state.
type Partition struct {
	Part int
	// Cursor is the position of the last operation the partition's owner
	// published or moved to the retry table; -1 before the first.
	Cursor int64
	// Generation counts the partition's owners: every TakePartition
	// increments it, and writes of an older owner are refused (ErrFenced).
	Generation int64
	// Owner is the relay member holding the partition ("" if none), until
	// Expires.
	Owner   string
	Expires time.Time
	// Backlog is how many operations of the partition have a position
	// above Cursor (sequenced, not yet published or sent to retry). Only
	// Stats fills it; Partitions and the lease methods leave it 0.
	Backlog int64
}

// ReadParams are the arguments of Store.ReadPartition.
type ReadParams struct {
	Part int
	// After: operations with a position above it.
	After int64
	// Limit is the most operations to return (> 0).
	Limit int
	// Strict sets Record.Held on operations whose DOID has an earlier
	// operation in the retry table that is not dead.
	Strict bool
}

// AdvanceParams are the arguments of Store.Advance.
type AdvanceParams struct {
	Part       int
	Generation int64
	// From is the cursor the caller read (compare-and-set), To the new one
	// (> From).
	From, To int64
	// Failed go to the retry table, in the same transaction: each must
	// have a position in (From, To] of this partition.
	Failed []Failure
}

// DueParams are the arguments of Store.DueRetries.
type DueParams struct {
	Part int
	// Limit is the most operations to return (> 0).
	Limit int
	// Strict returns an operation only if no earlier operation (by
	// position) of its DOID is in the retry table and not dead.
	Strict bool
}

// SettleParams are the arguments of Store.SettleRetries.
type SettleParams struct {
	Part       int
	Generation int64
	// Published leave the retry table.
	Published []int64
	// Failed stay in it: attempts + 1, last_error, due after Delay, or
	// dead.
	Failed []Failure
}

// ListParams are the arguments of Store.ListDead.
type ListParams struct {
	// AfterSeq lists operations with a larger seq (for paging).
	AfterSeq int64
	// Limit caps the result (default 100).
	Limit int
}

// ScanParams are the arguments of Store.Scan.
type ScanParams struct {
	// AfterSeq returns operations with a larger seq.
	AfterSeq int64
	// Limit caps the result (default 1000).
	Limit int
}

// RequeueParams are the arguments of Store.Requeue.
type RequeueParams struct {
	// OpIDs requeues these dead operations; empty with All requeues every
	// dead operation.
	OpIDs []string
	All   bool
}

// Stats summarises a store for `trustlog status` and metrics.
type Stats struct {
	// Counts has one entry per state.
	Counts map[State]int64
	// OldestUnsettled is the created_at of the oldest operation not yet
	// published or dead; zero when there is none.
	OldestUnsettled time.Time
	// MaxSeq is the largest seq recorded.
	MaxSeq int64
	// TreeSize is how many operations have a position.
	TreeSize int64
	// Partitions are the partitions' cursors and owners.
	Partitions []Partition
}

// Cursor is a named value kept in the store (the log's identity, tool
// state). Cursors report progress; they never decide what is published.
type Cursor struct {
	Name      string
	Value     string
	UpdatedAt time.Time
}

// LogIDCursor is the named cursor holding the store's log identity: a
// random name Migrate writes once. Sinks name per-partition streams after
// it (Pulsar producers), so a relay of any process finds a partition's
// stream again.
const LogIDCursor = "trustlog.log_id"

// Store is where operations live: a driver implements it on one database.
// Every method is safe for concurrent use. conformance.RunStore checks
// each method's contract as documented here.
type Store interface {
	// Capabilities reports what the database can do.
	Capabilities() Capabilities
	// Migrate creates or upgrades the schema, creates the partitions (see
	// PartitionsDefault) and the LogIDCursor if missing; it is idempotent
	// and safe to run from several processes at once.
	Migrate(ctx context.Context) error
	// Insert stores prepared (sealed) operations, each with its partition
	// (PartitionOf) and no position. With ex nil the store uses its own
	// transaction; otherwise the rows are written through ex and commit or
	// roll back with it. All or nothing.
	Insert(ctx context.Context, ex Execer, ops []*Operation) error

	// Unsequenced returns up to limit operations without a position and
	// with a seq above afterSeq, in seq order, each with its Part (the
	// engine wakes the publishers of the partitions it sequenced). Selected by that state,
	// never by a timestamp: afterSeq only lets the sequencer read the next
	// batch while it appends the last one; every stream of batches ends
	// with afterSeq 0, so an operation that commits late is sequenced
	// late, not skipped.
	Unsequenced(ctx context.Context, afterSeq int64, limit int) ([]Record, error)
	// TreeSize returns the number of operations with a position.
	TreeSize(ctx context.Context) (int64, error)
	// ReadHashes returns stored Merkle hashes by stored-hash index (see
	// tlog.StoredHashIndex).
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// Append, in one transaction: checks that the tree size is still
	// oldSize (else ErrConflict), gives seqs[i] position oldSize+i (each
	// must still have none, else ErrConflict), stores hashes from
	// stored-hash index tlog.StoredHashIndex(0, oldSize) on, and advances
	// the tree size by len(seqs). A store with ListenNotify wakes engines.
	Append(ctx context.Context, oldSize int64, seqs []int64, hashes []tlog.Hash) error

	// Partitions returns every partition, in order; len is P.
	Partitions(ctx context.Context) ([]Partition, error)
	// TakePartition makes member the owner of partition part until ttl
	// from now, if it has no owner, its owner's lease expired, or member
	// owns it already, and increments its generation; it returns the
	// partition as taken, or ErrLeaseHeld.
	TakePartition(ctx context.Context, part int, member string, ttl time.Duration) (Partition, error)
	// RenewPartitions extends every lease member holds to ttl from now and
	// returns the partitions it still owns (a lease that expired and was
	// taken is gone).
	RenewPartitions(ctx context.Context, member string, ttl time.Duration) ([]Partition, error)
	// ReleasePartition gives up a partition if it is still held at
	// generation gen.
	ReleasePartition(ctx context.Context, part int, gen int64) error
	// Heartbeat records member as alive until ttl from now, forgets
	// members whose time ran out, and returns the live members, sorted.
	Heartbeat(ctx context.Context, member string, ttl time.Duration) ([]string, error)
	// Leave forgets member at once (a relay that stops).
	Leave(ctx context.Context, member string) error

	// ReadPartition returns up to p.Limit operations of partition p.Part
	// with a position above p.After, in position order. It writes nothing.
	ReadPartition(ctx context.Context, p ReadParams) ([]Record, error)
	// Advance, in one transaction: moves the partition's cursor from
	// p.From to p.To if its generation is still p.Generation and its
	// cursor p.From (else ErrFenced, nothing written), and puts p.Failed
	// in the retry table.
	Advance(ctx context.Context, p AdvanceParams) error
	// DueRetries returns up to p.Limit operations of partition p.Part in
	// the retry table, not dead and due, in position order.
	DueRetries(ctx context.Context, p DueParams) ([]Record, error)
	// SettleRetries records what became of retried operations, if the
	// partition's generation is still p.Generation (else ErrFenced,
	// nothing written).
	SettleRetries(ctx context.Context, p SettleParams) error

	// ListDead lists dead operations in seq order.
	ListDead(ctx context.Context, p ListParams) ([]Record, error)
	// Requeue makes dead operations due again with no attempts.
	Requeue(ctx context.Context, p RequeueParams) (int, error)
	// Scan returns operations in seq order, whatever their state (for
	// audits: verify-sink, the ledger's verify).
	Scan(ctx context.Context, p ScanParams) ([]Record, error)
	// Get returns one operation by op_id, or ErrNotFound.
	Get(ctx context.Context, opID string) (Record, error)
	// Stats counts operations per state and reports the oldest unsettled.
	Stats(ctx context.Context) (Stats, error)
	// Cursor returns a named cursor, or ErrNotFound.
	Cursor(ctx context.Context, name string) (Cursor, error)
	// SetCursor creates or updates a named cursor.
	SetCursor(ctx context.Context, name, value string) error
	// Locker returns the store's named leases.
	Locker() Locker
	// Close releases the store's resources; it is idempotent.
	Close() error
}

// Notifier is implemented by stores whose database can wake engines when an
// operation commits (Capabilities.ListenNotify).
type Notifier interface {
	// Subscribe returns a channel that receives a value (coalesced) soon
	// after operations commit or are sequenced, and is closed when ctx ends. While the
	// listening connection is down the channel stays quiet and engines fall
	// back to polling.
	Subscribe(ctx context.Context) (<-chan struct{}, error)
}

// Locker gives one holder at a time a named lease, for single-leader jobs
// (the ledger sequencer, cursor initialisation, migrations).
type Locker interface {
	// TryAcquire takes the named lease if nobody holds it, and keeps it
	// alive until Release or until it is lost. It returns ErrLeaseHeld if
	// another holder has it.
	TryAcquire(ctx context.Context, name string, ttl time.Duration) (Lease, error)
}

// Lease is a held named lease.
type Lease interface {
	// Name is the lease's name.
	Name() string
	// Lost is closed when the lease ended without Release (its session
	// died, or it could not be renewed in time). The holder must stop the
	// leader's work.
	Lost() <-chan struct{}
	// Release ends the lease; it is idempotent.
	Release(ctx context.Context) error
}

// MigrationInfo is one schema migration and whether it is applied.
type MigrationInfo struct {
	Name      string
	Applied   bool
	AppliedAt time.Time
}

// ProgressMigrator is implemented by stores whose Migrate can report its
// progress: adopting a big table takes a while, and `trustlog migrate up`
// shows how far it got. progress is called with a step name and the count
// done so far in that step; it may be nil.
type ProgressMigrator interface {
	MigrateWithProgress(ctx context.Context, progress func(step string, done int64)) error
}

// MigrationStatuser is implemented by stores that can list their
// migrations (`trustlog migrate status`).
type MigrationStatuser interface {
	MigrationStatus(ctx context.Context) ([]MigrationInfo, error)
}

// OverlappingAppender is implemented by stores that can write one batch's
// positions and hashes while the previous batch's Append still runs, so
// that the database works on two batches at once (SequenceAll uses it;
// on PostgreSQL two transactions updating disjoint rows use both cores of
// a small machine). Optional: a store without it appends one batch after
// the other.
type OverlappingAppender interface {
	// AppendAfter is Append (same checks, same writes, one transaction),
	// except that it may write before prev returns and commits only after
	// prev returned nil. prev reports the outcome of the Append of the
	// batch before (oldSize is that batch's oldSize plus its length); it
	// may be called more than once and returns the same each time. If
	// prev fails, AppendAfter writes nothing and returns ErrConflict. The
	// caller bounds prev's wait: a foreign sequencer may wait for the rows
	// this transaction holds while the previous Append waits for it.
	//
	// parts[i] is the partition of seqs[i] as Unsequenced (or
	// UnsequencedExcept) read it: a store that keeps positions apart from
	// the operations may write it with the position instead of reading
	// every operation's row again (PostgreSQL; repartitioning refuses to
	// run while a sequencer holds its lease, so it cannot change between
	// the read and the append).
	AppendAfter(ctx context.Context, oldSize int64, seqs []int64, parts []int, hashes []tlog.Hash, prev func(context.Context) error) error
	// UnsequencedExcept is Unsequenced(ctx, 0, limit) without the
	// operations whose seq is in except (sorted): those of the appends
	// still running, which are not committed yet and still read as
	// having no position.
	UnsequencedExcept(ctx context.Context, except []int64, limit int) ([]Record, error)
}
