package benchkit

import (
	"context"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// KeepUpObjects and KeepUpRelays shape the strict-order workload: few
// objects, so that each sees about five operations a second at 1,000/s,
// and two relays sharing the partitions, each with its own store handle
// as separate processes have.
const (
	KeepUpObjects = 200
	KeepUpRelays  = 2
)

// StrictKeepUp runs KeepUpBench at 1,000 operations a second for
// TRUSTLOG_BENCH_SECONDS (default 20), with no sink failure and with 1%
// of the sends refused.
func StrictKeepUp(b *testing.B, t Target) {
	d := time.Duration(EnvInt("TRUSTLOG_BENCH_SECONDS", 20)) * time.Second
	for _, f := range []struct {
		name  string
		every int
	}{{"none", 0}, {"1pct", 100}} {
		b.Run("failures="+f.name, func(b *testing.B) {
			KeepUpBench(b, t, 1000, d, f.every)
		})
	}
}

// KeepUpBench asks whether strict-order relays keep up with a steady
// writer: rate operations a second over KeepUpObjects DOIDs for d, from
// LatencyWriters connections, relayed by KeepUpRelays engines with
// StrictOrder to a memory sink that refuses every failEvery-th message it
// is offered (0: none) as a transient failure, so that operations go to
// the retry table and hold their DOID's later ones behind them.
//
// It reports the commits a second achieved, the commit → ack
// percentiles, catch-up-ms (from the last commit to the last first ack:
// near zero when the relays keep up, growing with d when they fall
// behind) and max-behind (the most operations committed and not yet
// acknowledged during the run). A per-DOID order break fails the
// benchmark.
func KeepUpBench(b *testing.B, t Target, rate int, d time.Duration, failEvery int) {
	var r LoadResult
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		url := t.NewURL(b)
		writer := t.Open(b, url)
		relays := make([]core.Store, KeepUpRelays)
		for j := range relays {
			relays[j] = t.Open(b, url)
		}
		b.StartTimer()
		var err error
		r, err = RunLoad(context.Background(), writer, relays,
			Load{Rate: rate, Duration: d, Objects: KeepUpObjects},
			core.EngineConfig{StrictOrder: true}, memory.Faults{FailEvery: failEvery})
		if err != nil {
			b.Fatal(err)
		}
		if r.OrderBreaks > 0 {
			b.Fatalf("strict order: %d operations reached the sink after a later one of their DOID", r.OrderBreaks)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(float64(r.Committed)/r.Elapsed.Seconds(), "commits/s")
	b.ReportMetric(ms(r.P50), "p50-ms")
	b.ReportMetric(ms(r.P99), "p99-ms")
	b.ReportMetric(ms(r.CatchUp), "catch-up-ms")
	b.ReportMetric(float64(r.MaxBehind), "max-behind")
}
