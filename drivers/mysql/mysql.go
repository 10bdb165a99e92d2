package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/mysqldialect"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/redact"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

func init() {
	d := core.StoreDriverFunc(func(ctx context.Context, url string) (core.Store, error) {
		return Open(ctx, url)
	})
	core.RegisterDriver("mysql", d)
	core.RegisterDriver("mariadb", d)
}

// Options configure a store.
type Options struct {
	// Prefix is put in front of every table and index name (lower-case
	// letters, digits and "_", at most 32), so several logs share a
	// database.
	Prefix string
	// Partitions is the number of partitions Migrate creates in a new
	// store (1 to core.MaxPartitions; 0: core.PartitionsDefault). An
	// existing store keeps its own, and Migrate refuses another.
	Partitions int
}

// Store is a trustlog store on MySQL or MariaDB.
type Store struct {
	*sqlstore.Store
}

var prefixRE = regexp.MustCompile(`^[a-z0-9_]{0,32}$`)

// ParseURL turns a mysql:// (or mariadb://) URL into the driver's
// configuration: mysql://user:password@host:3306/database?prefix=…&max_conns=…&partitions=…
// plus any go-sql-driver/mysql parameter (tls, timeout, …). trustlog sets
// what it depends on itself, whatever the URL says: parseTime, UTC for
// times and the session time zone, utf8mb4, client-side interpolation (one
// round trip per statement) and found-rows counting (compare-and-set
// counts matched rows).
func ParseURL(raw string) (*gomysql.Config, Options, int, error) {
	var opts Options
	bad := func(format string, args ...any) (*gomysql.Config, Options, int, error) {
		return nil, opts, 0, fmt.Errorf("%w: mysql URL %q: %s", core.ErrInvalidURL, redact.URL(raw), fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(raw)
	if err != nil || redact.AmbiguousUserInfo(raw) {
		// Neither the URL nor the parser's error is quoted: both may
		// hold the password.
		return nil, opts, 0, fmt.Errorf("%w: mysql URL: %s", core.ErrInvalidURL, redact.Unparseable)
	}
	if u.Scheme != "mysql" && u.Scheme != "mariadb" {
		return bad("scheme must be mysql or mariadb")
	}
	if u.Host == "" {
		return bad("no host")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return bad("the path must be the database name")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("the query cannot be parsed (write %% as %%25 and ; as %%3B)")
	}
	opts.Prefix = q.Get("prefix")
	if !prefixRE.MatchString(opts.Prefix) {
		return bad("prefix must be lower-case letters, digits and _, at most 32")
	}
	maxConns := 20
	if v := q.Get("max_conns"); v != "" {
		if maxConns, err = strconv.Atoi(v); err != nil || maxConns < 2 {
			return bad("max_conns must be an integer of at least 2")
		}
	}
	if v := q.Get("partitions"); v != "" {
		if opts.Partitions, err = strconv.Atoi(v); err != nil || opts.Partitions < 1 || opts.Partitions > core.MaxPartitions {
			return bad("partitions must be an integer from 1 to %d", core.MaxPartitions)
		}
	}
	q.Del("prefix")
	q.Del("max_conns")
	q.Del("partitions")
	host := u.Host
	if u.Port() == "" {
		host += ":3306"
	}
	// The DSN has no user info: the driver would split a user holding
	// ":" at it, and its errors never see the password.
	dsn := "tcp(" + host + ")/" + db
	if len(q) > 0 {
		dsn += "?" + q.Encode()
	}
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		return bad("%s", redact.URL(err.Error()))
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	configure(cfg)
	return cfg, opts, maxConns, nil
}

// configure sets what trustlog depends on.
func configure(cfg *gomysql.Config) {
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = true
	cfg.ClientFoundRows = true
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	cfg.Collation = "utf8mb4_unicode_ci"
}

// Open connects to the database a mysql URL names and checks that the
// server is one trustlog supports, with a NO PAD binary collation
// (MariaDB >= 10.6: utf8mb4_nopad_bin; MySQL >= 8.0.17: utf8mb4_0900_bin):
// an older one is refused, never silently run unsafely. It does not
// migrate.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	cfg, opts, maxConns, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("trustlog/mysql: %s", redact.URL(err.Error()))
	}
	sqldb := sql.OpenDB(conn)
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
	sqldb.SetConnMaxLifetime(30 * time.Minute)
	if err := CheckServer(ctx, sqldb); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("trustlog/mysql: %s: %w", redact.URL(rawURL), err)
	}
	s, err := newStore(ctx, bun.NewDB(sqldb, mysqldialect.New()), opts, true)
	if err != nil {
		sqldb.Close()
		return nil, err
	}
	return s, nil
}

