package postgres_test

import (
	"context"
	"fmt"
	neturl "net/url"
	"strconv"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/benchkit"
)

var target = benchkit.Target{
	NewURL: func(tb testing.TB) string { return postgrestest.NewSchema(tb) },
	Open:   func(tb testing.TB, url string) core.Store { return postgrestest.Open(tb, url) },
}

// BenchmarkWrite: RecordTx vs a plain INSERT of the same rows, same run
// (see benchkit.Write).
//
//	go test ./drivers/postgres -run '^$' -bench Write -benchtime 1x -count 3
func BenchmarkWrite(b *testing.B) {
	benchkit.Write(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_TXS", 2000))
}

// BenchmarkDrain: engine vs the raw loop, same run (see benchkit.Drain).
//
//	go test ./drivers/postgres -run '^$' -bench Drain -benchtime 1x -count 3
func BenchmarkDrain(b *testing.B) {
	benchkit.Drain(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_N", 200_000), []int{100, 1000}, []int{1, 4})
}

// BenchmarkDrainFromScratch: one relay drains a backlog without
// positions, Drain's engine-ops/s alone (see benchkit.FromScratch).
//
//	go test ./drivers/postgres -run '^$' -bench DrainFromScratch -benchtime 1x -count 5
func BenchmarkDrainFromScratch(b *testing.B) {
	benchkit.FromScratch(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_N", 200_000), 1000)
}

// BenchmarkLatency: commit → sink ack at a steady 1000 ops/s, woken by
// NOTIFY and, with notify=false, polling.
//
//	go test ./drivers/postgres -run '^$' -bench Latency -benchtime 1x
func BenchmarkLatency(b *testing.B) {
	d := time.Duration(benchkit.EnvInt("TRUSTLOG_BENCH_SECONDS", 10)) * time.Second
	for _, mode := range []string{"notify", "poll"} {
		b.Run(mode, func(b *testing.B) {
			benchkit.LatencyBench(b, func(b *testing.B) core.Store {
				url := postgrestest.NewSchema(b)
				if mode == "poll" {
					url += "&notify=false"
				}
				return postgrestest.Open(b, url)
			}, 1000, d, core.EngineConfig{})
		})
	}
}

// BenchmarkStrictKeepUp: two strict-order relays and a writer at
// 1,000 operations a second over 200 DOIDs, with no sink failure and
// with 1% of the sends refused (see benchkit.KeepUpBench).
//
//	go test ./drivers/postgres -run '^$' -bench StrictKeepUp -benchtime 1x -count 2
func BenchmarkStrictKeepUp(b *testing.B) {
	benchkit.StrictKeepUp(b, target)
}

// BenchmarkInspect: the operator console's reads (Stats, the overview,
// Find) on a store of a million operations (see benchkit.Inspect;
// TRUSTLOG_BENCH_OPS sets the size). The store is filled with bulk SQL,
// then vacuumed and analysed as autovacuum would have left it.
//
//	go test ./drivers/postgres -run '^$' -bench Inspect -benchtime 20x -timeout 30m
func BenchmarkInspect(b *testing.B) {
	s := postgrestest.Open(b, postgrestest.NewSchema(b))
	benchkit.Inspect(b, s, func(tb testing.TB, _ core.Store, sh benchkit.InspectShape) {
		fillInspect(tb, s, sh)
	})
}

// fillInspect fills s with sh's operations: positions, cursors, retry
// rows and the tree size as the store would hold them (no stored hashes:
// nothing the console reads needs them).
func fillInspect(tb testing.TB, s *postgres.Store, sh benchkit.InspectShape) {
	ctx := context.Background()
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	ps, err := s.Partitions(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	parts := sh.Parts(len(ps))
	ks, pv := make([]int64, len(parts)), make([]int64, len(parts))
	for k, p := range parts {
		ks[k], pv[k] = int64(k), int64(p)
	}
	exec := func(q string, args ...any) {
		tb.Helper()
		r, err := s.Render(q)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, r, args...); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TEMP TABLE bench_parts (k INTEGER PRIMARY KEY, part SMALLINT NOT NULL)`)
	exec(`INSERT INTO bench_parts SELECT * FROM unnest($1::bigint[], $2::bigint[])`, ks, pv)
	exec(`INSERT INTO {{.Op}} (seq, op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor, producer_id,
		hash_alg, request_body_hash, response_body_hash, client_ip, created_at, op_hash, signer, sign, updated_at, part, leaf_index)
		SELECT g.i, '00000000-0000-7000-8000-' || lpad(g.i::text, 12, '0'), 'DOIP', 'Op.Update',
			'10.1000/bench/object-' || lpad((g.i % $2)::text, 6, '0'), '10.1000', 'bench',
			'user-' || lpad((g.i % $3)::text, 4, '0') || '@example.org', 'trustlog-bench', 'sha256',
			repeat('a', 64), repeat('b', 64), '192.0.2.10', $4::timestamptz + g.i * interval '1 second', repeat('c', 64), '', '',
			$4::timestamptz + g.i * interval '1 second', bp.part, CASE WHEN g.i <= $5 THEN g.i - 1 END
		FROM generate_series(1, $1::bigint) AS g(i) JOIN bench_parts AS bp ON bp.k = g.i % $2
		ORDER BY g.i`, sh.N, sh.Objects, sh.Actors, sh.Base, sh.Sequenced())
	exec(`ALTER TABLE {{.Op}} ALTER COLUMN seq RESTART WITH ` + strconv.Itoa(sh.N+1))
	exec(`UPDATE {{.Partition}} AS p SET cursor = COALESCE((SELECT MAX(o.leaf_index) FROM {{.Op}} AS o
		WHERE o.part = p.part AND o.leaf_index < $1), -1)`, sh.PublishedBelow())
	exec(`INSERT INTO {{.Retry}} (seq, part, doid, leaf_index, attempts, due_at, last_error, dead, updated_at)
		SELECT seq, part, doid, leaf_index, 3, created_at + interval '1 hour', 'sink refused: error ' || (seq % 10),
			seq % $2 = 0, created_at
		FROM {{.Op}} WHERE leaf_index < $1 AND seq % $3 = 0`, sh.PublishedBelow(), 2*sh.RetryEvery, sh.RetryEvery)
	exec(`UPDATE {{.Tree}} SET size = $1 WHERE id = 1`, sh.Sequenced())
	exec(`VACUUM ANALYZE {{.Op}}, {{.Retry}}, {{.Partition}}`)
}

// BenchmarkSequenceSearchIndexes: what the console's search indexes
// (operation (doid, seq) and (op_actor, seq, created_at), migration
// 00005) cost the sequencer. On PostgreSQL giving an operation its
// position writes a new version of its row (the UPDATE is not HOT:
// leaf_index is indexed), so every index of the operation table gets an
// entry; InnoDB and SQLite only touch the indexes that hold leaf_index.
// Each round seeds TRUSTLOG_BENCH_N operations (default 200,000) twice,
// as migrated and with the two indexes dropped, and sequences both.
//
//	go test ./drivers/postgres -run '^$' -bench SequenceSearchIndexes -benchtime 1x -count 3
func BenchmarkSequenceSearchIndexes(b *testing.B) {
	n := benchkit.EnvInt("TRUSTLOG_BENCH_N", 200_000)
	for _, indexes := range []string{"search", "none"} {
		b.Run("indexes="+indexes, func(b *testing.B) {
			var total benchkit.DrainResult
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ctx := context.Background()
				url := postgrestest.NewSchema(b)
				s := postgrestest.Open(b, url)
				if err := benchkit.Seed(ctx, s, n, 5000); err != nil {
					b.Fatal(err)
				}
				if indexes == "none" {
					u, err := neturl.Parse(url)
					if err != nil {
						b.Fatal(err)
					}
					for _, ix := range []string{"operation_doid_seq", "operation_actor_seq"} {
						if _, err := s.DB().ExecContext(ctx, `DROP INDEX "`+u.Query().Get("schema")+`".`+ix); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StartTimer()
				r, err := benchkit.Measure(func() (benchkit.DrainResult, error) {
					start := time.Now()
					got, err := core.SequenceAll(ctx, s, 0)
					if err == nil && got != n {
						err = fmt.Errorf("sequenced %d of %d", got, n)
					}
					return benchkit.DrainResult{N: got, Elapsed: time.Since(start)}, err
				})
				if err != nil {
					b.Fatal(err)
				}
				total = total.Add(r)
			}
			b.ReportMetric(total.Rate(), "positions/s")
			total.ReportCPU(b, "sequence")
		})
	}
}
