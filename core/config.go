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
	LeaseDefault           = 60 * time.Second
	PublishTimeoutDefault  = 20 * time.Second
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

// MaxWorkers is the most dispatcher loops one engine runs
// (EngineConfig.Workers). A loop is a pipeline of three goroutines that
// holds up to about four batches (BatchSize rows each) and takes a
// database connection for every claim and settle: 2–4 loops saturate a
// slow sink, the drivers' connection pools hold about 20 connections
// (MySQL's default max_conns), and loops beyond that only queue for a
// connection while multiplying memory, log lines and the work a stop must
// finish. 64 leaves ample room above what helps; more throughput comes
// from more relay processes.
const MaxWorkers = 64

// EngineConfig configures the relay engine. The zero value is usable.
type EngineConfig struct {
	// Workers is the number of dispatcher loops (default 1, at most
	// MaxWorkers). Each claims, publishes and settles its own batches,
	// pipelined. More workers help when the sink's latency, not the
	// database, is the limit.
	Workers int
	// BatchSize is the most operations per claim (default 500). Larger
	// batches amortise round trips; they also mean more duplicates if a
	// worker dies between the sink's ack and the settle.
	BatchSize int
	// Lease is how long a claim lasts (default 60s). A worker that dies
	// holds its operations this long before others take them back; it must
	// exceed PublishTimeout plus the time to settle.
	Lease time.Duration
	// PublishTimeout bounds one batch's publish (default 20s).
	PublishTimeout time.Duration
	// PollInterval is how long an idle dispatcher waits before looking
	// again (default 1s when the store wakes engines on commit, 100ms when
	// it cannot). Shorter lowers latency and raises idle load.
	PollInterval time.Duration
	// RetryPoll is how often the retrier looks for due retries and expired
	// leases (default 1s).
	RetryPoll time.Duration
	// MaxAttempts is how many claims an operation gets before it goes dead
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
	// earlier one is pending, in flight or retrying, across all workers, so
	// each object's operations reach the sink in record order even through
	// failures. Without it order per DOID holds per worker, and a retrying
	// operation is overtaken by later ones. A dead operation does not hold
	// its DOID back (it would block the object forever); requeuing it
	// publishes it out of order.
	StrictOrder bool
	// ShutdownTimeout bounds Run's graceful stop (default 30s): then
	// publishing is aborted and what was not acknowledged is given back.
	// Run returns at most about a second later even if a loop is stuck in
	// a sink or store call that ignores its context; that batch stays
	// claimed until its lease ends. Shorter stops sooner and leaves more
	// batches to come back after their lease (and possibly go out twice).
	ShutdownTimeout time.Duration
	// ProbeInterval is the longest pause between tries of the sink while
	// it is unavailable (default 2s). An outage pauses every loop, 100ms
	// at first and doubling per failed probe up to ProbeInterval; at the
	// end of each pause one loop probes the sink with one batch, and the
	// first message the sink accepts resumes every loop. One
	// outage is one streak, however many loops or batches it refused.
	// So the relay resumes within about ProbeInterval of the sink's
	// return. Shorter resumes sooner and costs a claim, a publish attempt
	// and a release per interval (with an ordered stream the probe's
	// batch stays claimed, and pending in the sink, until its lease ends);
	// longer leaves the relay idle up to that long after an outage.
	// Independent of BackoffMax, which shapes operation retries.
	ProbeInterval time.Duration
	// Logger receives the engine's logs (default slog.Default()).
	Logger *slog.Logger
	// OnDead, if set, is called (from an engine goroutine; keep it short)
	// with each operation the engine sends to dead.
	OnDead func(DeadEvent)
	// Telemetry says where metrics and traces go (default: OpenTelemetry's
	// global providers, no-ops until the application installs an SDK).
	Telemetry Telemetry
	// Node names this relay, stably across restarts (say, the host or pod
	// name; each relay process its own). Its claims carry it, so a
	// restarted relay recognises the operations it was sending when it
	// stopped (Message.Redelivery). Empty: a random name per process, and
	// no redelivery is recognised after a restart.
	Node string
	// Ledger, if set, runs alongside the relay for as long as the engine
	// does: the ledger's sequencer (ledger.NewSequencer) appends every
	// stored operation to the Merkle log and publishes signed checkpoints
	// through the engine's sink. An engine with a ledger and no sink only
	// sequences (StoreOnly).
	Ledger LedgerRunner
}

// LedgerRunner runs next to the relay; package ledger's Sequencer
// implements it. Run works until ctx ends (sink may be nil).
type LedgerRunner interface {
	Run(ctx context.Context, store Store, sink Sink) error
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
