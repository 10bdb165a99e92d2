package sqlite_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/benchkit"
)

var target = benchkit.Target{
	NewURL: func(tb testing.TB) string { return sqlitetest.URL(tb) },
	Open:   func(tb testing.TB, url string) core.Store { return sqlitetest.Open(tb, url) },
}

// BenchmarkWrite: RecordTx vs a plain INSERT of the same rows, same run
// (see benchkit.Write).
//
//	go test ./drivers/sqlite -run '^$' -bench Write -benchtime 1x -count 3
func BenchmarkWrite(b *testing.B) {
	benchkit.Write(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_TXS", 2000))
}

// BenchmarkDrain: engine vs the raw loop, same run (see benchkit.Drain).
//
//	go test ./drivers/sqlite -run '^$' -bench Drain -benchtime 1x -count 3
func BenchmarkDrain(b *testing.B) {
	benchkit.Drain(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_N", 100_000), []int{100, 1000}, []int{1, 4})
}

// BenchmarkDrainFromScratch: one relay drains a backlog without
// positions, Drain's engine-ops/s alone (see benchkit.FromScratch).
//
//	go test ./drivers/sqlite -run '^$' -bench DrainFromScratch -benchtime 1x -count 5
func BenchmarkDrainFromScratch(b *testing.B) {
	benchkit.FromScratch(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_N", 100_000), 1000)
}

// BenchmarkLatency: commit → sink ack at a steady 1000 ops/s, polling.
//
//	go test ./drivers/sqlite -run '^$' -bench Latency -benchtime 1x
func BenchmarkLatency(b *testing.B) {
	d := time.Duration(benchkit.EnvInt("TRUSTLOG_BENCH_SECONDS", 10)) * time.Second
	benchkit.LatencyBench(b, func(b *testing.B) core.Store { return sqlitetest.Open(b, sqlitetest.URL(b)) },
		1000, d, core.EngineConfig{})
}

// BenchmarkStrictKeepUp: two strict-order relays and a writer at
// 1,000 operations a second over 200 DOIDs, with no sink failure and
// with 1% of the sends refused (see benchkit.KeepUpBench).
//
//	go test ./drivers/sqlite -run '^$' -bench StrictKeepUp -benchtime 1x -count 2
func BenchmarkStrictKeepUp(b *testing.B) {
	benchkit.StrictKeepUp(b, target)
}

// BenchmarkInspect: the operator console's reads (Stats, the overview,
// Find) on a store of a million operations (see benchkit.Inspect;
// TRUSTLOG_BENCH_OPS sets the size). The store is filled with bulk SQL,
// then analysed.
//
//	go test ./drivers/sqlite -run '^$' -bench Inspect -benchtime 20x -timeout 30m
func BenchmarkInspect(b *testing.B) {
	s := sqlitetest.Open(b, sqlitetest.URL(b))
	benchkit.Inspect(b, s, func(tb testing.TB, _ core.Store, sh benchkit.InspectShape) {
		fillInspect(tb, s, sh)
	})
}

// fillInspect fills s with sh's operations: positions, cursors, retry
// rows and the tree size as the store would hold them (no stored hashes:
// nothing the console reads needs them). Times are Unix microseconds.
func fillInspect(tb testing.TB, s *sqlite.Store, sh benchkit.InspectShape) {
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
	parts, err := json.Marshal(sh.Parts(len(ps)))
	if err != nil {
		tb.Fatal(err)
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
	exec(`CREATE TEMP TABLE bench_parts (k INTEGER PRIMARY KEY, part INTEGER NOT NULL)`)
	exec(`INSERT INTO bench_parts SELECT key, value FROM json_each(?)`, string(parts))
	exec(`BEGIN`)
	exec(`WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?)
		INSERT INTO {{.Op}} (seq, op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor, producer_id,
			hash_alg, request_body_hash, response_body_hash, client_ip, created_at, op_hash, signer, sign, updated_at, part, leaf_index)
		SELECT g.i, printf('00000000-0000-7000-8000-%012d', g.i), 'DOIP', 'Op.Update',
			printf('10.1000/bench/object-%06d', g.i % ?), '10.1000', 'bench',
			printf('user-%04d@example.org', g.i % ?), 'trustlog-bench', 'sha256',
			printf('%.64c', 'a'), printf('%.64c', 'b'), '192.0.2.10', ? + g.i * 1000000, printf('%.64c', 'c'), '', '',
			? + g.i * 1000000, bp.part, CASE WHEN g.i <= ? THEN g.i - 1 END
		FROM g JOIN bench_parts AS bp ON bp.k = g.i % ?`,
		sh.N, sh.Objects, sh.Actors, sh.Base.UnixMicro(), sh.Base.UnixMicro(), sh.Sequenced(), sh.Objects)
	exec(`UPDATE {{.Partition}} AS p SET cursor = COALESCE((SELECT MAX(o.leaf_index) FROM {{.Op}} AS o
		WHERE o.part = p.part AND o.leaf_index < ?), -1)`, sh.PublishedBelow())
	exec(`INSERT INTO {{.Retry}} (seq, part, doid, leaf_index, attempts, due_at, last_error, dead, updated_at)
		SELECT seq, part, doid, leaf_index, 3, created_at + 3600000000, 'sink refused: error ' || (seq % 10),
			seq % ? = 0, created_at
		FROM {{.Op}} WHERE leaf_index < ? AND seq % ? = 0`, 2*sh.RetryEvery, sh.PublishedBelow(), sh.RetryEvery)
	exec(`UPDATE {{.Tree}} SET size = ? WHERE id = 1`, sh.Sequenced())
	exec(`COMMIT`)
	exec(`ANALYZE`)
}
