package benchkit

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// Target is one driver under benchmark.
type Target struct {
	// NewURL returns the store URL of a fresh, empty database or schema
	// (cleaned up by tb).
	NewURL func(tb testing.TB) string
	// Open opens and migrates a store at url (closed by tb).
	Open func(tb testing.TB, url string) core.Store
}

// EnvInt reads a positive integer from the environment, or def.
func EnvInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// Drain runs BenchmarkDrain's sub-benchmarks for a target: for each batch
// size and worker count, a backlog of n pending operations is drained by
// the raw loop (from a sequenced backlog, sequencing untimed), by the
// engine over a sequenced backlog (publishing alone) and by the engine
// from unsequenced operations (sequencing included), each on a freshly
// seeded table, in the same iteration; it reports the three rates,
// engine/raw, publish/raw, and the rate of the untimed sequencing
// (core.SequenceAll alone, sequence-ops/s).
func Drain(b *testing.B, t Target, n int, batches, workers []int) {
	for _, batch := range batches {
		for _, w := range workers {
			b.Run(fmt.Sprintf("batch=%d/workers=%d", batch, w), func(b *testing.B) {
				var raw, eng, pub, seq DrainResult
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					stores := Seeded(b, t, n, w)
					q, err := Measure(func() (DrainResult, error) {
						start := time.Now()
						err := sequence(stores[0])
						return DrainResult{N: n, Elapsed: time.Since(start)}, err
					})
					if err != nil {
						b.Fatal(err)
					}
					seq = seq.Add(q)
					loops := make([]RawLoop, w)
					for j := range loops {
						l, err := RawFor(stores[j], j, w)
						if err != nil {
							b.Fatal(err)
						}
						loops[j] = l
					}
					b.StartTimer()
					r, err := RawDrain(context.Background(), loops, batch)
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					if r.N != n {
						b.Fatalf("raw loop drained %d of %d", r.N, n)
					}
					raw.N, raw.Elapsed = raw.N+r.N, raw.Elapsed+r.Elapsed

					// The engine over a backlog that already has its
					// positions: publishing alone, what the raw loop does.
					stores = Seeded(b, t, n, w)
					if err := sequence(stores[0]); err != nil {
						b.Fatal(err)
					}
					p, err := EngineDrain(context.Background(), stores, nil, n, batch)
					if err != nil {
						b.Fatal(err)
					}
					pub = pub.Add(p)

					stores = Seeded(b, t, n, w)
					b.StartTimer()
					e, err := EngineDrain(context.Background(), stores, nil, n, batch)
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					eng = eng.Add(e)
				}
				b.ReportMetric(raw.Rate(), "raw-ops/s")
				b.ReportMetric(eng.Rate(), "engine-ops/s")
				b.ReportMetric(eng.Rate()/raw.Rate(), "ratio")
				b.ReportMetric(pub.Rate(), "publish-ops/s")
				b.ReportMetric(pub.Rate()/raw.Rate(), "publish-ratio")
				b.ReportMetric(seq.Rate(), "sequence-ops/s")
				eng.ReportCPU(b, "engine")
				pub.ReportCPU(b, "publish")
				seq.ReportCPU(b, "sequence")
			})
		}
	}
}

