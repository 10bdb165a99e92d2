package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-trustlog/trustlog/internal/backoff"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
)

// engineFlags binds the engine's configuration to flags.
func engineFlags(f *pflag.FlagSet, c *core.EngineConfig) {
	f.IntVar(&c.Workers, "workers", core.WorkersDefault, fmt.Sprintf("partition-sharing members in this process, each owning its share as a relay would (at most %d)", core.MaxWorkers))
	f.IntVar(&c.BatchSize, "batch", core.BatchSizeDefault, "operations per read of a partition")
	f.IntVar(&c.SequenceBatch, "sequence-batch", core.SequenceBatchDefault, "most operations the sequencer positions per transaction: larger drains a backlog faster, smaller holds less memory")
	f.DurationVar(&c.Lease, "lease", core.LeaseDefault, "partition and sequencer lease: a dead relay's partitions move after this long")
	f.DurationVar(&c.PublishTimeout, "publish-timeout", core.PublishTimeoutDefault, "bound on one batch's publish (at most half of --lease)")
	f.DurationVar(&c.PollInterval, "poll", 0, "idle poll interval (default 1s with wake-on-commit, 100ms without)")
	f.IntVar(&c.MaxAttempts, "max-attempts", core.MaxAttemptsDefault, "failed sends before an operation goes dead")
	f.DurationVar(&c.BackoffBase, "backoff", core.BackoffBaseDefault, "first retry delay; doubles per attempt")
	f.DurationVar(&c.BackoffMax, "backoff-max", core.BackoffMaxDefault, "longest retry delay")
	f.BoolVar(&c.StrictOrder, "strict", false, "strict per-object order: a failing operation holds back later ones of its DOID")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", core.ShutdownTimeoutDefault, "on SIGINT/SIGTERM, how long to finish the batches in hand before aborting them")
	f.DurationVar(&c.ProbeInterval, "probe-interval", core.ProbeIntervalDefault, "while the sink is unavailable, the longest pause between tries of it")
}

// engineFlagNames maps core.EngineConfig fields to the flags engineFlags
// binds them to.
var engineFlagNames = map[string]string{
	"Workers": "workers", "BatchSize": "batch", "SequenceBatch": "sequence-batch", "Lease": "lease", "PublishTimeout": "publish-timeout",
	"PollInterval": "poll", "MaxAttempts": "max-attempts", "BackoffMax": "backoff-max",
	"ShutdownTimeout": "shutdown-timeout", "ProbeInterval": "probe-interval",
}

// checkEngineFlags validates the engine's configuration from flags f
// before anything is opened, and names the flag at fault (and its value)
// in a usage error.
func checkEngineFlags(f *pflag.FlagSet, c core.EngineConfig) error {
	err := c.Validate()
	var ce *core.ConfigError
	if errors.As(err, &ce) {
		if name, ok := engineFlagNames[ce.Field]; ok {
			if fl := f.Lookup(name); fl != nil {
				return usagef("--%s %s: %s", name, fl.Value, ce.Reason)
			}
		}
	}
	return err
}

// memorySinkWarning is what a relay to memory:// logs once at start: the
// sink is allowed (demos, tests) but keeps nothing for anyone else.
const memorySinkWarning = "the memory:// sink keeps messages in this process only: nothing outlives it, " +
	"and no other process (verify-sink) can read them; use Kafka or Pulsar to keep them"

// startRetry spaces a starting relay's tries to open its store and sink.
var startRetry = backoff.Policy{Base: 250 * time.Millisecond, Max: 5 * time.Second}

