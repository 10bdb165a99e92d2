package memory_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// TestOpenUnencodedPassword: a memory URL has no use for user info, but
// one whose password holds an unencoded / ? # or space is refused without
// quoting it, as every sink does.
func TestOpenUnencodedPassword(t *testing.T) {
	t.Parallel()
	const secret = "S3cr3tPart"
	for _, raw := range []string{
		"memory://u:5/S3cr3tPart@h?latency=soon", // host u, port 5, for a URL parser
		"memory://u:5#S3cr3tPart@h?latency=soon",
		"memory://u:a/S3cr3tPart@h",
		"memory://u:a S3cr3tPart@h",
	} {
		_, err := memory.Open(raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
		_, err = core.OpenSink(context.Background(), raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
	}
}
