package postgres

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

// queryRaw is the dialect's QueryRaw: the query runs on the pgx
// connection under one of db's, and each row is scanned by pgx itself.
// Through database/sql every column of every row became a driver.Value
// (a string or a time boxed in an interface) and was then converted into
// its destination; a relay draining from scratch decodes each operation
// twice, and with the machine's cores full that decoding is what it
// waits for (rowDecoder makes it cheaper still). A handle opened with another driver (NewStore of a *sql.DB
// from lib/pq, say) gets sqlstore.ErrNoRawQuery, and the store keeps to
// database/sql.
func queryRaw(ctx context.Context, db *sql.DB, q string, args []any, each func(sqlstore.RowScanner) error) error {
	return withPgx(ctx, db, sqlstore.ErrNoRawQuery, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		d := &rowDecoder{rows: rows, m: c.TypeMap()}
		for rows.Next() {
			if err := each(d); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// withPgx runs f on the pgx connection under one of db's, and returns
// notPgx, having run nothing, when db's driver is not pgx's.
func withPgx(ctx context.Context, db *sql.DB, notPgx error, f func(*pgx.Conn) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return notPgx
		}
		return f(c.Conn())
	})
}
