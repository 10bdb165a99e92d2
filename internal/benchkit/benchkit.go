// Package benchkit measures the relay against the bare SQL loop it is built
// on, in the same run, so every figure is a ratio that holds on any
// machine. Drivers' benchmarks and `trustlog bench` share it.
package benchkit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// Op returns the i-th benchmark operation: realistic field sizes, spread
// over objects DOIDs.
func Op(i, objects int) *core.Operation {
	return &core.Operation{
		Source:           core.SourceDOIP,
		Type:             core.OpUpdate,
		DOID:             fmt.Sprintf("10.1000/bench/object-%06d", i%objects),
		DOPrefix:         "10.1000",
		DORepository:     "bench",
		Actor:            fmt.Sprintf("user-%04d@example.org", i%1000),
		ProducerID:       "trustlog-bench",
		RequestBodyHash:  fmt.Sprintf("%064x", i),
		ResponseBodyHash: fmt.Sprintf("%064x", i+1),
		ClientIP:         "192.0.2.10",
		ServerIP:         "198.51.100.7",
	}
}

// Seed records n pending operations in transactions of 1000.
func Seed(ctx context.Context, s core.Store, n, objects int) error {
	c, err := core.NewClient(s, nil, core.Config{Strategy: core.StoreOnly})
	if err != nil {
		return err
	}
	for i := 0; i < n; i += 1000 {
		ops := make([]*core.Operation, 0, 1000)
		for j := i; j < min(n, i+1000); j++ {
			ops = append(ops, Op(j, objects))
		}
		if err := c.Record(ctx, ops...); err != nil {
			return err
		}
	}
	return nil
}

// DrainResult is one measured drain.
type DrainResult struct {
	N       int
	Elapsed time.Duration
	// CPU is what this process used meanwhile (the relays, and the
	// benchmark's own polling), ServerCPU what the database server's
	// processes on this machine used (0 for SQLite, or a server
	// elsewhere): on a machine whose cores are full, the split says
	// whose work a faster drain has to cut.
	CPU, ServerCPU time.Duration
}

// Rate is operations per second.
func (r DrainResult) Rate() float64 { return float64(r.N) / r.Elapsed.Seconds() }

// Add sums two drains: their operations, times and CPU.
func (r DrainResult) Add(o DrainResult) DrainResult {
	return DrainResult{N: r.N + o.N, Elapsed: r.Elapsed + o.Elapsed, CPU: r.CPU + o.CPU, ServerCPU: r.ServerCPU + o.ServerCPU}
}

// ReportCPU reports the drain's CPU per operation as prefix-cpu-us/op
// (this process) and prefix-db-cpu-us/op (the database server), the
// latter only when a server on this machine was seen.
func (r DrainResult) ReportCPU(b interface{ ReportMetric(float64, string) }, prefix string) {
	if r.N == 0 || r.CPU == 0 {
		return
	}
	b.ReportMetric(float64(r.CPU.Microseconds())/float64(r.N), prefix+"-cpu-us/op")
	if r.ServerCPU > 0 {
		b.ReportMetric(float64(r.ServerCPU.Microseconds())/float64(r.N), prefix+"-db-cpu-us/op")
	}
}

// Measure runs f and adds to its result the CPU used meanwhile.
func Measure(f func() (DrainResult, error)) (DrainResult, error) {
	self, server := cpuNow()
	r, err := f()
	self2, server2 := cpuNow()
	r.CPU, r.ServerCPU = self2-self, server2-server
	return r, err
}

// EngineDrain starts one engine per store (each an own handle on the same
// database, as separate processes would have) publishing to sink (nil: a
// new memory sink), and measures until n operations are settled. The
// engines poll at the relay's defaults (core.PollIntervalDefault with
// wake-on-commit, PollIntervalNoListen without), as `trustlog relay`
// does: a 5 ms poll, which this used to set, made sixteen partition reads
// every 5 ms in each engine and cost the drain from scratch a sixth of
// its rate on PostgreSQL (BENCHMARKS.md).
func EngineDrain(ctx context.Context, stores []core.Store, sink core.Sink, n, batch int) (DrainResult, error) {
	return Measure(func() (DrainResult, error) { return engineDrain(ctx, stores, sink, n, batch) })
}

func engineDrain(ctx context.Context, stores []core.Store, sink core.Sink, n, batch int) (DrainResult, error) {
	if sink == nil {
		sink = memory.New(memory.Faults{})
	}
	cfg := core.EngineConfig{BatchSize: batch, RetryPoll: time.Second, Logger: slog.New(slog.DiscardHandler)}
	engines := make([]*core.Engine, len(stores))
	for i, s := range stores {
		e, err := core.NewEngine(s, sink, cfg)
		if err != nil {
			return DrainResult{}, err
		}
		engines[i] = e
	}
	start := time.Now()
	for _, e := range engines {
		if err := e.Start(ctx); err != nil {
			return DrainResult{}, err
		}
	}
	defer func() {
		for _, e := range engines {
			e.Stop(context.WithoutCancel(ctx))
		}
	}()
	for {
		var done int64
		for _, e := range engines {
			done += e.Stats().Published
		}
		if done >= int64(n) {
			return DrainResult{N: n, Elapsed: time.Since(start)}, nil
		}
		select {
		case <-ctx.Done():
			return DrainResult{}, fmt.Errorf("drained %d of %d: %w", done, n, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// RawLoop reads up to batch rows of each partition it owns above its
// cursor and moves the cursor, with the plainest SQL for its database; it
// returns how many rows it read (0 when nothing is left).
type RawLoop func(ctx context.Context, batch int) (int, error)

// RawDrain runs one raw loop per worker until each finds nothing left.
func RawDrain(ctx context.Context, loops []RawLoop, batch int) (DrainResult, error) {
	start := time.Now()
	errs := make(chan error, len(loops))
	counts := make(chan int, len(loops))
	for _, loop := range loops {
		go func() {
			total := 0
			for {
				n, err := loop(ctx, batch)
				if err != nil {
					errs <- err
					return
				}
				if n == 0 {
					counts <- total
					return
				}
				total += n
			}
		}()
	}
	total := 0
	for range loops {
		select {
		case err := <-errs:
			return DrainResult{}, err
		case n := <-counts:
			total += n
		}
	}
	return DrainResult{N: total, Elapsed: time.Since(start)}, nil
}

// ScanSeqs reads a claim's rows (seq first, then any columns) the way a
// hand-written relay would, and returns the seqs.
func ScanSeqs(rows interface {
	Next() bool
	Scan(...any) error
	Close() error
	Columns() ([]string, error)
}) ([]int64, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(cols))
	var seq int64
	vals[0] = &seq
	for i := 1; i < len(vals); i++ {
		vals[i] = new(any)
	}
	var seqs []int64
	for rows.Next() {
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		seqs = append(seqs, seq)
	}
	return seqs, rows.Close()
}
