package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// PrunedCursor is the store cursor that holds the prune horizon: the
// operation rows of every leaf below it were deleted by Prune. Their leaf
// hashes, the tree above them and the signed checkpoints stay, so the log
// still verifies and proves every operation that remains.
const PrunedCursor = "trustlog.ledger.pruned_below"

// PruneBatchDefault is the number of leaves Prune deletes per transaction.
const PruneBatchDefault = 10_000

// Pruner is what a store provides for retention. The three built-in
// drivers implement it; a third-party store may.
type Pruner interface {
	Storage
	// PruneHorizon returns the lowest leaf index in [from, upTo) whose
	// operation is not published, or was recorded less than age ago (by
	// the database's clock), or upTo.
	PruneHorizon(ctx context.Context, from, upTo int64, age time.Duration) (int64, error)
	// PruneLeaves deletes, in one transaction, the operations of leaves
	// [from, below) and moves the horizon from from to below. It fails
	// with ErrConflict, deleting nothing, when the horizon is not from or
	// one of them is not prunable (any more).
	PruneLeaves(ctx context.Context, from, below int64, age time.Duration) (int64, error)
}

// PruneOptions configure Prune.
type PruneOptions struct {
	// OlderThan: only published operations recorded at least this long
	// ago (created_at, by the database's clock) are deleted.
	OlderThan time.Duration
	// Batch is the number of operations deleted per transaction (default
	// PruneBatchDefault).
	Batch int
	// Archive, if set, gets each batch before it is deleted; an error
	// stops the prune with that batch kept.
	Archive func(recs []core.Record) error
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
}

// PruneResult is what Prune did (or, in a dry run, would do).
type PruneResult struct {
	// From and Below: the horizon before and after (leaf indices).
	From  int64 `json:"from"`
	Below int64 `json:"below"`
	// Deleted operations.
	Deleted int64 `json:"deleted"`
}

// ErrEmptyLog: Prune was asked to prune a store whose log is empty
// (every operation gets a position from a relay's sequencer).
var ErrEmptyLog = errors.New("ledger: the log is empty: nothing has been sequenced, so pruning would delete operations the log never holds (run a relay first)")

// ErrUnsigned: Prune was asked to prune a log no signed checkpoint covers
// yet. Leaves are pruned only below the newest checkpoint: a leaf deleted
// before a checkpoint signed it could never be proven or audited.
var ErrUnsigned = errors.New("ledger: no signed checkpoint covers the log yet: leaves are pruned only below the newest checkpoint (run a relay with a ledger key until one is signed)")

// PrunedBelow returns the prune horizon of a store (0 if never pruned).
func PrunedBelow(ctx context.Context, st core.Store) (int64, error) {
	c, err := st.Cursor(ctx, PrunedCursor)
	if errors.Is(err, core.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(c.Value, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: cursor %s holds %q", ErrTampered, PrunedCursor, c.Value)
	}
	return n, nil
}

// Prune deletes operations published at least opts.OlderThan ago. With a
// ledger it deletes only a prefix of the log: the leaves from the horizon
// up to the first operation that is not yet prunable and at most up to the
// newest signed checkpoint's size, in batches, each with the horizon moved
// in the same transaction. Operations not yet sequenced, and leaves no
// checkpoint covers yet, are never deleted. Proofs of the remaining operations and
// Audit still verify; Audit reports the horizon.
func Prune(ctx context.Context, store core.Store, opts PruneOptions) (PruneResult, error) {
	p, ok := store.(Pruner)
	if !ok {
		return PruneResult{}, errors.New("ledger: this store cannot prune")
	}
	if opts.OlderThan < 0 {
		return PruneResult{}, &core.ConfigError{Field: "OlderThan", Reason: "must not be negative"}
	}
	if opts.Batch <= 0 {
		opts.Batch = PruneBatchDefault
	}
	size, err := p.TreeSize(ctx)
	if err != nil {
		return PruneResult{}, err
	}
	if size == 0 {
		return PruneResult{}, ErrEmptyLog
	}
	cp, err := latest(ctx, p)
	if err != nil {
		return PruneResult{}, err
	}
	if cp == nil {
		return PruneResult{}, ErrUnsigned
	}
	size = min(size, cp.Size)
	from, err := PrunedBelow(ctx, p)
	if err != nil {
		return PruneResult{}, err
	}
	res := PruneResult{From: from, Below: from}
	horizon, err := p.PruneHorizon(ctx, from, size, opts.OlderThan)
	if err != nil {
		return res, err
	}
	if opts.DryRun {
		res.Below, res.Deleted = horizon, horizon-from
		return res, nil
	}
	for res.Below < horizon {
		below := min(res.Below+int64(opts.Batch), horizon)
		if opts.Archive != nil {
			recs, err := p.Leaves(ctx, res.Below, int(below-res.Below))
			if err != nil {
				return res, err
			}
			if err := opts.Archive(recs); err != nil {
				return res, fmt.Errorf("ledger: prune: archive leaves %d-%d: %w", res.Below, below-1, err)
			}
		}
		n, err := p.PruneLeaves(ctx, res.Below, below, opts.OlderThan)
		if err != nil {
			return res, err
		}
		res.Deleted += n
		res.Below = below
	}
	return res, nil
}
