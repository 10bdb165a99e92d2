package main

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVersion: `trustlog version` and `trustlog --version` say the same
// line: the module version, and the Go version that built it.
func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, errOut := cli(t, context.Background(), "", "version")
	require.Equal(t, 0, code, errOut)
	assert.True(t, strings.HasPrefix(out, "trustlog "), out)
	assert.Contains(t, out, runtime.Version())
	code, out2, errOut := cli(t, context.Background(), "", "--version")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, out, out2)
	code, _, errOut = cli(t, context.Background(), "", "version", "extra")
	assert.Equal(t, 2, code, errOut)
}
