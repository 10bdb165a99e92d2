// Package storetest gives sqlstore's tests, and the SQL drivers' upgrade
// tests, fresh stores on every database trustlog supports: a SQLite file,
// a PostgreSQL schema and a MySQL/MariaDB database of their own, dropped
// when the test ends. It depends on no conformance harness.
//
// The servers are those of postgrestest and mysqltest (the same
// environment variables and defaults). Tests skip when a server does not
// answer, and fail instead with TRUSTLOG_REQUIRE_SERVICES=1.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for the ping

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// postgresServer is the PostgreSQL server tests use.
var postgresServer = &testenv.Server{
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

// mysqlServer is the MySQL or MariaDB server tests use.
var mysqlServer = &testenv.Server{
	Name:    "MySQL/MariaDB",
	Service: "mariadb",
	Env:     "TRUSTLOG_MYSQL_DSN",
	Default: "mysql://root@127.0.0.1:3306/test",
	Driver:  "mysql",
	ToDriverDSN: func(u string) (string, error) {
		cfg, _, _, err := mysql.ParseURL(u)
		if err != nil {
			return "", err
		}
		return cfg.FormatDSN(), nil
	},
}

// DB is one database kind.
type DB struct {
	// Name is the driver's name: sqlite, postgres or mysql.
	Name string
	// URL returns the URL of a new, empty store for t, removed when t
	// ends; it skips t when the server does not answer.
	URL func(t testing.TB) string
}

// DBs are the databases, SQLite first.
var DBs = []DB{{"sqlite", SQLiteURL}, {"postgres", PostgresURL}, {"mysql", MySQLURL}}

// Each runs f in a parallel subtest per database.
func Each(t *testing.T, f func(t *testing.T, db DB)) {
	t.Helper()
	for _, db := range DBs {
		t.Run(db.Name, func(t *testing.T) {
			t.Parallel()
			f(t, db)
		})
	}
}

// SQLiteURL returns the URL of a new database file in t's temporary
// directory.
func SQLiteURL(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "trustlog.db")
}

func suffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// PostgresURL returns the URL of a store in a new schema, dropped when t
// ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	dsn := postgresServer.Need(t)
	schema := "tl_" + suffix()
	db := PostgresDB(t)
	t.Cleanup(func() { db.Exec(`DROP SCHEMA IF EXISTS "` + schema + `" CASCADE`) })
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// PostgresDB opens a plain handle on the PostgreSQL server, closed when t
// ends.
func PostgresDB(t testing.TB) *sql.DB {
	t.Helper()
	d, _, _, err := postgres.ParseURL(postgresServer.Need(t))
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

// MySQLURL returns the URL of a store in a new database, dropped when t
// ends.
func MySQLURL(t testing.TB) string {
	t.Helper()
	dsn := mysqlServer.Need(t)
	name := "tl_" + suffix()
	admin := MySQLDB(t, dsn)
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
			t.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// MySQLDB opens a handle with trustlog's session settings on the database
// a mysql URL names, closed when t ends.
func MySQLDB(t testing.TB, url string) *sql.DB {
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

// WithParam returns url with a query parameter set.
func WithParam(t testing.TB, rawURL, key, value string) string {
	t.Helper()
	if core.Scheme(rawURL) == "sqlite" {
		sep := "?"
		if u, err := url.Parse(rawURL); err == nil && u.RawQuery != "" {
			sep = "&"
		}
		return rawURL + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// Store is a store under test: the shared SQL store, and the driver's
// (the PostgreSQL one is a core.Notifier).
type Store struct {
	*sqlstore.Store
	Driver core.Store
}

// Close closes the driver's store.
func (s *Store) Close() error { return s.Driver.Close() }

// OpenRaw opens the store url names, without migrating it, and closes it
// when t ends.
func OpenRaw(t testing.TB, url string) *Store {
	t.Helper()
	ctx := context.Background()
	var s *Store
	switch core.Scheme(url) {
	case "sqlite":
		d, err := sqlite.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		s = &Store{d.Store, d}
	case "postgres":
		d, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		s = &Store{d.Store, d}
	case "mysql":
		d, err := mysql.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		s = &Store{d.Store, d}
	default:
		t.Fatalf("storetest: no driver for %s", url)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Open opens and migrates the store url names, and closes it when t
// ends.
func Open(t testing.TB, url string) *Store {
	t.Helper()
	s := OpenRaw(t, url)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("storetest: migrate: %v", err)
	}
	return s
}

// Ph returns the store's n-th bind parameter, for raw SQL.
func (s *Store) Ph(n int) string { return s.Dialect().Placeholder(n) }

// Time returns the bind argument of a time column.
func (s *Store) Time(t time.Time) any { return s.Dialect().TimeArg(t) }

// Exec runs raw SQL written with "?" parameters, rendered in the store's
// placeholders and with its table names ({{.Op}} …).
func (s *Store) Exec(t testing.TB, q string, args ...any) sql.Result {
	t.Helper()
	r, err := s.DB().Exec(s.SQL(t, q), args...)
	if err != nil {
		t.Fatalf("storetest: %s: %v", q, err)
	}
	return r
}

// SQL renders raw SQL written with "?" parameters for the store.
func (s *Store) SQL(t testing.TB, q string) string {
	t.Helper()
	var out []byte
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			out = append(out, s.Ph(n)...)
			continue
		}
		out = append(out, q[i])
	}
	r, err := s.Render(string(out))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// BeforePartitions is the last migration of the schema before
// partitions: what the previous release's stores have.
func (s *Store) BeforePartitions() string {
	v, _ := strconv.Atoi(s.Dialect().PositionsMigration)
	return fmt.Sprintf("%05d", v-2)
}

// BeforePositions is the last migration before the positions migration:
// the partitions and, on PostgreSQL, the positions tables (000025, which
// sorts between 00002 and 00003).
func (s *Store) BeforePositions(t testing.TB) string {
	t.Helper()
	list, err := s.MigrationList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	prev := ""
	for _, m := range list {
		version, _, _ := strings.Cut(m.Name, "_")
		if version == s.Dialect().PositionsMigration {
			return prev
		}
		prev = version
	}
	t.Fatalf("no positions migration %s among the migrations", s.Dialect().PositionsMigration)
	return ""
}
