package ledger

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
)

// ErrInconsistent is the finding that a tree does not extend a
// checkpoint: the log was truncated, rolled back, rewritten or forked
// after the checkpoint was signed. It wraps ErrTampered.
var ErrInconsistent = fmt.Errorf("%w: inconsistent with a signed checkpoint", ErrTampered)

// ConsistencyProof is a self-contained, offline-verifiable proof that the
// log's tree at the size of Checkpoint extends (keeps every leaf of) its
// tree at OldSize. Its text form is the body of a C2SP tlog-witness
// add-checkpoint request, the one C2SP text form of a consistency proof:
//
//	old <OldSize>
//	<one base64 RFC 6962 consistency-proof hash per line>
//	<empty line>
//	<the signed checkpoint of the new tree>
//
// so the same bytes can be posted to a C2SP witness.
type ConsistencyProof struct {
	// OldSize is the size of the older tree.
	OldSize int64
	// Hashes is the RFC 6962 consistency proof from OldSize to the new
	// checkpoint's size (empty when OldSize is 0 or equals the new size).
	Hashes tlog.TreeProof
	// Checkpoint is the signed checkpoint note of the new tree.
	Checkpoint []byte
}

// Marshal returns the proof in its text form.
func (p *ConsistencyProof) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("old " + strconv.FormatInt(p.OldSize, 10) + "\n")
	writeProofTail(&b, p.Hashes, p.Checkpoint)
	return b.Bytes()
}

// ParseConsistencyProof parses a consistency proof's text (a C2SP
// tlog-witness add-checkpoint body). It checks the form only; Verify
// checks the content.
func ParseConsistencyProof(text []byte) (*ConsistencyProof, error) {
	bad := func(format string, args ...any) (*ConsistencyProof, error) {
		return nil, fmt.Errorf("ledger: malformed consistency proof: "+format, args...)
	}
	head, cp, ok := strings.Cut(string(text), "\n\n")
	if !ok {
		return bad("no blank line before the checkpoint")
	}
	lines := strings.Split(head, "\n")
	old, ok := strings.CutPrefix(lines[0], "old ")
	n, err := strconv.ParseInt(old, 10, 64)
	if !ok || err != nil || n < 0 || strconv.FormatInt(n, 10) != old {
		return bad("first line %q is not \"old <size>\"", lines[0])
	}
	p := &ConsistencyProof{OldSize: n, Checkpoint: []byte(cp)}
	if p.Hashes, err = parseHashLines(lines[1:]); err != nil {
		return bad("%v", err)
	}
	return p, nil
}

// VerifyConsistency checks that the tree of newer extends the tree of
// older with the RFC 6962 consistency proof hashes: both checkpoints must
// have the same origin, older may not be larger, equal sizes need equal
// roots, and a proof from size 0 must be empty. The checkpoints' signatures
// are the caller's to check (OpenCheckpoint). A failure wraps
// ErrInconsistent (so ErrTampered) and says which check failed.
func VerifyConsistency(older, newer Checkpoint, hashes tlog.TreeProof) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInconsistent}, args...)...)
	}
	switch {
	case older.Origin != newer.Origin:
		return fail("checkpoints of different logs (%q and %q)", older.Origin, newer.Origin)
	case older.Size > newer.Size:
		return fail("tree of size %d does not extend checkpoint of size %d (truncated or rolled back)", newer.Size, older.Size)
	case older.Size == newer.Size:
		if older.Root != newer.Root {
			return fail("two checkpoints of size %d with different roots (the log forked)", older.Size)
		}
		if len(hashes) != 0 {
			return fail("a proof between equal sizes must be empty, it has %d hashes", len(hashes))
		}
		return nil
	case older.Size == 0:
		if len(hashes) != 0 {
			return fail("a proof from size 0 must be empty, it has %d hashes", len(hashes))
		}
		return nil
	}
	if err := tlog.CheckTree(hashes, newer.Size, newer.Root, older.Size, older.Root); err != nil {
		return fail("tree of size %d does not extend checkpoint of size %d (rewritten, truncated or forked): %v", newer.Size, older.Size, err)
	}
	return nil
}

// Verify checks the proof offline against the older tree's signed
// checkpoint oldCheckpoint: both checkpoints' signatures by the log's key,
// that the proof's old size is that checkpoint's size, and the consistency
// proof (VerifyConsistency). It returns both checkpoints.
func (p *ConsistencyProof) Verify(log note.Verifier, oldCheckpoint []byte) (older, newer Checkpoint, err error) {
	older, err = OpenCheckpoint(oldCheckpoint, log)
	if err != nil {
		return older, newer, fmt.Errorf("old checkpoint: %w", err)
	}
	newer, err = OpenCheckpoint(p.Checkpoint, log)
	if err != nil {
		return older, newer, fmt.Errorf("the proof's checkpoint: %w", err)
	}
	if p.OldSize != older.Size {
		return older, newer, fmt.Errorf("%w: the proof starts at size %d, the old checkpoint is of size %d", ErrInconsistent, p.OldSize, older.Size)
	}
	return older, newer, VerifyConsistency(older, newer, p.Hashes)
}

// ProveConsistency builds the consistency proof from the store's tree at
// oldSize to its signed checkpoint of size newSize (newSize 0: the latest
// checkpoint), from the stored hashes. newSize must be the size of a
// stored checkpoint (else ErrNotSequenced) and oldSize at most newSize.
func ProveConsistency(ctx context.Context, store core.Store, oldSize, newSize int64) (*ConsistencyProof, error) {
	st, err := storageOf(store)
	if err != nil {
		return nil, err
	}
	if oldSize < 0 || newSize < 0 {
		return nil, fmt.Errorf("ledger: consistency proof: negative tree size")
	}
	var cp *StoredCheckpoint
	if newSize == 0 {
		if cp, err = latest(ctx, st); err != nil {
			return nil, err
		}
		if cp == nil {
			return nil, fmt.Errorf("%w: the store has no checkpoint", ErrNotSequenced)
		}
	} else {
		cs, err := st.Checkpoints(ctx, CheckpointQuery{AfterSize: newSize - 1, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(cs) == 0 || cs[0].Size != newSize {
			return nil, fmt.Errorf("%w: the store has no checkpoint of size %d", ErrNotSequenced, newSize)
		}
		cp = &cs[0]
	}
	if oldSize > cp.Size {
		return nil, fmt.Errorf("ledger: consistency proof: old size %d is beyond the checkpoint of size %d", oldSize, cp.Size)
	}
	p := &ConsistencyProof{OldSize: oldSize, Checkpoint: cp.Note}
	if oldSize > 0 && oldSize < cp.Size {
		if p.Hashes, err = tlog.ProveTree(cp.Size, oldSize, newHashReader(ctx, st)); err != nil {
			return nil, fmt.Errorf("ledger: consistency proof from %d to %d: %w", oldSize, cp.Size, err)
		}
	}
	return p, nil
}
