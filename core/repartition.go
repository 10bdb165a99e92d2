package core

import (
	"context"
	"errors"
)

// ErrRepartitionRefused is wrapped by every *RepartitionError.
var ErrRepartitionRefused = errors.New("trustlog: the partitions cannot change now")

// Repartitioner is implemented by stores that can change their number of
// partitions after the first migrate (the built-in drivers do; `trustlog
// partitions set` calls it). Partitions are where per-object order lives:
// every operation on a DOID is in partition PartitionOf(doid, P), and one
// relay at a time publishes a partition in position order. Changing P
// moves objects between partitions, so it is a hand-over done while no
// relay runs:
//
//  1. Every relay stops after publishing everything that has a position:
//     each partition's cursor at its last position (`trustlog cursor
//     status` shows no backlog). Operations still without a position and
//     those in the retry table may wait; the application may go on
//     recording.
//  2. Repartition holds the sequencer's lease (no position is given
//     meanwhile) and replaces the partition rows by 0..n-1, every cursor
//     at the tree's last position, every generation above any before, no
//     owner. Nothing with a position can then be published again, and
//     nothing without one is lost: it gets a position later, in its new
//     partition.
//  3. It gives every operation, and every row of the retry table, its
//     partition under n, in batches (progress reports how many it
//     rewrote). Interrupted, it is run again with the same n and
//     finishes.
//  4. Relays start again.
//
// A process that recorded operations before the change keeps the old
// number until it restarts; the sequencer gives each operation the
// partition of its DOID under the store's number before it gives it a
// position, so such writes land where the object now lives. Restart the
// application's processes when convenient.
type Repartitioner interface {
	// Repartition gives the store n partitions (1 to MaxPartitions) as
	// above. It refuses with a *RepartitionError, writing nothing, while
	// a relay is live (its heartbeat or a partition lease has not run
	// out, or it holds the sequencer's lease) or a partition has
	// operations with a position above its cursor. With n equal to the
	// store's number it leaves the partition rows as they are and only
	// finishes an interrupted rewrite (the same refusals apply).
	Repartition(ctx context.Context, n int, progress func(rewritten int64)) error
}

// RepartitionError says why a Repartition was refused and what to do. It
// wraps ErrRepartitionRefused.
type RepartitionError struct {
	// Reason is what stands in the way, e.g. "partition 3 has 12
	// operations to publish".
	Reason string
	// Fix says what to do about it.
	Fix string
}

// Error implements error.
func (e *RepartitionError) Error() string {
	return "trustlog: the partitions cannot change now: " + e.Reason + ": " + e.Fix
}

// Unwrap returns ErrRepartitionRefused.
func (e *RepartitionError) Unwrap() error { return ErrRepartitionRefused }

// Placer is implemented by stores whose operations may carry another
// partition than their object's: recorded by a process that has not seen
// a Repartition yet (it counts the partitions once), or inserted by a
// writer other than trustlog that left the column at its default. The
// sequencer calls Place on every batch it reads, before the batch gets
// its positions, so that a position is always published in its DOID's
// partition and per-object order holds across the change.
type Placer interface {
	// Place moves every record of recs whose Part is not PartitionOf(its
	// DOID, the store's number of partitions) to that partition, in the
	// store and in recs.
	Place(ctx context.Context, recs []Record) error
}
