package core

import (
	"context"
	"database/sql"
	"time"
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
	// SkipLocked: claims use SELECT ... FOR UPDATE SKIP LOCKED, so
	// concurrent claimers never wait on each other's rows. Without it
	// (SQLite) claims are serialised by the database's single writer.
	SkipLocked bool
	// ListenNotify: the store implements Notifier and wakes engines when an
	// operation commits. Without it engines poll when idle.
	ListenNotify bool
	// SessionLeases: named leases end as soon as their holder's database
	// session dies (advisory locks). Without it they end when their TTL
	// runs out (a lease row).
	SessionLeases bool
}

// ClaimSource says which operations a claim takes.
type ClaimSource int

const (
	// ClaimPending takes pending operations in record order (the
	// dispatcher; the original "cursor worker").
	ClaimPending ClaimSource = iota
	// ClaimDue takes retrying operations whose next attempt is due and
	// in-flight operations whose lease expired, in due order (the
	// retrier; also how a dead worker's claims come back).
	ClaimDue
)

// ClaimParams are the arguments of Store.Claim.
type ClaimParams struct {
	Source ClaimSource
	// Token is written on every claimed row; Settle and Release compare it.
	// The engine makes a new one per claim (see Engine: node, run number,
	// and random bits or the ordered stream's batch number). A claimed
	// row's token before the claim becomes its previous token
	// (Record.PrevToken), unless it has TentativeClaim set: then the row
	// keeps the previous token it had.
	Token int64
	// Limit is the most operations to claim (> 0).
	Limit int
	// Lease is how long the claim lasts before another worker may take the
	// operations back (> 0).
	Lease time.Duration
	// Strict claims an operation only if no earlier operation on the same
	// DOID is pending, in flight or retrying, so one object's operations
	// reach the sink in record order even across workers and failures.
	Strict bool
	// AfterSeq, for ClaimPending, claims only operations with a larger seq
	// (0: all).
	AfterSeq int64
	// Node and Grace, for ClaimDue: an expired claim whose token carries
	// this node tag (token >> 40) is taken back as soon as it expires; an
	// expired claim of another node only Grace after it expired. A relay
	// that restarts quickly thus re-sends its own unfinished work.
	Node  int64
	Grace time.Duration
}

// TentativeClaim is the bit of a claim token that marks a tentative
// claim: it takes rows to judge them, not to send them under its own
// name. A claim of a row that carries a tentative token keeps the row's
// previous token (Record.PrevToken) instead of taking the tentative one
// for it: a relay killed between a tentative claim and its outcome thus
// leaves each row with the earlier claim that may have sent it, which is
// what the next claimer judges. Adopt turns a tentative claim of some rows
// into a plain one, before they go out under it.
//
// Why: the ordered stream's claims of expired rows (see Engine) must ask
// the broker whether an earlier claim's send reached it before they can
// tell which rows to send; a claim that overwrote that earlier claim would
// make a crash meanwhile look as if the new claim had sent them, and the
// next sender would send copies of what the broker holds.
const TentativeClaim int64 = 1 << 31

// AdoptParams are the arguments of Store.Adopt.
type AdoptParams struct {
	// Token is the tentative claim's token (TentativeClaim set).
	Token int64
	// Seqs are the rows to adopt.
	Seqs []int64
}

// Failure is one operation whose publishing failed.
type Failure struct {
	Seq int64
	// Err is the error text stored as last_error.
	Err string
	// Delay is the backoff before the next attempt.
	Delay time.Duration
	// Dead sends the operation to dead now (a permanent error).
	Dead bool
}

// SettleParams are the arguments of Store.Settle.
type SettleParams struct {
	// Token is the claim's token; rows claimed since by someone else are
	// left alone and counted as Stale.
	Token int64
	// Published are the seqs the sink accepted.
	Published []int64
	// Failed are the operations the sink refused.
	Failed []Failure
	// MaxAttempts: a failed operation with this many attempts goes dead.
	MaxAttempts int
}

// SettleResult counts what Settle did.
type SettleResult struct {
	Published, Retrying, Dead int
	// Stale counts rows that no longer carried the token (their lease
	// expired and another worker claimed them): nothing was written.
	Stale int
}

// ReleaseParams are the arguments of Store.Release.
type ReleaseParams struct {
	Token int64
	Seqs  []int64
	// Restore gives each row back to the claim it was taken from instead
	// of to its earlier state: in flight again under its previous token
	// (rows without one are left alone), expired as of now, its attempt
	// given back. That claim's node takes it back at once, any other only
	// after ClaimParams.Grace. An engine restores what it took over from a
	// node that turned out to be alive.
	Restore bool
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
	// LowWatermark is the largest seq at or below which every operation is
	// published or dead.
	LowWatermark int64
	// MaxSeq is the largest seq recorded.
	MaxSeq int64
}

// Cursor is a named position kept in the store. Cursors report progress;
// they never decide what is published.
type Cursor struct {
	Name      string
	Value     string
	UpdatedAt time.Time
}

// Store is where operations live: a driver implements it on one database.
// Every method is safe for concurrent use.
type Store interface {
	// Capabilities reports what the database can do.
	Capabilities() Capabilities
	// Migrate creates or upgrades the schema; it is idempotent and safe to
	// run from several processes at once.
	Migrate(ctx context.Context) error
	// Insert stores prepared (sealed) operations. With ex nil the store
	// uses its own transaction; otherwise the rows are written through ex
	// and commit or roll back with it. All or nothing.
	Insert(ctx context.Context, ex Execer, ops []*Operation) error
	// Claim moves up to p.Limit operations to in_flight under p.Token and a
	// lease, and returns them in seq order.
	Claim(ctx context.Context, p ClaimParams) ([]Record, error)
	// Settle records the outcome of publishing a claimed batch. Every row
	// update is a compare-and-set on (state in_flight, token).
	Settle(ctx context.Context, p SettleParams) (SettleResult, error)
	// Adopt turns the tentative claim p.Token of the rows p.Seqs still in
	// flight under it into the plain claim p.Token &^ TentativeClaim
	// (their previous token unchanged), and returns how many it turned.
	// Every claim must honour TentativeClaim (see there).
	Adopt(ctx context.Context, p AdoptParams) (int, error)
	// Release gives claimed operations back unpublished: each returns to
	// the state it was claimed from (or, with p.Restore, to the claim it
	// was taken from) and its attempt is not counted.
	Release(ctx context.Context, p ReleaseParams) (int, error)
	// ListDead lists dead operations in seq order.
	ListDead(ctx context.Context, p ListParams) ([]Record, error)
	// Scan returns operations in seq order, whatever their state (for
	// audits: verify-sink, the ledger's verify).
	Scan(ctx context.Context, p ScanParams) ([]Record, error)
	// Requeue moves dead operations back to pending with no attempts.
	Requeue(ctx context.Context, p RequeueParams) (int, error)
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
	// after operations commit, and is closed when ctx ends. While the
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
