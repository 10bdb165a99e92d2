package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/internal/testenv"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/uptrace/bun"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// sqlStore is what the tamper tests need of a store: its tables and a bun
// handle whose "?" placeholders work on every dialect.
type sqlStore interface {
	ledger.Storage
	Bun() *bun.DB
	Names() sqlstore.Names
	// SetStoredHash and DeleteStoredHashes write the stored hashes
	// where each database keeps them (PostgreSQL: in runs).
	SetStoredHash(ctx context.Context, idx int64, h []byte) error
	DeleteStoredHashes(ctx context.Context, idx int64) error
}

var drivers = map[string]func(t testing.TB) sqlStore{
	"sqlite":   func(t testing.TB) sqlStore { return sqlitetest.Open(t, sqlitetest.URL(t)) },
	"postgres": func(t testing.TB) sqlStore { return postgrestest.Open(t, postgrestest.NewSchema(t)) },
	"mysql":    func(t testing.TB) sqlStore { return mysqltest.Open(t, mysqltest.NewDatabase(t)) },
}

type keys struct {
	skey   string
	log    note.Verifier
	signer core.Signer
	opVer  core.Verifier
}

func newKeys(t testing.TB) keys {
	skey, vkey, err := core.GenerateEd25519("ledger.test.example/log")
	require.NoError(t, err)
	v, err := note.NewVerifier(vkey)
	require.NoError(t, err)
	s, err := core.NewEd25519Signer(skey)
	require.NoError(t, err)
	ov, err := core.NewEd25519Verifier(vkey)
	require.NoError(t, err)
	return keys{skey: skey, log: v, signer: s, opVer: ov}
}

// fill records n signed operations, 7 at a time, sequencing (in batches
// of 3) and checkpointing after each 7.
func fill(t testing.TB, st sqlStore, k keys, n int) *ledger.Sequencer {
	t.Helper()
	ctx := context.Background()
	c, err := core.NewClient(st, nil, core.Config{Strategy: core.StoreOnly, Signer: k.signer})
	require.NoError(t, err)
	seq, err := ledger.NewSequencer(ledger.Config{Key: k.skey, BatchSize: 3})
	require.NoError(t, err)
	for i := 0; i < n; i += 7 {
		ops := make([]*core.Operation, 0, 7)
		for j := i; j < min(n, i+7); j++ {
			ops = append(ops, conformance.NewOp(fmt.Sprintf("ledger-%d", j%5), j))
		}
		require.NoError(t, c.Record(ctx, ops...))
		m, err := seq.Sequence(ctx, st)
		require.NoError(t, err)
		require.Equal(t, len(ops), m)
		_, err = seq.Checkpoint(ctx, st)
		require.NoError(t, err)
	}
	return seq
}

func audit(t *testing.T, st sqlStore, k keys) *ledger.AuditReport {
	t.Helper()
	rep, err := ledger.Audit(context.Background(), st, ledger.AuditOptions{Log: k.log, OpVerifiers: []core.Verifier{k.opVer}, RequireSignature: true})
	require.NoError(t, err)
	return rep
}

func TestSequenceProveVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newKeys(t)
	st := sqlitetest.Open(t, sqlitetest.URL(t))
	fill(t, st, k, 40)
	size, err := st.TreeSize(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(40), size)
	rep := audit(t, st, k)
	assert.True(t, rep.OK(), "%+v", rep.Findings)
	assert.Equal(t, int64(40), rep.Leaves)
	assert.Equal(t, 6, rep.Checkpoints, "one per 7 operations")

	leaves, err := st.Leaves(ctx, 0, 100)
	require.NoError(t, err)
	for i, r := range leaves {
		assert.Equal(t, int64(i), r.LeafIndex, "gapless, in seq order")
	}
	p, err := ledger.Prove(ctx, st, leaves[17].Op.OpID)
	require.NoError(t, err)
	parsed, err := ledger.ParseProof(p.Marshal())
	require.NoError(t, err)
	op, cp, err := parsed.Verify(k.log, true, k.opVer)
	require.NoError(t, err)
	assert.Equal(t, leaves[17].Op.OpID, op.OpID)
	assert.Equal(t, int64(40), cp.Size)
	assert.True(t, strings.HasPrefix(string(p.Marshal()), "c2sp.org/tlog-proof@v1\nextra "))

	// A proof for another leaf, a forged leaf, a wrong key: refused.
	forged := *parsed
	forged.Index = 18
	_, _, err = forged.Verify(k.log, true, k.opVer)
	assert.ErrorIs(t, err, ledger.ErrTampered)
	other := newKeys(t)
	_, _, err = parsed.Verify(other.log, true)
	assert.ErrorIs(t, err, ledger.ErrTampered)
	bad := *parsed
	bad.Leaf = append([]byte(nil), parsed.Leaf...)
	bad.Leaf[40] ^= 1
	_, _, err = bad.Verify(k.log, true, k.opVer)
	assert.ErrorIs(t, err, ledger.ErrTampered)
}

