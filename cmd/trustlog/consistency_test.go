package main

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/uptrace/bun"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/sinks/kafka"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// ledgerLog is a SQLite store with a Merkle log that a test grows in
// process (record, sequence, checkpoint) while the CLI reads it.
type ledgerLog struct {
	t        *testing.T
	url, dir string
	pub      string // the log's public key file
	skey     string // the log's private key
	opPub    string // the public key file of the operations' signer
	client   *core.Client
	st       ledger.Storage
	seq      *ledger.Sequencer
	n        int
}

func newLedgerLog(t *testing.T, name string) *ledgerLog {
	t.Helper()
	dir := t.TempDir()
	skey, vkey, err := core.GenerateEd25519("trustlog.test/" + name)
	require.NoError(t, err)
	return newLedgerLogWithKey(t, dir, skey, vkey)
}

func newLedgerLogWithKey(t *testing.T, dir, skey, vkey string) *ledgerLog {
	t.Helper()
	l := &ledgerLog{t: t, dir: dir, url: "sqlite:" + filepath.Join(dir, "log.db"), pub: filepath.Join(dir, "log.pub"), skey: skey}
	require.NoError(t, os.WriteFile(l.pub, []byte(vkey+"\n"), 0o644))
	opSkey, opVkey, err := core.GenerateEd25519("trustlog.test/signer")
	require.NoError(t, err)
	l.opPub = filepath.Join(dir, "signer.pub")
	require.NoError(t, os.WriteFile(l.opPub, []byte(opVkey+"\n"), 0o644))
	signer, err := core.NewEd25519Signer(opSkey)
	require.NoError(t, err)
	c, err := core.Open(context.Background(), core.Config{Store: l.url, Strategy: core.StoreOnly, Migrate: true, Signer: signer})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	l.client, l.st = c, c.Store().(ledger.Storage)
	l.seq, err = ledger.NewSequencer(ledger.Config{Key: skey})
	require.NoError(t, err)
	return l
}

// grow records operations up to size leaves, sequences and checkpoints.
func (l *ledgerLog) grow(size int) {
	l.t.Helper()
	ctx := context.Background()
	for ; l.n < size; l.n++ {
		require.NoError(l.t, l.client.Record(ctx, conformance.NewOp("cli-consistency", l.n)))
	}
	_, err := l.seq.Sequence(ctx, l.st)
	require.NoError(l.t, err)
	cp, err := l.seq.Checkpoint(ctx, l.st)
	require.NoError(l.t, err)
	require.Equal(l.t, int64(size), cp.Size)
}

// exec runs SQL on the store; {op}, {tree} and {checkpoint} are its
// tables.
func (l *ledgerLog) exec(q string, args ...any) {
	l.t.Helper()
	s := l.client.Store().(interface {
		Bun() *bun.DB
		Names() sqlstore.Names
	})
	n := s.Names()
	q = strings.NewReplacer("{op}", n.Op, "{tree}", n.Tree, "{checkpoint}", n.Checkpoint).Replace(q)
	_, err := s.Bun().ExecContext(context.Background(), q, args...)
	require.NoError(l.t, err, q)
}

// truncate cuts the log to n leaves with its hashes, tree size and later
// checkpoints: a smaller log that looks intact from inside.
func (l *ledgerLog) truncate(n int64) {
	l.exec("DELETE FROM {op} WHERE leaf_index >= ?", n)
	hashes := l.client.Store().(interface {
		DeleteStoredHashes(ctx context.Context, idx int64) error
	})
	require.NoError(l.t, hashes.DeleteStoredHashes(context.Background(), tlog.StoredHashIndex(0, n)))
	l.exec("UPDATE {tree} SET size = ?", n)
	l.exec("DELETE FROM {checkpoint} WHERE tree_size > ?", n)
}

func (l *ledgerLog) file(name string) string { return filepath.Join(l.dir, name) }

