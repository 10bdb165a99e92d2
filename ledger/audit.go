package ledger

import (
	"context"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
)

// AuditOptions configure Audit.
type AuditOptions struct {
	// Log verifies checkpoint signatures (the log's public key). Required.
	Log note.Verifier
	// OpVerifiers verify operation signatures, matched by key name.
	OpVerifiers []core.Verifier
	// RequireSignature makes an unsigned operation a finding.
	RequireSignature bool
	// Progress, if set, is called with the number of leaves audited.
	Progress func(leaves int64)
	// Trusted are signed checkpoints held outside the store (files, the
	// copies the relay published to the sink): the store's tree must
	// extend each of them, and hold each of them.
	Trusted []TrustedCheckpoint
	// CheckpointWait is how long Audit waits for a checkpoint to cover
	// leaves sequenced beyond the newest stored checkpoint before it
	// reports them. Zero: it does not wait.
	CheckpointWait time.Duration
}

// Finding is one thing wrong, at the leaf index it concerns (the tree size
// for a rolled-back or truncated tree), or at index -1 when it concerns no
// leaf: an operation not sequenced yet (Seq and OpID name it), a trusted
// checkpoint that does not verify.
type Finding struct {
	Index   int64  `json:"index"`
	Problem string `json:"problem"`
	// Seq and OpID name an operation that has no leaf yet (Index -1).
	Seq  int64  `json:"seq,omitempty"`
	OpID string `json:"op_id,omitempty"`
}

// AuditReport is the outcome of an audit.
type AuditReport struct {
	TreeSize int64 `json:"tree_size"`
	// PrunedBelow is the prune horizon: leaves below it had their rows
	// deleted by Prune and are checked through their stored hashes only.
	PrunedBelow int64 `json:"pruned_below"`
	Leaves      int64 `json:"leaves"`
	Checkpoints int   `json:"checkpoints"`
	// Unsequenced counts the operations audited that have no leaf yet.
	Unsequenced int64 `json:"unsequenced"`
	// Trusted counts the distinct trusted checkpoints checked.
	Trusted int `json:"trusted_checkpoints"`
	// Findings are ordered by index, at most one per index; those that
	// concern no leaf (index -1: operations not sequenced yet, trusted
	// checkpoints that do not verify) come last.
	Findings []Finding `json:"findings"`
}

// OK reports whether the audit found nothing.
func (r *AuditReport) OK() bool { return len(r.Findings) == 0 }