// TestInterop: our inclusion and consistency proofs verify with an
// independent RFC 6962 implementation (github.com/transparency-dev/merkle).
func TestInterop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newKeys(t)
	st := sqlitetest.Open(t, sqlitetest.URL(t))
	fill(t, st, k, 53)
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return st.ReadHashes(ctx, idx) })
	leaves, err := st.Leaves(ctx, 0, 100)
	require.NoError(t, err)
	for _, size := range []int64{1, 2, 7, 14, 53} {
		root, err := tlog.TreeHash(size, hr)
		require.NoError(t, err)
		for i := int64(0); i < size; i++ {
			p, err := tlog.ProveRecord(size, i, hr)
			require.NoError(t, err)
			leaf, err := ledger.LeafData(&leaves[i].Op)
			require.NoError(t, err)
			lh := rfc6962.DefaultHasher.HashLeaf(leaf)
			rh := tlog.RecordHash(leaf)
			assert.Equal(t, rh[:], lh, "same leaf hash")
			require.NoError(t, proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), uint64(size), lh, raw(p), root[:]),
				"inclusion of %d in %d", i, size)
		}
		for old := int64(1); old < size; old++ {
			p, err := tlog.ProveTree(size, old, hr)
			require.NoError(t, err)
			oldRoot, err := tlog.TreeHash(old, hr)
			require.NoError(t, err)
			require.NoError(t, proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(old), uint64(size), raw(p), oldRoot[:], root[:]),
				"consistency %d → %d", old, size)
		}
	}
}

func raw[H ~[32]byte](hs []H) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		h := hs[i]
		out[i] = h[:]
	}
	return out
}

// tamper is one way to alter a sequenced store; it returns the leaf index
// the audit must name first.
type tamper struct {
	name string
	fn   func(t *testing.T, st sqlStore, size int64) int64
}

// atLeaf is the condition on the operation table for the operations at
// the positions "leaf_index <op> ?": the row's column, or, where
// positions have a table of their own (PostgreSQL), the seqs it holds.
func atLeaf(st sqlStore, op string) string {
	if pos := st.Names().Position; pos != "" {
		return "seq IN (SELECT seq FROM " + pos + " WHERE leaf_index " + op + " ?)"
	}
	return "leaf_index " + op + " ?"
}

// positionTable is the table holding the positions (leaf_index).
func positionTable(st sqlStore) string {
	if pos := st.Names().Position; pos != "" {
		return pos
	}
	return st.Names().Op
}

// deleteLeaves deletes the operations at the positions "leaf_index <op>
// ?", and their positions.
func deleteLeaves(t *testing.T, st sqlStore, op string, leaf int64) {
	t.Helper()
	exec(t, st, "DELETE FROM "+st.Names().Op+" WHERE "+atLeaf(st, op), leaf)
	if pos := st.Names().Position; pos != "" {
		exec(t, st, "DELETE FROM "+pos+" WHERE leaf_index "+op+" ?", leaf)
	}
}

func exec(t *testing.T, st sqlStore, q string, args ...any) {
	t.Helper()
	_, err := st.Bun().ExecContext(context.Background(), q, args...)
	require.NoError(t, err, q)
}