// TestProveConsistencyRoundTrip: prove --consistency → verify-proof
// --old-checkpoint, through the CLI, and the proofs it must refuse.
func TestProveConsistencyRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newLedgerLog(t, "consistency")
	l.grow(7)
	leaves, err := l.st.Leaves(ctx, 2, 1)
	require.NoError(t, err)
	// The auditor's copy of checkpoint 7: an inclusion proof saved then.
	code, _, errOut := cli(t, ctx, "", "--store", l.url, "prove", leaves[0].Op.OpID, "--out", l.file("old.tlog-proof"))
	require.Equal(t, exitOK, code, errOut)
	l.grow(13)
	l.grow(20)

	code, out, errOut := cli(t, ctx, "", "--store", l.url, "prove", "--consistency", "7")
	require.Equal(t, exitOK, code, errOut)
	assert.True(t, strings.HasPrefix(out, "old 7\n"), out)
	assert.Contains(t, out, "\n\ntrustlog.test/consistency\n20\n", "the latest checkpoint")
	code, _, errOut = cli(t, ctx, "", "--store", l.url, "prove", "--consistency", "7", "13", "--out", l.file("7-13.txt"))
	require.Equal(t, exitOK, code, errOut)
	require.NoError(t, os.WriteFile(l.file("7-20.txt"), []byte(out), 0o644))

	// Offline: no --store.
	for _, p := range []string{"7-13.txt", "7-20.txt"} {
		code, out, errOut = cli(t, ctx, "", "verify-proof", l.file(p), "--old-checkpoint", l.file("old.tlog-proof"), "--key", l.pub)
		require.Equal(t, exitOK, code, p+": "+out+errOut)
		assert.Contains(t, out, "verified: the tree of trustlog.test/consistency at size "+strings.Split(strings.TrimSuffix(p, ".txt"), "-")[1]+" extends its tree at size 7")
	}
	// A checkpoint file (as prove --consistency N N writes it) is an old
	// checkpoint too.
	code, _, errOut = cli(t, ctx, "", "--store", l.url, "prove", "--consistency", "13", "13", "--out", l.file("cp13.txt"))
	require.Equal(t, exitOK, code, errOut)
	code, out, errOut = cli(t, ctx, "", "verify-proof", l.file("7-20.txt"), "--old-checkpoint", l.file("cp13.txt"), "--key", l.pub)
	assert.Equal(t, exitVerifyKO, code, out+errOut)
	assert.Contains(t, errOut, "the proof starts at size 7, the old checkpoint is of size 13")

	// A hash of the proof changed.
	text, err := os.ReadFile(l.file("7-20.txt"))
	require.NoError(t, err)
	lines := strings.Split(string(text), "\n")
	h, err := base64.StdEncoding.DecodeString(lines[1])
	require.NoError(t, err)
	h[7] ^= 0x40
	lines[1] = base64.StdEncoding.EncodeToString(h)
	require.NoError(t, os.WriteFile(l.file("tampered.txt"), []byte(strings.Join(lines, "\n")), 0o644))
	code, out, errOut = cli(t, ctx, "", "verify-proof", l.file("tampered.txt"), "--old-checkpoint", l.file("old.tlog-proof"), "--key", l.pub)
	assert.Equal(t, exitVerifyKO, code, out+errOut)
	assert.Contains(t, errOut, "tree of size 20 does not extend checkpoint of size 7")

	// The old checkpoint of a fork: same key, other operations.
	pub, err := os.ReadFile(l.pub)
	require.NoError(t, err)
	fork := newLedgerLogWithKey(t, t.TempDir(), l.skey, strings.TrimSpace(string(pub)))
	for i := 0; i < 7; i++ {
		require.NoError(t, fork.client.Record(ctx, conformance.NewOp("fork", 100+i)))
	}
	fork.n = 7
	fork.grow(7)
	code, _, errOut = cli(t, ctx, "", "--store", fork.url, "prove", "--consistency", "7", "7", "--out", l.file("fork7.txt"))
	require.Equal(t, exitOK, code, errOut)
	code, out, errOut = cli(t, ctx, "", "verify-proof", l.file("7-20.txt"), "--old-checkpoint", l.file("fork7.txt"), "--key", l.pub)
	assert.Equal(t, exitVerifyKO, code, out+errOut)
	assert.Contains(t, errOut, "tree of size 20 does not extend checkpoint of size 7 (rewritten, truncated or forked)")

	// Another log's key.
	other := newLedgerLog(t, "other")
	code, _, _ = cli(t, ctx, "", "verify-proof", l.file("7-20.txt"), "--old-checkpoint", l.file("old.tlog-proof"), "--key", other.pub)
	assert.Equal(t, exitVerifyKO, code)

	// Usage.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"verify-proof", l.file("7-20.txt"), "--key", l.pub}, "give the older checkpoint with --old-checkpoint"},
		{[]string{"verify-proof", l.file("old.tlog-proof"), "--key", l.pub, "--old-checkpoint", l.file("cp13.txt")}, "--old-checkpoint is for consistency proofs"},
		{[]string{"verify-proof", l.file("7-20.txt"), "--key", l.pub, "--old-checkpoint", l.file("nosuch")}, "--old-checkpoint"},
		{[]string{"--store", l.url, "prove", "--consistency"}, "takes OLD_SIZE and an optional NEW_SIZE, not 0 arguments"},
		{[]string{"--store", l.url, "prove", "--consistency", "1", "2", "3"}, "not 3 arguments"},
		{[]string{"--store", l.url, "prove", "--consistency", "seven"}, `OLD_SIZE "seven" is not a tree size`},
		{[]string{"--store", l.url, "prove", "--consistency", "1.5"}, `OLD_SIZE "1.5" is not a tree size`},
		{[]string{"--store", l.url, "prove", "--consistency", "3", "0"}, `NEW_SIZE "0" is not a tree size`},
		{[]string{"--store", l.url, "prove", "--consistency", "8", "7"}, "OLD_SIZE 8 is larger than NEW_SIZE 7"},
	} {
		code, out, errOut := cli(t, ctx, "", c.args...)
		assert.Equal(t, exitUsage, code, "%v: %s%s", c.args, out, errOut)
		assert.Contains(t, errOut, c.want, "%v", c.args)
	}
	code, _, errOut = cli(t, ctx, "", "--store", l.url, "prove", "--consistency", "3", "12")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "no checkpoint of size 12")
}

