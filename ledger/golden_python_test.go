package ledger_test

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/internal/testenv"
)

// goldenPython is a second, independent implementation of the log's
// hashing and proofs (RFC 9162), in Python's standard library.
const goldenPython = "../scripts/vectors/check_golden_log.py"

// TestGoldenPython: the Python implementation verifies every stored hash,
// checkpoint root, inclusion and consistency proof of the golden log, and
// refuses each when one byte of it changes.
func TestGoldenPython(t *testing.T) {
	t.Parallel()
	py, err := osexec.LookPath("python3")
	if err != nil {
		msg := "python3 is not on PATH: the Python check of the golden log (" + goldenPython + ") does not run"
		if testenv.Required() {
			t.Fatal(msg + "; TRUSTLOG_REQUIRE_SERVICES=1 makes this a failure")
		}
		t.Skip(msg)
	}
	const golden = "testdata/golden"
	out, err := osexec.CommandContext(t.Context(), py, goldenPython, golden).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "check_golden_log: ok:")

	// One changed base64 character in a hash line of each kind.
	for _, c := range []struct{ file, line, want string }{
		{"consistency-3-7.txt", "", "does not extend the checkpoint of 3"},
		{"consistency-7-13.txt", "", "does not extend the checkpoint of 7"},
		{"inclusion-5.tlog-proof", "index 5", "does not verify"},
		{"checkpoint-7.txt", "7", "is not the tree hash of the first 7 leaves"},
		{"hashes.txt", "1 0 1", "is not the tree hash of leaves"},
	} {
		dir := t.TempDir()
		entries, err := os.ReadDir(golden)
		require.NoError(t, err)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(golden, e.Name()))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644))
		}
		path := filepath.Join(dir, c.file)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		lines := strings.Split(string(b), "\n")
		// The line after c.line (or the second line), flipped in its
		// fifth character: a hash that still decodes.
		at := 1
		for i, l := range lines {
			if c.line != "" && strings.HasPrefix(l, c.line) {
				at = i + 1
				if c.file == "hashes.txt" {
					at = i
				}
				break
			}
		}
		l := []byte(lines[at])
		k := len(l) - 10
		if l[k] == 'A' {
			l[k] = 'B'
		} else {
			l[k] = 'A'
		}
		lines[at] = string(l)
		require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644))
		out, err := osexec.CommandContext(t.Context(), py, goldenPython, dir).CombinedOutput()
		assert.Error(t, err, "%s changed: %s", c.file, out)
		assert.Contains(t, string(out), c.want, c.file)
	}
}
