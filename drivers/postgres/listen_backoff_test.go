package postgres

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/internal/testenv"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/internal/backoff"
)

// reconnectLog collects the retry_in of the listener's warnings.
type reconnectLog struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (l *reconnectLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *reconnectLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *reconnectLog) WithGroup(string) slog.Handler            { return l }

func (l *reconnectLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "retry_in" {
			l.mu.Lock()
			l.delays = append(l.delays, a.Value.Duration())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *reconnectLog) get() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.delays...)
}

// unreachableHub is a hub whose every connection fails at once (its pool
// is closed), reconnecting after p's delays.
func unreachableHub(t *testing.T, log *reconnectLog, p backoff.Policy) *hub {
	t.Helper()
	db, err := sql.Open("pgx", "postgres://nobody@127.0.0.1:1/none")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	h := newHub(db, "test", slog.New(log))
	assert.Equal(t, reconnect, h.retry, "by default, the package's schedule")
	h.retry = p
	return h
}

// TestListenerReconnectsOnTheSchedule: the listener's reconnects follow
// its schedule (here microseconds, up to 4).
func TestListenerReconnectsOnTheSchedule(t *testing.T) {
	t.Parallel()
	log := &reconnectLog{}
	h := unreachableHub(t, log, backoff.Policy{Base: time.Microsecond, Max: 4 * time.Microsecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.subscribe(ctx)
	require.Eventually(t, func() bool { return len(log.get()) >= 5 }, testenv.Patience(t), time.Millisecond)
	h.close()
	us := time.Microsecond
	assert.Equal(t, []time.Duration{us, 2 * us, 4 * us, 4 * us, 4 * us}, log.get()[:5])
}

// TestListenerBackoffEndsWithClose: closing the hub does not wait out the
// delay before the next reconnect.
func TestListenerBackoffEndsWithClose(t *testing.T) {
	t.Parallel()
	log := &reconnectLog{}
	h := unreachableHub(t, log, backoff.Policy{Base: time.Hour, Max: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.subscribe(ctx)
	require.Eventually(t, func() bool { return len(log.get()) == 1 }, testenv.Patience(t), time.Millisecond)
	done := make(chan struct{})
	go func() { h.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("close waited for the hour's backoff")
	}
	assert.Equal(t, []time.Duration{time.Hour}, log.get())
}
