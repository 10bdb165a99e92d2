package postgres_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
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
