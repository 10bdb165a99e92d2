package core

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-trustlog/trustlog/internal/backoff"
)

// publishRetry spaces PublishOnly's tries: 100ms, doubling, at most 5s
// (with the default three attempts, 100ms and 200ms).
var publishRetry = backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}

// Client records operations according to its Strategy. It is safe for
// concurrent use.
type Client struct {
	store    Store
	sink     Sink
	cfg      Config
	log      *slog.Logger
	owns     bool // Close closes store and sink (Open made them)
	closed   atomic.Bool
	mu       sync.Mutex
	engines  []*Engine
	attempts int
	retry    backoff.Policy // publishRetry, or a test's shorter one
	tel      *telemetry
}

// Open opens the store and sink named by cfg's URLs through the registered
// drivers and sinks and returns a client over them. Close closes both.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	var (
		store Store
		sink  Sink
		err   error
	)
	ctx = ContextWithLogger(ctx, cfg.Logger)
	if cfg.Strategy != PublishOnly {
		if cfg.Store == "" {
			return nil, configErr("Store", "a store URL is required for %s", cfg.Strategy)
		}
		if store, err = OpenStore(ctx, cfg.Store); err != nil {
			return nil, err
		}
		if cfg.Migrate {
			if err := store.Migrate(ctx); err != nil {
				store.Close()
				return nil, err
			}
		}
	}
	if cfg.Strategy != StoreOnly {
		if cfg.Sink == "" {
			if store != nil {
				store.Close()
			}
			return nil, configErr("Sink", "a sink URL is required for %s", cfg.Strategy)
		}
		if sink, err = OpenSink(ctx, cfg.Sink); err != nil {
			if store != nil {
				store.Close()
			}
			return nil, err
		}
	}
	c, err := NewClient(store, sink, cfg)
	if err != nil {
		if store != nil {
			store.Close()
		}
		if sink != nil {
			sink.Close()
		}
		return nil, err
	}
	c.owns = true
	return c, nil
}

// NewClient returns a client over a store and a sink the caller opened
// (with a driver's typed constructor, say). The URL fields of cfg are
// ignored; Close leaves store and sink open. store may be nil for
// PublishOnly and sink for StoreOnly.
func NewClient(store Store, sink Sink, cfg Config) (*Client, error) {
	if cfg.Strategy < StoreAndPublish || cfg.Strategy > PublishOnly {
		return nil, configErr("Strategy", "unknown strategy %d", cfg.Strategy)
	}
	if cfg.Strategy != PublishOnly && store == nil {
		return nil, configErr("Store", "a store is required for %s", cfg.Strategy)
	}
	if cfg.Strategy != StoreOnly && sink == nil {
		return nil, configErr("Sink", "a sink is required for %s", cfg.Strategy)
	}
	if err := cfg.Engine.Validate(); err != nil {
		return nil, err
	}
	if cfg.PublishAttempts < 0 {
		return nil, configErr("PublishAttempts", "must not be negative")
	}
	return &Client{
		store: store, sink: sink, cfg: cfg,
		log:      cmp.Or(cfg.Logger, slog.Default()),
		attempts: cmp.Or(cfg.PublishAttempts, 3),
		retry:    publishRetry,
		tel:      newTelemetry(cfg.Telemetry, sink),
	}, nil
}

// Store returns the client's store (nil for PublishOnly).
func (c *Client) Store() Store { return c.store }

// Sink returns the client's sink (nil for StoreOnly).
func (c *Client) Sink() Sink { return c.sink }

// Strategy returns the client's strategy.
func (c *Client) Strategy() Strategy { return c.cfg.Strategy }

// Record seals and records ops in one transaction of the store's own: all
// are stored or none. With PublishOnly it publishes them instead and
// returns the sink's error. Each op is updated in place (op_id, created_at,
// op_hash, signature).
func (c *Client) Record(ctx context.Context, ops ...*Operation) (err error) {
	ctx, span := c.tel.recordSpan(ctx, c.cfg.Strategy, false)
	defer func() { endRecordSpan(span, ops, err) }()
	if err := c.prepare(ops); err != nil {
		return err
	}
	if c.cfg.Strategy == PublishOnly {
		return c.publishNow(ctx, ops)
	}
	if err := c.store.Insert(ctx, nil, ops); err != nil {
		return err
	}
	c.tel.recorded.Add(ctx, int64(len(ops)))
	c.wakeEngines()
	return nil
}

