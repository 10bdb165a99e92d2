package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExitCodes runs every command of the README's CLI section with bad
// usage: each is a usage error (exit 2) with one line on stderr, never a
// silent help page with exit 0 a deploy script would carry on after.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := "sqlite:" + filepath.Join(t.TempDir(), "exit.db")
	code, _, errOut := cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, exitOK, code, errOut)

	const opID = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr, when set
	}{
		// Unknown commands and subcommands; group commands run bare.
		{args: []string{"nosuch"}, code: exitUsage, want: `unknown command "nosuch"`},
		{args: []string{}, code: exitUsage, want: "migrate"},
		{args: []string{"migrate", "upp"}, code: exitUsage, want: `unknown command "upp" for "trustlog migrate"`},
		{args: []string{"migrate", "sideways"}, code: exitUsage, want: "status, up"},
		{args: []string{"migrate"}, code: exitUsage, want: "status, up"},
		{args: []string{"cursor", "stauts"}, code: exitUsage, want: `unknown command "stauts" for "trustlog cursor" (did you mean "status"?)`},
		{args: []string{"cursor"}, code: exitUsage, want: "one of status"},
		{args: []string{"dead"}, code: exitUsage, want: "list, requeue"},
		{args: []string{"dead", "lsit"}, code: exitUsage, want: `unknown command "lsit"`},
		{args: []string{"completion", "tcsh"}, code: exitUsage, want: `unknown command "tcsh"`},
		{args: []string{"completion"}, code: exitUsage, want: "bash"},
		{args: []string{"help", "nosuch"}, code: exitUsage, want: `"nosuch"`},

		// Unknown flags.
		{args: []string{"--nosuch", "status"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"migrate", "up", "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"record", "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"relay", "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"status", "-z"}, code: exitUsage, want: "unknown shorthand flag"},
		{args: []string{"dead", "list", "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"dead", "requeue", "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"cursor", "status", "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"keygen", "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"prove", opID, "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"verify-proof", "op.proof", "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"verify", "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"verify-sink", "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"prune", "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"bench", "--nosuch"}, code: exitUsage, want: "unknown flag: --nosuch"},
		{args: []string{"relay", "--workers", "two"}, code: exitUsage, want: "--workers"},

		// A sink this command can only ever see empty.
		{args: []string{"--sink", "memory://", "verify-sink"}, code: exitUsage, want: "a memory:// sink lives only inside the process"},

		// Wrong argument counts.
		{args: []string{"migrate", "up", "extra"}, code: exitUsage, want: "trustlog migrate up"},
		{args: []string{"migrate", "status", "extra"}, code: exitUsage},
		{args: []string{"record", "extra"}, code: exitUsage, want: "trustlog record"},
		{args: []string{"relay", "extra"}, code: exitUsage},
		{args: []string{"status", "extra"}, code: exitUsage},
		{args: []string{"dead", "list", "extra"}, code: exitUsage},
		{args: []string{"cursor", "status", "a"}, code: exitUsage, want: "trustlog cursor status"},
		{args: []string{"keygen", "extra"}, code: exitUsage},
		{args: []string{"prove"}, code: exitUsage, want: "trustlog prove <op_id>"},
		{args: []string{"prove", opID, opID}, code: exitUsage},
		{args: []string{"verify-proof"}, code: exitUsage, want: "trustlog verify-proof <file>"},
		{args: []string{"verify-proof", "a", "b"}, code: exitUsage},
		{args: []string{"verify", "extra"}, code: exitUsage},
		{args: []string{"verify-sink", "extra"}, code: exitUsage},
		{args: []string{"prune", "extra"}, code: exitUsage},
		{args: []string{"bench", "nosuch"}, code: exitUsage, want: "nosuch"},
		{args: []string{"demo", "extra"}, code: exitUsage},
		{args: []string{"completion", "bash", "extra"}, code: exitUsage},

		// Help and completion work.
		{args: []string{"--help"}, code: exitOK},
		{args: []string{"migrate", "--help"}, code: exitOK},
		{args: []string{"dead", "requeue", "--help"}, code: exitOK},
		{args: []string{"help", "migrate", "up"}, code: exitOK},
		{args: []string{"completion", "bash"}, code: exitOK},
		{args: []string{"completion", "zsh"}, code: exitOK},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			code, _, errOut := cli(t, ctx, "", append([]string{"--store", store}, tc.args...)...)
			assert.Equal(t, tc.code, code, "stderr: %s", errOut)
			if tc.code == exitUsage {
				assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line on stderr: %q", errOut)
				assert.True(t, strings.HasPrefix(errOut, "trustlog"), errOut)
			}
			if tc.want != "" {
				assert.Contains(t, errOut, tc.want)
			}
		})
	}
	code, out, _ := cli(t, ctx, "", "completion", "bash")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "bash completion", "the script goes to the command's standard output")
}

// TestMalformedOpID: an op_id is a UUID; anything else is a usage error
// naming the argument, not "not found" or "requeued 0".
func TestMalformedOpID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := "sqlite:" + filepath.Join(t.TempDir(), "opid.db")
	code, _, errOut := cli(t, ctx, "", "--store", store, "migrate", "up")
	require.Equal(t, exitOK, code, errOut)

	const valid = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"
	for _, args := range [][]string{
		{"prove", "not-a-uuid"},
		{"prove", valid + "0"},
		{"dead", "requeue", "not-a-uuid"},
		{"dead", "requeue", valid, "not-a-uuid"},
	} {
		code, out, errOut := cli(t, ctx, "", append([]string{"--store", store}, args...)...)
		assert.Equal(t, exitUsage, code, "%v: %s%s", args, out, errOut)
		assert.Contains(t, errOut, args[len(args)-1], "%v names the bad op_id", args)
		assert.Contains(t, errOut, "UUID", "%v", args)
		assert.Empty(t, out, "%v", args)
	}

	// Well-formed op_ids, in either case, still reach the store.
	code, out, errOut := cli(t, ctx, "", "--store", store, "dead", "requeue", valid, strings.ToUpper(valid))
	assert.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "requeued 0 operation(s)\n", out)
	code, _, errOut = cli(t, ctx, "", "--store", store, "prove", strings.ToUpper(valid))
	assert.Equal(t, exitFailure, code, errOut)
	assert.Contains(t, errOut, "not found")
}
