package postgres

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/go-trustlog/trustlog/internal/backoff"
)

// reconnect spaces the listener's reconnects: 100ms, doubling, at most
// 10s, from 100ms again after a connection that lasted a minute.
var reconnect = backoff.Policy{Base: 100 * time.Millisecond, Max: 10 * time.Second}

// hub is a store's one LISTEN connection, shared by every engine of the
// process that subscribes. It runs while anyone is subscribed, reconnects
// with a growing delay when the connection drops, and wakes everyone after
// each reconnect (a notification may have been missed meanwhile).
type hub struct {
	db      *sql.DB
	channel string
	log     *slog.Logger
	retry   backoff.Policy // reconnect, or a test's shorter one

	mu     sync.Mutex
	subs   map[chan struct{}]struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func newHub(db *sql.DB, channel string, log *slog.Logger) *hub {
	return &hub{db: db, channel: channel, log: log, retry: reconnect, subs: map[chan struct{}]struct{}{}}
}

func (h *hub) subscribe(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	if h.cancel == nil {
		lctx, cancel := context.WithCancel(context.Background())
		h.cancel, h.done = cancel, make(chan struct{})
		go h.listen(lctx, h.done)
	}
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		delete(h.subs, ch)
		close(ch)
		if len(h.subs) == 0 && h.cancel != nil {
			h.cancel()
			h.cancel = nil
		}
		h.mu.Unlock()
	}()
	return ch
}

func (h *hub) wake() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// close stops the listener and waits for it.
func (h *hub) close() {
	h.mu.Lock()
	cancel, done := h.cancel, h.done
	h.cancel = nil
	h.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (h *hub) listen(ctx context.Context, done chan struct{}) {
	defer close(done)
	tries := backoff.Series{Policy: h.retry}
	for ctx.Err() == nil {
		start := time.Now()
		err := h.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			tries.Reset()
		}
		delay := tries.Next()
		h.log.Warn("trustlog/postgres: listener connection lost, engines poll until it is back", "err", err, "retry_in", delay)
		if backoff.Sleep(ctx, delay) != nil {
			return
		}
	}
}

var errNotPgx = errors.New("wake-on-commit needs the pgx driver (github.com/jackc/pgx/v5/stdlib)")

// listenOnce holds one connection, LISTENs and forwards notifications
// until the connection fails or ctx ends. The connection is closed after,
// never returned to the pool with a LISTEN on it.
func (h *hub) listenOnce(ctx context.Context) error {
	return withPgx(ctx, h.db, errNotPgx, func(pc *pgx.Conn) error {
		defer pc.Close(context.Background())
		if _, err := pc.Exec(ctx, `LISTEN "`+h.channel+`"`); err != nil {
			return err
		}
		h.wake()
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				return err
			}
			h.wake()
		}
	})
}
