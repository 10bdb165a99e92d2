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
	lastAck   time.Time // of the last first ack
	acked     map[string]bool
	early     map[string]bool // acked before committed was told
}

// commit notes that id was committed now.
func (a *ackSink) commit(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.early[id] {
		delete(a.early, id)
		a.lat = append(a.lat, 0)
		return
	}
	a.committed[id] = time.Now()
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
				a.lastAck = now
				delete(a.committed, m.ID)
			} else if !a.acked[m.ID] {
				// Acknowledged before its writer took the commit's time.
				a.early[m.ID] = true
				a.lastAck = now
			}
			a.acked[m.ID] = true
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
	r, err := RunLoad(ctx, s, []core.Store{s}, Load{Rate: rate, Duration: d}, cfg, memory.Faults{})
	return r.LatencyResult, err
}

// Load is a steady write workload: Rate operations a second for
// Duration, one per transaction, from Writers connections (default
// LatencyWriters), over Objects DOIDs (default 5000).
type Load struct {
	Rate     int
	Duration time.Duration
	Objects  int
	Writers  int
}

// LoadResult is what RunLoad measured.
type LoadResult struct {
	// LatencyResult is the commit → first ack distribution.
	LatencyResult
	// Committed is how many operations the writers committed, in Elapsed.
	Committed int
	Elapsed   time.Duration
	// CatchUp is the time from the writers' last commit to the sink's
	// last first ack: near zero when the relays keep up, growing with the
	// run's length when they fall behind.
	CatchUp time.Duration
	// MaxBehind is the most operations committed and not yet acknowledged
	// seen while writing (sampled every 50ms).
	MaxBehind int
	// OrderBreaks counts first acks of a DOID's operation that came after
	// the first ack of a later position of the same DOID.
	OrderBreaks int
}

// RunLoad records load through a client of writer (sharing nothing with
// the engines, as a separate application process would) while one engine
// per store in relays publishes to a memory sink with faults, and returns
// the commit → ack distribution, how far behind the relays fell and how
// many per-DOID order breaks the sink saw.
func RunLoad(ctx context.Context, writer core.Store, relays []core.Store, load Load, cfg core.EngineConfig, faults memory.Faults) (LoadResult, error) {
	objects := cmp.Or(load.Objects, 5000)
	sink := &ackSink{Sink: memory.New(faults), committed: map[string]time.Time{}, acked: map[string]bool{}, early: map[string]bool{}}
	cfg.Logger = slog.New(slog.DiscardHandler)
	for _, s := range relays {
		e, err := core.NewEngine(s, sink, cfg)
		if err != nil {
			return LoadResult{}, err
		}
		if err := e.Start(ctx); err != nil {
			return LoadResult{}, err
		}
		defer e.Stop(context.WithoutCancel(ctx))
	}
	c, err := core.NewClient(writer, nil, core.Config{Strategy: core.StoreOnly})
	if err != nil {
		return LoadResult{}, err
	}
	time.Sleep(200 * time.Millisecond) // the engines are idle and listening
	rate := load.Rate
	writers := min(cmp.Or(load.Writers, LatencyWriters), max(1, rate))
	begin := time.Now()
	end := begin.Add(load.Duration)
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
				op := Op(int(next.Add(1)-1), objects)
				if err := c.Record(ctx, op); err != nil {
					errMu.Lock()
					firstErr = cmp.Or(firstErr, err)
					errMu.Unlock()
					return
				}
				sink.commit(op.OpID)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	res := LoadResult{}
	sample := time.NewTicker(50 * time.Millisecond)
	for writing := true; writing; {
		select {
		case <-done:
			writing = false
		case <-sample.C:
			sink.mu.Lock()
			res.MaxBehind = max(res.MaxBehind, len(sink.committed))
			sink.mu.Unlock()
		}
	}
	sample.Stop()
	lastCommit := time.Now()
	res.Elapsed = lastCommit.Sub(begin)
	if firstErr != nil {
		return LoadResult{}, firstErr
	}
	n := int(next.Load())
	res.Committed = n
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	last, err := sink.waitAcked(wctx, n)
	if err != nil {
		return LoadResult{}, err
	}
	res.CatchUp = max(0, last.Sub(lastCommit))
	sink.mu.Lock()
	lat := slices.Clone(sink.lat)
	sink.mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	res.LatencyResult = LatencyResult{N: len(lat), P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: lat[len(lat)-1]}
	res.OrderBreaks = orderBreaks(sink.Messages())
	return res, nil
}

// waitAcked waits until n distinct operations were acknowledged and
// returns the time of the last first ack.
func (a *ackSink) waitAcked(ctx context.Context, n int) (time.Time, error) {
	for {
		a.mu.Lock()
		got, last := len(a.lat), a.lastAck
		a.mu.Unlock()
		if got >= n {
			return last, nil
		}
		if err := a.Sink.WaitFor(ctx, a.Sink.Len()+1); err != nil {
			return time.Time{}, fmt.Errorf("benchkit: %d of %d operations acknowledged: %w", got, n, err)
		}
	}
}

// orderBreaks counts, in the sink's arrival order, the first arrivals of
// an operation whose position is below that of an earlier first arrival
// of the same DOID.
func orderBreaks(msgs []core.Message) int {
	seen := map[string]bool{}
	top := map[string]int64{}
	breaks := 0
	for _, m := range msgs {
		if m.Kind != core.KindOperation || seen[m.ID] {
			continue
		}
		seen[m.ID] = true
		if p, ok := top[m.Key]; ok && m.Position < p {
			breaks++
			continue
		}
		top[m.Key] = m.Position
	}
	return breaks
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
