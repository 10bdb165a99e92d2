package ledger

import (
	"context"
	"errors"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
)

// Errors.
var (
	// ErrConflict: another sequencer moved the tree first; nothing was
	// written. The sequencer retries with the new size.
	ErrConflict = errors.New("ledger: conflict")
	// ErrTampered wraps findings that the stored log does not match
	// itself, its operations or its signed checkpoints.
	ErrTampered = errors.New("ledger: tampered")
	// ErrNotSequenced: the operation has no leaf yet, or no checkpoint
	// covers it yet.
	ErrNotSequenced = errors.New("ledger: not sequenced yet")
)

// Storage is what a store provides for the ledger. Every trustlog driver
// implements it (in the same database as the operations); a Store that
// does not cannot have a ledger.
type Storage interface {
	core.Store
	// Unsequenced returns up to limit operations without a leaf index and
	// with a seq above afterSeq, in seq order. Selected by that state, never
	// by a cursor or a timestamp: afterSeq only lets the sequencer read the
	// next batch while it appends the last one; every stream of batches
	// ends with afterSeq 0, so an operation that commits late is sequenced
	// late, not skipped.
	Unsequenced(ctx context.Context, afterSeq int64, limit int) ([]core.Record, error)
	// Leaves returns up to limit sequenced operations with leaf index >=
	// from, in leaf order.
	Leaves(ctx context.Context, from int64, limit int) ([]core.Record, error)
	// TreeSize returns the number of leaves.
	TreeSize(ctx context.Context) (int64, error)
	// ReadHashes returns stored hashes by stored-hash index (see
	// tlog.StoredHashIndex).
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// Append, in one transaction: checks that the tree size is still
	// oldSize (else ErrConflict), gives seqs[i] leaf index oldSize+i (each
	// must still be unsequenced, else ErrConflict), stores hashes from
	// stored-hash index tlog.StoredHashIndex(0, oldSize) on, and advances
	// the tree size by len(seqs).
	Append(ctx context.Context, oldSize int64, seqs []int64, hashes []tlog.Hash) error
	// SaveCheckpoint stores a signed checkpoint; a second one for the same
	// size is refused.
	SaveCheckpoint(ctx context.Context, c StoredCheckpoint) error
	// Checkpoints lists stored checkpoints (see CheckpointQuery).
	Checkpoints(ctx context.Context, q CheckpointQuery) ([]StoredCheckpoint, error)
	// MarkCheckpointPublished records that the sink has a checkpoint.
	MarkCheckpointPublished(ctx context.Context, size int64) error
}

// StoredCheckpoint is a signed checkpoint as the store keeps it.
type StoredCheckpoint struct {
	Size int64
	Root tlog.Hash
	// Note is the signed note (C2SP tlog-checkpoint body and signatures).
	Note        []byte
	CreatedAt   time.Time
	PublishedAt time.Time
}

// CheckpointQuery selects checkpoints: the latest one, or those after a
// size (only unpublished ones with Unpublished), in size order.
type CheckpointQuery struct {
	Latest      bool
	Unpublished bool
	AfterSize   int64
	Limit       int
}

// latest returns the largest stored checkpoint, or nil.
func latest(ctx context.Context, st Storage) (*StoredCheckpoint, error) {
	cs, err := st.Checkpoints(ctx, CheckpointQuery{Latest: true})
	if err != nil || len(cs) == 0 {
		return nil, err
	}
	return &cs[0], nil
}

// storageOf returns the store's ledger storage.
func storageOf(s core.Store) (Storage, error) {
	st, ok := s.(Storage)
	if !ok {
		return nil, errors.New("ledger: this store has no ledger storage")
	}
	return st, nil
}

// hashReader reads stored hashes from a Storage, serving what it already
// knows from memory (the hashes a batch just computed, and the frontier
// it read once).
type hashReader struct {
	ctx   context.Context
	st    Storage
	cache map[int64]tlog.Hash
}

func newHashReader(ctx context.Context, st Storage) *hashReader {
	return &hashReader{ctx: ctx, st: st, cache: map[int64]tlog.Hash{}}
}

// ReadHashes implements tlog.HashReader.
func (r *hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	for _, idx := range indexes {
		if _, ok := r.cache[idx]; !ok {
			missing = append(missing, idx)
		}
	}
	if len(missing) > 0 {
		hs, err := r.st.ReadHashes(r.ctx, missing)
		if err != nil {
			return nil, err
		}
		for i, idx := range missing {
			r.cache[idx] = hs[i]
		}
	}
	for i, idx := range indexes {
		out[i] = r.cache[idx]
	}
	return out, nil
}

// trim drops cached hashes a tree of the given size no longer needs to
// grow: all but the stored hashes of its complete subtrees' roots (at most
// one per level).
func (r *hashReader) trim(size int64) {
	keep := map[int64]bool{}
	for level := 0; level < 63; level++ {
		n := size >> uint(level)
		if n == 0 {
			break
		}
		if n&1 == 1 {
			keep[tlog.StoredHashIndex(level, n-1)] = true
		}
	}
	for idx := range r.cache {
		if !keep[idx] {
			delete(r.cache, idx)
		}
	}
}

// memHashes is an in-memory hash store, for the audit's recomputed tree.
type memHashes []tlog.Hash

// ReadHashes implements tlog.HashReader.
func (m *memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if idx < 0 || idx >= int64(len(*m)) {
			return nil, errors.New("ledger: hash index out of range")
		}
		out[i] = (*m)[idx]
	}
	return out, nil
}

// LeafData returns an operation's leaf in the log: its sealed encoding
// (docs/message-format.md), the same bytes its messages carry.
func LeafData(op *core.Operation) ([]byte, error) {
	return op.AppendSealed(nil)
}