// NewStore returns a store on a database the application already opened
// with github.com/go-sql-driver/mysql. db may be a *bun.DB or a *sql.DB.
// Its DSN should set clientFoundRows=true (compare-and-set counts matched
// rows) and loc=UTC; parseTime is not needed, times are parsed either way.
// The server is checked as by Open. Close leaves db open.
func NewStore(ctx context.Context, db any, opts Options) (*Store, error) {
	var bdb *bun.DB
	switch x := db.(type) {
	case *bun.DB:
		bdb = x
	case *sql.DB:
		bdb = bun.NewDB(x, mysqldialect.New())
	default:
		return nil, &core.ConfigError{Field: "db", Reason: fmt.Sprintf("want *bun.DB or *sql.DB, got %T", db)}
	}
	if !prefixRE.MatchString(opts.Prefix) {
		return nil, &core.ConfigError{Field: "Prefix", Reason: "must be lower-case letters, digits and _, at most 32"}
	}
	if opts.Partitions < 0 || opts.Partitions > core.MaxPartitions {
		return nil, &core.ConfigError{Field: "Partitions", Reason: fmt.Sprintf("must be 1 to %d (0: %d)", core.MaxPartitions, core.PartitionsDefault)}
	}
	if err := CheckServer(ctx, bdb.DB); err != nil {
		return nil, fmt.Errorf("trustlog/mysql: %w", err)
	}
	return newStore(ctx, bdb, opts, false)
}

// VersionError says the server is too old for trustlog.
type VersionError struct {
	Found string
	Need  string
}

// Error implements error.
func (e *VersionError) Error() string {
	return "server version " + e.Found + " is older than trustlog supports; it needs " + e.Need
}

// CheckServer pings the server and refuses one older than CheckVersion
// accepts.
func CheckServer(ctx context.Context, db *sql.DB) error {
	var v string
	if err := db.QueryRowContext(ctx, `SELECT VERSION()`).Scan(&v); err != nil {
		var me *gomysql.MySQLError
		if errors.As(err, &me) && refused[me.Number] {
			// Not the server down: waiting would not help.
			return &core.ConfigError{Field: "store", Reason: "the server refused the connection: " + redact.URL(err.Error())}
		}
		return fmt.Errorf("connect: %s", redact.URL(err.Error()))
	}
	return CheckVersion(v)
}

// refused are the server's answers to a connection that name a mistake in
// its configuration: access denied for the user (1045) or to the database
// (1044), unknown database (1049), and a URL option the driver passed on
// as a system variable that the server does not have (1193) or refuses
// the value of (1231, 1232).
var refused = map[uint16]bool{1044: true, 1045: true, 1049: true, 1193: true, 1231: true, 1232: true}

// CheckVersion checks a VERSION() string: MariaDB >= 10.6 or MySQL >= 8.0.17.
func CheckVersion(v string) error {
	mariadb := strings.Contains(strings.ToLower(v), "mariadb")
	s := v
	if mariadb {
		s = strings.TrimPrefix(s, "5.5.5-") // the replication-compatible prefix of old MariaDB
	}
	var parts [3]int
	for i, f := range strings.SplitN(strings.SplitN(s, "-", 2)[0], ".", 3) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return &VersionError{Found: v, Need: "MariaDB >= 10.6 or MySQL >= 8.0.17"}
		}
		parts[i] = n
	}
	atLeast := func(a, b, c int) bool {
		return parts[0] > a || parts[0] == a && (parts[1] > b || parts[1] == b && parts[2] >= c)
	}
	if mariadb && !atLeast(10, 6, 0) {
		return &VersionError{Found: v, Need: "MariaDB >= 10.6"}
	}
	if !mariadb && !atLeast(8, 0, 17) {
		return &VersionError{Found: v, Need: "MySQL >= 8.0.17"}
	}
	return nil
}

func newStore(ctx context.Context, db *bun.DB, opts Options, owns bool) (*Store, error) {
	var dbName string
	if err := db.DB.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&dbName); err != nil {
		return nil, fmt.Errorf("trustlog/mysql: %w", err)
	}
	q := func(name string) string { return "`" + opts.Prefix + name + "`" }
	names := sqlstore.Names{
		Prefix: opts.Prefix, Op: q("operation"), Cursor: q("trustlog_cursor"), Lease: q("trustlog_lease"),
		Hash: q("trustlog_hash"), Tree: q("trustlog_tree"), Checkpoint: q("trustlog_checkpoint"),
		Partition: q("trustlog_partition"), Retry: q("trustlog_retries"), Relay: q("trustlog_relay"),
		Status:     q("operation_status"),
		Migrations: opts.Prefix + "trustlog_migrations", MigrationLocks: opts.Prefix + "trustlog_migration_locks",
	}
	d := dialect()
	d.Partitions = opts.Partitions
	d.BeforeMigrate = adoptOriginal
	d.NewLocker = func(s *sqlstore.Store) core.Locker { return getLocker(s, dbName+"\x00"+opts.Prefix) }
	s, err := sqlstore.New(d, db, names, owns)
	if err != nil {
		return nil, err
	}
	return &Store{s}, nil
}

// getLocker keeps named leases with GET_LOCK / RELEASE_LOCK. Why a
// session lock rather than a lease row: see sqlstore.SessionLocker. Lock
// names are server-wide and at most 64 characters, so the name is a hash
// of database, prefix and lease name.
func getLocker(s *sqlstore.Store, ns string) *sqlstore.SessionLocker {
	return &sqlstore.SessionLocker{
		DB: s.DB(), Driver: "mysql",
		Acquire: `SELECT GET_LOCK(?, 0)`,
		Release: `SELECT RELEASE_LOCK(?)`,
		Key: func(name string) any {
			sum := sha256.Sum256([]byte(ns + "\x00" + name))
			return "trustlog:" + hex.EncodeToString(sum[:24])
		},
	}
}
