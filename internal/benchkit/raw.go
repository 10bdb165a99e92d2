package benchkit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

// RawFor returns worker's bare loop of workers on s's tables: what a
// hand-written relay of the sequenced log would run on that database,
// with none of the engine's work per row. Each worker owns the partitions
// p with p mod workers = worker; a round reads each owned partition above
// its cursor in position order (the operation's columns) and moves the
// cursor, one statement each. The backlog must be sequenced
// (see Seeded); the engine's drain sequences it itself.
func RawFor(s core.Store, worker, workers int) (RawLoop, error) {
	var ph func(int) string
	var db interface {
		QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
		ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	}
	var names sqlstore.Names
	cursor := "cursor"
	switch s := s.(type) {
	case *postgres.Store:
		ph, db, names = func(n int) string { return "$" + strconv.Itoa(n) }, s.DB(), s.Names()
	case *mysql.Store:
		ph, db, names = func(int) string { return "?" }, s.DB(), s.Names()
		cursor = "`cursor`" // a reserved word in MySQL
	case *sqlite.Store:
		ph, db, names = func(int) string { return "?" }, s.DB(), s.Names()
	default:
		return nil, fmt.Errorf("benchkit: no bare loop for a %T", s)
	}
	parts, err := s.Partitions(context.Background())
	if err != nil {
		return nil, err
	}
	// The operation's content (what a message carries), its seq and its
	// position; nothing joined.
	read := `SELECT seq, leaf_index, ` + sqlstore.InsertColumns + ` FROM ` + names.Op + ` WHERE part = ` + ph(1) +
		` AND leaf_index > ` + ph(2) + ` ORDER BY leaf_index LIMIT ` + ph(3)
	if names.Position != "" {
		// PostgreSQL: the positions have a table of their own.
		read = `SELECT o.seq, x.leaf_index, ` + sqlstore.Qualified("o.", sqlstore.InsertColumns) + ` FROM ` + names.Position + ` AS x JOIN ` +
			names.Op + ` AS o ON o.seq = x.seq WHERE x.part = ` + ph(1) + ` AND x.leaf_index > ` + ph(2) +
			` ORDER BY x.leaf_index LIMIT ` + ph(3)
	}
	advance := `UPDATE ` + names.Partition + ` SET ` + cursor + ` = ` + ph(1) + ` WHERE part = ` + ph(2)
	type owned struct{ part, cursor int64 }
	var mine []*owned
	for _, p := range parts {
		if p.Part%workers == worker {
			mine = append(mine, &owned{int64(p.Part), p.Cursor})
		}
	}
	return func(ctx context.Context, batch int) (int, error) {
		total := 0
		for _, o := range mine {
			rows, err := db.QueryContext(ctx, read, o.part, o.cursor, batch)
			if err != nil {
				return total, err
			}
			last, n, err := scanLastPosition(rows)
			if err != nil || n == 0 {
				if err != nil {
					return total, err
				}
				continue
			}
			if _, err := db.ExecContext(ctx, advance, last, o.part); err != nil {
				return total, err
			}
			o.cursor = last
			total += n
		}
		return total, nil
	}, nil
}

// scanLastPosition reads a row set with a leaf_index column and returns
// the last row's leaf_index and the row count.
func scanLastPosition(rows *sql.Rows) (int64, int, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, 0, err
	}
	at := slices.Index(cols, "leaf_index")
	if at < 0 {
		return 0, 0, errors.New("benchkit: no leaf_index column")
	}
	vals := make([]any, len(cols))
	for i := range vals {
		vals[i] = new(any)
	}
	var last int64
	n := 0
	for rows.Next() {
		if err := rows.Scan(vals...); err != nil {
			return 0, 0, err
		}
		switch v := (*vals[at].(*any)).(type) {
		case int64:
			last = v
		case []byte:
			last, _ = strconv.ParseInt(string(v), 10, 64)
		}
		n++
	}
	return last, n, rows.Err()
}
