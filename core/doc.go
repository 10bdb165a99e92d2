// Package core is trustlog's public API: the Operation and its canonical
// encoding, validation, signatures, the Client that records operations, the
// relay Engine, and the three interfaces drivers and sinks implement
// (Store, Locker, Sink) with the registry that selects them by URL.
//
// # Why
//
// An application changes a digital object and must be able to prove, later
// and to anyone, who did what to it. trustlog records an Operation in the
// same database transaction as the change (RecordTx), so the proof exists
// if and only if the change does, and then relays it to an attestation
// sink (Pulsar, Kafka) at least once, in order per object, from any number
// of relay processes.
//
// # The sequenced log
//
// An operation row is written once, by the application's transaction, and
// never rewritten to be published. The relay Engine runs four jobs, a
// file each:
//
//   - the sequencer (sequencer.go; one leader per store, SequencerLease)
//     gives every committed operation its position: the next leaf index of
//     the store's Merkle tree, chosen by "has no position yet", never by a
//     timestamp or a watermark, so a transaction that commits late gets a
//     later position and is never skipped (SequenceAll);
//   - the balancer (balancer.go) shares the store's P partitions
//     (PartitionOf: FNV-1a of the DOID, mod P) among the live relays
//     through lease rows with fencing generations;
//   - a publisher (publisher.go) per owned partition reads the operations
//     above the partition's cursor in position order, sends them, and
//     advances the cursor in one transaction that is a compare-and-set on
//     the lease's generation and also puts what the sink refused in the
//     retry table;
//   - the retrier (retrier.go, inside each publisher) re-sends the retry
//     table's due operations with exponential backoff and jitter, until
//     MaxAttempts or a Permanent error makes them dead.
//
// What a user sees as State is derived: published is "position at or
// below its partition's cursor and not in the retry table", retrying and
// dead are its retry row, pending is everything else. The original SDK's
// status names survive as State.Status: NOT_TRUSTLOGGED (pending,
// retrying), TRUSTLOGGED (published) and DEAD.
//
// What happens on each failure:
//
//   - A relay dies (kill -9): its partitions' leases end and other relays
//     take them with a new generation; they send from the cursors, so the
//     batch the dead relay had sent but not yet recorded goes out again
//     (the only source of copies), with the same op_id and position. A
//     sink that deduplicates by sequence id (Pulsar: producer named after
//     Message.Stream, sequence id Message.Position) drops them.
//   - A relay stalls past its lease and then advances: its generation is
//     old, the advance writes nothing (ErrFenced) and it stops.
//   - The sink rejects one message: it goes to the retry table and the
//     cursor moves on; with StrictOrder the later operations of its DOID
//     wait behind it there, other DOIDs keep flowing.
//   - The sink is unavailable (Unavailable errors): the cursor stops
//     before the first unsent message and the partition pauses, doubling
//     the pause up to ProbeInterval; nothing goes to the retry table.
//   - The database is unreachable: reads and advances fail and are retried
//     with a growing delay.
//   - A stored row was altered after recording: its content no longer
//     hashes to its op_hash; it is not published and goes dead.
//
// # Strategies
//
// StoreAndPublish (default) is the outbox above. StoreOnly keeps the
// operation and never publishes it. PublishOnly publishes synchronously
// with a bounded retry and returns the sink's error; nothing is stored.
//
// # Drivers and sinks
//
// Stores and sinks register under URL schemes from their packages' init
// functions, like database/sql drivers; a blank import selects them:
//
//	import (
//		"github.com/go-trustlog/trustlog/core"
//		_ "github.com/go-trustlog/trustlog/drivers/sqlite"
//		_ "github.com/go-trustlog/trustlog/sinks/memory"
//	)
//
//	c, err := core.Open(ctx, core.Config{Store: "sqlite:app.db", Sink: "memory://", Migrate: true})
//
// core imports no driver and no sink.
package core
