package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
)

// TestCacheMiB: the page cache per connection is 8 MiB unless cache_mib
// says otherwise, and the pragma reaches the connections.
func TestCacheMiB(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  int
	}{{"", -8 * 1024}, {"?cache_mib=2", -2 * 1024}, {"?cache_mib=64", -64 * 1024}} {
		path := filepath.Join(t.TempDir(), "c.db")
		s, err := sqlite.Open(context.Background(), "sqlite:"+path+tc.query)
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if err := s.DB().QueryRow(`PRAGMA cache_size`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if got != tc.want {
			t.Errorf("%q: cache_size %d, want %d", tc.query, got, tc.want)
		}
	}
	for _, bad := range []string{"0", "-1", "lots", "2000000"} {
		_, err := sqlite.ParseURL("sqlite:x.db?cache_mib=" + bad)
		if !errors.Is(err, core.ErrInvalidURL) {
			t.Errorf("cache_mib=%s: got %v, want ErrInvalidURL", bad, err)
		}
	}
}