// RecordTx seals ops and inserts them through the caller's transaction, so
// they commit or roll back with the caller's own change. It is not
// available with PublishOnly.
func (c *Client) RecordTx(ctx context.Context, tx Execer, ops ...*Operation) (err error) {
	ctx, span := c.tel.recordSpan(ctx, c.cfg.Strategy, true)
	defer func() { endRecordSpan(span, ops, err) }()
	if c.cfg.Strategy == PublishOnly {
		return fmt.Errorf("%w: RecordTx needs a store; PublishOnly has none", ErrStrategy)
	}
	if tx == nil {
		return configErr("tx", "RecordTx needs the caller's transaction; use Record without one")
	}
	if err := c.prepare(ops); err != nil {
		return err
	}
	if err := c.store.Insert(ctx, tx, ops); err != nil {
		return err
	}
	c.tel.recorded.Add(ctx, int64(len(ops)))
	return nil
}

func (c *Client) prepare(ops []*Operation) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if len(ops) == 0 {
		return &ValidationError{Field: "operations", Reason: "none given"}
	}
	if len(ops) > MaxBatch {
		return &ValidationError{Field: "operations", Reason: fmt.Sprintf("%d in one call, the most is %d", len(ops), MaxBatch)}
	}
	now := time.Now()
	for i, op := range ops {
		if op == nil {
			return &ValidationError{Index: i, Field: "operation", Reason: "is nil"}
		}
		if err := op.seal(i, now, c.cfg.Signer); err != nil {
			return err
		}
	}
	return nil
}

// publishNow is PublishOnly: publish, retry what failed a bounded number of
// times with a short backoff (c.retry), and report what still failed. When
// ctx ends during a wait, the error wraps ctx's and the last failure.
func (c *Client) publishNow(ctx context.Context, ops []*Operation) error {
	msgs := make([]Message, len(ops))
	for i, op := range ops {
		m, err := NewMessage(op, 0, -1)
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	return backoff.Retry(ctx, c.retry, c.attempts, func(attempt int) error {
		errs := c.sink.Publish(ctx, msgs)
		if len(errs) != len(msgs) {
			return backoff.Stop(fmt.Errorf("trustlog: sink returned %d results for %d messages", len(errs), len(msgs)))
		}
		var failed []Message
		var last []error
		for i, err := range errs {
			if err != nil {
				failed = append(failed, msgs[i])
				last = append(last, fmt.Errorf("op %s: %w", msgs[i].ID, err))
			}
		}
		if len(failed) == 0 {
			return nil
		}
		permanent := true
		for _, err := range last {
			permanent = permanent && IsPermanent(err)
		}
		err := fmt.Errorf("trustlog: publish failed for %d of %d operations after %d attempts: %w",
			len(failed), len(ops), attempt, errors.Join(last...))
		if attempt >= c.attempts || permanent {
			return backoff.Stop(err)
		}
		c.log.WarnContext(ctx, "publish failed, retrying", "failed", len(failed), "attempt", attempt, "err", last[0])
		msgs = failed
		return err
	})
}

// Engine returns a new relay engine over the client's store and sink,
// configured by Config.Engine. Record wakes it at once; it still has to be
// started. With StoreOnly it only sequences (and runs Config.Engine.Ledger).
func (c *Client) Engine() (*Engine, error) {
	switch {
	case c.cfg.Strategy == PublishOnly:
		return nil, fmt.Errorf("%w: PublishOnly stores nothing to relay", ErrStrategy)
	}
	cfg := c.cfg.Engine
	if cfg.Logger == nil {
		cfg.Logger = c.log
	}
	if cfg.Telemetry == (Telemetry{}) {
		cfg.Telemetry = c.cfg.Telemetry
	}
	e, err := NewEngine(c.store, c.sink, cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.engines = append(c.engines, e)
	c.mu.Unlock()
	return e, nil
}

func (c *Client) wakeEngines() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.engines {
		e.Wake()
	}
}

// Close closes the store and sink if Open opened them. It is idempotent;
// stop engines first.
func (c *Client) Close() error {
	if c.closed.Swap(true) || !c.owns {
		return nil
	}
	var errs []error
	if c.sink != nil {
		errs = append(errs, c.sink.Close())
	}
	if c.store != nil {
		errs = append(errs, c.store.Close())
	}
	return errors.Join(errs...)
}
