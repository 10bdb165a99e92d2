package ledger

import (
	"context"
	"fmt"
	"sort"

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
}

// Finding is one thing wrong, at the leaf index it concerns (the tree size
// for a rolled-back tree).
type Finding struct {
	Index   int64  `json:"index"`
	Problem string `json:"problem"`
}

// AuditReport is the outcome of an audit.
type AuditReport struct {
	TreeSize int64 `json:"tree_size"`
	// PrunedBelow is the prune horizon: leaves below it had their rows
	// deleted by Prune and are checked through their stored hashes only.
	PrunedBelow int64 `json:"pruned_below"`
	Leaves      int64 `json:"leaves"`
	Checkpoints int   `json:"checkpoints"`
	// Findings are ordered by index, at most one per index.
	Findings []Finding `json:"findings"`
}

// OK reports whether the audit found nothing.
func (r *AuditReport) OK() bool { return len(r.Findings) == 0 }

// Audit checks a whole store offline from the trust it puts in the log's
// key: it recomputes every leaf from the operation rows, rebuilds the tree
// from them and compares every stored hash, checks that the leaf indices
// are gapless and within the tree, checks every operation's op_hash (and
// signature), and checks every signed checkpoint: its signature, that its
// root is the rebuilt tree's root at its size, that successive checkpoints
// are consistent, and that the tree was not rolled back below one.
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
	a := &auditor{findings: map[int64]string{}, dirty: map[int64]bool{}}
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
			if err := core.VerifyOperation(&rec.Op, opts.RequireSignature, opts.OpVerifiers...); err != nil {
				a.add(idx, "operation "+rec.Op.OpID+": "+err.Error())
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
	if err := a.compareStored(ctx, st, computed, leafHashes); err != nil {
		return nil, err
	}
	if err := a.checkCheckpoints(ctx, st, opts.Log, size, &computed, rep); err != nil {
		return nil, err
	}
	for idx, p := range a.findings {
		rep.Findings = append(rep.Findings, Finding{Index: idx, Problem: p})
	}
	sort.Slice(rep.Findings, func(i, j int) bool { return rep.Findings[i].Index < rep.Findings[j].Index })
	return rep, nil
}

type auditor struct {
	findings map[int64]string
	// dirty leaves already explain any difference above them.
	dirty map[int64]bool
}

// add records a finding; the first one at an index wins.
func (a *auditor) add(idx int64, problem string) {
	if _, ok := a.findings[idx]; !ok {
		a.findings[idx] = problem
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

// checkCheckpoints checks every signed checkpoint against the recomputed
// tree and its predecessor.
func (a *auditor) checkCheckpoints(ctx context.Context, st Storage, log note.Verifier, size int64, computed *memHashes, rep *AuditReport) error {
	var prev *Checkpoint
	for after := int64(-1); ; {
		cs, err := st.Checkpoints(ctx, CheckpointQuery{AfterSize: after, Limit: 1000})
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return nil
		}
		for _, sc := range cs {
			after = sc.Size
			rep.Checkpoints++
			cp, err := OpenCheckpoint(sc.Note, log)
			if err != nil {
				a.add(sc.Size, fmt.Sprintf("checkpoint %d: %v", sc.Size, err))
				continue
			}
			if cp.Size != sc.Size || cp.Root != sc.Root {
				a.add(sc.Size, fmt.Sprintf("checkpoint %d: its stored size or root differs from the signed note", sc.Size))
			}
			if cp.Size > size {
				a.add(size, fmt.Sprintf("tree size %d is below the signed checkpoint %d: the tree was rolled back", size, cp.Size))
				continue
			}
			root, err := tlog.TreeHash(cp.Size, computed)
			if err != nil {
				return err
			}
			if root != cp.Root && !a.anyDirtyBelow(cp.Size) {
				a.add(cp.Size-1, fmt.Sprintf("checkpoint %d: the rebuilt tree's root differs from the signed one", cp.Size))
			}
			if prev != nil {
				proof, err := tlog.ProveTree(cp.Size, prev.Size, computed)
				if err != nil {
					return err
				}
				if err := tlog.CheckTree(proof, cp.Size, cp.Root, prev.Size, prev.Root); err != nil && !a.anyDirtyBelow(cp.Size) {
					a.add(prev.Size, fmt.Sprintf("checkpoints %d and %d are inconsistent: %v", prev.Size, cp.Size, err))
				}
			}
			c := cp
			prev = &c
		}
	}
}

func (a *auditor) anyDirtyBelow(n int64) bool {
	for idx := range a.findings {
		if idx < n {
			return true
		}
	}
	return false
}
