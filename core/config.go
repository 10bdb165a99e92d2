package core

import (
	"cmp"
	"context"
	"log/slog"
	"time"
)

// Strategy says what Record does with an operation.
type Strategy int

const (
	// StoreAndPublish stores the operation (in the caller's transaction
	// with RecordTx) and lets the engine publish it: the transactional
	// outbox. The default.
	StoreAndPublish Strategy = iota
	// StoreOnly stores the operation and never publishes it (the ledger
	// still sequences it).
	StoreOnly
	// PublishOnly publishes synchronously with a bounded in-process retry
	// and returns the sink's error to the caller; nothing is stored.
	PublishOnly
)

// String returns the strategy's name as used in flags.
func (s Strategy) String() string {
	switch s {
	case StoreAndPublish:
		return "store-and-publish"
	case StoreOnly:
		return "store-only"
	case PublishOnly:
		return "publish-only"
	}
	return "unknown"
}

// ParseStrategy parses a Strategy's String form.
func ParseStrategy(s string) (Strategy, error) {
	for _, v := range []Strategy{StoreAndPublish, StoreOnly, PublishOnly} {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, configErr("strategy", "%q is not store-and-publish, store-only or publish-only", s)
}

// Engine defaults. Every EngineConfig field's doc gives its default and the
// risk of changing it.
const (
	WorkersDefault         = 1
	BatchSizeDefault       = 500
	LeaseDefault           = 15 * time.Second
	PublishTimeoutDefault  = 5 * time.Second
	PollIntervalDefault    = 1 * time.Second
	PollIntervalNoListen   = 100 * time.Millisecond
	RetryPollDefault       = 1 * time.Second
	MaxAttemptsDefault     = 10
	BackoffBaseDefault     = 1 * time.Second
	BackoffMaxDefault      = 10 * time.Minute
	BackoffJitterDefault   = 0.2
	ShutdownTimeoutDefault = 30 * time.Second
	ProbeIntervalDefault   = 2 * time.Second
)

// MaxWorkers is the most balancer members one engine runs
// (EngineConfig.Workers). More members in one process only help where
// one relay's partitions are few and its sink slow; more throughput
// comes from more relay processes, and no member can own more than the
// store's partitions.
const MaxWorkers = 64

// EngineConfig configures the relay engine. The zero value is usable.
type EngineConfig struct {
	// Workers is how many balancer members the engine runs (default 1, at
	// most MaxWorkers): each takes its fair share of the store's
	// partitions as a relay of its own would, and publishes each of them
	// in its own goroutine.
	Workers int
	// BatchSize is the most operations per read of a partition (default
	// 500). Larger batches amortise round trips; they also mean more
	// copies if a relay dies between the sink's ack and the cursor
	// advance (Pulsar drops them).
	BatchSize int
	// Lease is how long partition and sequencer leases last without
	// renewal (default 15s): a relay renews them every Lease/3, and the
	// partitions of a relay that died move to the others within about
	// Lease. It must exceed PublishTimeout's double.
	Lease time.Duration
	// PublishTimeout bounds one batch's publish (default 5s, at most
	// Lease/3). A message without an outcome by then is sent again.
	PublishTimeout time.Duration
	// PollInterval is how long an idle publisher or sequencer waits before
	// looking again (default 1s when the store wakes engines on commit,
	// 100ms when it cannot). Shorter lowers latency and raises idle load.
	PollInterval time.Duration
	// RetryPoll is how often each publisher looks for due retries
	// (default 1s).
	RetryPoll time.Duration
	// MaxAttempts is how many sends an operation gets before it goes dead
	// (default 10).
	MaxAttempts int
	// BackoffBase, BackoffMax and BackoffJitter shape the retry delay:
	// BackoffBase * 2^(attempt-1), capped at BackoffMax, times a random
	// factor in [1-jitter, 1+jitter], never above BackoffMax (defaults 1s,
	// 10m, 0.2). See Backoff.
	BackoffBase   time.Duration
	BackoffMax    time.Duration
	BackoffJitter float64
	// StrictOrder holds back every later operation of a DOID while an
	// earlier one is in the retry table (not dead), so each object's
	// operations reach the sink in record order even through failures.
	// Without it a retried operation is overtaken by later ones of its
	// DOID. A dead operation does not hold its DOID back (it would block
	// the object forever); requeuing it publishes it out of order.
	StrictOrder bool
	// SequenceBatch is the most operations the sequencer positions per
	// transaction (default SequenceBatchDefault).
	SequenceBatch int
	// ShutdownTimeout bounds Run's graceful stop (default 30s): then calls
	// in flight are aborted. Run returns at most about a second later even
	// if a goroutine is stuck in a sink or store call that ignores its
	// context.
	ShutdownTimeout time.Duration
	// ProbeInterval is the longest pause between tries of the sink while
	// it is unavailable (default 2s). An outage pauses every publisher,
	// 100ms at first and doubling per failed try up to ProbeInterval; the
	// first message the sink accepts resumes them all. Independent of
	// BackoffMax, which shapes operation retries.
	ProbeInterval time.Duration
	// Logger receives the engine's logs (default slog.Default()).
	Logger *slog.Logger
	// OnDead, if set, is called (from an engine goroutine; keep it short)
	// with each operation the engine sends to dead.
	OnDead func(DeadEvent)
	// Telemetry says where metrics and traces go (default: OpenTelemetry's
	// global providers, no-ops until the application installs an SDK).
	Telemetry Telemetry
	// Node names this relay in the store's member list, unique per live
	// process (say, the pod name). Empty: host, process id and random
	// bits.
	Node string
	// Ledger, if set, runs alongside the relay for as long as the engine
	// does: the ledger's checkpointer (ledger.NewSequencer) signs
	// checkpoints of the Merkle log the engine builds and publishes them
	// through the engine's sink.
	Ledger LedgerRunner
}

// LedgerRunner runs next to the relay; package ledger's Sequencer
// implements it. Run works until ctx ends (sink may be nil).
type LedgerRunner interface {
	Run(ctx context.Context, store Store, sink Sink) error
}

// LedgerFinisher is a LedgerRunner with a last step: when the engine
// stops cleanly, after its sequencer and publishers have stopped, it
// calls Finish with what is left of Stop's context. Package ledger's
// Sequencer signs a checkpoint of every position given (and publishes
// it through sink, if not nil), so a log whose relays were all stopped
// verifies with its key at once instead of showing its newest leaves
// uncovered until a relay runs again.
type LedgerFinisher interface {
	LedgerRunner
	Finish(ctx context.Context, store Store, sink Sink) error
}

// DeadEvent describes an operation that went dead.
type DeadEvent struct {
	Seq      int64
	OpID     string
	DOID     string
	Attempts int
	Err      string
}

func (c EngineConfig) withDefaults(caps Capabilities) EngineConfig {
	c.Workers = cmp.Or(c.Workers, WorkersDefault)
	c.BatchSize = cmp.Or(c.BatchSize, BatchSizeDefault)
	c.Lease = cmp.Or(c.Lease, LeaseDefault)
	c.PublishTimeout = cmp.Or(c.PublishTimeout, min(PublishTimeoutDefault, c.Lease/3))
	c.SequenceBatch = cmp.Or(c.SequenceBatch, SequenceBatchDefault)
	poll := PollIntervalNoListen
	if caps.ListenNotify {
		poll = PollIntervalDefault
	}
	c.PollInterval = cmp.Or(c.PollInterval, poll)
	c.RetryPoll = cmp.Or(c.RetryPoll, RetryPollDefault)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, MaxAttemptsDefault)
	c.BackoffBase = cmp.Or(c.BackoffBase, BackoffBaseDefault)
	c.BackoffMax = cmp.Or(c.BackoffMax, BackoffMaxDefault)
	if c.BackoffJitter == 0 {
		c.BackoffJitter = BackoffJitterDefault
	}
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, ShutdownTimeoutDefault)
	c.ProbeInterval = cmp.Or(c.ProbeInterval, ProbeIntervalDefault)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the configuration after defaults and names the first bad
