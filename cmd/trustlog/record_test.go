package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	_ "github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// storedOps counts the operations in a store.
func storedOps(t *testing.T, store string) int64 {
	t.Helper()
	s, err := core.OpenStore(context.Background(), store)
	require.NoError(t, err)
	defer s.Close()
	st, err := s.Stats(context.Background())
	require.NoError(t, err)
	var n int64
	for _, c := range st.Counts {
		n += c
	}
	return n
}

func newStore(t *testing.T) string {
	t.Helper()
	return migrated(t, "sqlite:"+filepath.Join(t.TempDir(), "r.db"))
}

func withID(line, id string) string {
	return strings.Replace(line, "{", `{"op_id":"`+id+`",`, 1)
}

// TestRecordIsAllOrNothing: a duplicate op_id, in the input or already
// stored, refuses the whole input (whatever --batch), and the error names
// the line and the op_id; on every database.
func TestRecordIsAllOrNothing(t *testing.T) {
	t.Parallel()
	const id = "0190a000-0000-7000-8000-000000000001"
	for _, db := range []struct {
		name  string
		store func(t *testing.T) string
	}{
		{"sqlite", newStore},
		{"postgres", func(t *testing.T) string { return migrated(t, postgrestest.NewSchema(t)) }},
		{"mysql", func(t *testing.T) string { return migrated(t, mysqltest.NewDatabase(t)) }},
	} {
		t.Run(db.name+"/duplicate in the input", func(t *testing.T) {
			t.Parallel()
			store := db.store(t)
			in := strings.Join([]string{withID(opLine(1, "a"), id), opLine(2, "b"), opLine(3, "c"), withID(opLine(4, "d"), id), opLine(5, "e")}, "\n")
			code, out, errOut := cli(t, context.Background(), in, "--store", store, "record", "--batch", "2")
			assert.Equal(t, 2, code, errOut)
			assert.Empty(t, out, "nothing reported as recorded")
			assert.Contains(t, errOut, "line 4")
			assert.Contains(t, errOut, id)
			assert.Contains(t, errOut, "line 1")
			assert.Zero(t, storedOps(t, store), "nothing written")
		})
		t.Run(db.name+"/already stored", func(t *testing.T) {
			t.Parallel()
			store := db.store(t)
			code, _, errOut := cli(t, context.Background(), withID(opLine(1, "a"), id), "--store", store, "record")
			require.Equal(t, 0, code, errOut)
			var lines []string
			for i := range 1200 {
				lines = append(lines, opLine(i+10, fmt.Sprintf("o%d", i)))
			}
			lines[700] = withID(opLine(9, "dup"), id)
			code, out, errOut := cli(t, context.Background(), strings.Join(lines, "\n"), "--store", store, "record")
			assert.Equal(t, 2, code, errOut)
			assert.Empty(t, out)
			assert.Contains(t, errOut, "line 701")
			assert.Contains(t, errOut, id)
			assert.EqualValues(t, 1, storedOps(t, store), "nothing of the second input written")
		})
	}
}

// migrated runs migrate up on store and returns it.
func migrated(t *testing.T, store string) string {
	t.Helper()
	code, _, errOut := cli(t, context.Background(), "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	return store
}

// TestRecordRefusesWhatJSONWouldChange: invalid UTF-8 (raw bytes, a lone
// surrogate escape, an overlong form) is refused, not stored as U+FFFD,
// and the error names the field; so are keys that only match a field when
// compared case-insensitively, duplicate keys, and an explicit zero
// created_at.
func TestRecordRefusesWhatJSONWouldChange(t *testing.T) {
	t.Parallel()
	base := opLine(1, "x")
	cases := []struct{ name, line, want string }{
		{"raw 0xff", strings.Replace(base, `"alice"`, "\"al\xffice\"", 1), "op_actor"},
		{"lone surrogate escape", strings.Replace(base, `"alice"`, `"al\ud800ice"`, 1), "op_actor"},
		{"lone low surrogate escape", strings.Replace(base, `"cli-test"`, `"cli\udc00test"`, 1), "producer_id"},
		{"overlong slash", strings.Replace(base, `"alice"`, "\"al\xc0\xafice\"", 1), "op_actor"},
		{"key in upper case", strings.Replace(base, `"op_actor"`, `"OP_ACTOR"`, 1), "OP_ACTOR"},
		{"duplicate key", strings.Replace(base, `"op_actor":"alice"`, `"op_actor":"alice","op_actor":"mallory"`, 1), "op_actor"},
		{"explicit zero created_at", strings.Replace(base, "{", `{"created_at":"0001-01-01T00:00:00Z",`, 1), "created_at"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			store := newStore(t)
			code, out, errOut := cli(t, context.Background(), "# a comment\n"+c.line+"\n", "--store", store, "record")
			assert.Equal(t, 2, code, errOut)
			assert.Empty(t, out)
			assert.Contains(t, errOut, "line 2")
			assert.Contains(t, errOut, c.want)
			assert.Zero(t, storedOps(t, store))
		})
	}
	t.Run("a valid surrogate pair is kept", func(t *testing.T) {
		t.Parallel()
		op, err := DecodeOpLine([]byte(strings.Replace(base, `"alice"`, `"al\ud83d\ude00ice"`, 1)))
		require.NoError(t, err)
		assert.Equal(t, "al😀ice", op.Actor)
	})
}

