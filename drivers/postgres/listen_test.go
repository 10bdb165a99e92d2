package postgres_test

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// TestListenerLogsToStoreLogger: when the LISTEN connection drops, the
// warning goes to the logger the store was opened with
// (core.ContextWithLogger), where the application's level, format and
// redaction apply, not to slog.Default(). Not parallel: it replaces
// slog.Default().
func TestListenerLogsToStoreLogger(t *testing.T) {
	storeURL := postgrestest.NewSchema(t)
	var defaultLogs, storeLogs testenv.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&defaultLogs, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	ctx := core.ContextWithLogger(context.Background(), slog.New(slog.NewTextHandler(&storeLogs, nil)))
	st, err := core.OpenStore(ctx, storeURL)
	require.NoError(t, err)
	defer st.Close()
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake, err := st.(core.Notifier).Subscribe(sctx)
	require.NoError(t, err)
	select {
	case <-wake: // the listener is up
	case <-time.After(10 * time.Second):
		t.Fatal("the listener never woke its subscriber")
	}

	u, err := url.Parse(storeURL)
	require.NoError(t, err)
	listen := `LISTEN "trustlog:` + u.Query().Get("schema") + `:"`
	var killed int
	require.NoError(t, postgrestest.DB(t).QueryRow(
		`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = $1`, listen).Scan(&killed))
	require.Equal(t, 1, killed, "one listener connection")
	ok := assert.Eventually(t, func() bool {
		return strings.Contains(storeLogs.String(), "listener connection lost")
	}, testenv.Patience(t), 10*time.Millisecond, "the warning reaches the store's logger")
	assert.NotContains(t, defaultLogs.String(), "listener", "slog.Default() gets nothing")
	if !ok {
		t.Logf("slog.Default() got: %s", defaultLogs.String())
	}
}
