package benchkit

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/console"
	"github.com/go-trustlog/trustlog/core"
)

// InspectShape is the store the operator console's benchmark reads
// (BenchmarkInspect of each driver): N operations on Objects DOIDs and
// Actors actors, round robin by seq, recorded one second apart from Base.
// Every operation has a position (seq-1) but the last Unsequenced; each
// partition's cursor is its last operation below position N-Unsequenced-
// Backlog, so about Backlog operations wait above the cursors; every
// RetryEvery-th published operation is in the retry table, one in two of
// them dead. A driver fills the tables with bulk SQL (InspectFill) in
// minutes instead of recording a million operations through Insert.
type InspectShape struct {
	N, Objects, Actors, Unsequenced, Backlog, RetryEvery int
	Base                                                 time.Time
}

// DefaultInspectShape is the console's target store: TRUSTLOG_BENCH_OPS
// operations (default 1,000,000) on 100,000 objects and 1,000 actors,
// 10,000 unsequenced, 10,000 above the cursors, 1% in the retry table.
func DefaultInspectShape() InspectShape {
	return InspectShape{
		N:           EnvInt("TRUSTLOG_BENCH_OPS", 1_000_000),
		Objects:     100_000,
		Actors:      1000,
		Unsequenced: 10_000,
		Backlog:     10_000,
		RetryEvery:  100,
		Base:        time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

// Sequenced is the number of operations with a position (the tree size).
func (sh InspectShape) Sequenced() int { return sh.N - sh.Unsequenced }

// PublishedBelow is the position below which every partition is
// published: each cursor is its partition's last operation below it.
func (sh InspectShape) PublishedBelow() int { return sh.N - sh.Unsequenced - sh.Backlog }

// DOID is object k's DOID (benchkit.Op's form).
func (sh InspectShape) DOID(k int) string { return fmt.Sprintf("10.1000/bench/object-%06d", k) }

// Actor is actor k's name (benchkit.Op's form).
func (sh InspectShape) Actor(k int) string { return fmt.Sprintf("user-%04d@example.org", k) }

// Parts returns each object's partition in a store of p partitions,
// by object number: the drivers' fill joins it, as FNV-1a is not SQL.
func (sh InspectShape) Parts(p int) []int {
	out := make([]int, sh.Objects)
	for k := range out {
		out[k] = core.PartitionOf(sh.DOID(k), p)
	}
	return out
}

// InspectFill fills an empty migrated store with sh's operations.
type InspectFill func(tb testing.TB, s core.Store, sh InspectShape)

// Inspect runs BenchmarkInspect's sub-benchmarks on a store of sh's shape
// (filled once, untimed): Stats; the console's overview (Stats,
// Partitions and, when the store is a core.Inspector, Relays); and Find
// by DOID, by actor within the last tenth of the time range, and by state
// dead. Each reports ms/op, the mean of a call. The Find benchmarks also
// check what they found, so a figure never times an empty answer.
func Inspect(b *testing.B, s core.Store, fill InspectFill) {
	sh := DefaultInspectShape()
	ctx := context.Background()
	start := time.Now()
	fill(b, s, sh)
	b.Logf("filled %d operations in %s", sh.N, time.Since(start).Round(time.Second))
	st, err := s.Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	want := map[core.State]int64{}
	dead := int64(sh.PublishedBelow()/sh.RetryEvery) / 2
	want[core.StateDead] = dead
	want[core.StateRetrying] = int64(sh.PublishedBelow()/sh.RetryEvery) - dead
	want[core.StatePending] = int64(sh.N - sh.PublishedBelow())
	want[core.StatePublished] = int64(sh.N) - want[core.StatePending] - want[core.StateRetrying] - want[core.StateDead]
	for state, n := range want {
		// The retry rows are every RetryEvery-th seq (from 1) below the
		// published positions: allow the rounding at both ends.
		if d := st.Counts[state] - n; d < -2 || d > 2 {
			b.Fatalf("the filled store counts %d %s operations, want about %d (%v)", st.Counts[state], state, n, st.Counts)
		}
	}
	if st.TreeSize != int64(sh.Sequenced()) {
		b.Fatalf("tree size %d, want %d", st.TreeSize, sh.Sequenced())
	}
	var backlog int64
	for _, p := range st.Partitions {
		backlog += p.Backlog
	}
	if backlog != int64(sh.Sequenced()-sh.PublishedBelow()) {
		b.Fatalf("backlog %d over the partitions, want %d", backlog, sh.Sequenced()-sh.PublishedBelow())
	}

	timed := func(name string, fn func(i int) error) {
		b.Run(name, func(b *testing.B) {
			if err := fn(0); err != nil { // warm the caches once, untimed
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := fn(i); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
	timed("Stats", func(int) error {
		_, err := s.Stats(ctx)
		return err
	})
	in, isInspector := s.(core.Inspector)
	// The operator console's overview page, as trustlog serve renders it
	// (Stats, Relays, the latest checkpoint, the template).
	con, err := console.New(s, console.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	timed("Overview", func(int) error {
		rec := httptest.NewRecorder()
		con.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, console.Prefix, nil))
		if rec.Code != http.StatusOK {
			return fmt.Errorf("the console's overview answered %d: %s", rec.Code, rec.Body)
		}
		return nil
	})
	if !isInspector {
		b.Logf("the store does not implement core.Inspector: no Find figures")
		return
	}
	find := func(q core.FindQuery, want int) func(int) error {
		return func(i int) error {
			recs, err := in.Find(ctx, q)
			if err != nil {
				return err
			}
			if len(recs) != want {
				return fmt.Errorf("Find(%+v) found %d operations, want %d", q, len(recs), want)
			}
			return nil
		}
	}
	perObject := sh.N / sh.Objects
	timed("FindDOID", func(i int) error {
		return find(core.FindQuery{DOID: sh.DOID((i * 7919) % sh.Objects)}, perObject)(i)
	})
	last := sh.Base.Add(time.Duration(sh.N-sh.N/10) * time.Second)
	timed("FindActorRange", func(i int) error {
		q := core.FindQuery{Actor: sh.Actor((i * 37) % sh.Actors), From: last, To: sh.Base.Add(time.Duration(sh.N+1) * time.Second)}
		return find(q, min(core.FindLimitDefault, sh.N/10/sh.Actors))(i)
	})
	timed("FindDead", find(core.FindQuery{State: core.StateDead}, core.FindLimitDefault))
	timed("FindDeadPaged", func(i int) error {
		// A page from the middle of the dead list.
		return find(core.FindQuery{State: core.StateDead, AfterSeq: int64(sh.PublishedBelow() / 2)}, core.FindLimitDefault)(i)
	})
}