// field.
func (c EngineConfig) Validate() error {
	c = c.withDefaults(Capabilities{})
	switch {
	case c.Workers < 0 || c.Workers > MaxWorkers:
		return configErr("Workers", "must be between 1 and %d", MaxWorkers)
	case c.BatchSize < 0 || c.BatchSize > MaxBatch:
		return configErr("BatchSize", "must be between 1 and %d", MaxBatch)
	case c.Lease < time.Second:
		return configErr("Lease", "must be at least 1s")
	case c.SequenceBatch < 0 || c.SequenceBatch > 100000:
		return configErr("SequenceBatch", "must be between 1 and 100000")
	case c.PublishTimeout <= 0 || c.PublishTimeout*2 > c.Lease:
		return configErr("PublishTimeout", "must be positive and at most half of Lease (%s)", c.Lease)
	case c.PollInterval < 0 || c.RetryPoll < 0:
		return configErr("PollInterval", "must not be negative")
	case c.MaxAttempts < 1:
		return configErr("MaxAttempts", "must be at least 1")
	case c.BackoffBase < 0 || c.BackoffMax < c.BackoffBase:
		return configErr("BackoffMax", "must be at least BackoffBase")
	case c.BackoffJitter < 0 || c.BackoffJitter >= 1:
		return configErr("BackoffJitter", "must be in [0, 1)")
	case c.ShutdownTimeout < 0:
		return configErr("ShutdownTimeout", "must not be negative")
	case c.ProbeInterval < 0:
		return configErr("ProbeInterval", "must not be negative")
	}
	return nil
}

// Config is what Open needs: where to store, where to publish, and how.
type Config struct {
	// Store is the store URL (e.g. "sqlite:trustlog.db",
	// "postgres://app@localhost/app"). Required unless Strategy is
	// PublishOnly.
	Store string
	// Sink is the sink URL (e.g. "memory://", "kafka://host:9092/topic").
	// Required unless Strategy is StoreOnly.
	Sink string
	// Strategy is what Record does (default StoreAndPublish).
	Strategy Strategy
	// Signer signs every operation; nil records them unsigned.
	Signer Signer
	// Migrate runs the store's migrations in Open.
	Migrate bool
	// Engine configures the engine Client.Engine returns.
	Engine EngineConfig
	// PublishAttempts bounds PublishOnly's in-process retry (default 3).
	// Tries are 100ms apart, doubling, at most 5s.
	PublishAttempts int
	// Logger receives the client's logs (default slog.Default()).
	Logger *slog.Logger
	// Telemetry says where metrics and traces go, for the client and the
	// engines it creates (default: OpenTelemetry's global providers).
	Telemetry Telemetry
}
