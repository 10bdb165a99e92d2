package mysql_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
)

// TestParseURLUnencodedPassword: a password holding an unencoded / ? # or
// space is refused, and the error (of ParseURL, Open and core.OpenStore)
// quotes no part of it.
func TestParseURLUnencodedPassword(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ raw, secret string }{
		{"mysql://u:My Secret Pw@127.0.0.1:3306/db", "Secret"},
		{"mysql://u:S3cr3tPart/Two@127.0.0.1:3306/db", "S3cr3tPart"},
		{"mariadb://u:5/S3cr3tPart@127.0.0.1:3306/db", "S3cr3tPart"}, // host u, port 5, for a URL parser
		{"mysql://u:5?S3cr3tPart@127.0.0.1:3306/db", "S3cr3tPart"},
		{"mysql://u:5#S3cr3tPart@127.0.0.1:3306/db", "S3cr3tPart"},
	} {
		_, _, _, err := mysql.ParseURL(c.raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, c.raw)
		assert.NotContains(t, err.Error(), c.secret, c.raw)
		assert.Contains(t, err.Error(), "percent-encoded", c.raw)
		_, err = mysql.Open(context.Background(), c.raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, c.raw)
		assert.NotContains(t, err.Error(), c.secret, c.raw)
		_, err = core.OpenStore(context.Background(), c.raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, c.raw)
		assert.NotContains(t, err.Error(), c.secret, c.raw)
	}
	// Encoded, any character is the password's, and a user's ":" is the
	// user's.
	cfg, _, _, err := mysql.ParseURL("mysql://a%3Ab:My%20Secret%2FPw%3F%23@127.0.0.1:3306/db")
	require.NoError(t, err)
	assert.Equal(t, "a:b", cfg.User)
	assert.Equal(t, "My Secret/Pw?#", cfg.Passwd)
}
