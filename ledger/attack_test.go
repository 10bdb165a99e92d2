package ledger_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
)

// The attacks of issue 22: ways to alter a store that the audit missed
// because it trusted the store's own checkpoints, and never looked at
// operations not sequenced yet. Each runs on every driver.

// storedNotes returns the store's signed checkpoints by size: the copies a
// consumer of the sink (or a saved proof) holds outside the database.
func storedNotes(t *testing.T, st sqlStore) map[int64][]byte {
	t.Helper()
	cs, err := st.Checkpoints(context.Background(), ledger.CheckpointQuery{AfterSize: -1, Limit: 1000})
	require.NoError(t, err)
	out := map[int64][]byte{}
	for _, c := range cs {
		out[c.Size] = c.Note
	}
	return out
}

func trusted(notes ...[]byte) []ledger.TrustedCheckpoint {
	out := make([]ledger.TrustedCheckpoint, len(notes))
	for i, n := range notes {
		out[i] = ledger.TrustedCheckpoint{Source: fmt.Sprintf("file cp%d", i), Note: n}
	}
	return out
}

// auditOpts audits with the log's key and the signer's key, requiring
// signatures only when asked (the attacks below pass without
// --require-signature on the code before issue 22).
func auditOpts(t *testing.T, st sqlStore, k keys, requireSig bool, trust ...[]byte) *ledger.AuditReport {
	t.Helper()
	rep, err := ledger.Audit(context.Background(), st, ledger.AuditOptions{Log: k.log, OpVerifiers: []core.Verifier{k.opVer},
		RequireSignature: requireSig, Trusted: trusted(trust...)})
	require.NoError(t, err)
	return rep
}

// forgeLeaf rewrites the operation at a leaf as an attacker without the
// signing key can: new content, a matching op_hash, no signature.
func forgeLeaf(t *testing.T, st sqlStore, leaf int64) {
	t.Helper()
	recs, err := st.Leaves(context.Background(), leaf, 1)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	op := recs[0].Op
	op.Actor, op.Signer, op.Sign = "mallory", "", nil
	op.OpHash = op.ComputeHash()
	exec(t, st, "UPDATE "+st.Names().Op+" SET op_actor = ?, op_hash = ?, signer = '', sign = '' WHERE "+atLeaf(st, "="), op.Actor, op.OpHash, leaf)
}

// rebuildHashes recomputes every stored hash from the operation rows, as
// an attacker who forged a row does to make the tree match it again.
func rebuildHashes(t *testing.T, st sqlStore) {
	t.Helper()
	ctx := context.Background()
	recs, err := st.Leaves(ctx, 0, 100000)
	require.NoError(t, err)
	var hs memStore
	for i := range recs {
		leaf, err := ledger.LeafData(&recs[i].Op)
		require.NoError(t, err)
		add, err := tlog.StoredHashes(int64(i), leaf, &hs)
		require.NoError(t, err)
		hs = append(hs, add...)
	}
	for i, h := range hs {
		setHash(t, st, int64(i), h[:])
	}
}

type memStore []tlog.Hash

func (m *memStore) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = (*m)[x]
	}
	return out, nil
}

// truncate cuts the log to size n with everything that would betray it:
// the rows, their hashes, the tree size and the later checkpoints.
func truncate(t *testing.T, st sqlStore, n int64) {
	t.Helper()
	deleteLeaves(t, st, ">=", n)
	require.NoError(t, st.DeleteStoredHashes(context.Background(), tlog.StoredHashIndex(0, n)))
	exec(t, st, "UPDATE "+st.Names().Tree+" SET size = ?", n)
	exec(t, st, "DELETE FROM "+st.Names().Checkpoint+" WHERE tree_size > ?", n)
}

