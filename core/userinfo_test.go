package core_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

// TestNoSchemeQuotesNoPassword: a URL without a scheme is refused without
// quoting a password that redaction cannot find without one.
func TestNoSchemeQuotesNoPassword(t *testing.T) {
	t.Parallel()
	const secret = "S3cr3tPart"
	for _, raw := range []string{"//u:S3cr3tPart/Two@127.0.0.1:5432/db", " u:S3cr3tPart Two@h/db", "u S3cr3tPart@h"} {
		_, err := core.OpenStore(context.Background(), raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
		_, err = core.OpenSink(context.Background(), raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
		_, err = core.OpenReplayer(context.Background(), raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
		_, err = core.Open(context.Background(), core.Config{Store: raw})
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
	}
	_, err := core.OpenStore(context.Background(), "trustlog.db")
	require.ErrorIs(t, err, core.ErrInvalidURL)
	assert.Contains(t, err.Error(), `"trustlog.db"`, "a URL with no user info is quoted")
}
