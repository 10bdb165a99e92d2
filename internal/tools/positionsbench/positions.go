// Command positionsbench measures, on PostgreSQL, two ways to store the
// position the sequenced log gives every committed operation: in the wide
// operation row (an UPDATE of leaf_index, the way the store kept it until
// migration 00006; the scratch schema gets the column and its indexes
// back) or in narrow tables of their own (the application's transaction
// also inserts the operation's seq into a small queue; the sequencer
// moves it from the queue into a positions table: the store's layout
// since 00006, where the store's INSERT writes the queue). For each it
// measures how many positions per second one sequencer assigns, how fast
// a relay reads a partition by cursor (position > cursor ORDER BY
// position), and, for the queue, what the extra insert costs the
// application's transaction. Everything runs in a scratch schema that is
// dropped at the end.
//
//	go run ./internal/tools/positionsbench -store postgres://postgres@127.0.0.1:5432/test -n 200000
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	_ "github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/internal/benchkit"
)

func main() {
	store := flag.String("store", "postgres://postgres@127.0.0.1:5432/test", "PostgreSQL store URL (a scratch schema is created in it and dropped)")
	n := flag.Int("n", 200_000, "operations")
	batch := flag.Int("batch", 1000, "positions per sequencer transaction")
	parts := flag.Int("partitions", 16, "partitions (hash of the DOID modulo this)")
	flag.Parse()
	res, err := run(context.Background(), *store, *n, *batch, *parts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "positionsbench:", err)
		os.Exit(1)
	}
	res.print(os.Stdout)
}

// result holds one run's figures.
type result struct {
	N, Batch, Partitions int
	// Sequencer rates, positions per second.
	WideSeq, NarrowSeq float64
	// Partition reads, operations per second (one reader, every
	// partition to its end, 500 per query).
	WideRead, NarrowRead float64
	// The application's insert of 100 operations per transaction, plain
	// and with the queue insert in the same statement.
	Plain, WithQueue time.Duration
}

func (r result) print(w *os.File) {
	fmt.Fprintf(w, "positions on PostgreSQL: %d operations, %d per sequencer transaction, %d partitions\n", r.N, r.Batch, r.Partitions)
	fmt.Fprintf(w, "%-34s %12s %12s %8s\n", "", "wide row", "narrow", "narrow/wide")
	fmt.Fprintf(w, "%-34s %12.0f %12.0f %8.2f\n", "sequencer, positions/s", r.WideSeq, r.NarrowSeq, r.NarrowSeq/r.WideSeq)
	fmt.Fprintf(w, "%-34s %12.0f %12.0f %8.2f\n", "partition read by cursor, ops/s", r.WideRead, r.NarrowRead, r.NarrowRead/r.WideRead)
	fmt.Fprintf(w, "%-34s %12s %12s %8.2f\n", "app insert (100/tx), vs plain", "1.00", fmt.Sprintf("%.2f", r.WithQueue.Seconds()/r.Plain.Seconds()), r.WithQueue.Seconds()/r.Plain.Seconds())
}

