package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/legacytest"
	"github.com/go-trustlog/trustlog/internal/sqlstore/storetest"
)

// originalDDL is the original SDK's schema as trustlog assumes it (see
// upgrade.go).
const originalDDL = `
CREATE TABLE %[1]s.operation (
    op_id VARCHAR(64) PRIMARY KEY, op_actor VARCHAR(64), doid VARCHAR(512), producer_id VARCHAR(64),
    request_body_hash VARCHAR(128), response_body_hash VARCHAR(128), op_hash VARCHAR(128), sign VARCHAR(512),
    op_source VARCHAR(10), op_type VARCHAR(30), do_prefix VARCHAR(128), do_repository VARCHAR(64),
    client_ip VARCHAR(32), server_ip VARCHAR(32), trustlog_status VARCHAR(32),
    created_at TIMESTAMP, updated_at TIMESTAMP);
CREATE INDEX idx_operation_status_created ON %[1]s.operation (trustlog_status, created_at);
CREATE TABLE %[1]s.trustlog_cursor (cursor_key VARCHAR(64) PRIMARY KEY, cursor_value VARCHAR(128), updated_at TIMESTAMP);
CREATE TABLE %[1]s.trustlog_retry (op_id VARCHAR(64) PRIMARY KEY, retry_count INT, last_error TEXT,
    next_retry_at TIMESTAMP, status VARCHAR(32), created_at TIMESTAMP, updated_at TIMESTAMP);`

func TestUpgradeFromOriginal(t *testing.T) {
	t.Parallel()
	storeURL := postgrestest.NewSchema(t)
	u, err := url.Parse(storeURL)
	require.NoError(t, err)
	schema := `"` + u.Query().Get("schema") + `"`
	db := postgrestest.DB(t)
	_, err = db.Exec(`CREATE SCHEMA ` + schema)
	require.NoError(t, err)
	_, err = db.Exec(fmt.Sprintf(originalDDL, schema))
	require.NoError(t, err)
	tb := legacytest.Tables{Operation: schema + ".operation", Cursor: schema + ".trustlog_cursor", Retry: schema + ".trustlog_retry",
		Status: schema + ".operation_status"}
	legacytest.Fill(t, db, tb, func(n int) string { return "$" + strconv.Itoa(n) })
	s, err := postgres.Open(context.Background(), storeURL)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	legacytest.Migrate(t, s)
	legacytest.Check(t, s, db, tb)
}

// TestUpgrade: Migrate upgrades a store of the previous release in place:
// every operation gets a position and keeps its publishing state (see
// storetest.Upgrade).
func TestUpgrade(t *testing.T) {
	t.Parallel()
	storetest.Upgrade(t, postgrestest.NewSchema(t))
}

// TestUpgradeInterrupted: an upgrade interrupted after the positions
// migration did its work is finished without carrying anything over
// twice.
func TestUpgradeInterrupted(t *testing.T) {
	t.Parallel()
	storetest.UpgradeInterrupted(t, postgrestest.NewSchema(t))
}

// TestUpgradeWithPrefix: the upgrade names every table, index and view
// with the store's prefix.
func TestUpgradeWithPrefix(t *testing.T) {
	t.Parallel()
	storetest.Upgrade(t, storetest.WithParam(t, postgrestest.NewSchema(t), "prefix", "app_"))
}