// insertUnsequenced inserts op as a pending row that has no leaf yet.
func insertUnsequenced(t *testing.T, st sqlStore, op *core.Operation) {
	t.Helper()
	exec(t, st, "INSERT INTO "+st.Names().Op+` (op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor,
		producer_id, hash_alg, request_body_hash, response_body_hash, client_ip, server_ip, op_hash, signer, sign, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		op.OpID, string(op.Source), op.Type, op.DOID, op.DOPrefix, op.DORepository, op.Actor,
		op.ProducerID, string(op.HashAlg), op.RequestBodyHash, op.ResponseBodyHash, op.ClientIP, op.ServerIP,
		op.OpHash, op.Signer, hex.EncodeToString(op.Sign),
		timeArg(st, op.CreatedAt), timeArg(st, op.CreatedAt))
}

// forEachDriver runs fn on a fresh store of every driver holding 20
// signed, sequenced operations with checkpoints at 7, 14 and 20, signed
// by the sequencer leader.
func forEachDriver(t *testing.T, fn func(t *testing.T, st sqlStore, k keys, leader *ledger.Sequencer)) {
	t.Parallel()
	for name, open := range drivers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			k := newKeys(t)
			st := open(t)
			leader := fill(t, st, k, 20)
			require.Equal(t, []int64{7, 14, 20}, sizes(storedNotes(t, st)))
			require.True(t, auditOpts(t, st, k, true).OK(), "clean before")
			fn(t, st, k, leader)
		})
	}
}

func sizes(m map[int64][]byte) []int64 {
	var out []int64
	for _, n := range []int64{7, 14, 20} {
		if m[n] != nil {
			out = append(out, n)
		}
	}
	return out
}

func firstFinding(t *testing.T, rep *ledger.AuditReport) ledger.Finding {
	t.Helper()
	require.False(t, rep.OK(), "the audit must find the attack")
	return rep.Findings[0]
}

// Attack 1: every checkpoint deleted. The store's own data can show it:
// sequenced leaves that no signed checkpoint covers.
func TestAttackAllCheckpointsDeleted(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st sqlStore, k keys, leader *ledger.Sequencer) {
		exec(t, st, "DELETE FROM "+st.Names().Checkpoint)
		f := firstFinding(t, auditOpts(t, st, k, false))
		assert.Equal(t, int64(0), f.Index)
		assert.Contains(t, f.Problem, "no signed checkpoint covers leaves 0-19")
	})
}

// Attack 1: only the latest checkpoint deleted. Without an outside
// checkpoint the audit sees leaves past the newest stored checkpoint; with
// one it names the checkpoint that is gone.
func TestAttackLatestCheckpointDeleted(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st sqlStore, k keys, leader *ledger.Sequencer) {
		outside := storedNotes(t, st)[20]
		exec(t, st, "DELETE FROM "+st.Names().Checkpoint+" WHERE tree_size = ?", 20)
		f := firstFinding(t, auditOpts(t, st, k, false))
		assert.Equal(t, int64(14), f.Index)
		assert.Contains(t, f.Problem, "no signed checkpoint covers leaves 14-19")
		f = firstFinding(t, auditOpts(t, st, k, false, outside))
		assert.Equal(t, int64(19), f.Index)
		assert.Contains(t, f.Problem, "trusted checkpoint of size 20 (file cp0) is not in the store: it was deleted")
	})
}

// Attack 2: the tail truncated with its hashes, the tree size and the
// later checkpoints. What remains is a well-formed smaller log: only a
// checkpoint held outside the store shows it.
func TestAttackTailTruncated(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st sqlStore, k keys, leader *ledger.Sequencer) {
		outside := storedNotes(t, st)[20]
		truncate(t, st, 14)
		assert.True(t, auditOpts(t, st, k, true).OK(), "undetectable from inside the store")
		f := firstFinding(t, auditOpts(t, st, k, true, outside))
		assert.Equal(t, int64(14), f.Index)
		assert.Contains(t, f.Problem, "store tree of size 14 does not extend trusted checkpoint of size 20 (file cp0): truncated or rolled back")
	})
}

// Attack 3: the checkpoints deleted, a row forged (unsigned, op_hash
// recomputed) and every hash rebuilt to match it.
func TestAttackForgedRowHashesRebuilt(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st sqlStore, k keys, leader *ledger.Sequencer) {
		outside := storedNotes(t, st)
		forgeLeaf(t, st, 5)
		rebuildHashes(t, st)
		exec(t, st, "DELETE FROM "+st.Names().Checkpoint)
		f := firstFinding(t, auditOpts(t, st, k, false))
		assert.Equal(t, int64(0), f.Index)
		assert.Contains(t, f.Problem, "no signed checkpoint covers leaves 0-19")

		rep := auditOpts(t, st, k, false, outside[7])
		require.False(t, rep.OK())
		assert.Contains(t, problemAt(rep, 6), "store tree of size 20 does not extend trusted checkpoint of size 7 (file cp0): rewritten or forked")

		f = firstFinding(t, auditOpts(t, st, k, true))
		assert.Equal(t, int64(0), f.Index, "leaf 0 has no checkpoint either")
		rep = auditOpts(t, st, k, true)
		assert.Contains(t, problemAt(rep, 5), "not signed, and a signature is required")
	})
}

// Attack 3, the variant that keeps the older checkpoints: a forged row
// past the newest one kept.
func TestAttackForgedTailRowHashesRebuilt(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st sqlStore, k keys, leader *ledger.Sequencer) {
		outside := storedNotes(t, st)[20]
		forgeLeaf(t, st, 16)
		rebuildHashes(t, st)
		exec(t, st, "DELETE FROM "+st.Names().Checkpoint+" WHERE tree_size = ?", 20)
		f := firstFinding(t, auditOpts(t, st, k, false))
		assert.Equal(t, int64(14), f.Index)
		assert.Contains(t, f.Problem, "no signed checkpoint covers leaves 14-19")
		rep := auditOpts(t, st, k, false, outside)
		require.False(t, rep.OK())
		assert.Contains(t, problemAt(rep, 19), "store tree of size 20 does not extend trusted checkpoint of size 20 (file cp0): rewritten or forked")
	})
}

// Attack 3 on a live log: the forged tail's checkpoint deleted and signed
// anew by the sequencer. The sequencer that signed the deleted checkpoint
// refuses; a restarted one cannot know, and from then only the checkpoint
// published before (held outside) shows the forgery.
func TestAttackForgedTailResigned(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st sqlStore, k keys, leader *ledger.Sequencer) {
		ctx := context.Background()
		seq, err := ledger.NewSequencer(ledger.Config{Key: k.skey})
		require.NoError(t, err)
		_, err = seq.Checkpoint(ctx, st) // nothing new: signs nothing, remembers nothing
		require.NoError(t, err)
		outside := storedNotes(t, st)[20]
		forgeLeaf(t, st, 16)
		rebuildHashes(t, st)
		exec(t, st, "DELETE FROM "+st.Names().Checkpoint+" WHERE tree_size = ?", 20)

		// The sequencer that signed checkpoint 20 (fill's) refuses.
		_, err = leader.Checkpoint(ctx, st)
		require.ErrorIs(t, err, ledger.ErrTampered)
		assert.ErrorContains(t, err, "the checkpoint of size 20 this sequencer signed is no longer in the store")
		// A restarted one signs the forged tree.
		cp, err := seq.Checkpoint(ctx, st)
		require.NoError(t, err)
		require.Equal(t, int64(20), cp.Size)
		assert.True(t, auditOpts(t, st, k, false).OK(), "from inside, an intact log")
		rep := auditOpts(t, st, k, false, outside)
		require.False(t, rep.OK())
		assert.Equal(t, int64(19), rep.Findings[0].Index)
		assert.Contains(t, rep.Findings[0].Problem, "store tree of size 20 does not extend trusted checkpoint of size 20 (file cp0): rewritten or forked")
	})
}

func problemAt(rep *ledger.AuditReport, idx int64) string {
	for _, f := range rep.Findings {
		if f.Index == idx {
			return f.Problem
		}
	}
	return ""
}

// Attack 4: rows not sequenced yet are audited too: a forged unsigned one
// fails --require-signature, an edited one fails its op_hash.
func TestAttackUnsequencedForgedRow(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st sqlStore, k keys, leader *ledger.Sequencer) {
		honest := conformance.NewOp("honest", 40)
		require.NoError(t, honest.Seal(k.signer))
		insertUnsequenced(t, st, honest)
		rep := auditOpts(t, st, k, true)
		assert.True(t, rep.OK(), "a signed pending operation is fine: %+v", rep.Findings)
		assert.Equal(t, int64(1), rep.Unsequenced)

		forged := conformance.NewOp("forged", 41)
		require.NoError(t, forged.Seal(nil))
		insertUnsequenced(t, st, forged)
		assert.True(t, auditOpts(t, st, k, false).OK(), "unsigned is allowed without --require-signature")
		f := firstFinding(t, auditOpts(t, st, k, true))
		assert.Equal(t, int64(-1), f.Index, "not sequenced")
		assert.Equal(t, forged.OpID, f.OpID)
		assert.Positive(t, f.Seq)
		assert.Contains(t, f.Problem, "not signed, and a signature is required")

		edited := conformance.NewOp("edited", 42)
		require.NoError(t, edited.Seal(nil))
		edited.Actor = "mallory"
		insertUnsequenced(t, st, edited)
		rep = auditOpts(t, st, k, false)
		f = firstFinding(t, rep)
		assert.Equal(t, edited.OpID, f.OpID)
		assert.Contains(t, f.Problem, "content edited (op_hash does not match the content)")
		assert.Equal(t, int64(3), rep.Unsequenced)
	})
}

// TestFindingNamesTheFault: an edited row is "content edited", whether or
// not it was signed; "bad signature" only for a signature that fails.
func TestFindingNamesTheFault(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st sqlStore, k keys, leader *ledger.Sequencer) {
		op := st.Names().Op
		exec(t, st, "UPDATE "+op+" SET op_actor = 'mallory' WHERE "+atLeaf(st, "="), 3)
		exec(t, st, "UPDATE "+op+" SET op_actor = 'mallory', signer = '', sign = '' WHERE "+atLeaf(st, "="), 4)
		exec(t, st, "UPDATE "+op+" SET sign = ? WHERE "+atLeaf(st, "="), hex.EncodeToString(make([]byte, 64)), 9)
		rep := auditOpts(t, st, k, true)
		for _, idx := range []int64{3, 4} {
			p := problemAt(rep, idx)
			assert.Contains(t, p, "content edited (op_hash does not match the content)", "leaf %d", idx)
			assert.NotContains(t, p, "signature", "leaf %d", idx)
		}
		assert.Contains(t, problemAt(rep, 9), "bad signature: the signature by ledger.test.example/log+")
	})
}

// hookStorage calls before, once, when the audit first lists the stored
// checkpoints, and closes listed after it.
type hookStorage struct {
	ledger.Storage
	before func()
	listed chan struct{}
	once   bool
}

func (h *hookStorage) Checkpoints(ctx context.Context, q ledger.CheckpointQuery) ([]ledger.StoredCheckpoint, error) {
	first := !h.once
	h.once = true
	if first && h.before != nil {
		h.before()
	}
	cs, err := h.Storage.Checkpoints(ctx, q)
	if first && h.listed != nil {
		close(h.listed)
	}
	return cs, err
}

// TestAuditWaitsForTheCheckpoint: leaves past the newest checkpoint are
// reported only if no checkpoint covers them within CheckpointWait; a
// running sequencer signs one meanwhile.
func TestAuditWaitsForTheCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newKeys(t)
	st := drivers["sqlite"](t)
	seq := fill(t, st, k, 14)
	c, err := core.NewClient(st, nil, core.Config{Strategy: core.StoreOnly, Signer: k.signer})
	require.NoError(t, err)
	for i := 14; i < 20; i++ {
		require.NoError(t, c.Record(ctx, conformance.NewOp("late", i)))
	}
	n, err := seq.Sequence(ctx, st)
	require.NoError(t, err)
	require.Equal(t, 6, n)

	f := firstFinding(t, auditOpts(t, st, k, true))
	assert.Equal(t, int64(14), f.Index, "without waiting")
	assert.Contains(t, f.Problem, "no signed checkpoint covers leaves 14-19")

	h := &hookStorage{Storage: st, listed: make(chan struct{})}
	done := make(chan *ledger.AuditReport)
	go func() {
		rep, err := ledger.Audit(ctx, h, ledger.AuditOptions{Log: k.log, OpVerifiers: []core.Verifier{k.opVer}, RequireSignature: true,
			CheckpointWait: time.Minute})
		assert.NoError(t, err)
		done <- rep
	}()
	<-h.listed // the audit saw no checkpoint past 14
	cp, err := seq.Checkpoint(ctx, st)
	require.NoError(t, err)
	require.Equal(t, int64(20), cp.Size)
	rep := <-done
	assert.True(t, rep.OK(), "%+v", rep.Findings)
	assert.Equal(t, 3, rep.Checkpoints, "7, 14 and, once it came, 20")
}

// TestAuditOfAGrowingStore: a checkpoint signed after the audit read the
// tree size is not a rollback.
func TestAuditOfAGrowingStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newKeys(t)
	st := drivers["sqlite"](t)
	seq := fill(t, st, k, 14)
	c, err := core.NewClient(st, nil, core.Config{Strategy: core.StoreOnly, Signer: k.signer})
	require.NoError(t, err)
	h := &hookStorage{Storage: st, before: func() {
		for i := 14; i < 21; i++ {
			require.NoError(t, c.Record(ctx, conformance.NewOp("growing", i)))
		}
		_, err := seq.Sequence(ctx, st)
		require.NoError(t, err)
		_, err = seq.Checkpoint(ctx, st)
		require.NoError(t, err)
	}}
	rep, err := ledger.Audit(ctx, h, ledger.AuditOptions{Log: k.log, OpVerifiers: []core.Verifier{k.opVer}, RequireSignature: true})
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%+v", rep.Findings)
	assert.Equal(t, int64(14), rep.TreeSize)
	assert.Equal(t, 3, rep.Checkpoints)
}