func run(ctx context.Context, base string, n, batch, parts int) (result, error) {
	res := result{N: n, Batch: batch, Partitions: parts}
	scratch, err := benchkit.NewScratch(base)
	if err != nil {
		return res, err
	}
	st, err := scratch.Open(ctx)
	if err != nil {
		return res, err
	}
	defer scratch.Drop(context.WithoutCancel(ctx))
	defer st.Close()
	u, err := url.Parse(scratch.URL)
	if err != nil {
		return res, err
	}
	schema := `"` + u.Query().Get("schema") + `"`
	db := st.(interface{ DB() *sql.DB }).DB()
	c, err := core.NewClient(st, nil, core.Config{Strategy: core.StoreOnly})
	if err != nil {
		return res, err
	}
	for i := 0; i < n; i += 1000 {
		ops := make([]*core.Operation, min(1000, n-i))
		for j := range ops {
			ops[j] = conformance.NewOp(fmt.Sprintf("obj-%d", (i+j)%200), i+j)
		}
		if err := c.Record(ctx, ops...); err != nil {
			return res, err
		}
	}
	q := func(s string) string { return fmt.Sprintf(s, schema) }
	for _, s := range []string{
		// The partition is the application's data (hash of the DOID),
		// computed when the row is written; both layouts have it (the
		// schema has the column and its (part, leaf_index) index; this
		// run's partition count is set here).
		`UPDATE %[1]s.operation SET part = abs(hashtext(doid)) %% ` + fmt.Sprint(parts),
		// The store's own queue (the trigger of rows inserted by hand,
		// as these are) stays out of the
		// comparison: each layout below writes what it needs itself.
		`ALTER TABLE %[1]s.operation DISABLE TRIGGER USER`,
		// The wide row as migrations 00001-00005 left it.
		`ALTER TABLE %[1]s.operation ADD COLUMN leaf_index BIGINT NULL UNIQUE`,
		`CREATE INDEX ON %[1]s.operation (part, leaf_index) WHERE leaf_index IS NOT NULL`,
		`CREATE INDEX ON %[1]s.operation (seq) WHERE leaf_index IS NULL`,
		`CREATE TABLE %[1]s.unpositioned (seq BIGINT PRIMARY KEY)`,
		`CREATE TABLE %[1]s.position (position BIGINT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, part SMALLINT NOT NULL)`,
		`CREATE INDEX ON %[1]s.position (part, position)`,
		`INSERT INTO %[1]s.unpositioned SELECT seq FROM %[1]s.operation`,
		`VACUUM ANALYZE %[1]s.operation`,
		`VACUUM ANALYZE %[1]s.unpositioned`,
	} {
		if _, err := db.ExecContext(ctx, q(s)); err != nil {
			return res, fmt.Errorf("%s: %w", q(s), err)
		}
	}

	// Both sequencers do what the store's Append does: read the next
	// batch's seqs through an index ("has no position yet"), then write
	// their positions from arrays. (Selecting and writing in one
	// statement, DELETE … WHERE seq IN (SELECT … LIMIT $2), measured the
	// narrow layout at a third of this: under a generic plan the IN list
	// became a hash join over the whole queue, once per batch.)
	//
	// The wide row: the partial index of rows without a position, then an
	// UPDATE of leaf_index, which is never HOT (leaf_index is indexed) and
	// so writes an entry in every index of the operation table.
	if res.WideSeq, err = sequence(ctx, db, n, func(tx *sql.Tx, next int64) (int, error) {
		seqs, err := firstSeqs(ctx, tx, q(`SELECT seq FROM %[1]s.operation WHERE leaf_index IS NULL ORDER BY seq LIMIT $1`), batch)
		if err != nil || len(seqs) == 0 {
			return 0, err
		}
		res, err := tx.ExecContext(ctx, q(`UPDATE %[1]s.operation o SET leaf_index = $2::bigint - 1 + v.i
			FROM unnest($1::bigint[]) WITH ORDINALITY AS v(seq, i) WHERE o.seq = v.seq AND o.leaf_index IS NULL`), seqs, next)
		return affected(res, err, len(seqs))
	}); err != nil {
		return res, fmt.Errorf("wide: %w", err)
	}
	// Narrow: the queue's first seqs, deleted from it, their positions
	// inserted (the operation row is not written again).
	if res.NarrowSeq, err = sequence(ctx, db, n, func(tx *sql.Tx, next int64) (int, error) {
		seqs, err := firstSeqs(ctx, tx, q(`SELECT seq FROM %[1]s.unpositioned ORDER BY seq LIMIT $1`), batch)
		if err != nil || len(seqs) == 0 {
			return 0, err
		}
		del, err := tx.ExecContext(ctx, q(`DELETE FROM %[1]s.unpositioned WHERE seq = ANY($1)`), seqs)
		if _, err := affected(del, err, len(seqs)); err != nil {
			return 0, err
		}
		res, err := tx.ExecContext(ctx, q(`INSERT INTO %[1]s.position (position, seq, part)
			SELECT $2::bigint - 1 + v.i, v.seq, o.part FROM unnest($1::bigint[]) WITH ORDINALITY AS v(seq, i)
			JOIN %[1]s.operation o ON o.seq = v.seq`), seqs, next)
		return affected(res, err, len(seqs))
	}); err != nil {
		return res, fmt.Errorf("narrow: %w", err)
	}
	if err := samePositions(ctx, db, schema, n); err != nil {
		return res, err
	}
	// As autovacuum would have by then: statistics for the planner.
	for _, s := range []string{`VACUUM ANALYZE %[1]s.operation`, `VACUUM ANALYZE %[1]s.position`} {
		if _, err := db.ExecContext(ctx, q(s)); err != nil {
			return res, err
		}
	}

	cols := `o.op_id, o.op_actor, o.doid, o.producer_id, o.request_body_hash, o.response_body_hash, o.hash_alg, o.op_hash,
		o.signer, o.sign, o.op_source, o.op_type, o.do_prefix, o.do_repository, o.client_ip, o.server_ip, o.created_at`
	if res.WideRead, err = readAll(ctx, db, n, parts, q(`SELECT o.leaf_index, `+cols+` FROM %[1]s.operation o
		WHERE o.part = $1 AND o.leaf_index > $2 ORDER BY o.leaf_index LIMIT 500`)); err != nil {
		return res, fmt.Errorf("wide read: %w", err)
	}
	if res.NarrowRead, err = readAll(ctx, db, n, parts, q(`SELECT p.position, `+cols+` FROM %[1]s.position p
		JOIN %[1]s.operation o ON o.seq = p.seq WHERE p.part = $1 AND p.position > $2 ORDER BY p.position LIMIT 500`)); err != nil {
		return res, fmt.Errorf("narrow read: %w", err)
	}

	// The application's transaction: 100 operations copied from existing
	// ones under new op_ids, plain and with the queue insert, alternating.
	copyRows := `INSERT INTO %[1]s.operation (op_id, op_actor, doid, producer_id, request_body_hash, response_body_hash, hash_alg,
			op_hash, signer, sign, op_source, op_type, do_prefix, do_repository, client_ip, server_ip, created_at, updated_at, part)
		SELECT gen_random_uuid()::text, op_actor, doid, producer_id, request_body_hash, response_body_hash, hash_alg,
			op_hash, signer, sign, op_source, op_type, do_prefix, do_repository, client_ip, server_ip, created_at, now(), part
		FROM %[1]s.operation WHERE seq > $1 AND seq <= $1 + 100`
	plain := q(copyRows)
	queued := q(`WITH ins AS (` + copyRows + ` RETURNING seq) INSERT INTO %[1]s.unpositioned SELECT seq FROM ins`)
	for i := 0; i+100 <= n && i < 20_000; i += 100 {
		for _, v := range []struct {
			sql string
			d   *time.Duration
		}{{plain, &res.Plain}, {queued, &res.WithQueue}} {
			start := time.Now()
			if _, err := db.ExecContext(ctx, v.sql, i); err != nil {
				return res, fmt.Errorf("insert: %w", err)
			}
			*v.d += time.Since(start)
		}
	}
	return res, nil
}