// verifyArgs is verify on l's store with its keys, not waiting for a
// checkpoint.
func (l *ledgerLog) verifyArgs(extra ...string) []string {
	return append([]string{"--store", l.url, "verify", "--key", l.pub, "--op-key", l.opPub, "--checkpoint-wait", "0"}, extra...)
}

// TestVerifyTrustedCheckpoints: the attacks of issue 22 through the CLI:
// a truncated tail, deleted checkpoints, a forged operation not sequenced
// yet; and --checkpoint's usage errors.
func TestVerifyTrustedCheckpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newLedgerLog(t, "trusted")
	l.grow(7)
	code, _, errOut := cli(t, ctx, "", "--store", l.url, "prove", "--consistency", "7", "7", "--out", l.file("cp7.txt"))
	require.Equal(t, exitOK, code, errOut)
	l.grow(13)
	leaves, err := l.st.Leaves(ctx, 9, 1)
	require.NoError(t, err)
	code, _, errOut = cli(t, ctx, "", "--store", l.url, "prove", leaves[0].Op.OpID, "--out", l.file("op9.tlog-proof"))
	require.Equal(t, exitOK, code, errOut)
	trust := []string{"--checkpoint", l.file("cp7.txt"), "--checkpoint", l.file("op9.tlog-proof")}

	code, out, errOut := cli(t, ctx, "", l.verifyArgs(append(trust, "--require-signature")...)...)
	require.Equal(t, exitOK, code, out+errOut)
	assert.Contains(t, out, "trusted checkpoints  2 (2 from files, 0 from the sink)")
	assert.Contains(t, out, "findings             0")

	// A forged operation, unsigned, not sequenced yet.
	forger, err := core.NewClient(l.client.Store(), nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	forged := conformance.NewOp("forged", 99)
	require.NoError(t, forger.Record(ctx, forged))
	code, out, errOut = cli(t, ctx, "", l.verifyArgs()...)
	require.Equal(t, exitOK, code, "unsigned is allowed without --require-signature: %s%s", out, errOut)
	assert.Contains(t, out, "unsequenced audited  1")
	code, out, errOut = cli(t, ctx, "", l.verifyArgs("--require-signature")...)
	require.Equal(t, exitVerifyKO, code, out+errOut)
	assert.Contains(t, errOut, "operation "+forged.OpID+": not signed, and a signature is required (not sequenced yet)")
	assert.Regexp(t, `verify: seq \d+: operation`, errOut)
	l.exec("DELETE FROM {op} WHERE op_id = ?", forged.OpID)

	// The latest checkpoint deleted.
	l.exec("DELETE FROM {checkpoint} WHERE tree_size = 13")
	code, out, errOut = cli(t, ctx, "", l.verifyArgs()...)
	require.Equal(t, exitVerifyKO, code, out+errOut)
	assert.Contains(t, errOut, "verify: first bad index 7: no signed checkpoint covers leaves 7-12")
	code, out, errOut = cli(t, ctx, "", l.verifyArgs(trust...)...)
	require.Equal(t, exitVerifyKO, code, out+errOut)
	assert.Contains(t, errOut, "verify: first bad index 12: trusted checkpoint of size 13 (file "+l.file("op9.tlog-proof")+") is not in the store: it was deleted")

	// The tail truncated with its hashes, tree size and checkpoints.
	l.truncate(7)
	code, out, errOut = cli(t, ctx, "", l.verifyArgs()...)
	require.Equal(t, exitOK, code, "from inside, a smaller intact log: %s%s", out, errOut)
	code, out, errOut = cli(t, ctx, "", l.verifyArgs(trust...)...)
	require.Equal(t, exitVerifyKO, code, out+errOut)
	assert.Contains(t, errOut, "verify: first bad index 7: store tree of size 7 does not extend trusted checkpoint of size 13 (file "+l.file("op9.tlog-proof")+"): truncated or rolled back")

	// Every checkpoint deleted.
	l.exec("DELETE FROM {checkpoint}")
	code, out, errOut = cli(t, ctx, "", l.verifyArgs("--json")...)
	require.Equal(t, exitVerifyKO, code, out+errOut)
	assert.Contains(t, errOut, "verify: first bad index 0: no signed checkpoint covers leaves 0-6")
	assert.Contains(t, out, `"problem": "no signed checkpoint covers leaves 0-6`)

	// A checkpoint of another log is a finding; what is not a checkpoint,
	// or no file, is a usage error.
	other := newLedgerLog(t, "other")
	other.grow(3)
	code, _, errOut = cli(t, ctx, "", "--store", other.url, "prove", "--consistency", "3", "3", "--out", l.file("other.txt"))
	require.Equal(t, exitOK, code, errOut)
	require.NoError(t, os.WriteFile(l.file("garbage.txt"), []byte("not a checkpoint\n"), 0o644))
	// A restarted sequencer checkpoints 7 again (the one that signed 13
	// refuses: it knows its checkpoint was deleted); the store is intact
	// but for the files.
	_, err = l.seq.Checkpoint(ctx, l.st)
	require.ErrorIs(t, err, ledger.ErrTampered)
	l.seq, err = ledger.NewSequencer(ledger.Config{Key: l.skey})
	require.NoError(t, err)
	l.grow(7)
	code, out, errOut = cli(t, ctx, "", l.verifyArgs("--checkpoint", l.file("other.txt"))...)
	assert.Equal(t, exitVerifyKO, code, out+errOut)
	assert.Contains(t, errOut, "verify: trusted checkpoint (file "+l.file("other.txt")+") does not verify with the log's key")
	for _, c := range []struct {
		args []string
		want string
	}{
		{l.verifyArgs("--checkpoint", l.file("garbage.txt")), "not a signed checkpoint"},
		{l.verifyArgs("--checkpoint", l.file("nosuch.txt")), "--checkpoint"},
		{l.verifyArgs("--sink-checkpoints"), "--sink-checkpoints reads the checkpoints back from the sink: give --sink"},
		{l.verifyArgs("--checkpoint-wait", "-1s"), "--checkpoint-wait must not be negative"},
	} {
		code, out, errOut := cli(t, ctx, "", c.args...)
		assert.Equal(t, exitUsage, code, "%v: %s%s", c.args, out, errOut)
		assert.Contains(t, errOut, c.want, "%v", c.args)
	}
}

