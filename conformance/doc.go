// Package conformance is the shared test suite every trustlog store and
// sink must pass, exported so that third-party driver and sink authors run
// exactly the tests the built-in ones do.
//
//	func TestConformance(t *testing.T) {
//		conformance.RunStore(t, myStoreHarness)
//		conformance.RunSink(t, mySinkHarness)
//		conformance.RunPair(t, myStoreHarness, memorytest.Harness)
//	}
//
// # Why
//
// The relay is a sequenced log. A store gives every committed operation a
// position (its Merkle leaf index) and keeps, per partition, a cursor: the
// position of the last operation its owner published. An operation is
// published when its position is at or below its partition's cursor and it
// is not in the retry table; nothing per operation is written to publish
// it. Every guarantee therefore rests on a few store primitives being
// exactly right (gapless positions that never skip a late commit, a cursor
// advance that is a compare-and-set fenced by the partition's generation,
// strict heads in the retry table) and on the engine using them in the
// right order. A store or sink that gets one of them subtly wrong loses,
// duplicates or reorders operations only under a crash or a race, which
// ordinary tests do not meet; each subtest here builds that situation on
// purpose and fails when the guarantee breaks.
//
// The suite branches on core.Capabilities instead of asking a store to
// fake what its database cannot do: a store without ListenNotify is
// checked on its polling path, one with SessionLeases is not asked to lose
// a lease by closing a handle. Harnesses create their own isolated
// resources (a file, a schema, a table prefix, a topic) so every subtest
// runs in parallel. Waits end on conditions, bounded only by the test
// binary's deadline (internal/testenv), never on fixed sleeps.
//
// # RunStore: the Store contract (core/store.go), no engine
//
//   - MigrateIsIdempotent: Migrate creates P partitions (cursor -1, no
//     owner) and the log identity once; running it again, or from several
//     handles at once, keeps rows, cursors, generations, owners and the
//     identity.
//   - InsertRoundTrip: every field comes back as recorded (SQL
//     meta-characters and non-ASCII as data, UTC microseconds, a verifying
//     signature), through the store's own transaction and the caller's
//     (bun.Tx, *sql.Tx); Part is core.PartitionOf(doid, P), LeafIndex -1,
//     state pending.
//   - InsertAllOrNothing: a batch with a duplicate op_id leaves no row,
//     also when it spans several INSERT statements and inside the
//     caller's transaction.
//   - BadInputRefused: an invalid operation is refused with a
//     *core.ValidationError naming field and index, before any write.
//   - RollbackLeavesNothing: rolled-back operations are not stored, not
//     sequenced; committed ones are.
//   - SequenceGaplessInSeqOrder: Unsequenced pages in seq order;
//     core.SequenceAll gives positions 0…n-1 in seq order over several
//     batches; the stored hashes build the Merkle tree of the sealed
//     operations, also when a later sequencer extends it.
//   - LateCommitSequencedLater: a transaction that took the lower seq and
//     commits after one with a higher seq is not skipped: it gets the next
//     position when it commits (held open with the caller's own
//     transaction; SQLite, one writer at a time, cannot commit late).
//   - AppendConflictWritesNothing: Append on a stale tree size, or of an
//     operation that has a position, fails with core.ErrConflict and
//     writes nothing; so does an OverlappingAppender's AppendAfter on a
//     stale size.
//   - ConcurrentSequencersDoNotFork: sequencers racing on several handles
//     append each operation once, gapless, one tree.
//   - ReadPartition: one partition's operations above a cursor, in
//     position order, Limit honoured, never an unsequenced one; it writes
//     nothing.
//   - AdvanceIsCompareAndSet: a wrong generation or a wrong From is
//     core.ErrFenced and writes nothing, its failures included; a good
//     advance moves the cursor and puts failures in the retry table
//     (failed: attempt 1 and due after Delay; Dead: dead; Held: attempt 0,
//     due at once); a new owner fences the old generation.
//   - PartitionLeases: TakePartition takes a free or expired partition and
//     increments its generation (the same member again too), refuses a
//     held one with core.ErrLeaseHeld; RenewPartitions extends what a
//     member still owns; ReleasePartition of a stale generation is a
//     no-op.
//   - Membership: Heartbeat returns the live members sorted, forgets
//     expired ones; Leave forgets at once.
//   - DueRetries: due and not dead, in position order, one partition,
//     Limit honoured; strict returns only each object's head, and a dead
//     operation does not hold its object back.
//   - StrictReadHoldsBackObject: a strict ReadPartition sets Held on an
//     operation whose object has an earlier one in the retry table that is
//     not dead.
//   - SettleRetries: published leave the retry table; failed get one more
//     attempt, their error and their delay, or go dead; a stale generation
//     is core.ErrFenced and writes nothing.
//   - DeadListAndRequeue: ListDead in seq order, paged; Requeue makes only
//     dead operations due again with no attempts, by op_id or All.
//   - GetDerivesState: pending (no position, or above the cursor),
//     published, retrying and dead, each derived as documented, with its
//     Status.
//   - Stats: a count for every state, MaxSeq, TreeSize, the oldest
//     unsettled operation, the partitions.
//   - StatsBacklog: each partition's Backlog is what ReadPartition returns
//     above its cursor (no unsequenced operation); pending is the backlogs
//     and the unsequenced; Partitions leaves Backlog 0.
//
// On a store that implements core.Inspector (a store without it logs so
// and passes these):
//
//   - FindHistory: a DOID's operations in seq order, exactly that DOID,
//     in every state (published, retrying and dead through Advance and
//     SettleRetries, pending with and without a position), each as Get
//     returns it; with State, only those retrying or dead.
//   - FindActorAndTime: exactly that actor (case included), From <=
//     created_at < To compared at the stored microsecond, either bound
//     open, with a DOID too.
//   - FindRetryFilters: retrying and dead in seq order; ErrorContains as
//     plain text, byte for byte (%, _, \ and brackets are characters,
//     case counts); ChangedBefore against the retry row's last change;
//     each implies the retry table.
//   - FindPaging: AfterSeq pages every operation once in seq order; Limit
//     0 is core.FindLimitDefault, above core.FindLimitMax is lowered to it.
//   - FindRefused: a query selecting by none of DOID, Actor, State,
//     ErrorContains and ChangedBefore, a State other than retrying, dead
//     or zero, a negative Limit: a *core.QueryError naming the field.
//   - Relays: the members whose heartbeat has not run out, sorted, also
//     through another handle; one that left or whose heartbeat ran out is
//     gone, without a heartbeat of Relays' own.
//   - ScanInSeqOrder: every operation in seq order whatever its state,
//     paged.
//   - ValuesCompareByteForByte: DOIDs that differ only by case, trailing
//     spaces or a no-break space are different objects in strict order;
//     op_ids and cursor names are compared byte for byte.
//   - Cursors: named cursors are created, updated and read; the log
//     identity is one.
//   - Leases: one holder per named lease, kept alive past its TTL by its
//     holder, free after Release (idempotent); a row lease whose holder
//     can no longer renew it reports Lost and frees up.
//   - NotifyOnCommitAndSequence (ListenNotify): the store wakes subscribers
//     after commits (its own and the caller's) and after sequencing, and
//     closes the channel when the subscription ends.
//
// # RunSink: the Sink contract
//
//   - DeliversInKeyOrder: every message arrives once, in publish order
//     per key, with its key, op_id, payload (byte for byte, a sealed
//     operation), headers and position.
//   - PositionHeader: a message with a position carries it as the
//     position header; one without (-1) carries none.
//   - RetryOutOfStreamOrderDelivered: a retry of an operation the sink
//     refused before is delivered although its position is below what its
//     stream already holds.
//   - EmptyBatch: publishing nothing returns no result.
//   - CloseIsIdempotent: Close twice is fine; publishing after Close fails.
//
// # RunPair: the guarantees, through the real engine
//
// Every engine publishes through a guard that fails the test if two
// callers publish one partition's stream at once (two owners of a
// partition), or if a first send goes out below a position its stream
// already holds (a sink deduplicating by sequence id, as Pulsar does,
// would drop it).
//
//   - NoLossAcrossAbruptStop (1, no loss): a relay killed between the
//     sink's ack and its cursor advance (Stop with a cancelled context,
//     leases left to expire), and operations recorded while none runs:
//     a new relay publishes every one; copies only of the batches in
//     flight, at most twice each, byte-identical.
//   - NoLossAcrossSinkOutage (1, no loss): a sink that is down pauses the
//     relay; nothing goes to the retry table, no attempt is used up, and
//     everything arrives once when it is back.
//   - NoPhantomAfterRollback (2, no phantom): rolled-back transactions
//     never reach the sink nor the log.
//   - NoDuplicatesWithoutFailures (3, duplicates bounded and keyed): with
//     nothing killed, several engines (one with several workers) that
//     join and rebalance while writers record under load send every
//     operation exactly once, keyed by DOID, with its op_id and position.
//   - StrictOrderPerObject (4, order per object): in strict mode, across
//     engines, operations that fail a few times keep their object's
//     record order, a head that keeps failing holds back only its object,
//     and one that goes dead no longer does.
//   - OrderPerObject (4): without strict mode and without failures, each
//     object's operations arrive in record order across rebalancing.
//   - ClusterSharesPartitions (5, cluster safety): N engines share the
//     partitions, each owning its share as the store records it; one that
//     joins gets partitions, one that stops gives them up; everything
//     arrives once.
//   - PoisonIsolated (6, poison isolation): an operation that always fails
//     is offered MaxAttempts times with exponential backoff, goes dead
//     (OnDead once) and the rest flow.
//   - DeadRequeue (7, dead and requeue): dead operations (after
//     MaxAttempts, or at once on a permanent error) are listed and, once
//     requeued, published.
//   - BadInputNeverStoredNorPublished (8, bad input): a batch with an
//     invalid operation is refused whole, in the caller's transaction too
//     and with PublishOnly; nothing of it is stored or published.
//   - WakeOnRecord: with polls an hour apart an operation is published at
//     once: Record wakes its client's engine (and a commit notification
//     wakes any engine when the store has ListenNotify).
//   - WakeOnlyPartitionsWithNewPositions: with polls an hour apart, an
//     append wakes the publishers of the partitions it gave positions in
//     and no other.
//   - GracefulStop: Stop finishes the batches in hand: what the sink
//     accepted is exactly what the store says is published, every
//     partition is given back, and a new engine publishes the rest once.
//   - Repartition (stores that implement core.Repartitioner): the number
//     of partitions changes between two engines' runs, with operations
//     recorded after it through a handle that still counts the old
//     number; every operation reaches the sink once, in record order per
//     object, from its object's new partition.
package conformance