// sequence runs step in transactions (one sequencer) until n positions are
// assigned, and returns positions per second.
func sequence(ctx context.Context, db *sql.DB, n int, step func(tx *sql.Tx, next int64) (int, error)) (float64, error) {
	start := time.Now()
	next := int64(0)
	for next < int64(n) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		got, err := step(tx, next)
		if err != nil {
			tx.Rollback()
			return 0, err
		}
		if err := tx.Commit(); err != nil {
			return 0, err
		}
		if got == 0 {
			return 0, fmt.Errorf("nothing left to sequence at position %d of %d", next, n)
		}
		next += int64(got)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// firstSeqs returns the seqs query (one argument: the limit) selects.
func firstSeqs(ctx context.Context, tx *sql.Tx, query string, limit int) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var seqs []int64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		seqs = append(seqs, s)
	}
	return seqs, rows.Err()
}

// affected returns how many rows a write changed, an error unless it is
// want (the rows of the batch).
func affected(res sql.Result, err error, want int) (int, error) {
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if int(n) != want {
		return 0, fmt.Errorf("wrote %d rows of %d", n, want)
	}
	return int(n), nil
}

// samePositions checks both layouts gave every operation one position,
// 0 … n-1, in seq order: the same log.
func samePositions(ctx context.Context, db *sql.DB, schema string, n int) error {
	var wide, narrow, agree int
	err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT
		(SELECT count(DISTINCT leaf_index) FROM %[1]s.operation WHERE leaf_index BETWEEN 0 AND $1 - 1),
		(SELECT count(DISTINCT position) FROM %[1]s.position WHERE position BETWEEN 0 AND $1 - 1),
		(SELECT count(*) FROM %[1]s.operation o JOIN %[1]s.position p ON p.seq = o.seq AND p.position = o.leaf_index)`, schema), n).Scan(&wide, &narrow, &agree)
	if err != nil {
		return err
	}
	if wide != n || narrow != n || agree != n {
		return fmt.Errorf("positions differ: wide %d, narrow %d, agreeing %d of %d", wide, narrow, agree, n)
	}
	return nil
}

// readAll reads every partition to its end by cursor with query (args:
// partition, cursor; the position first), and returns operations per
// second; it fails unless it read n.
func readAll(ctx context.Context, db *sql.DB, n, parts int, query string) (float64, error) {
	start := time.Now()
	total := 0
	for p := 0; p < parts; p++ {
		cursor := int64(-1)
		for {
			rows, err := db.QueryContext(ctx, query, p, cursor)
			if err != nil {
				return 0, err
			}
			got := 0
			for rows.Next() {
				var pos int64
				var text [16]sql.NullString // op_id … server_ip
				var created time.Time
				dest := []any{&pos}
				for i := range text {
					dest = append(dest, &text[i])
				}
				if err := rows.Scan(append(dest, &created)...); err != nil {
					rows.Close()
					return 0, err
				}
				cursor = pos
				got++
			}
			if err := rows.Close(); err != nil {
				return 0, err
			}
			total += got
			if got == 0 {
				break
			}
		}
	}
	if total != n {
		return 0, fmt.Errorf("read %d operations, want %d", total, n)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
