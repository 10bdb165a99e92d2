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
	ErrConflict = core.ErrConflict
	// ErrTampered wraps findings that the stored log does not match
	// itself, its operations or its signed checkpoints.
	ErrTampered = errors.New("ledger: tampered")
	// ErrNotSequenced: the operation has no leaf yet, or no checkpoint
	// covers it yet.
	ErrNotSequenced = errors.New("ledger: not sequenced yet")
)

// Storage is what a store provides for signed checkpoints and proofs, in
// the same database as the operations. The three built-in drivers
// implement it; it is optional for a third-party store, which without it
// relays but keeps no signed checkpoints.
type Storage interface {
	core.Store
	// Leaves returns up to limit sequenced operations with leaf index >=
	// from, in leaf order.
	Leaves(ctx context.Context, from int64, limit int) ([]core.Record, error)
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

// newHashReader reads st's stored hashes, caching what it read.
func newHashReader(ctx context.Context, st Storage) *core.HashReader {
	return core.NewHashReader(ctx, st)
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
