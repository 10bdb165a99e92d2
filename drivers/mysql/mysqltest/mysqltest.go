// Package mysqltest gives tests a fresh, migrated MySQL/MariaDB store in a
// database of its own, dropped when the test ends: the conformance harness
// of the mysql driver, and a store for anyone's tests.
//
// The server is TRUSTLOG_MYSQL_DSN (default: the local server,
// mysql://root@127.0.0.1:3306/test). Tests skip when it does not answer,
// and fail instead with TRUSTLOG_REQUIRE_SERVICES=1.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// Server is the MySQL or MariaDB server tests use.
var Server = &testenv.Server{
	Name:        "MySQL/MariaDB",
	Service:     "mariadb",
	Env:         "TRUSTLOG_MYSQL_DSN",
	Default:     "mysql://root@127.0.0.1:3306/test",
	Driver:      "mysql",
	ToDriverDSN: driverDSN,
}

func driverDSN(u string) (string, error) {
	cfg, _, _, err := mysql.ParseURL(u)
	if err != nil {
		return "", err
	}
	return cfg.FormatDSN(), nil
}

// DB opens a database/sql handle with trustlog's session settings on the
// database url names, closed when t ends.
func DB(t testing.TB, url string) *sql.DB {
	t.Helper()
	cfg, _, _, err := mysql.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := gomysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

// NewDatabase creates an empty database for t, drops it when t ends, and
// returns the store URL that uses it.
func NewDatabase(t testing.TB) string {
	t.Helper()
	dsn := Server.Need(t)
	var b [6]byte
	rand.Read(b[:])
	name := "tl_" + hex.EncodeToString(b[:])
	admin := DB(t, dsn)
	if _, err := admin.Exec("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A transaction a test left open would hold a metadata lock, and
		// DROP DATABASE would wait for it for a year by default.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := admin.Conn(ctx)
		if err == nil {
			defer conn.Close()
			conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = 10")
			_, err = conn.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
		}
		if err != nil {
			t.Errorf("mysqltest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// Open opens and migrates a store at url and closes it when t ends.
func Open(t testing.TB, url string) *mysql.Store {
	t.Helper()
	s, err := mysql.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("mysqltest: migrate: %v", err)
	}
	return s
}

// Harness returns a conformance harness over a fresh database.
func Harness(t *testing.T) conformance.StoreHarness {
	url := NewDatabase(t)
	s := Open(t, url)
	return conformance.StoreHarness{
		Store:  s,
		DB:     s.Bun(),
		Reopen: func(t *testing.T) core.Store { return Open(t, url) },
	}
}