// setHash replaces the stored hash at idx with h.
func setHash(t *testing.T, st sqlStore, idx int64, h []byte) {
	t.Helper()
	require.NoError(t, st.SetStoredHash(context.Background(), idx, h), "replace stored hash %d", idx)
}

var tampers = []tamper{
	{"change one field", func(t *testing.T, st sqlStore, size int64) int64 {
		exec(t, st, "UPDATE "+st.Names().Op+" SET op_actor = 'mallory' WHERE "+atLeaf(st, "="), 5)
		return 5
	}},
	{"delete a row", func(t *testing.T, st sqlStore, size int64) int64 {
		deleteLeaves(t, st, "=", 7)
		return 7
	}},
	{"swap two rows' contents", func(t *testing.T, st sqlStore, size int64) int64 {
		pos := positionTable(st)
		exec(t, st, "UPDATE "+pos+" SET leaf_index = ? WHERE leaf_index = ?", -1, 3)
		exec(t, st, "UPDATE "+pos+" SET leaf_index = ? WHERE leaf_index = ?", 3, 9)
		exec(t, st, "UPDATE "+pos+" SET leaf_index = ? WHERE leaf_index = ?", 9, -1)
		return 3
	}},
	{"insert a forged row", func(t *testing.T, st sqlStore, size int64) int64 {
		forged := conformance.NewOp("forged", 999)
		require.NoError(t, forged.Seal(nil))
		cols, marks, args := "", "", []any{}
		if st.Names().Position == "" {
			// The position is a column of the row.
			cols, marks, args = ", leaf_index", ", ?", []any{size + 4}
		}
		exec(t, st, "INSERT INTO "+st.Names().Op+` (op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor,
			producer_id, hash_alg, request_body_hash, response_body_hash, op_hash, created_at, updated_at`+cols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?`+marks+`)`,
			append([]any{forged.OpID, string(forged.Source), forged.Type, forged.DOID, forged.DOPrefix, forged.DORepository, forged.Actor,
				forged.ProducerID, string(forged.HashAlg), forged.RequestBodyHash, forged.ResponseBodyHash, forged.OpHash,
				timeArg(st, forged.CreatedAt), timeArg(st, forged.CreatedAt)}, args...)...)
		if pos := st.Names().Position; pos != "" {
			// The position has a table of its own, and the row left the
			// queue of those without one.
			exec(t, st, "INSERT INTO "+pos+" (leaf_index, seq, part) SELECT ?, seq, part FROM "+st.Names().Op+" WHERE op_id = ?", size+4, forged.OpID)
			exec(t, st, "DELETE FROM "+st.Names().Unsequenced+" WHERE seq IN (SELECT seq FROM "+pos+")")
		}
		return size + 4
	}},
	{"replace a leaf hash", func(t *testing.T, st sqlStore, size int64) int64 {
		setHash(t, st, tlog.StoredHashIndex(0, 11), make([]byte, 32))
		return 11
	}},
	{"replace an inner hash", func(t *testing.T, st sqlStore, size int64) int64 {
		setHash(t, st, tlog.StoredHashIndex(2, 2), make([]byte, 32))
		return 8 // the node over leaves 8-11
	}},
	{"replace the latest checkpoint's root", func(t *testing.T, st sqlStore, size int64) int64 {
		exec(t, st, "UPDATE "+st.Names().Checkpoint+" SET root_hash = ? WHERE tree_size = ?", strings.Repeat("ab", 32), size)
		return size // named at the checkpoint, not as leaves it no longer covers
	}},
	{"roll the tree back", func(t *testing.T, st sqlStore, size int64) int64 {
		exec(t, st, "UPDATE "+st.Names().Tree+" SET size = ?", size-3)
		return size - 3
	}},
}

// timeArg binds a time as the dialect stores it (SQLite: microseconds).
func timeArg(st sqlStore, t time.Time) any {
	if st.Bun().Dialect().Name().String() == "sqlite" {
		return t.UnixMicro()
	}
	return t
}

// TestTamperDetected: each way of altering a sequenced store is found by
// Audit, first at the leaf it altered, on every driver.
func TestTamperDetected(t *testing.T) {
	t.Parallel()
	for name, open := range drivers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range tampers {
				t.Run(tc.name, func(t *testing.T) {
					k := newKeys(t)
					st := open(t)
					fill(t, st, k, 20)
					require.True(t, audit(t, st, k).OK(), "clean before")
					want := tc.fn(t, st, 20)
					rep := audit(t, st, k)
					require.False(t, rep.OK(), "the audit must find %q", tc.name)
					assert.Equal(t, want, rep.Findings[0].Index, "first finding: %+v", rep.Findings)
				})
			}
		})
	}
}

// TestTamperProperty applies random mutations, one per fresh store, and
// counts how many the audit detects: it must be all of them.
func TestTamperProperty(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	const rounds = 25
	detected := 0
	for i := 0; i < rounds; i++ {
		k := newKeys(t)
		st := sqlitetest.Open(t, sqlitetest.URL(t))
		size := int64(10 + rng.IntN(30))
		fill(t, st, k, int(size))
		leaf := rng.Int64N(size)
		op := st.Names().Op
		switch rng.IntN(6) {
		case 0:
			exec(t, st, "UPDATE "+op+" SET doid = doid || 'x' WHERE leaf_index = ?", leaf)
		case 1:
			exec(t, st, "UPDATE "+op+" SET created_at = created_at + 1 WHERE leaf_index = ?", leaf)
		case 2:
			exec(t, st, "DELETE FROM "+op+" WHERE leaf_index = ?", leaf)
		case 3:
			h := make([]byte, 32)
			for i := range h {
				h[i] = byte(rng.IntN(256))
			}
			setHash(t, st, rng.Int64N(tlog.StoredHashCount(size)), h)
		case 4:
			other := (leaf + 1 + rng.Int64N(size-1)) % size
			exec(t, st, "UPDATE "+op+" SET leaf_index = -1 WHERE leaf_index = ?", leaf)
			exec(t, st, "UPDATE "+op+" SET leaf_index = ? WHERE leaf_index = ?", leaf, other)
			exec(t, st, "UPDATE "+op+" SET leaf_index = ? WHERE leaf_index = -1", other)
		case 5:
			exec(t, st, "UPDATE "+st.Names().Tree+" SET size = ?", rng.Int64N(size))
		}
		if !audit(t, st, k).OK() {
			detected++
		}
	}
	assert.Equal(t, rounds, detected, "every mutation is detected")
}

// ledgerEngine returns a client of st with a memory sink and its engine,
// which runs a ledger sequencer signing with k's key every checkpointEvery
// (0: the default); the engine polls every 10 ms.
func ledgerEngine(t *testing.T, st sqlStore, k keys, checkpointEvery time.Duration) (*ledger.Sequencer, *memory.Sink, *core.Client, *core.Engine) {
	t.Helper()
	seq, err := ledger.NewSequencer(ledger.Config{Key: k.skey, Interval: 10 * time.Millisecond, CheckpointEvery: checkpointEvery})
	require.NoError(t, err)
	sink := memory.New(memory.Faults{})
	c, err := core.NewClient(st, sink, core.Config{Signer: k.signer, Engine: core.EngineConfig{Ledger: seq, PollInterval: 10 * time.Millisecond}})
	require.NoError(t, err)
	e, err := c.Engine()
	require.NoError(t, err)
	return seq, sink, c, e
}

// TestEngineRunsSequencer: an engine with a ledger sequences what it
// relays, checkpoints, and publishes the checkpoints through its sink.
func TestEngineRunsSequencer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := newKeys(t)
	st := sqlitetest.Open(t, sqlitetest.URL(t))
	seq, sink, c, e := ledgerEngine(t, st, k, 0)
	require.NoError(t, e.Start(ctx))
	ops := make([]*core.Operation, 25)
	for i := range ops {
		ops[i] = conformance.NewOp("engine", i)
	}
	require.NoError(t, c.Record(ctx, ops...))
	require.Eventually(t, func() bool {
		cs, err := st.Checkpoints(ctx, ledger.CheckpointQuery{Latest: true})
		return err == nil && len(cs) == 1 && cs[0].Size == 25 && !cs[0].PublishedAt.IsZero()
	}, testenv.Patience(t), 10*time.Millisecond)
	require.NoError(t, e.Stop(ctx))
	var checkpoints int
	for _, m := range sink.Messages() {
		if m.Kind == core.KindCheckpoint {
			checkpoints++
			cp, err := ledger.OpenCheckpoint(m.Payload, k.log)
			require.NoError(t, err, "the published checkpoint verifies")
			assert.Equal(t, seq.Origin(), cp.Origin)
		}
	}
	assert.Positive(t, checkpoints)
	assert.True(t, audit(t, st, k).OK())
}

// TestCleanStopSignsWhatItSequenced: an engine that stops cleanly signs
// a checkpoint of every position it gave, and publishes it, so a log
// whose relays were all stopped verifies with its key at once (`trustlog
// verify --key` finds uncovered leaves otherwise, until some relay runs
// again). The sequencer's periodic signing is an hour apart here: it
// signs once, the operations recorded after that are covered only by the
// stop.
func TestCleanStopSignsWhatItSequenced(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	k := newKeys(t)
	st := sqlitetest.Open(t, sqlitetest.URL(t))
	_, sink, c, e := ledgerEngine(t, st, k, time.Hour)
	record := func(from, to int) {
		ops := make([]*core.Operation, 0, to-from)
		for i := from; i < to; i++ {
			ops = append(ops, conformance.NewOp("stop", i))
		}
		require.NoError(t, c.Record(ctx, ops...))
	}
	latest := func() int64 {
		cs, err := st.Checkpoints(ctx, ledger.CheckpointQuery{Latest: true})
		require.NoError(t, err)
		if len(cs) == 0 {
			return 0
		}
		return cs[0].Size
	}
	record(0, 5)
	require.NoError(t, e.Start(ctx))
	require.Eventually(t, func() bool { return latest() == 5 }, testenv.Patience(t), 10*time.Millisecond, "the first checkpoint")
	record(5, 12)
	require.Eventually(t, func() bool {
		n, err := st.TreeSize(ctx)
		return err == nil && n == 12
	}, testenv.Patience(t), 10*time.Millisecond, "sequenced")
	require.Equal(t, int64(5), latest(), "not signed again within CheckpointEvery")
	require.NoError(t, e.Stop(ctx))

	assert.Equal(t, int64(12), latest(), "the clean stop signed the whole tree")
	assert.True(t, audit(t, st, k).OK(), "the stopped log verifies with its key")
	var published []int64
	for _, m := range sink.Messages() {
		if m.Kind == core.KindCheckpoint {
			cp, err := ledger.OpenCheckpoint(m.Payload, k.log)
			require.NoError(t, err)
			published = append(published, cp.Size)
		}
	}
	assert.Equal(t, []int64{5, 12}, published, "and published it through the sink")
}

// downStorage is a ledger storage whose database is down for reading the
// tree to checkpoint.
type downStorage struct {
	ledger.Storage
	calls atomic.Int64
}

func (d *downStorage) TreeSize(context.Context) (int64, error) {
	d.calls.Add(1)
	return 0, errors.New("injected: database down")
}

// TestSequencerWaitsWhileItsDatabaseIsDown: a checkpoint signer whose
// database fails retries with a growing delay, not as fast as the errors
// come back (a relay's log once filled with a line per millisecond while
// its database restarted).
func TestSequencerWaitsWhileItsDatabaseIsDown(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	st := &downStorage{Storage: sqlitetest.Open(t, sqlitetest.URL(t))}
	seq, err := ledger.NewSequencer(ledger.Config{Key: k.skey, Interval: 10 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	require.NoError(t, seq.Run(ctx, st, nil))
	// 100 ms, 200, 400, 800: five tries in 1.5 s, where a busy loop makes
	// thousands.
	assert.Positive(t, st.calls.Load())
	assert.LessOrEqual(t, st.calls.Load(), int64(8))
}
