package ledger_test

import (
	"context"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/internal/benchkit"
	"github.com/go-trustlog/trustlog/ledger"
)

// rawHash is a row of the baseline's hash table.
type rawHash struct {
	Idx  int64 `bun:",pk"`
	Hash []byte
}

// BenchmarkSequence sequences a backlog of stored operations into the
// Merkle log and, in the same iteration, inserts the very same stored
// hashes with plain multi-row INSERTs (bun, one transaction per 1000
// leaves' hashes) into a fresh table of the same database: the writes
// sequencing cannot avoid. It reports leaves/s for both and their ratio.
// TRUSTLOG_BENCH_BATCH sets the sequencer's batch size.
//
//	go test ./ledger -run '^$' -bench Sequence -benchtime 1x -count 3
func BenchmarkSequence(b *testing.B) {
	n := benchkit.EnvInt("TRUSTLOG_BENCH_N", 50_000)
	for _, name := range []string{"sqlite", "postgres", "mysql"} {
		open := drivers[name]
		b.Run("driver="+name, func(b *testing.B) {
			ctx := context.Background()
			var seqTime, rawTime time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				k := newKeys(b)
				st := open(b)
				if err := benchkit.Seed(ctx, st, n, 2000); err != nil {
					b.Fatal(err)
				}
				seq, err := ledger.NewSequencer(ledger.Config{Key: k.skey, BatchSize: benchkit.EnvInt("TRUSTLOG_BENCH_BATCH", ledger.BatchSizeDefault)})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				if m, err := seq.Sequence(ctx, st); err != nil || m != n {
					b.Fatal(m, err)
				}
				if _, err := seq.Checkpoint(ctx, st); err != nil {
					b.Fatal(err)
				}
				seqTime += time.Since(start)
				b.StopTimer()

				count := tlog.StoredHashCount(int64(n))
				idx := make([]int64, count)
				for j := range idx {
					idx[j] = int64(j)
				}
				hashes, err := st.ReadHashes(ctx, idx)
				if err != nil {
					b.Fatal(err)
				}
				db := st.Bun()
				table := st.Names().Prefix + "bench_raw_hash"
				if sch := st.Names().Schema; sch != "" {
					table = `"` + sch + `".` + table
				}
				if _, err := db.NewCreateTable().Model((*rawHash)(nil)).ModelTableExpr(table).Exec(ctx); err != nil {
					b.Fatal(err)
				}
				rows := make([]rawHash, len(hashes))
				for j := range hashes {
					rows[j] = rawHash{Idx: int64(j), Hash: hashes[j][:]}
				}
				per := int(count / int64(n) * 1000) // hashes of 1000 leaves per transaction
				b.StartTimer()
				start = time.Now()
				for j := 0; j < len(rows); j += per {
					chunk := rows[j:min(j+per, len(rows))]
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := tx.NewInsert().Model(&chunk).ModelTableExpr(table).Exec(ctx); err != nil {
						b.Fatal(err)
					}
					if err := tx.Commit(); err != nil {
						b.Fatal(err)
					}
				}
				rawTime += time.Since(start)
				b.StopTimer()
			}
			leaves := float64(n * b.N)
			b.ReportMetric(leaves/seqTime.Seconds(), "leaves/s")
			b.ReportMetric(leaves/rawTime.Seconds(), "raw-leaves/s")
			b.ReportMetric(rawTime.Seconds()/seqTime.Seconds(), "ratio")
		})
	}
}

// BenchmarkProve builds one inclusion proof from a store of 10,000 leaves;
// its sub-benchmark parses and verifies one.
//
//	go test ./ledger -run '^$' -bench Prove
func BenchmarkProve(b *testing.B) {
	ctx := context.Background()
	k := newKeys(b)
	st := drivers["sqlite"](b)
	if err := benchkit.Seed(ctx, st, 10_000, 2000); err != nil {
		b.Fatal(err)
	}
	seq, err := ledger.NewSequencer(ledger.Config{Key: k.skey})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := seq.Sequence(ctx, st); err != nil {
		b.Fatal(err)
	}
	if _, err := seq.Checkpoint(ctx, st); err != nil {
		b.Fatal(err)
	}
	leaves, err := st.Leaves(ctx, 4321, 1)
	if err != nil {
		b.Fatal(err)
	}
	var text []byte
	b.Run("prove", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p, err := ledger.Prove(ctx, st, leaves[0].Op.OpID)
			if err != nil {
				b.Fatal(err)
			}
			text = p.Marshal()
		}
	})
	b.Run("verify", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p, err := ledger.ParseProof(text)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := p.Verify(k.log, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}