func (a *app) relayCmd() *cobra.Command {
	var cfg core.EngineConfig
	var migrate bool
	var ledgerKey, metricsAddr string
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Publish stored operations to the sink until interrupted",
		Long: `Publish stored operations to the sink, at least once and in order per object,
until SIGINT or SIGTERM. Every relay gives committed operations their positions
in the log (one leader at a time) and shares the store's partitions with the
other live relays: each partition is published by one relay at a time, in
position order, from its cursor. On a signal the relay finishes the batches in
hand (within --shutdown-timeout), gives its partitions back, and exits 0.

A memory:// sink keeps what the relay publishes in the relay's own process
only (for demos and tests): the relay warns at start that nothing outlives it.

With --ledger-key-file the relay also signs checkpoints of the store's Merkle
log (one signer among all relays, by a lease) and publishes them through the
sink; without --sink it then only sequences and signs.

With --metrics-addr the relay serves on that address:
  /metrics  Prometheus metrics: the relay's (latency histograms in seconds),
            the Go runtime's and the process's; target_info has
            service_name="trustlog"
  /healthz  200 "ok" while the process runs (liveness)
  /readyz   200 when the relay is ready: the store answers, its schema is
            current (every migration applied) and the sink is not in an
            outage; 503 otherwise, and until the store and sink are open.
            The JSON body names each check (store, schema, sink) and its
            state: ok, fail (with its error), unknown (not checked yet) or
            none (no sink: the relay only sequences the ledger).

With OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set,
the relay (and record) export traces by OTLP, http/protobuf unless
OTEL_EXPORTER_OTLP_PROTOCOL says http/json or grpc: a span trustlog.batch per
batch, naming its operations by op_id (see docs/operating.md, "Traces").`,
		Example: `  trustlog --store postgres://app@db/app --sink kafka://k1:9092/trustlog.ops relay --workers 2
  TRUSTLOG_STORE=sqlite:app.db TRUSTLOG_SINK=memory:// trustlog relay --strict`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := checkEngineFlags(cmd.Flags(), cfg); err != nil {
				return err
			}
			if core.Scheme(a.sinkURL) == "memory" {
				a.log.Warn(memorySinkWarning)
			}
			var health *relayHealth
			if metricsAddr != "" {
				tel, h, err := a.serveMetrics(ctx, metricsAddr)
				if err != nil {
					return err
				}
				cfg.Telemetry, health = tel, h
			}
			tp, err := a.tracerProvider(ctx) // OTEL_EXPORTER_OTLP_*: see tracing.go
			if err != nil {
				return err
			}
			cfg.Telemetry.TracerProvider = tp
			strategy := core.StoreAndPublish
			if ledgerKey != "" {
				b, err := os.ReadFile(ledgerKey)
				if err != nil {
					return usagef("--ledger-key-file: %v", err)
				}
				seq, err := ledger.NewSequencer(ledger.Config{Key: string(b), Logger: a.log, Telemetry: cfg.Telemetry})
				if err != nil {
					return usagef("--ledger-key-file %s: %v", ledgerKey, err)
				}
				cfg.Ledger = seq
				if a.sinkURL == "" {
					strategy = core.StoreOnly // sequence and sign only
				}
			}
			c, err := a.openClient(ctx, strategy, cfg, migrate)
			retry := backoff.Series{Policy: startRetry}
			for err != nil && transient(err) {
				// A database restarting or a broker not up yet is no reason
				// for a relay to die: it waits for them, until stopped.
				wait := retry.Next()
				a.log.Warn("relay cannot start yet; retrying", "error", err, "in", wait)
				if backoff.Sleep(ctx, wait) != nil {
					return nil
				}
				c, err = a.openClient(ctx, strategy, cfg, migrate)
			}
			if err != nil {
				return err
			}
			defer c.Close()
			e, err := c.Engine()
			if err != nil {
				return err
			}
			health.attach(c.Store(), c.Sink(), e)
			start := time.Now()
			err = e.Run(ctx)
			st := e.Stats()
			a.log.Info("relay stopped", "published", st.Published, "retried", st.Retried, "dead", st.Dead,
				"sequenced", st.Sequenced, "uptime", time.Since(start).Round(time.Millisecond))
			return err
		},
	}
	engineFlags(cmd.Flags(), &cfg)
	cmd.Flags().BoolVar(&migrate, "migrate", false, "apply migrations before relaying")
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics (/metrics), liveness (/healthz) and readiness (/readyz) on this address (e.g. :9464)")
	cmd.Flags().StringVar(&cfg.Node, "node", "", "this relay's name in the store's member list, unique per live process (default: host, pid and random bits)")
	cmd.Flags().StringVar(&ledgerKey, "ledger-key-file", "", "Ed25519 note private key: sign checkpoints of the Merkle log (which the relay always builds) with it and publish them through the sink (env TRUSTLOG_LEDGER_KEY_FILE)")
	return cmd
}

// transient reports whether an error opening the relay's store or sink may
// go away by itself (a server down or restarting) rather than being a
// mistake in its configuration, which is reported at once.
func transient(err error) bool {
	var ue usageError
	return !errors.As(err, &ue) && !errors.Is(err, core.ErrInvalidConfig) && !errors.Is(err, core.ErrInvalidURL) &&
		!errors.Is(err, core.ErrUnknownScheme) && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrPermission)
}