// FromScratch runs BenchmarkDrainFromScratch for a target: n pending
// operations without positions, seeded untimed, drained by one relay
// (sequencing included) at batch; it reports engine-ops/s and the CPU
// split as Drain does. It is Drain's engine-ops/s alone, a few seconds
// a run, for measuring one change against another. With
// TRUSTLOG_BENCH_PROFILE set, a CPU profile of a drain alone (not the
// seeding: the first drain of the benchmark's last run) is written to
// that file.
func FromScratch(b *testing.B, t Target, n, batch int) {
	var eng DrainResult
	var prof *os.File
	if path := os.Getenv("TRUSTLOG_BENCH_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		prof = f
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		stores := Seeded(b, t, n, 1)
		if prof != nil {
			if err := pprof.StartCPUProfile(prof); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		e, err := EngineDrain(context.Background(), stores, nil, n, batch)
		b.StopTimer()
		if prof != nil {
			pprof.StopCPUProfile()
			prof = nil // one profile: the first drain
		}
		if err != nil {
			b.Fatal(err)
		}
		eng = eng.Add(e)
	}
	b.ReportMetric(eng.Rate(), "engine-ops/s")
	eng.ReportCPU(b, "engine")
}

// sequence gives the seeded backlog its positions (the raw loop reads by
// position; the engine sequences as it drains).
func sequence(s core.Store) error {
	_, err := core.SequenceAll(context.Background(), s, 0)
	return err
}

// Seeded returns w handles on a fresh store holding n pending operations
// without positions.
func Seeded(b *testing.B, t Target, n, w int) []core.Store {
	url := t.NewURL(b)
	s := t.Open(b, url)
	if err := Seed(context.Background(), s, n, 2000); err != nil {
		b.Fatal(err)
	}
	stores := []core.Store{s}
	for len(stores) < w {
		stores = append(stores, t.Open(b, url))
	}
	return stores
}

// NamedTarget is a Target with the name its sub-benchmark carries.
type NamedTarget struct {
	Name string
	Target
}

// RelayVsMemory drains n operations at batch 1000 to the sink newSink
// returns (a fresh one per iteration, closed after it) and, in the same
// iteration, an identical backlog to the memory sink, for each store; it
// reports both rates and sink/memory as "ratio". unit names the sink's
// rate ("kafka-ops/s").
func RelayVsMemory(b *testing.B, stores []NamedTarget, n int, unit string, newSink func(b *testing.B) core.Sink) {
	for _, st := range stores {
		b.Run(fmt.Sprintf("store=%s/batch=1000", st.Name), func(b *testing.B) {
			var mem, other DrainResult
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s := Seeded(b, st.Target, n, 1)
				b.StartTimer()
				r, err := EngineDrain(context.Background(), s, nil, n, 1000)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				mem.N, mem.Elapsed = mem.N+r.N, mem.Elapsed+r.Elapsed

				sink := newSink(b)
				s = Seeded(b, st.Target, n, 1)
				b.StartTimer()
				r, err = EngineDrain(context.Background(), s, sink, n, 1000)
				b.StopTimer()
				sink.Close()
				if err != nil {
					b.Fatal(err)
				}
				other.N, other.Elapsed = other.N+r.N, other.Elapsed+r.Elapsed
			}
			b.ReportMetric(mem.Rate(), "memory-ops/s")
			b.ReportMetric(other.Rate(), unit)
			b.ReportMetric(other.Rate()/mem.Rate(), "ratio")
		})
	}
}

// Write runs WritePath for 1 and for 100 operations per transaction (the
// plain INSERT interleaved, same run) and reports RecordTx's time over the
// plain INSERT's as "record/plain", with allocations: the Go benchmark
// behind `trustlog bench write`, for -cpuprofile and -memprofile.
func Write(b *testing.B, t Target, txs int) {
	for _, perTx := range []int{1, 100} {
		b.Run(fmt.Sprintf("ops=%d", perTx), func(b *testing.B) {
			st := t.Open(b, t.NewURL(b))
			b.ReportAllocs()
			var all WriteResult
			for i := 0; i < b.N; i++ {
				r, err := WritePath(context.Background(), st, perTx, WriteTxs(perTx, txs))
				if err != nil {
					b.Fatal(err)
				}
				all.PerTx, all.Txs, all.Record, all.Plain = perTx, all.Txs+r.Txs, all.Record+r.Record, all.Plain+r.Plain
			}
			b.ReportMetric(all.Overhead(), "record/plain")
			b.ReportMetric(all.RecordRate(), "record-ops/s")
			b.ReportMetric(all.PlainRate(), "plain-ops/s")
		})
	}
}
