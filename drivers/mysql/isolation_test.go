package mysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/internal/benchkit"
)

// BenchmarkClaimIsolation measures the bare read+advance loop at batch 1000
// under REPEATABLE READ and READ COMMITTED, with 1 and 4 workers, while an
// inserter records one operation every 2ms. It reports the drain rate, the
// index records InnoDB read per claimed row (Handler_read_next: how much
// of the (state, seq) index a claim walks through), and the inserter's
// p99 latency (gap locks block inserts into a locked range).
//
//	go test ./drivers/mysql -run '^$' -bench ClaimIsolation -benchtime 1x
func BenchmarkClaimIsolation(b *testing.B) {
	n := benchkit.EnvInt("TRUSTLOG_BENCH_N", 100_000)
	for _, hints := range []bool{true, false} {
		for _, iso := range []sql.IsolationLevel{sql.LevelRepeatableRead, sql.LevelReadCommitted} {
			for _, workers := range []int{1, 4} {
				name := map[sql.IsolationLevel]string{sql.LevelRepeatableRead: "repeatable-read", sql.LevelReadCommitted: "read-committed"}[iso]
				b.Run(fmt.Sprintf("hints=%t/%s/workers=%d", hints, name, workers), func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						b.StopTimer()
						stores := seededStores(b, n, workers)
						s := stores[0].(*mysql.Store)
						db, op := s.DB(), s.Names().Op
						readsBefore := globalStatus(b, db, "Handler_read_next")
						ctx, stop := context.WithCancel(context.Background())
						var insLat []time.Duration
						var insWG sync.WaitGroup
						insWG.Add(1)
						go func() { defer insWG.Done(); insLat = insertSteadily(ctx, stores[0]) }()
						var claimed atomic.Int64
						var wg sync.WaitGroup
						b.StartTimer()
						start := time.Now()
						for w := 0; w < workers; w++ {
							wg.Add(1)
							go func(db *sql.DB, token int64) {
								defer wg.Done()
								for {
									k, err := claimSettle(ctx, db, op, iso, hints, token, 1000)
									if err != nil {
										b.Error(err)
										return
									}
									if claimed.Add(int64(k)) >= int64(n) || k == 0 {
										return
									}
								}
							}(stores[w].(*mysql.Store).DB(), int64(w+1)<<40)
						}
						wg.Wait()
						elapsed := time.Since(start)
						b.StopTimer()
						stop()
						insWG.Wait()
						reads := globalStatus(b, db, "Handler_read_next") - readsBefore
						slices.Sort(insLat)
						b.ReportMetric(float64(claimed.Load())/elapsed.Seconds(), "rows/s")
						b.ReportMetric(float64(reads)/float64(claimed.Load()), "index-reads/row")
						if len(insLat) > 0 {
							b.ReportMetric(float64(insLat[len(insLat)*99/100].Microseconds())/1000, "insert-p99-ms")
						}
					}
				})
			}
		}
	}
}

func seededStores(b *testing.B, n, workers int) []core.Store {
	url := target.NewURL(b)
	s := target.Open(b, url)
	if err := benchkit.Seed(context.Background(), s, n, 2000); err != nil {
		b.Fatal(err)
	}
	out := []core.Store{s}
	for len(out) < workers {
		out = append(out, target.Open(b, url))
	}
	return out
}

// claimSettle claims and settles one batch. Without hints it leaves index
// choice to the optimizer and settles with "state = 1 AND seq IN (…)",
// as a first hand-written loop would.
func claimSettle(ctx context.Context, db *sql.DB, op string, iso sql.IsolationLevel, hints bool, token int64, batch int) (int, error) {
	selHint, updHint, settleCond := " FORCE INDEX (operation_state_seq)", " FORCE INDEX (PRIMARY)", ""
	if !hints {
		selHint, updHint, settleCond = "", "", " AND state = 1"
	}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: iso})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT seq FROM `+op+selHint+`
		WHERE state = 0 ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED`, batch)
	if err != nil {
		return 0, err
	}
	seqs, err := benchkit.ScanSeqs(rows)
	if err != nil || len(seqs) == 0 {
		return 0, err
	}
	list := make([]string, len(seqs))
	for i, s := range seqs {
		list[i] = strconv.FormatInt(s, 10)
	}
	in := strings.Join(list, ",")
	if _, err := tx.ExecContext(ctx, `UPDATE `+op+updHint+` SET state = 1, claim_token = ? WHERE seq IN (`+in+`)`, token); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	_, err = db.ExecContext(ctx, `UPDATE `+op+updHint+` SET state = 3, claim_token = NULL WHERE claim_token = ?`+settleCond+` AND seq IN (`+in+`)`, token)
	return len(seqs), err
}

// insertSteadily records one operation every 2ms until ctx ends and
// returns each insert's latency.
func insertSteadily(ctx context.Context, s core.Store) []time.Duration {
	c, _ := core.NewClient(s, nil, core.Config{Strategy: core.StoreOnly})
	var lat []time.Duration
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return lat
		case <-t.C:
		}
		start := time.Now()
		if err := c.Record(ctx, benchkit.Op(1_000_000+i, 100)); err != nil {
			return lat
		}
		lat = append(lat, time.Since(start))
	}
}

func globalStatus(b *testing.B, db *sql.DB, name string) int64 {
	var k string
	var v int64
	if err := db.QueryRow(`SHOW GLOBAL STATUS LIKE '`+name+`'`).Scan(&k, &v); err != nil {
		b.Fatal(err)
	}
	return v
}
