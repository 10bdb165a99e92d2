package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres"
)

// TestParseURLUnencodedPassword: a password holding an unencoded / ? # or
// space is refused, and the error (of ParseURL, Open and core.OpenStore)
// quotes no part of it: a URL parser reads it as the port, path, query or
// fragment, or refuses it with an error that quotes it.
func TestParseURLUnencodedPassword(t *testing.T) {
	t.Parallel()
	const secret = "S3cr3tPart"
	for _, raw := range []string{
		"postgres://u:S3cr3tPart/Two@127.0.0.1:5432/db",
		"postgres://u:S3cr3tPart Two@127.0.0.1:5432/db",
		"postgres://u:S3cr3tPart?Two@127.0.0.1:5432/db",
		"postgresql://u:5/S3cr3tPart@127.0.0.1:5432/db", // host u, port 5, for a URL parser
		"postgres://u:5?S3cr3tPart@127.0.0.1:5432/db",
		"postgres://u:5#S3cr3tPart@127.0.0.1:5432/db",
		"postgres://u/x:S3cr3tPart@127.0.0.1:5432/db",
	} {
		_, _, _, err := postgres.ParseURL(raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
		assert.Contains(t, err.Error(), "percent-encoded", raw)
		_, err = postgres.Open(context.Background(), raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
		_, err = core.OpenStore(context.Background(), raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
	}
	// An encoded one is the password.
	dsn, _, _, err := postgres.ParseURL("postgres://u:S3cr3tPart%2FTwo@127.0.0.1:5432/db")
	require.NoError(t, err)
	assert.Contains(t, dsn, "S3cr3tPart%2FTwo@127.0.0.1:5432")
	// Errors about a parsed URL show its user.
	_, _, _, err = postgres.ParseURL("postgres://postgres@127.0.0.1:5432/test?prefix=A")
	require.ErrorIs(t, err, core.ErrInvalidURL)
	assert.Contains(t, err.Error(), `"postgres://postgres@127.0.0.1:5432/test?prefix=A"`)
}
