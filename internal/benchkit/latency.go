package benchkit

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// LatencyResult is the distribution of commit → sink ack times.
type LatencyResult struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

func (r LatencyResult) String() string {
	return fmt.Sprintf("n=%d p50=%s p90=%s p99=%s max=%s", r.N, r.P50, r.P90, r.P99, r.Max)
}

// ackSink records, for each message, the time from its commit to the
// sink's ack.
type ackSink struct {
	*memory.Sink
	mu        sync.Mutex
	committed map[string]time.Time
	lat       []time.Duration
}

func (a *ackSink) Publish(ctx context.Context, msgs []core.Message) []error {
	errs := a.Sink.Publish(ctx, msgs)
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, m := range msgs {
		if errs[i] == nil {
			if at, ok := a.committed[m.ID]; ok {
				a.lat = append(a.lat, now.Sub(at))
				delete(a.committed, m.ID)
			}
		}
	}
	return errs
}

// LatencyWriters is how many application connections share Latency's
// rate, each committing one operation per transaction on its own
// schedule: an application that records 1,000 operations a second does
// so from many requests at once, and a single connection is bounded by
// its commits' WAL flushes (about 560 a second on this project's
// machine with PostgreSQL) rather than by the relay.
const LatencyWriters = 8

// Latency records operations at a steady rate (ops/s) for d, one per
// transaction, from LatencyWriters concurrent writers through a client
// that shares nothing with the engine (as a separate application process
// would), while one engine relays to a memory sink; it returns the commit
// → ack distribution.
func Latency(ctx context.Context, s core.Store, rate int, d time.Duration, cfg core.EngineConfig) (LatencyResult, error) {
	sink := &ackSink{Sink: memory.New(memory.Faults{}), committed: map[string]time.Time{}}
	cfg.Logger = slog.New(slog.DiscardHandler)
	e, err := core.NewEngine(s, sink, cfg)
	if err != nil {
		return LatencyResult{}, err
	}
	if err := e.Start(ctx); err != nil {
		return LatencyResult{}, err
	}
	defer e.Stop(context.WithoutCancel(ctx))
	c, err := core.NewClient(s, nil, core.Config{Strategy: core.StoreOnly})
	if err != nil {
		return LatencyResult{}, err
	}
	time.Sleep(200 * time.Millisecond) // the engine is idle and listening
	writers := min(LatencyWriters, max(1, rate))
	end := time.Now().Add(d)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer ticks at rate/writers, offset by its share of
			// one tick, so the commits spread evenly.
			every := time.Second * time.Duration(writers) / time.Duration(rate)
			time.Sleep(every * time.Duration(w) / time.Duration(writers))
			tick := time.NewTicker(every)
			defer tick.Stop()
			for time.Now().Before(end) {
				<-tick.C
				op := Op(int(next.Add(1)-1), 5000)
				if err := c.Record(ctx, op); err != nil {
					errMu.Lock()
					firstErr = cmp.Or(firstErr, err)
					errMu.Unlock()
					return
				}
				sink.mu.Lock()
				sink.committed[op.OpID] = time.Now()
				sink.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return LatencyResult{}, firstErr
	}
	n := int(next.Load())
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sink.WaitFor(wctx, n); err != nil {
		return LatencyResult{}, err
	}
	sink.mu.Lock()
	lat := slices.Clone(sink.lat)
	sink.mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return LatencyResult{N: len(lat), P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: lat[len(lat)-1]}, nil
}

// LatencyBench runs Latency once per iteration and reports the
// percentiles in milliseconds.
func LatencyBench(b *testing.B, s func(b *testing.B) core.Store, rate int, d time.Duration, cfg core.EngineConfig) {
	var all LatencyResult
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := s(b)
		b.StartTimer()
		r, err := Latency(context.Background(), st, rate, d, cfg)
		if err != nil {
			b.Fatal(err)
		}
		all = r // the last iteration's distribution
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(all.P50), "p50-ms")
	b.ReportMetric(ms(all.P90), "p90-ms")
	b.ReportMetric(ms(all.P99), "p99-ms")
	b.ReportMetric(ms(all.Max), "max-ms")
	b.ReportMetric(float64(all.N)/d.Seconds(), "commits/s") // achieved, of the rate asked
}