// TestRecordNamesPhysicalLines: errors name the line of the input, counting
// comments and blank lines, not the operation's position.
func TestRecordNamesPhysicalLines(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	in := "# one\n\n# three\n" + opLine(1, "a") + "\n" + strings.Replace(opLine(2, "b"), `"10.1000"`, `"10.2000"`, 1) + "\n"
	code, _, errOut := cli(t, context.Background(), in, "--store", store, "record")
	assert.Equal(t, 2, code, errOut)
	assert.Contains(t, errOut, "line 5")
	assert.Contains(t, errOut, "doid")

	long := "# a\n# b\n# c\n{\"doid\":\"" + strings.Repeat("x", maxLine+10) + "\"}\n"
	code, _, errOut = cli(t, context.Background(), long, "--store", store, "record")
	assert.Equal(t, 2, code, errOut)
	assert.Contains(t, errOut, "line 4 is longer than")
	assert.Zero(t, storedOps(t, store))
}

// lineSource generates n record lines as it is read.
type lineSource struct {
	i, n int
	buf  []byte
}

func (s *lineSource) Read(p []byte) (int, error) {
	for len(s.buf) < len(p) && s.i < s.n {
		s.buf = append(s.buf, opLine(s.i, fmt.Sprintf("stream-%d", s.i%500))+"\n"...)
		s.i++
	}
	if len(s.buf) == 0 {
		return 0, io.EOF
	}
	k := copy(p, s.buf)
	s.buf = s.buf[k:]
	return k, nil
}

// TestRecordStreams: record reads its input as a stream; it does not hold
// the operations in memory. Not parallel: it samples the live heap.
func TestRecordStreams(t *testing.T) {
	testenv.Long(t)
	store := newStore(t)
	const n = 25_000
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := before.HeapAlloc
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			runtime.GC() // live memory, not garbage awaiting collection
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
	}()
	// The output is counted, not kept: a buffer of it would grow with the
	// input (and hold two copies while it doubles), measuring the test.
	var out lineCounter
	var errOut bytes.Buffer
	code := run(context.Background(), []string{"--log-format", "json", "--store", store, "record"}, &lineSource{n: n}, &out, &errOut)
	close(done)
	<-stopped // peak is the sampler's until it returns
	require.Equal(t, 0, code, errOut.String())
	assert.Equal(t, n, out.lines)
	assert.EqualValues(t, n, storedOps(t, store))
	growth := int64(peak) - int64(before.HeapAlloc)
	t.Logf("live heap growth at peak: %d MB", growth>>20)
	// What it keeps per operation is its line of output (about 110 bytes)
	// until the commit; the operations themselves held 1 KB or more each.
	assert.Less(t, growth, int64(n*400), "the live heap grows with the input")
}

// lineCounter counts the lines written to it and keeps nothing.
type lineCounter struct{ lines int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.lines += bytes.Count(p, []byte("\n"))
	return len(p), nil
}

// TestRecordVerifiesSignatures: a line that carries a signature is stored
// only if it verifies under an --op-key, never unverified, and never
// re-signed by --sign-key-file.
func TestRecordVerifiesSignatures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	skey, vkey, err := core.GenerateEd25519("record.test/signer")
	require.NoError(t, err)
	_, otherKey, err := core.GenerateEd25519("record.test/signer")
	require.NoError(t, err)
	pub, other, priv := filepath.Join(dir, "signer.pub"), filepath.Join(dir, "other.pub"), filepath.Join(dir, "signer.key")
	require.NoError(t, os.WriteFile(pub, []byte(vkey), 0o644))
	require.NoError(t, os.WriteFile(other, []byte(otherKey), 0o644))
	require.NoError(t, os.WriteFile(priv, []byte(skey), 0o600))
	signer, err := core.NewEd25519Signer(skey)
	require.NoError(t, err)
	op, err := DecodeOpLine([]byte(opLine(1, "signed")))
	require.NoError(t, err)
	require.NoError(t, op.Seal(signer))
	signed, err := json.Marshal(op)
	require.NoError(t, err)
	forged := strings.Replace(string(signed), `"op_actor":"alice"`, `"op_actor":"mallory"`, 1)
	forged = strings.Replace(forged, `"op_hash":"`+op.OpHash+`",`, "", 1)

	for _, c := range []struct {
		name  string
		line  string
		args  []string
		code  int
		want  string
		store int64
	}{
		{"no key", string(signed), nil, 2, "no --op-key", 0},
		{"another key of the same name", string(signed), []string{"--op-key", other}, 2, "no verifier for key", 0},
		{"content changed", forged, []string{"--op-key", pub}, 2, "does not verify", 0},
		{"re-signing", string(signed), []string{"--op-key", pub, "--sign-key-file", priv}, 2, "--sign-key-file", 0},
		{"verified", string(signed), []string{"--op-key", pub}, 0, "", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			store := newStore(t)
			args := []string{"--store", store}
			for i := 0; i < len(c.args); i += 2 {
				if c.args[i] == "--sign-key-file" {
					args = append(args, c.args[i], c.args[i+1])
				}
			}
			args = append(args, "record")
			for i := 0; i < len(c.args); i += 2 {
				if c.args[i] == "--op-key" {
					args = append(args, c.args[i], c.args[i+1])
				}
			}
			code, _, errOut := cli(t, context.Background(), c.line+"\n", args...)
			assert.Equal(t, c.code, code, errOut)
			assert.Contains(t, errOut, c.want)
			assert.Equal(t, c.store, storedOps(t, store))
		})
	}
}
