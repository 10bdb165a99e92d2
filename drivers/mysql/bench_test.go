package mysql_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/internal/benchkit"
)

var target = benchkit.Target{
	NewURL: func(tb testing.TB) string { return mysqltest.NewDatabase(tb) },
	Open:   func(tb testing.TB, url string) core.Store { return mysqltest.Open(tb, url) },
}

// BenchmarkWrite: RecordTx vs a plain INSERT of the same rows, same run
// (see benchkit.Write).
//
//	go test ./drivers/mysql -run '^$' -bench Write -benchtime 1x -count 3
func BenchmarkWrite(b *testing.B) {
	benchkit.Write(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_TXS", 2000))
}

// BenchmarkDrain: engine vs the raw loop, same run (see benchkit.Drain).
//
//	go test ./drivers/mysql -run '^$' -bench Drain -benchtime 1x -count 3
func BenchmarkDrain(b *testing.B) {
	benchkit.Drain(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_N", 200_000), []int{100, 1000}, []int{1, 4})
}

// BenchmarkDrainFromScratch: one relay drains a backlog without
// positions, Drain's engine-ops/s alone (see benchkit.FromScratch).
//
//	go test ./drivers/mysql -run '^$' -bench DrainFromScratch -benchtime 1x -count 5
func BenchmarkDrainFromScratch(b *testing.B) {
	benchkit.FromScratch(b, target, benchkit.EnvInt("TRUSTLOG_BENCH_N", 200_000), 1000)
}

// BenchmarkLatency: commit → sink ack at a steady 1000 ops/s, polling.
//
//	go test ./drivers/mysql -run '^$' -bench Latency -benchtime 1x
func BenchmarkLatency(b *testing.B) {
	d := time.Duration(benchkit.EnvInt("TRUSTLOG_BENCH_SECONDS", 10)) * time.Second
	benchkit.LatencyBench(b, func(b *testing.B) core.Store { return mysqltest.Open(b, mysqltest.NewDatabase(b)) },
		1000, d, core.EngineConfig{})
}

// BenchmarkStrictKeepUp: two strict-order relays and a writer at
// 1,000 operations a second over 200 DOIDs, with no sink failure and
// with 1% of the sends refused (see benchkit.KeepUpBench).
//
//	go test ./drivers/mysql -run '^$' -bench StrictKeepUp -benchtime 1x -count 2
func BenchmarkStrictKeepUp(b *testing.B) {
	benchkit.StrictKeepUp(b, target)
}

// BenchmarkInspect: the operator console's reads (Stats, the overview,
// Find) on a store of a million operations (see benchkit.Inspect;
// TRUSTLOG_BENCH_OPS sets the size). The store is filled with bulk SQL,
// then analysed.
//
//	go test ./drivers/mysql -run '^$' -bench Inspect -benchtime 20x -timeout 30m
func BenchmarkInspect(b *testing.B) {
	s := mysqltest.Open(b, mysqltest.NewDatabase(b))
	benchkit.Inspect(b, s, func(tb testing.TB, _ core.Store, sh benchkit.InspectShape) {
		fillInspect(tb, s, sh)
	})
}

// fillInspect fills s with sh's operations: positions, cursors, retry
// rows and the tree size as the store would hold them (no stored hashes:
// nothing the console reads needs them). The numbers 1..N come from a
// cross join of digit tables, a statement per million.
func fillInspect(tb testing.TB, s *mysql.Store, sh benchkit.InspectShape) {
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
	exec(`CREATE TEMPORARY TABLE bench_parts (k INT NOT NULL PRIMARY KEY, part SMALLINT NOT NULL)`)
	parts := sh.Parts(len(ps))
	for lo := 0; lo < len(parts); lo += 1000 {
		var b strings.Builder
		args := []any{}
		for k := lo; k < min(lo+1000, len(parts)); k++ {
			if k > lo {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?)")
			args = append(args, k, parts[k])
		}
		exec(`INSERT INTO bench_parts (k, part) VALUES `+b.String(), args...)
	}
	exec(`CREATE TEMPORARY TABLE bench_digits (d INT NOT NULL PRIMARY KEY)`)
	exec(`INSERT INTO bench_digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)`)
	// i = lo + the number of six digits a..f, for each million from lo.
	num := `lo + a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 100000 * g.d`
	digits := `bench_digits AS a CROSS JOIN bench_digits AS b CROSS JOIN bench_digits AS c CROSS JOIN bench_digits AS e
		CROSS JOIN bench_digits AS f CROSS JOIN bench_digits AS g`
	for lo := 1; lo <= sh.N; lo += 1_000_000 {
		sel := strings.ReplaceAll(`SELECT i, CONCAT('00000000-0000-7000-8000-', LPAD(i, 12, '0')), 'DOIP', 'Op.Update',
			CONCAT('10.1000/bench/object-', LPAD(i % ?, 6, '0')), '10.1000', 'bench',
			CONCAT('user-', LPAD(i % ?, 4, '0'), '@example.org'), 'trustlog-bench', 'sha256',
			REPEAT('a', 64), REPEAT('b', 64), '192.0.2.10', DATE_ADD(?, INTERVAL i SECOND), REPEAT('c', 64), '', '',
			DATE_ADD(?, INTERVAL i SECOND), bp.part, CASE WHEN i <= ? THEN i - 1 END
		FROM (SELECT `+num+` AS i FROM `+digits+`) AS n JOIN bench_parts AS bp ON bp.k = n.i % ?
		WHERE n.i <= ? ORDER BY n.i`, "lo", strconv.Itoa(lo))
		exec(`INSERT INTO {{.Op}} (seq, op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor, producer_id,
			hash_alg, request_body_hash, response_body_hash, client_ip, created_at, op_hash, signer, sign, updated_at, part, leaf_index) `+sel,
			sh.Objects, sh.Actors, sh.Base, sh.Base, sh.Sequenced(), sh.Objects, sh.N)
	}
	exec("UPDATE {{.Partition}} AS p SET `cursor` = COALESCE((SELECT MAX(o.leaf_index) FROM {{.Op}} AS o"+
		" WHERE o.part = p.part AND o.leaf_index < ?), -1)", sh.PublishedBelow())
	exec(`INSERT INTO {{.Retry}} (seq, part, doid, leaf_index, attempts, due_at, last_error, dead, updated_at)
		SELECT seq, part, doid, leaf_index, 3, DATE_ADD(created_at, INTERVAL 1 HOUR), CONCAT('sink refused: error ', seq % 10),
			seq % ? = 0, created_at
		FROM {{.Op}} WHERE leaf_index < ? AND seq % ? = 0`, 2*sh.RetryEvery, sh.PublishedBelow(), sh.RetryEvery)
	exec(`UPDATE {{.Tree}} SET size = ? WHERE id = 1`, sh.Sequenced())
	exec(`ANALYZE TABLE {{.Op}}, {{.Retry}}, {{.Partition}}`)
}