// Audit checks a whole store offline from the trust it puts in the log's
// key: it recomputes every leaf from the operation rows, rebuilds the tree
// from them and compares every stored hash, checks that the leaf indices
// are gapless and within the tree, checks every operation's op_hash (and
// signature), sequenced or not, and checks every signed checkpoint: its
// signature, that its root is the rebuilt tree's root at its size, that
// successive checkpoints are consistent, that the tree was not rolled back
// below one, and that one covers every sequenced leaf (else the newest
// checkpoints were deleted; see CheckpointWait).
//
// A store rewritten from its first leaf or truncated at a checkpoint
// boundary, with its hashes and later checkpoints, is a well-formed
// smaller log: only a checkpoint held outside the store shows it. With
// opts.Trusted, Audit proves that the store's tree extends each trusted
// checkpoint (a consistency proof over the stored hashes) and that the
// store still holds it.
//
// Memory: two hashes (64 bytes) per leaf.
func Audit(ctx context.Context, store core.Store, opts AuditOptions) (*AuditReport, error) {
	st, err := storageOf(store)
	if err != nil {
		return nil, err
	}
	if opts.Log == nil {
		return nil, fmt.Errorf("ledger: audit needs the log's public key")
	}
	a := &auditor{st: st, opts: opts, findings: map[int64]string{}, dirty: map[int64]bool{}, after: -1, stored: map[int64]tlog.Hash{}}
	size, err := st.TreeSize(ctx)
	if err != nil {
		return nil, err
	}
	pruned, err := PrunedBelow(ctx, st)
	if err != nil {
		return nil, err
	}
	if pruned > size {
		return nil, fmt.Errorf("%w: pruned below %d, beyond the tree size %d", ErrTampered, pruned, size)
	}
	rep := &AuditReport{TreeSize: size, PrunedBelow: pruned}
	var computed memHashes
	var leafHashes []tlog.Hash // recomputed from the rows, by leaf index
	// Below the prune horizon the rows are gone by design: their stored
	// leaf hashes stand in, and the checkpoints still vouch for them.
	for start := int64(0); start < pruned; start += 4096 {
		idx := make([]int64, 0, 4096)
		for i := start; i < min(start+4096, pruned); i++ {
			idx = append(idx, tlog.StoredHashIndex(0, i))
		}
		hs, err := st.ReadHashes(ctx, idx)
		if err != nil {
			return nil, fmt.Errorf("ledger: audit: leaf hashes below the prune horizon: %w", err)
		}
		for i, h := range hs {
			if err := appendLeaf(&computed, &leafHashes, start+int64(i), h); err != nil {
				return nil, err
			}
		}
	}
	next := pruned
	// gap fills leaves [next, upTo) whose rows are gone with their stored
	// leaf hash, so the rest of the tree can still be checked.
	gap := func(upTo int64) error {
		for ; next < upTo && next < size; next++ {
			a.add(next, "leaf missing: its operation row was deleted")
			a.dirty[next] = true
			h := tlog.Hash{}
			if hs, err := st.ReadHashes(ctx, []int64{tlog.StoredHashIndex(0, next)}); err == nil {
				h = hs[0]
			}
			if err := appendLeaf(&computed, &leafHashes, next, h); err != nil {
				return err
			}
		}
		return nil
	}
	for from := pruned; ; {
		page, err := st.Leaves(ctx, from, 1000)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		for i := range page {
			rec := &page[i]
			idx := rec.LeafIndex
			from = idx + 1
			if idx >= size {
				a.add(idx, fmt.Sprintf("leaf index beyond the tree size %d: a forged row, or the tree was rolled back", size))
				continue
			}
			if err := gap(idx); err != nil {
				return nil, err
			}
			rep.Leaves++
			if p := OperationProblem(&rec.Op, opts.RequireSignature, opts.OpVerifiers...); p != "" {
				a.add(idx, p)
			}
			leaf, err := LeafData(&rec.Op)
			h := tlog.Hash{}
			if err != nil {
				a.add(idx, "operation "+rec.Op.OpID+" cannot be encoded: "+err.Error())
			} else {
				h = tlog.RecordHash(leaf)
			}
			if err := appendLeaf(&computed, &leafHashes, idx, h); err != nil {
				return nil, err
			}
			next = idx + 1
		}
		if opts.Progress != nil {
			opts.Progress(next)
		}
	}
	if err := gap(size); err != nil {
		return nil, err
	}
	if err := a.unsequenced(ctx, rep); err != nil {
		return nil, err
	}
	if err := a.compareStored(ctx, st, computed, leafHashes); err != nil {
		return nil, err
	}
	a.size, a.computed = size, &computed
	if err := a.checkCheckpoints(ctx, rep); err != nil {
		return nil, err
	}
	if err := a.checkTrusted(ctx, rep); err != nil {
		return nil, err
	}
	if err := a.checkCovered(ctx, rep); err != nil {
		return nil, err
	}
	for idx, p := range a.findings {
		rep.Findings = append(rep.Findings, Finding{Index: idx, Problem: p})
	}
	sort.Slice(rep.Findings, func(i, j int) bool { return rep.Findings[i].Index < rep.Findings[j].Index })
	rep.Findings = append(rep.Findings, a.other...)
	return rep, nil
}

