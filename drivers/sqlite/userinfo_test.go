package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
)

// TestParseURLUserInfo: sqlite URLs have no user info, but one written
// with a password holding an unencoded / ? or # is refused without
// quoting it, as every driver does, rather than read as a path and query
// that errors would quote.
func TestParseURLUserInfo(t *testing.T) {
	t.Parallel()
	const secret = "S3cr3tPart"
	for _, raw := range []string{
		"sqlite://u:S3cr3tPart/Two@127.0.0.1:1/x.db",
		"sqlite://u:a?S3cr3tPart@127.0.0.1:1/x.db",
		"file://u:a#S3cr3tPart@127.0.0.1:1/x.db?cache_mib=0",
		"file://0:@S3cr3tPart@127.0.0.1:1/0", // plain user info: the path would quote it
		"sqlite://@:0S3cr3tPart@127.0.0.1:1/0",
		"sqlite://u:S3cr3tPart@127.0.0.1:1/x.db",
	} {
		_, err := sqlite.ParseURL(raw)
		if !errors.Is(err, core.ErrInvalidURL) || strings.Contains(err.Error(), secret) {
			t.Errorf("ParseURL(%q): %v", raw, err)
		}
		if _, err := core.OpenStore(context.Background(), raw); err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("OpenStore(%q): %v", raw, err)
		}
	}
	// A path holding "@" is still a path.
	p := filepath.Join(t.TempDir(), "a@b.db")
	c, err := sqlite.ParseURL("sqlite://" + p)
	if err != nil || c.Path != p {
		t.Errorf("ParseURL(sqlite://%s) = %q, %v", p, c.Path, err)
	}
}
