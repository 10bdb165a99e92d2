package postgres

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// hub is a store's one LISTEN connection, shared by every engine of the
// process that subscribes. It runs while anyone is subscribed, reconnects
// with a growing delay when the connection drops, and wakes everyone after
// each reconnect (a notification may have been missed meanwhile).
type hub struct {
	db      *sql.DB
	channel string
	log     *slog.Logger

	mu     sync.Mutex
	subs   map[chan struct{}]struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func newHub(db *sql.DB, channel string, log *slog.Logger) *hub {
	return &hub{db: db, channel: channel, log: log, subs: map[chan struct{}]struct{}{}}
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
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := h.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			delay = 100 * time.Millisecond
		}
		h.log.Warn("trustlog/postgres: listener connection lost, engines poll until it is back", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

var errNotPgx = errors.New("wake-on-commit needs the pgx driver (github.com/jackc/pgx/v5/stdlib)")

// listenOnce holds one connection, LISTENs and forwards notifications
// until the connection fails or ctx ends. The connection is closed after,
// never returned to the pool with a LISTEN on it.
func (h *hub) listenOnce(ctx context.Context) error {
	conn, err := h.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errNotPgx
		}
		pc := sc.Conn()
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
