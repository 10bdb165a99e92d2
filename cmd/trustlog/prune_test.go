package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/internal/testenv"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

// TestPruneCLI: record (signed) → relay with a ledger → prune with an
// archive → verify still passes and reports the horizon; the archive
// holds every deleted operation, and `record --archive` re-imports it
// into a fresh store (TestPruneArchiveReimports).
func TestPruneCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	store := "sqlite:" + filepath.Join(dir, "prune.db")
	logKey, opKey := filepath.Join(dir, "log"), filepath.Join(dir, "ops")
	code, _, errOut := cli(t, ctx, "", "keygen", "--name", "trustlog.test/log", "--out", logKey)
	require.Equal(t, 0, code, errOut)
	code, _, errOut = cli(t, ctx, "", "keygen", "--name", "trustlog.test/ops", "--out", opKey)
	require.Equal(t, 0, code, errOut)
	code, _, errOut = cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	var in strings.Builder
	for i := 0; i < 12; i++ {
		in.WriteString(opLine(i, "prune-obj") + "\n")
	}
	code, recorded, errOut := cli(t, ctx, in.String(), "--store", store, "--sign-key-file", opKey+".key", "record")
	require.Equal(t, 0, code, errOut)

	code, _, _ = cli(t, ctx, "", "--store", store, "prune")
	assert.Equal(t, exitUsage, code, "--older-than is required")
	code, _, errOut = cli(t, ctx, "", "--store", store, "prune", "--older-than", "0s")
	assert.Equal(t, 1, code, "an empty log is not pruned without --without-ledger")
	assert.Contains(t, errOut, "the log is empty")

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan int)
	go func() {
		code, _, _ := cli(t, rctx, "", "--store", store, "--sink", "memory://", "relay", "--poll", "10ms",
			"--ledger-key-file", logKey+".key")
		done <- code
	}()
	require.Eventually(t, func() bool {
		_, out, _ := cli(t, ctx, "", "--store", store, "prune", "--older-than", "0s", "--dry-run", "--json")
		var res struct{ Deleted int }
		return json.Unmarshal([]byte(out), &res) == nil && res.Deleted == 12
	}, testenv.Patience(t), 50*time.Millisecond, "all published and sequenced")
	cancel()
	require.Equal(t, 0, <-done)

	archive := filepath.Join(dir, "archive.jsonl")
	code, out, errOut := cli(t, ctx, "", "--store", store, "prune", "--older-than", "0s", "--batch", "5", "--archive", archive)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "deleted            12")
	assert.Contains(t, out, "pruned below leaf  12 (was 0)")
	f, err := os.Open(archive)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines := 0
	var ids []string
	for ; sc.Scan(); lines++ {
		var a struct {
			LeafIndex int64  `json:"leaf_index"`
			OpID      string `json:"op_id"`
			DOID      string `json:"doid"`
			OpHash    string `json:"op_hash"`
			Signer    string `json:"signer"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &a))
		assert.Equal(t, int64(lines), a.LeafIndex)
		assert.Equal(t, "10.1000/prune-obj", a.DOID)
		assert.True(t, strings.HasPrefix(a.Signer, "trustlog.test/ops+"), a.Signer)
		assert.Len(t, a.OpHash, 64)
		ids = append(ids, fmt.Sprintf(`{"op_hash":%q,"op_id":%q}`, a.OpHash, a.OpID))
	}
	assert.Equal(t, 12, lines)
	assert.Equal(t, strings.Join(ids, "\n")+"\n", recorded, "the archive holds the operations record recorded, in order")

	code, out, errOut = cli(t, ctx, "", "--store", store, "verify", "--key", logKey+".pub")
	require.Equal(t, 0, code, out+errOut)
	assert.Regexp(t, `(?m)^pruned below leaf +12$`, out)
	assert.Regexp(t, `(?m)^findings +0$`, out)

	t.Run("reimport", func(t *testing.T) { testArchiveReimport(t, archive, opKey+".pub", opKey+".key") })
}

// testArchiveReimport: `record --archive` re-imports a prune archive into
// a fresh store: every operation the same (op_id, content, created_at,
// op_hash, signature), as a new pending row. It refuses an archive line
// whose content does not match its op_hash, a signed line without the
// signer's --op-key, an archive line without --archive, a line missing
// op_hash, and --sign-key-file; each refusal records nothing. A batch
// archived twice (a prune retried) is recorded once.
func testArchiveReimport(t *testing.T, archive, opPub, opPriv string) {
	ctx := context.Background()
	content, err := os.ReadFile(archive)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(content)), "\n")
	require.Len(t, lines, 12)
	want := map[string]*archived{}
	var printed strings.Builder
	for _, l := range lines {
		a, err := decodeArchiveLine([]byte(l))
		require.NoError(t, err)
		want[a.OpID] = a
		fmt.Fprintf(&printed, "{\"op_hash\":%q,\"op_id\":%q}\n", a.OpHash, a.OpID)
	}

	store := newStore(t)
	code, out, errOut := cli(t, ctx, "", "--store", store, "record", "--archive", "--file", archive, "--op-key", opPub)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, printed.String(), out, "one line per operation: its archived op_id and op_hash")
	s, err := core.OpenStore(ctx, store)
	require.NoError(t, err)
	defer s.Close()
	for id, a := range want {
		rec, err := s.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, *a.Operation, rec.Op, "the re-imported operation is the archived one")
		assert.Equal(t, core.StatePending, rec.State, "a new row: the relay publishes it again")
	}

	refused := func(name, in string, want string, args ...string) {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			code, out, errOut := cli(t, ctx, in, append([]string{"--store", store}, args...)...)
			assert.Equal(t, exitUsage, code, errOut)
			assert.Empty(t, out)
			assert.Contains(t, errOut, want)
			assert.Zero(t, storedOps(t, store), "nothing recorded")
		})
	}
	tampered := append([]string(nil), lines...)
	tampered[2] = strings.Replace(tampered[2], `"op_actor":"alice"`, `"op_actor":"mallory"`, 1)
	require.NotEqual(t, lines[2], tampered[2])
	refused("content altered", strings.Join(tampered, "\n"), "line 3: op_hash: does not match the canonical hash", "record", "--archive", "--op-key", opPub)
	refused("signed, no --op-key", string(content), "line 1: sign: signed by \"trustlog.test/ops+", "record", "--archive")
	refused("without --archive", string(content), `line 1: unknown field "leaf_index": a prune archive's line? record reads those with --archive`, "record", "--op-key", opPub)
	noHash := regexp.MustCompile(`"op_hash":"[0-9a-f]{64}",`).ReplaceAllString(lines[4], "")
	refused("no op_hash", lines[0]+"\n"+noHash+"\n", "line 2: op_hash: missing", "record", "--archive", "--op-key", opPub)
	refused("re-signing", string(content), "--sign-key-file would sign them", "--sign-key-file", opPriv, "record", "--archive", "--op-key", opPub)
	first, err := decodeArchiveLine([]byte(lines[0]))
	require.NoError(t, err)
	refused("an op_id twice, another leaf", lines[0]+"\n"+strings.Replace(lines[0], `"leaf_index":0`, `"leaf_index":7`, 1)+"\n",
		"line 2: op_id "+first.OpID+" is already on line 1", "record", "--archive", "--op-key", opPub)

	t.Run("a batch archived twice", func(t *testing.T) {
		store := newStore(t)
		twice := strings.Join(lines[:5], "\n") + "\n" + string(content) // a prune that archived 0-4, failed, ran again
		code, out, errOut := cli(t, ctx, twice, "--store", store, "record", "--archive", "--op-key", opPub)
		require.Equal(t, 0, code, errOut)
		assert.Equal(t, 12, strings.Count(out, "\n"))
		assert.EqualValues(t, 12, storedOps(t, store))
		assert.Contains(t, errOut, `"lines":5`)
	})
}

// TestDecodeArchiveLine: an archive line needs every key prune writes,
// each well-formed; other keys are refused as on any record line.
func TestDecodeArchiveLine(t *testing.T) {
	t.Parallel()
	op, err := DecodeOpLine([]byte(opLine(1, "archived")))
	require.NoError(t, err)
	require.NoError(t, op.Seal(nil))
	b, err := json.Marshal(archived{LeafIndex: 4, Seq: 9, Operation: op})
	require.NoError(t, err)
	line := string(b)
	a, err := decodeArchiveLine(b)
	require.NoError(t, err)
	assert.Equal(t, *op, *a.Operation)
	assert.Equal(t, int64(4), a.LeafIndex)
	assert.Equal(t, int64(9), a.Seq)

	for _, key := range archiveRequired {
		without := regexp.MustCompile(`,"`+key+`":("[^"]*"|[0-9]+)`).ReplaceAllString(line, "")
		without = regexp.MustCompile(`"`+key+`":("[^"]*"|[0-9]+),`).ReplaceAllString(without, "")
		require.NotEqual(t, line, without, key)
		_, err := decodeArchiveLine([]byte(without))
		assert.EqualError(t, err, key+": missing; every line of a prune archive has one")
	}
	for change, want := range map[[2]string]string{
		{`"leaf_index":4`, `"leaf_index":-1`}:  "leaf_index: -1 is not a leaf index",
		{`"seq":9`, `"seq":0`}:                 "seq: 0 is not a record sequence number",
		{`"leaf_index":4`, `"leaf_index":"4"`}: "not an operation",
		{`"leaf_index":4`, `"Leaf_Index":4`}:   `unknown field "Leaf_Index" (names are case-sensitive: "leaf_index")`,
		{`"seq":9`, `"seq":9,"surprise":1`}:    `unknown field "surprise"`,
		{`"seq":9`, `"seq":9,"seq":9`}:         "seq: given more than once",
	} {
		changed := strings.Replace(line, change[0], change[1], 1)
		require.NotEqual(t, line, changed, change[0])
		_, err := decodeArchiveLine([]byte(changed))
		assert.ErrorContains(t, err, want, changed)
	}
	// An archive of an earlier version carries published_at: still read.
	old := strings.Replace(line, `"seq":9`, `"seq":9,"published_at":"2026-12-01T10:00:00Z"`, 1)
	a, err = decodeArchiveLine([]byte(old))
	require.NoError(t, err, old)
	assert.Equal(t, *op, *a.Operation)
	for _, key := range []string{"op_id", "op_hash"} {
		empty := regexp.MustCompile(`"`+key+`":"[^"]*"`).ReplaceAllString(line, `"`+key+`":""`)
		_, err := decodeArchiveLine([]byte(empty))
		assert.EqualError(t, err, key+": empty; every line of a prune archive has one")
	}
}

// fakeArchive is an archive file whose writes can fail half-way.
type fakeArchive struct {
	data          []byte
	failAfter     int // bytes a write takes before failing; -1: none
	truncateFails bool
	synced        bool
}

var errDiskFull = errors.New("no space left on device")

func (f *fakeArchive) Write(p []byte) (int, error) {
	if f.failAfter >= 0 && len(p) > f.failAfter {
		f.data = append(f.data, p[:f.failAfter]...)
		return f.failAfter, errDiskFull
	}
	f.data = append(f.data, p...)
	return len(p), nil
}

func (f *fakeArchive) Stat() (os.FileInfo, error) { return fakeInfo(len(f.data)), nil }

func (f *fakeArchive) Truncate(size int64) error {
	if f.truncateFails {
		return errors.New("read-only file system")
	}
	f.data = f.data[:size]
	return nil
}

func (f *fakeArchive) Sync() error { f.synced = true; return nil }

type fakeInfo int

func (n fakeInfo) Name() string       { return "archive.jsonl" }
func (n fakeInfo) Size() int64        { return int64(n) }
func (n fakeInfo) Mode() os.FileMode  { return 0o600 }
func (n fakeInfo) ModTime() time.Time { return time.Time{} }
func (n fakeInfo) IsDir() bool        { return false }
func (n fakeInfo) Sys() any           { return nil }

// TestAppendArchiveWholeBatches: a batch is appended whole and synced, or
// (a write that fails half-way) cut off again, leaving the archive as it
// was; a cut that fails too is reported with the write's error.
func TestAppendArchiveWholeBatches(t *testing.T) {
	t.Parallel()
	var recs []core.Record
	for i := range 3 {
		op, err := DecodeOpLine([]byte(opLine(i, "whole")))
		require.NoError(t, err)
		require.NoError(t, op.Seal(nil))
		recs = append(recs, core.Record{Seq: int64(i + 1), LeafIndex: int64(i), Op: *op})
	}
	earlier := []byte(`{"an":"earlier batch"}` + "\n")

	f := &fakeArchive{data: slices.Clone(earlier), failAfter: -1}
	require.NoError(t, appendArchive(f, recs))
	assert.True(t, f.synced)
	lines := strings.Split(strings.TrimSuffix(string(f.data[len(earlier):]), "\n"), "\n")
	require.Len(t, lines, 3)
	for i, l := range lines {
		a, err := decodeArchiveLine([]byte(l))
		require.NoError(t, err)
		assert.Equal(t, recs[i].Op, *a.Operation)
	}

	f = &fakeArchive{data: slices.Clone(earlier), failAfter: 100}
	err := appendArchive(f, recs)
	assert.ErrorIs(t, err, errDiskFull)
	assert.Equal(t, earlier, f.data, "the half-written batch is cut off")
	assert.False(t, f.synced)

	f = &fakeArchive{data: slices.Clone(earlier), failAfter: 100, truncateFails: true}
	err = appendArchive(f, recs)
	assert.ErrorIs(t, err, errDiskFull)
	assert.ErrorContains(t, err, "cutting the partly written batch off again: read-only file system")
}
