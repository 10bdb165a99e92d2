package mysql_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/internal/legacytest"
	"github.com/go-trustlog/trustlog/internal/sqlstore/storetest"
)

// originalDDL is the original SDK's schema on MySQL as trustlog assumes it
// (the postgres driver's upgrade.go documents the columns).
var originalDDL = []string{
	"CREATE TABLE operation (op_id VARCHAR(64) PRIMARY KEY, op_actor VARCHAR(64), doid VARCHAR(512), producer_id VARCHAR(64)," +
		" request_body_hash VARCHAR(128), response_body_hash VARCHAR(128), op_hash VARCHAR(128), sign VARCHAR(512)," +
		" op_source VARCHAR(10), op_type VARCHAR(30), do_prefix VARCHAR(128), do_repository VARCHAR(64)," +
		" client_ip VARCHAR(32), server_ip VARCHAR(32), trustlog_status VARCHAR(32)," +
		" created_at TIMESTAMP(6) NULL, updated_at TIMESTAMP(6) NULL, KEY idx_status_created (trustlog_status, created_at))" +
		" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
	"CREATE TABLE trustlog_cursor (cursor_key VARCHAR(64) PRIMARY KEY, cursor_value VARCHAR(128), updated_at TIMESTAMP(6) NULL)",
	"CREATE TABLE trustlog_retry (op_id VARCHAR(64) PRIMARY KEY, retry_count INT, last_error TEXT," +
		" next_retry_at TIMESTAMP(6) NULL, status VARCHAR(32), created_at TIMESTAMP(6) NULL, updated_at TIMESTAMP(6) NULL)",
}

func TestUpgradeFromOriginal(t *testing.T) {
	t.Parallel()
	url := mysqltest.NewDatabase(t)
	db := mysqltest.DB(t, url)
	for _, q := range originalDDL {
		_, err := db.Exec(q)
		require.NoError(t, err, q)
	}
	tb := legacytest.Tables{Operation: "operation", Cursor: "trustlog_cursor", Retry: "trustlog_retry", Status: "operation_status"}
	legacytest.Fill(t, db, tb, func(int) string { return "?" })
	s, err := mysql.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	legacytest.Migrate(t, s)
	legacytest.Check(t, s, db, tb)
}

// TestUpgradeResumes: MySQL commits DDL one statement at a time, so a
// crash can leave an adoption half done; the next Migrate finishes it.
func TestUpgradeResumes(t *testing.T) {
	t.Parallel()
	url := mysqltest.NewDatabase(t)
	db := mysqltest.DB(t, url)
	for _, q := range originalDDL {
		_, err := db.Exec(q)
		require.NoError(t, err)
	}
	tb := legacytest.Tables{Operation: "operation", Cursor: "trustlog_cursor", Retry: "trustlog_retry", Status: "operation_status"}
	legacytest.Fill(t, db, tb, func(int) string { return "?" })
	// The first steps of an interrupted adoption.
	for _, q := range []string{
		"ALTER TABLE operation RENAME COLUMN op_hash TO legacy_op_hash, RENAME COLUMN sign TO legacy_sign",
		"ALTER TABLE operation ADD COLUMN seq BIGINT NULL",
	} {
		_, err := db.Exec(q)
		require.NoError(t, err, strings.Fields(q)[0])
	}
	_, err := db.Exec(`UPDATE operation AS o JOIN (SELECT op_id, ROW_NUMBER() OVER (ORDER BY created_at, op_id) AS rn FROM operation) AS r
		ON o.op_id = r.op_id SET o.seq = r.rn`)
	require.NoError(t, err)
	legacytest.Check(t, mysqltest.Open(t, url), db, tb)
}

// TestUpgrade: Migrate upgrades a store of the previous release in place:
// every operation gets a position and keeps its publishing state (see
// storetest.Upgrade).
func TestUpgrade(t *testing.T) {
	t.Parallel()
	storetest.Upgrade(t, mysqltest.NewDatabase(t))
}

// TestUpgradeInterrupted: an upgrade interrupted after the positions
// migration did its work is finished without carrying anything over
// twice.
func TestUpgradeInterrupted(t *testing.T) {
	t.Parallel()
	storetest.UpgradeInterrupted(t, mysqltest.NewDatabase(t))
}

// TestUpgradeWithPrefix: the upgrade names every table, index and view
// with the store's prefix.
func TestUpgradeWithPrefix(t *testing.T) {
	t.Parallel()
	storetest.Upgrade(t, storetest.WithParam(t, mysqltest.NewDatabase(t), "prefix", "app_"))
}