// TestVerifySinkCheckpointsKafka: the checkpoints the relay published to
// the sink are read back by verify --sink-checkpoints, and a truncated
// store fails against them.
func TestVerifySinkCheckpointsKafka(t *testing.T) {
	t.Parallel()
	topic := kafkatest.Topic()
	cluster := kafkatest.Start(t, kfake.SeedTopics(3, topic))
	testVerifySinkCheckpoints(t, cluster.URL(topic), func(u string) (core.Sink, error) { return kafka.Open(u) })
}

// TestVerifySinkCheckpointsRealKafka is TestVerifySinkCheckpointsKafka on
// a real Apache Kafka broker (kafkatest.Server).
func TestVerifySinkCheckpointsRealKafka(t *testing.T) {
	t.Parallel()
	r := kafkatest.NeedReal(t)
	topic := kafkatest.Topic()
	r.CreateTopic(t, topic, 3)
	testVerifySinkCheckpoints(t, r.URL(topic), func(u string) (core.Sink, error) { return kafka.Open(u) })
}

// TestVerifySinkCheckpointsPulsar is TestVerifySinkCheckpointsKafka on
// the Pulsar-protocol test broker.
func TestVerifySinkCheckpointsPulsar(t *testing.T) {
	t.Parallel()
	topic := pulsartest.Topic()
	broker := pulsartest.Start(t, pulsartest.WithPartitionedTopic(topic, 3))
	testVerifySinkCheckpoints(t, broker.SinkURL(topic, "producer_name=verify-checkpoints-relay"), func(u string) (core.Sink, error) { return pulsar.Open(u) })
}