// OperationProblem checks one operation: that its op_hash is the hash of
// its content and, when verifiers are given or requireSig is set, its
// signature. It returns "" when the operation holds, else the problem,
// named for what is wrong: "content edited" when the content does not
// match its op_hash (signed or not), "not signed" when a signature is
// required and there is none, "bad signature" only when there is a
// signature and it fails.
func OperationProblem(op *core.Operation, requireSig bool, verifiers ...core.Verifier) string {
	if got := op.ComputeHash(); got != op.OpHash {
		return fmt.Sprintf("operation %s: content edited (op_hash does not match the content): stored op_hash %s, the content hashes to %s", op.OpID, op.OpHash, got)
	}
	if len(verifiers) == 0 && !requireSig {
		return ""
	}
	if len(op.Sign) == 0 {
		if requireSig {
			return fmt.Sprintf("operation %s: not signed, and a signature is required", op.OpID)
		}
		return ""
	}
	h, _ := hex.DecodeString(op.OpHash)
	for _, v := range verifiers {
		if v.KeyName() == op.Signer {
			if v.Verify(core.SignedMessage(h), op.Sign) {
				return ""
			}
			return fmt.Sprintf("operation %s: bad signature: the signature by %s does not verify over its op_hash", op.OpID, op.Signer)
		}
	}
	return fmt.Sprintf("operation %s: signed by key %q, and no operation verifier has that key", op.OpID, op.Signer)
}

type auditor struct {
	st       Storage
	opts     AuditOptions
	findings map[int64]string
	// other are the findings that concern no leaf (Index -1): operations
	// not sequenced yet, trusted checkpoints that do not verify.
	other []Finding
	// dirty leaves already explain any difference above them.
	dirty map[int64]bool
	// size is the audited tree size; computed the tree rebuilt from the
	// rows.
	size     int64
	computed *memHashes
	// after is the size of the last stored checkpoint examined, prev the
	// last one that verified; covered is the largest size a checkpoint
	// that verifies covers.
	after   int64
	prev    *Checkpoint
	covered int64
	// stored holds the root of every stored checkpoint, by size.
	stored map[int64]tlog.Hash
}

// add records a finding; the first one at an index wins.
func (a *auditor) add(idx int64, problem string) {
	if _, ok := a.findings[idx]; !ok {
		a.findings[idx] = problem
	}
}

// unsequenced audits the operations that have no leaf yet: their op_hash,
// and their signature as for leaves.
func (a *auditor) unsequenced(ctx context.Context, rep *AuditReport) error {
	for after := int64(0); ; {
		page, err := a.st.Unsequenced(ctx, after, 1000)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for i := range page {
			rec := &page[i]
			after = rec.Seq
			rep.Unsequenced++
			if p := OperationProblem(&rec.Op, a.opts.RequireSignature, a.opts.OpVerifiers...); p != "" {
				a.other = append(a.other, Finding{Index: -1, Seq: rec.Seq, OpID: rec.Op.OpID, Problem: p + " (not sequenced yet)"})
			}
		}
	}
}

// appendLeaf adds leaf n's stored hashes to the recomputed tree.
func appendLeaf(m *memHashes, leaves *[]tlog.Hash, n int64, h tlog.Hash) error {
	hs, err := tlog.StoredHashesForRecordHash(n, h, m)
	if err != nil {
		return err
	}
	*m = append(*m, hs...)
	*leaves = append(*leaves, h)
	return nil
}

// compareStored compares the stored hashes with the recomputed ones. A
// leaf whose row no longer hashes to its stored leaf hash is named; a
// higher node that differs although every leaf under it matches was
// replaced in the hash table, and is named by its first leaf.
func (a *auditor) compareStored(ctx context.Context, st Storage, computed memHashes, leaves []tlog.Hash) error {
	const chunk = 4096
	for start := int64(0); start < int64(len(computed)); start += chunk {
		end := min(start+chunk, int64(len(computed)))
		idx := make([]int64, 0, end-start)
		for i := start; i < end; i++ {
			idx = append(idx, i)
		}
		stored, err := st.ReadHashes(ctx, idx)
		if err != nil {
			// Missing stored hashes: find the first one by reading singly.
			for _, i := range idx {
				if _, err := st.ReadHashes(ctx, []int64{i}); err != nil {
					level, n := tlog.SplitStoredHashIndex(i)
					a.add(n<<uint(level), fmt.Sprintf("stored hash %d (level %d) is missing", i, level))
					return nil
				}
			}
			return err
		}
		for j, h := range stored {
			i := idx[j]
			if h == computed[i] {
				continue
			}
			level, n := tlog.SplitStoredHashIndex(i)
			first := n << uint(level)
			if level == 0 {
				if !a.dirty[first] {
					a.add(first, "the operation row no longer matches its stored leaf hash (the row was altered, or the hash replaced)")
					a.dirty[first] = true
				}
				continue
			}
			last := min(first+(1<<uint(level)), int64(len(leaves)))
			explained := false
			for k := first; k < last; k++ {
				if a.dirty[k] {
					explained = true
					break
				}
			}
			if !explained {
				a.add(first, fmt.Sprintf("stored hash %d (level %d, leaves %d-%d) was replaced", i, level, first, last-1))
			}
		}
	}
	return nil
}

