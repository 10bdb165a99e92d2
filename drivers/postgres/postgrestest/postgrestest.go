// Package postgrestest gives tests a fresh, migrated PostgreSQL store in a
// schema of its own, dropped when the test ends: the conformance harness
// of the postgres driver, and a store for anyone's tests.
//
// The server is TRUSTLOG_POSTGRES_DSN (default: the local server,
// postgres://postgres@127.0.0.1:5432/test). Tests skip when it does not
// answer, and fail instead with TRUSTLOG_REQUIRE_SERVICES=1.
package postgrestest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for the ping

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// Server is the PostgreSQL server tests use.
var Server = &testenv.Server{
	Name:    "PostgreSQL",
	Service: "postgres",
	Env:     "TRUSTLOG_POSTGRES_DSN",
	Default: "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
	Driver:  "pgx",
	ToDriverDSN: func(dsn string) (string, error) {
		d, _, _, err := postgres.ParseURL(dsn)
		return d, err
	},
}

// NewSchema creates an empty schema for t, drops it when t ends, and
// returns the store URL that uses it.
func NewSchema(t testing.TB) string {
	t.Helper()
	dsn := Server.Need(t)
	var b [6]byte
	rand.Read(b[:])
	schema := "tl_" + hex.EncodeToString(b[:])
	d, _, _, err := postgres.ParseURL(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Exec(`DROP SCHEMA IF EXISTS "` + schema + `" CASCADE`)
		db.Close()
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// DB opens a plain database/sql handle on the test server, closed when t
// ends, for tests that set up tables themselves.
func DB(t testing.TB) *sql.DB {
	t.Helper()
	d, _, _, err := postgres.ParseURL(Server.Need(t))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Open opens and migrates a store at url and closes it when t ends.
func Open(t testing.TB, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("postgrestest: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("postgrestest: migrate: %v", err)
	}
	return s
}

// Harness returns a conformance harness over a fresh schema.
func Harness(t *testing.T) conformance.StoreHarness {
	url := NewSchema(t)
	s := Open(t, url)
	return conformance.StoreHarness{
		Store:  s,
		DB:     s.Bun(),
		Reopen: func(t *testing.T) core.Store { return Open(t, url) },
	}
}
