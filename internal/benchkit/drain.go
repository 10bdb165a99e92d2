package benchkit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/go-trustlog/trustlog/core"
)

// Target is one driver under benchmark.
type Target struct {
	// NewURL returns the store URL of a fresh, empty database or schema
	// (cleaned up by tb).
	NewURL func(tb testing.TB) string
	// Open opens and migrates a store at url (closed by tb).
	Open func(tb testing.TB, url string) core.Store
	// Raw returns the bare claim+settle loop on s's table.
	Raw func(s core.Store) RawLoop
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
// the raw loop and by the engine, each on a freshly seeded table, in the
// same iteration; it reports both rates and engine/raw.
func Drain(b *testing.B, t Target, n int, batches, workers []int) {
	for _, batch := range batches {
		for _, w := range workers {
			b.Run(fmt.Sprintf("batch=%d/workers=%d", batch, w), func(b *testing.B) {
				var raw, eng DrainResult
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					stores := Seeded(b, t, n, w)
					loops := make([]RawLoop, w)
					for j := range loops {
						loops[j] = t.Raw(stores[j])
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

					stores = Seeded(b, t, n, w)
					b.StartTimer()
					e, err := EngineDrain(context.Background(), stores, nil, n, batch)
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					eng.N, eng.Elapsed = eng.N+e.N, eng.Elapsed+e.Elapsed
				}
				b.ReportMetric(raw.Rate(), "raw-ops/s")
				b.ReportMetric(eng.Rate(), "engine-ops/s")
				b.ReportMetric(eng.Rate()/raw.Rate(), "ratio")
			})
		}
	}
}

// Seeded returns w handles on a fresh store holding n pending operations.
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
