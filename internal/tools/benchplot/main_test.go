package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runTool(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestDrawsEachInput: every FILE.json becomes FILE.png beside it, or the
// file -o names.
func TestDrawsEachInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run, err := os.ReadFile("../../../docs/bench/sqlite.json")
	require.NoError(t, err)
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	require.NoError(t, os.WriteFile(a, run, 0o600))
	require.NoError(t, os.WriteFile(b, run, 0o600))
	code, out, errOut := runTool(a, b)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, a+" -> "+filepath.Join(dir, "a.png"))
	named := filepath.Join(dir, "named.png")
	code, _, errOut = runTool("-o", named, a)
	require.Equal(t, 0, code, errOut)
	for _, png := range []string{"a.png", "b.png", "named.png"} {
		b, err := os.ReadFile(filepath.Join(dir, png))
		require.NoError(t, err)
		assert.True(t, bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")), "%s is a PNG file", png)
	}
}

// TestRefuses: usage errors exit 2, a file that is not a report 1, each
// with one line naming the problem.
func TestRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "x.json")
	require.NoError(t, os.WriteFile(notJSON, []byte("hello"), 0o600))
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no input"},
		{[]string{"-o", "p.png", "a.json", "b.json"}, 2, "-o names one output, and there are 2 inputs"},
		{[]string{"run.txt"}, 2, "run.txt: not a .json file"},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		{[]string{notJSON}, 1, "not the JSON of trustlog bench --json"},
	} {
		code, _, errOut := runTool(c.args...)
		assert.Equal(t, c.code, code, "%v: %s", c.args, errOut)
		assert.Contains(t, errOut, c.want, "%v", c.args)
	}
	_, err := os.Stat(filepath.Join(dir, "x.png"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing drawn from a file that is not a report")
}