// checkCheckpoints checks the stored checkpoints after a.after against
// the rebuilt tree and their predecessor.
func (a *auditor) checkCheckpoints(ctx context.Context, rep *AuditReport) error {
	var current int64 = -1 // the tree size now, read when needed
	for {
		cs, err := a.st.Checkpoints(ctx, CheckpointQuery{AfterSize: a.after, Limit: 1000})
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return nil
		}
		for _, sc := range cs {
			a.after = sc.Size
			a.stored[sc.Size] = sc.Root
			rep.Checkpoints++
			cp, err := OpenCheckpoint(sc.Note, a.opts.Log)
			if err != nil {
				a.add(sc.Size, fmt.Sprintf("checkpoint %d: %v", sc.Size, err))
				a.covered = max(a.covered, min(sc.Size, a.size)) // reported here
				continue
			}
			if cp.Size != sc.Size || cp.Root != sc.Root {
				a.add(sc.Size, fmt.Sprintf("checkpoint %d: its stored size or root differs from the signed note", sc.Size))
				a.covered = max(a.covered, min(sc.Size, a.size))
				continue
			}
			if cp.Size > a.size {
				if current < 0 {
					if current, err = a.st.TreeSize(ctx); err != nil {
						return err
					}
				}
				if current >= cp.Size {
					// Signed after the audit read the tree size: the
					// next audit checks it against its rows.
					a.covered = max(a.covered, cp.Size)
					continue
				}
				a.add(a.size, fmt.Sprintf("tree size %d is below the signed checkpoint %d: the tree was rolled back", a.size, cp.Size))
				a.covered = a.size // the rollback explains the leaves it left
				continue
			}
			a.covered = max(a.covered, cp.Size)
			root, err := tlog.TreeHash(cp.Size, a.computed)
			if err != nil {
				return err
			}
			if root != cp.Root && !a.anyDirtyBelow(cp.Size) {
				a.add(cp.Size-1, fmt.Sprintf("checkpoint %d: the rebuilt tree's root differs from the signed one", cp.Size))
			}
			if a.prev != nil {
				proof, err := tlog.ProveTree(cp.Size, a.prev.Size, a.computed)
				if err != nil {
					return err
				}
				if err := tlog.CheckTree(proof, cp.Size, cp.Root, a.prev.Size, a.prev.Root); err != nil && !a.anyDirtyBelow(cp.Size) {
					a.add(a.prev.Size, fmt.Sprintf("checkpoints %d and %d are inconsistent: %v", a.prev.Size, cp.Size, err))
				}
			}
			c := cp
			a.prev = &c
		}
	}
}

// checkCovered reports sequenced leaves that no stored checkpoint covers:
// the sequencer signs one within a second of sequencing (CheckpointEvery),
// so leaves left uncovered mean the newest checkpoints were deleted, or
// that the sequencer stopped between sequencing and signing. It waits up
// to CheckpointWait for one to appear first.
func (a *auditor) checkCovered(ctx context.Context, rep *AuditReport) error {
	if a.covered >= a.size {
		return nil
	}
	if a.opts.CheckpointWait > 0 {
		t := time.NewTimer(a.opts.CheckpointWait)
		defer t.Stop()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
	wait:
		for a.covered < a.size {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				break wait
			case <-tick.C:
				if err := a.checkCheckpoints(ctx, rep); err != nil {
					return err
				}
			}
		}
		if a.covered >= a.size {
			return nil
		}
	}
	a.add(a.covered, fmt.Sprintf("no signed checkpoint covers leaves %d-%d: the newest checkpoints were deleted, or the sequencer stopped between sequencing and signing",
		a.covered, a.size-1))
	return nil
}

