package benchkit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

// RawFor returns the bare claim+settle loop on s's table: the plainest SQL
// a hand-written relay would run on that database, returning the same
// columns the engine reads, with none of the engine's work per row.
func RawFor(s core.Store) (RawLoop, error) {
	switch s := s.(type) {
	case *postgres.Store:
		return rawPostgres(s), nil
	case *mysql.Store:
		return rawMySQL(s), nil
	case *sqlite.Store:
		return rawSQLite(s), nil
	}
	return nil, fmt.Errorf("benchkit: no bare loop for a %T", s)
}

// rawPostgres: a SKIP LOCKED claim returning the columns, then one UPDATE
// marking the rows published.
func rawPostgres(s *postgres.Store) RawLoop {
	db, op := s.DB(), s.Names().Op
	claim := `UPDATE ` + op + ` SET state = 1, claim_token = $1, attempts = attempts + 1, due_at = now() + interval '1 minute'
		WHERE seq IN (SELECT seq FROM ` + op + ` WHERE state = 0 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING ` + sqlstore.Columns
	settle := `UPDATE ` + op + ` SET state = 3, published_at = now(), claim_token = NULL WHERE claim_token = $1 AND seq = ANY($2)`
	var token int64
	return func(ctx context.Context, batch int) (int, error) {
		token++
		rows, err := db.QueryContext(ctx, claim, token, batch)
		if err != nil {
			return 0, err
		}
		seqs, err := ScanSeqs(rows)
		if err != nil || len(seqs) == 0 {
			return 0, err
		}
		_, err = db.ExecContext(ctx, settle, token, seqs)
		return len(seqs), err
	}
}

// rawMySQL: MySQL has no UPDATE … RETURNING, so the claim is a SKIP LOCKED
// SELECT and an UPDATE in one transaction, then one UPDATE settling.
func rawMySQL(s *mysql.Store) RawLoop {
	db, op := s.DB(), s.Names().Op
	sel := `SELECT ` + sqlstore.Columns + ` FROM ` + op + ` WHERE state = 0 ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED`
	pending := `SELECT EXISTS (SELECT 1 FROM ` + op + ` WHERE state = 0)`
	var token int64
	claim := func(ctx context.Context, batch int) ([]int64, error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		defer tx.Rollback()
		rows, err := tx.QueryContext(ctx, sel, batch)
		if err != nil {
			return nil, err
		}
		seqs, err := ScanSeqs(rows)
		if err != nil || len(seqs) == 0 {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE `+op+` SET state = 1, claim_token = ?, attempts = attempts + 1,
			due_at = UTC_TIMESTAMP(6) + INTERVAL 1 MINUTE WHERE seq IN (`+seqList(seqs)+`)`, token); err != nil {
			return nil, err
		}
		return seqs, tx.Commit()
	}
	settle := func(ctx context.Context, seqs []int64) error {
		_, err := db.ExecContext(ctx, `UPDATE `+op+` SET state = 3, published_at = UTC_TIMESTAMP(6), claim_token = NULL
			WHERE claim_token = ? AND seq IN (`+seqList(seqs)+`)`, token)
		return err
	}
	return func(ctx context.Context, batch int) (int, error) {
		token++
		for {
			// InnoDB may pick a claim or a settle as a deadlock victim (gap
			// locks of concurrent claims) and roll it back: run it again,
			// as any hand-written relay on MySQL must. A settle is
			// retried itself: claiming anew instead would leave its rows
			// claimed and uncounted.
			seqs, err := retryDeadlock(func() ([]int64, error) { return claim(ctx, batch) })
			if err != nil {
				return 0, err
			}
			if len(seqs) > 0 {
				_, err = retryDeadlock(func() ([]int64, error) { return nil, settle(ctx, seqs) })
				return len(seqs), err
			}
			// An empty SKIP LOCKED claim does not mean nothing is pending:
			// under REPEATABLE READ it also skips rows another claim or
			// settle holds a next-key lock on. Claim again while a plain
			// read still sees pending rows.
			var more bool
			if err := db.QueryRowContext(ctx, pending).Scan(&more); err != nil || !more {
				return 0, err
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// retryDeadlock runs f up to ten times while MySQL answers it with a
// deadlock (1213).
func retryDeadlock(f func() ([]int64, error)) ([]int64, error) {
	for attempt := 1; ; attempt++ {
		seqs, err := f()
		var me *gomysql.MySQLError
		if err == nil || attempt == 10 || !errors.As(err, &me) || me.Number != 1213 {
			return seqs, err
		}
	}
}

// rawSQLite: one writer, so no SKIP LOCKED; the claim names the
// pending-rows index as the driver's does (see BENCHMARKS.md).
func rawSQLite(s *sqlite.Store) RawLoop {
	db, op := s.DB(), s.Names().Op
	index := s.Names().Prefix + "operation_pending"
	claim := `UPDATE ` + op + ` SET state = 1, claim_token = ?, attempts = attempts + 1, due_at = ?
		WHERE seq IN (SELECT seq FROM ` + op + ` INDEXED BY ` + index + ` WHERE state = 0 ORDER BY seq LIMIT ?)
		RETURNING ` + sqlstore.Columns
	var token int64
	return func(ctx context.Context, batch int) (int, error) {
		token++
		rows, err := db.QueryContext(ctx, claim, token, time.Now().Add(time.Minute).UnixMicro(), batch)
		if err != nil {
			return 0, err
		}
		seqs, err := ScanSeqs(rows)
		if err != nil || len(seqs) == 0 {
			return 0, err
		}
		_, err = db.ExecContext(ctx, `UPDATE `+op+` SET state = 3, published_at = ?, claim_token = NULL
			WHERE claim_token = ? AND seq IN (`+seqList(seqs)+`)`, time.Now().UnixMicro(), token)
		return len(seqs), err
	}
}

func seqList(seqs []int64) string {
	list := make([]string, len(seqs))
	for i, s := range seqs {
		list[i] = strconv.FormatInt(s, 10)
	}
	return strings.Join(list, ",")
}
