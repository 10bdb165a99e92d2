package dbserver

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestAliveSeesACrash: Alive is nil while the server runs and, once its
// process is killed (as a crash would end it), an error naming the
// server and quoting its log, so the chaos test fails at once instead of
// waiting for a drain that cannot happen.
func TestAliveSeesACrash(t *testing.T) {
	testenv.Long(t)
	for _, kind := range []string{"postgres", "mariadb"} {
		t.Run(kind, func(t *testing.T) {
			if err := Available(kind); err != nil {
				t.Skipf("%s binaries not installed: %v", kind, err)
			}
			t.Parallel()
			s := Start(t, kind)
			if err := s.Alive(); err != nil {
				t.Fatalf("a running server: %v", err)
			}
			pidFile := filepath.Join(s.dir, "m.pid")
			if kind == "postgres" {
				pidFile = filepath.Join(s.dir, "pg", "postmaster.pid")
			}
			b, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatal(err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			var dead error
			ctx := testenv.Context(t)
			for dead == nil && ctx.Err() == nil {
				dead = s.Alive()
				time.Sleep(50 * time.Millisecond)
			}
			if dead == nil || !strings.Contains(dead.Error(), kind) || !strings.Contains(dead.Error(), "the end of") {
				t.Fatalf("after SIGKILL: Alive() = %v", dead)
			}
		})
	}
}