// checkTrusted proves that the store's tree extends each trusted
// checkpoint, from the stored hashes, and that the store holds it.
func (a *auditor) checkTrusted(ctx context.Context, rep *AuditReport) error {
	if len(a.opts.Trusted) == 0 {
		return nil
	}
	size, err := a.st.TreeSize(ctx) // the tree as it is now, which may have grown
	if err != nil {
		return err
	}
	hr := newHashReader(ctx, a.st)
	var root tlog.Hash
	var rootErr error // an empty tree has no root, and extends only size 0
	if size > 0 {
		root, rootErr = tlog.TreeHash(size, hr)
	}
	type seen struct {
		root   tlog.Hash
		source string
	}
	bySize := map[int64]seen{}
	for _, tc := range a.opts.Trusted {
		cp, err := OpenCheckpoint(tc.Note, a.opts.Log)
		if err != nil {
			a.other = append(a.other, Finding{Index: -1, Problem: fmt.Sprintf("trusted checkpoint (%s) does not verify with the log's key: %v", tc.Source, err)})
			continue
		}
		if s, ok := bySize[cp.Size]; ok {
			if s.root != cp.Root {
				a.add(cp.Size-1, fmt.Sprintf("trusted checkpoints of size %d (%s and %s) have different roots: the log forked", cp.Size, s.source, tc.Source))
			}
			continue
		}
		bySize[cp.Size] = seen{cp.Root, tc.Source}
		rep.Trusted++
		if cp.Size == 0 {
			continue
		}
		if cp.Size > size {
			a.add(size, fmt.Sprintf("store tree of size %d does not extend trusted checkpoint of size %d (%s): truncated or rolled back", size, cp.Size, tc.Source))
			continue
		}
		var proof tlog.TreeProof
		err = rootErr
		if err == nil && cp.Size < size {
			proof, err = tlog.ProveTree(size, cp.Size, hr)
		}
		if err != nil {
			a.add(cp.Size-1, fmt.Sprintf("store tree of size %d cannot prove it extends trusted checkpoint of size %d (%s): stored hashes unreadable: %v", size, cp.Size, tc.Source, err))
			continue
		}
		if err := VerifyConsistency(cp, Checkpoint{Origin: cp.Origin, Size: size, Root: root}, proof); err != nil {
			a.add(cp.Size-1, fmt.Sprintf("store tree of size %d does not extend trusted checkpoint of size %d (%s): rewritten or forked", size, cp.Size, tc.Source))
			continue
		}
		stored, ok := a.stored[cp.Size]
		if !ok { // signed since the audit listed the checkpoints?
			cs, err := a.st.Checkpoints(ctx, CheckpointQuery{AfterSize: cp.Size - 1, Limit: 1})
			if err != nil {
				return err
			}
			if ok = len(cs) == 1 && cs[0].Size == cp.Size; ok {
				stored = cs[0].Root
			}
		}
		switch {
		case !ok:
			a.add(cp.Size-1, fmt.Sprintf("trusted checkpoint of size %d (%s) is not in the store: it was deleted", cp.Size, tc.Source))
		case stored != cp.Root:
			a.add(cp.Size-1, fmt.Sprintf("the store's checkpoint of size %d differs from the trusted one (%s)", cp.Size, tc.Source))
		}
		// Its leaves are covered by a signed checkpoint, whether or not
		// the store still holds it.
		a.covered = max(a.covered, cp.Size)
	}
	return nil
}

func (a *auditor) anyDirtyBelow(n int64) bool {
	for idx := range a.findings {
		if idx < n {
			return true
		}
	}
	return false
}
