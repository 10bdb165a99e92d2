package dbserver

import (
	"context"
	"testing"

	"github.com/go-trustlog/trustlog/core"
	_ "github.com/go-trustlog/trustlog/drivers/mysql"
	_ "github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// TestRestart: a private server serves a store, goes down, and serves it
// again with the data kept. A long scenario: the chaos test depends on it.
func TestRestart(t *testing.T) {
	testenv.Long(t)
	for _, kind := range []string{"postgres", "mariadb"} {
		t.Run(kind, func(t *testing.T) {
			if err := Available(kind); err != nil {
				t.Skipf("%s binaries not installed: %v", kind, err)
			}
			t.Parallel()
			ctx := testenv.Context(t)
			s := Start(t, kind)
			st, err := core.OpenStore(ctx, s.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := st.SetCursor(ctx, "c", "before"); err != nil {
				t.Fatal(err)
			}
			if err := s.Restart(); err != nil {
				t.Fatal(err)
			}
			if err := WaitReady(ctx, func(ctx context.Context) error { _, err := st.Cursor(ctx, "c"); return err }); err != nil {
				t.Fatal(err)
			}
			c, err := st.Cursor(ctx, "c")
			if err != nil || c.Value != "before" {
				t.Fatalf("after restart: %v %v", c, err)
			}
		})
	}
}
