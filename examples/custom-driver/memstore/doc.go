// Package memstore is a trustlog store (core.Store) kept in process memory:
// maps, sorted slices and one mutex. It is a third-party driver written from
// docs/extending.md and the go doc of package core alone, to show that a
// driver needs nothing else, and it passes the exported conformance suite
// (conformance.RunStore and conformance.RunPair).
//
// Import it for its side effect to register the "memstore" URL scheme:
//
//	import _ "github.com/go-trustlog/trustlog/examples/custom-driver/memstore"
//
//	memstore://demo                a store named demo, shared by every open of that name in the process
//	memstore://demo?partitions=4   the same, migrated with 4 partitions (default core.PartitionsDefault)
//	memstore://                    a private store nobody else can open
//
// Nothing outlives the process: it is for tests, demos and examples, like
// the memory sink.
//
// # Why it is built this way
//
// A SQL driver gets atomicity, isolation and fencing from its database.
// This one gets all three from a single mutex per store (type data): every
// method runs from start to end under it, so "in one transaction" in the
// core.Store contract means "under one lock hold", and every check a SQL
// driver puts in a WHERE clause is an if statement before the first write.
// Nothing is written before every check has passed, so a refused call
// (core.ErrFenced, core.ErrConflict, a validation error) leaves nothing
// behind, as a rolled-back transaction would.
//
// Operations. A row per operation holds a deep copy of the sealed
// operation, its seq, its partition (core.PartitionOf when it commits) and its
// position (-1 until sequenced). The rows are kept in seq order, plus an
// op_id index, the list of unsequenced rows in seq order (what Unsequenced
// reads: selected by having no position, never by a timestamp), the rows
// in position order (Leaves) and, per partition, its rows in position
// order (ReadPartition: the "index" the guide asks for is a binary search
// in that slice).
//
// Caller transactions. core.Store.Insert must commit or roll back with the
// caller's transaction, reached only through core.Execer's ExecContext. A
// store with no SQL database has no transaction to join, so this package
// ships a minimal database/sql driver of its own (Store.DB): its
// transactions carry nothing but memstore inserts. Insert stages the rows
// in a process-wide table of pending batches and executes a statement
// naming the batch through the caller's Execer; the connection moves the
// batch into its transaction, and Commit applies it (Rollback drops it).
// Seqs are taken when the statement executes, not at commit, as an
// auto-increment column would: a transaction that commits late has a lower
// seq than rows already visible, which is exactly the case the sequencer's
// final read from afterSeq 0 exists for. Other statements are refused with
// an error that says so.
//
// The Merkle tree. The store keeps the hashes the engine computes in a
// slice indexed by stored-hash index (tlog.StoredHashIndex); Append checks
// the tree size and that every seq is still unsequenced, then appends.
// Two sequencers racing get core.ErrConflict from the loser's size check.
//
// Fencing. A partition is a struct with a cursor, an owner, a lease expiry
// and a generation. TakePartition increments the generation; Advance and
// SettleRetries compare the caller's generation (and, for Advance, the
// cursor) with the current one before writing anything, which is the
// compare-and-set the guide describes. Because the comparison and the
// write happen under one lock hold, a relay that lost its partition can
// never write, however late its call arrives.
//
// Leases and expiry. Time is the store's clock (time.Now, truncated to the
// microsecond like a database timestamp), read once per call. Partition
// leases and members carry an expiry time and are simply compared with
// now: nothing sweeps them, an expired one is ignored or overwritten by the
// next caller. Named leases (Locker) are session leases
// (Capabilities.SessionLeases): the "session" is the Store handle that took
// the lease, so a lease ends when it is released or when that handle is
// closed (Lease.Lost is closed then), the in-memory counterpart of an
// advisory lock ending with its connection. A lease cannot be lost any
// other way in one process, so there is no renewal goroutine and the TTL
// passed to TryAcquire is not needed.
//
// Derived state. No state is stored per operation. Get, Scan, Stats and
// every read compute it as core.State says: a row of the retry table means
// retrying or dead; otherwise a position at or below its partition's cursor
// means published; everything else is pending.
//
// Notifications. The store implements core.Notifier
// (Capabilities.ListenNotify): inserts that commit and Append wake every
// subscriber of the same store, through any handle, with a coalescing
// channel of capacity one. Engines then wait PollIntervalDefault instead of
// polling every PollIntervalNoListen.
//
// Sharing. Stores are named; every Open of a name in one process returns a
// new handle (its own Close, leases and subscriptions) on the same data,
// as two connections to one database would. That is what lets a test
// "reopen" a store (conformance.StoreHarness.Reopen) or run several
// engines on one log. Drop forgets a name.
//
// Changing the number of partitions. The store implements
// core.Repartitioner: under one lock hold it checks that no relay is live
// and nothing with a position waits to be published, then replaces the
// partitions (every cursor at the tree's last position, generations above
// any before) and moves every row to its DOID's new partition. Because an
// operation takes its partition when its transaction commits, under the
// same lock, none can carry the old number, so the store does not need
// core.Placer.
//
// The store also implements ledger.Storage (leaf reads and signed
// checkpoints), so the ledger's sequencer can sign checkpoints of a
// memstore log; it does not implement ledger.Pruner.
package memstore
