package postgres_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

// otherConn is a driver connection that is not pgx's *stdlib.Conn (as
// lib/pq's would not be), though it speaks through one.
type otherConn struct{ *stdlib.Conn }

type otherConnector struct{ driver.Connector }

func (c otherConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return otherConn{dc.(*stdlib.Conn)}, nil
}

// TestRecordsThroughAnotherDriver: the store reads records through pgx's
// own rows where its handle is pgx's, and through database/sql where the
// application opened it with another driver; both read the same records.
func TestRecordsThroughAnotherDriver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := postgrestest.NewSchema(t)
	pgxStore := postgrestest.Open(t, url)
	dsn, opts, _, err := postgres.ParseURL(url)
	require.NoError(t, err)
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	db := sql.OpenDB(otherConnector{stdlib.GetConnector(*cfg)})
	t.Cleanup(func() { db.Close() })
	other, err := postgres.NewStore(db, opts)
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })

	c, err := core.NewClient(pgxStore, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	ops := []*core.Operation{conformance.NewOp("10.1/a", 1), conformance.NewOp("10.1/b", 2)}
	ops[0].ClientIP, ops[1].ClientIP = "192.0.2.1", "" // a NULL among the columns
	require.NoError(t, c.Record(ctx, ops...))
	n, err := core.SequenceAll(ctx, pgxStore, 0)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	viaPgx, err := pgxStore.Leaves(ctx, 0, 10)
	require.NoError(t, err)
	viaOther, err := other.Leaves(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, viaPgx, 2)
	assert.Equal(t, viaPgx, viaOther, "the same records through either driver")
	for i, r := range viaPgx {
		assert.Equal(t, ops[i].OpID, r.Op.OpID)
		assert.Equal(t, ops[i].ClientIP, r.Op.ClientIP)
		assert.Equal(t, int64(i), r.LeafIndex)
		assert.True(t, ops[i].CreatedAt.Equal(r.Op.CreatedAt), "created_at %v, read %v", ops[i].CreatedAt, r.Op.CreatedAt)
	}
}

// TestRowDecoderAgreesWithPgx: the dialect's raw queries scan every
// column as pgx's own Scan does (text into strings and NullStrings,
// integers of each width, booleans, timestamps before and after 2000 into
// a sql.Scanner, NULLs, and what it leaves to pgx: uuid and numeric into
// strings, an infinite timestamp), and fail where pgx fails (a NULL into
// a string, an int8 too wide for an int16).
func TestRowDecoderAgreesWithPgx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := postgrestest.DB(t)
	conn, err := pgx.Connect(ctx, postgrestest.Server.DSN())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })

	type row struct {
		i2         int16
		i4         int
		i8         int64
		i8n        sql.NullInt64
		b          sql.NullBool
		ts         sql.NullTime
		txt        sql.NullString
		vc, bp, nm string
		u, num     string
	}
	dest := func(r *row) []any {
		return []any{&r.i2, &r.i4, &r.i8, &r.i8n, &r.b, &r.ts, &r.txt, &r.vc, &r.bp, &r.nm, &r.u, &r.num}
	}
	const q = `SELECT i2::int2, i4::int4, i8::int8, i8n::int8, b::bool, ts::timestamptz, txt::text,
		vc::varchar, bp::char(5), nm::name, u::uuid::text::uuid, num::numeric
	FROM (VALUES
		(1, 2, 3, 4, true, '2026-12-06 10:00:00.123456+00', 'héllo wörld', 'v', 'ab', 'nm', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1.5),
		(-32768, -2147483648, -9223372036854775808, NULL, NULL, NULL, NULL, '', 'x', 'n', '00000000-0000-0000-0000-000000000000', 0),
		(32767, 2147483647, 9223372036854775807, 0, false, '1969-07-20 20:17:40.5+00', '', 'ü', '', '', 'ffffffff-ffff-ffff-ffff-ffffffffffff', -12345.678)
	) v(i2, i4, i8, i8n, b, ts, txt, vc, bp, nm, u, num) ORDER BY i2`

	var want []row
	rows, err := conn.Query(ctx, q)
	require.NoError(t, err)
	for rows.Next() {
		var r row
		require.NoError(t, rows.Scan(dest(&r)...))
		want = append(want, r)
	}
	require.NoError(t, rows.Err())
	require.Len(t, want, 3)

	var got []row
	require.NoError(t, postgres.QueryRaw(ctx, db, q, nil, func(s sqlstore.RowScanner) error {
		var r row
		if err := s.Scan(dest(&r)...); err != nil {
			return err
		}
		got = append(got, r)
		return nil
	}))
	assert.Equal(t, want, got)
	assert.True(t, want[2].ts.Time.Before(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)), "a timestamp before PostgreSQL's epoch is among them")

	for _, c := range []struct {
		name, q string
		dest    any
	}{
		{"NULL into a string", `SELECT NULL::text`, new(string)},
		{"int8 too wide for an int16", `SELECT 70000::int8`, new(int16)},
		{"infinite timestamp into a sql.Scanner", `SELECT 'infinity'::timestamptz`, new(sql.NullTime)},
		{"NULL into an int64", `SELECT NULL::int8`, new(int64)},
	} {
		pgxErr := conn.QueryRow(ctx, c.q).Scan(c.dest)
		require.Error(t, pgxErr, "%s: pgx refuses it", c.name)
		err := postgres.QueryRaw(ctx, db, c.q, nil, func(s sqlstore.RowScanner) error { return s.Scan(c.dest) })
		assert.Error(t, err, "%s: the decoder refuses it too", c.name)
	}
}