// TestVerifySinkCheckpointsRealPulsar is TestVerifySinkCheckpointsKafka
// on a real Apache Pulsar broker (pulsartest.Server).
func TestVerifySinkCheckpointsRealPulsar(t *testing.T) {
	t.Parallel()
	r := pulsartest.NeedReal(t)
	topic := pulsartest.Topic()
	r.CreatePartitionedTopic(t, topic, 3)
	testVerifySinkCheckpoints(t, r.SinkURL(topic, "producer_name=verify-checkpoints-"+topic[len(topic)-8:]), func(u string) (core.Sink, error) { return pulsar.Open(u) })
}

func testVerifySinkCheckpoints(t *testing.T, sinkURL string, open func(string) (core.Sink, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newLedgerLog(t, "sink")
	sink, err := open(sinkURL)
	require.NoError(t, err)
	defer sink.Close()
	for _, size := range []int{7, 13} {
		l.grow(size)
		require.NoError(t, l.seq.PublishCheckpoints(ctx, l.st, sink)) // as the relay does
	}
	args := l.verifyArgs("--sink-checkpoints")
	args = append([]string{"--sink", sinkURL}, args...)
	code, out, errOut := cli(t, ctx, "", args...)
	require.Equal(t, exitOK, code, out+errOut)
	assert.Contains(t, out, "trusted checkpoints  2 (0 from files, 2 from the sink)")

	l.truncate(7)
	code, out, errOut = cli(t, ctx, "", args...)
	require.Equal(t, exitVerifyKO, code, out+errOut)
	assert.Contains(t, errOut, "verify: first bad index 7: store tree of size 7 does not extend trusted checkpoint of size 13 (sink ")
	assert.Contains(t, errOut, "): truncated or rolled back")
}

// TestVerifyProofGolden: verify-proof accepts the ledger's golden proofs
// (ledger/testdata/golden), and refuses a consistency proof checked
// against the wrong old checkpoint.
func TestVerifyProofGolden(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := func(name string) string { return filepath.Join("..", "..", "ledger", "testdata", "golden", name) }
	code, out, errOut := cli(t, ctx, "", "verify-proof", g("inclusion-5.tlog-proof"), "--key", g("log.pub"), "--op-key", g("signer.pub"), "--require-signature")
	require.Equal(t, exitOK, code, out+errOut)
	assert.Contains(t, out, "verified: leaf 5 of golden.trustlog.example/log at tree size 13")
	for _, c := range []struct{ proof, old string }{{"consistency-3-7.txt", "checkpoint-3.txt"}, {"consistency-3-13.txt", "checkpoint-3.txt"}, {"consistency-7-13.txt", "checkpoint-7.txt"}} {
		code, out, errOut := cli(t, ctx, "", "verify-proof", g(c.proof), "--old-checkpoint", g(c.old), "--key", g("log.pub"))
		require.Equal(t, exitOK, code, c.proof+": "+out+errOut)
		assert.Contains(t, out, "verified: the tree of golden.trustlog.example/log at size")
	}
	code, out, errOut = cli(t, ctx, "", "verify-proof", g("consistency-7-13.txt"), "--old-checkpoint", g("checkpoint-3.txt"), "--key", g("log.pub"))
	assert.Equal(t, exitVerifyKO, code, out+errOut)
	assert.Contains(t, errOut, "the proof starts at size 7, the old checkpoint is of size 3")
}
