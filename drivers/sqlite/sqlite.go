package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/redact"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

func init() {
	d := core.StoreDriverFunc(func(ctx context.Context, url string) (core.Store, error) {
		return Open(ctx, url)
	})
	core.RegisterDriver("sqlite", d)
	core.RegisterDriver("file", d)
}

// Store is a trustlog store on a SQLite database file.
type Store struct {
	*sqlstore.Store
}

// Options configure a store.
type Options struct {
	// Prefix is put in front of every table and index name (lower-case
	// letters, digits and "_", at most 32), so several logs can share one
	// database file.
	Prefix string
	// Partitions is the number of partitions Migrate creates in a new
	// store (1 to core.MaxPartitions; 0: core.PartitionsDefault). An
	// existing store keeps its own, and Migrate refuses another.
	Partitions int
}

// Config is a parsed sqlite URL.
type Config struct {
	// Path is the database file.
	Path string
	Options
	// BusyTimeout is how long a writer waits for another process's write
	// lock (default 10s).
	BusyTimeout time.Duration
	// Synchronous is SQLite's synchronous pragma: FULL (default, durable
	// on power loss) or NORMAL (faster; a power cut can lose the last
	// commits, never corrupt).
	Synchronous string
	// MaxConns caps the connection pool (default 8).
	MaxConns int
	// CacheMiB is SQLite's page cache per connection, in MiB (default
	// 8). It lives in the process: a relay's resident memory grows by up
	// to MaxConns × CacheMiB as the file grows.
	CacheMiB int
}

var prefixRE = regexp.MustCompile(`^[a-z0-9_]{0,32}$`)

// cacheMiBDefault is the page cache per connection unless cache_mib says.
const cacheMiBDefault = 8

// ParseURL parses "sqlite:PATH", "sqlite://PATH", "sqlite:///ABS/PATH" or
// "file:PATH", with optional query parameters prefix, busy_timeout (a Go
// duration), synchronous (FULL or NORMAL), max_conns, cache_mib (page
// cache per connection) and partitions (for a new store). Unknown
// parameters are an error.
func ParseURL(raw string) (Config, error) {
	c := Config{BusyTimeout: 10 * time.Second, Synchronous: "FULL", MaxConns: 8, CacheMiB: cacheMiBDefault}
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: sqlite URL %q: %s", core.ErrInvalidURL, redact.URL(raw), fmt.Sprintf(format, args...))
	}
	scheme := core.Scheme(raw)
	if scheme != "sqlite" && scheme != "file" {
		return bad("scheme must be sqlite: or file:")
	}
	if redact.AmbiguousUserInfo(raw) {
		// User info, which would be read as part of the path: quote
		// nothing of it.
		return c, fmt.Errorf("%w: sqlite URL: %s (for a file whose path holds @, write %s:PATH)", core.ErrInvalidURL, redact.Unparseable, scheme)
	}
	if redact.HasPassword(raw) {
		// "sqlite://u:pw@host/x" names no file: refuse it rather than
		// quote the password back as part of a path.
		return c, fmt.Errorf("%w: sqlite URL: it holds a user and password (user:password@ before the path), which a SQLite file has none of (for a file whose path holds : and @, write %s:PATH)", core.ErrInvalidURL, scheme)
	}
	rest := raw[len(scheme)+1:]
	path, query, _ := strings.Cut(rest, "?")
	path = strings.TrimPrefix(path, "//")
	if path == "" {
		return bad("no database file path")
	}
	if strings.Contains(path, ":memory:") || strings.HasPrefix(path, ":") {
		return bad("in-memory databases are not supported (every pooled connection would get its own); use a file in a temporary directory")
	}
	p, err := url.PathUnescape(path)
	if err != nil {
		return bad("path: %v", err)
	}
	c.Path = p
	q, err := url.ParseQuery(query)
	if err != nil {
		return bad("the query cannot be parsed (write %% as %%25 and ; as %%3B)")
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "prefix":
			c.Prefix = v
		case "busy_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return bad("busy_timeout=%q is not a duration like 5s", v)
			}
			c.BusyTimeout = d
		case "synchronous":
			v = strings.ToUpper(v)
			if v != "FULL" && v != "NORMAL" {
				return bad("synchronous must be FULL or NORMAL")
			}
			c.Synchronous = v
		case "max_conns":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return bad("max_conns must be a positive integer")
			}
			c.MaxConns = n
		case "partitions":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > core.MaxPartitions {
				return bad("partitions must be an integer from 1 to %d", core.MaxPartitions)
			}
			c.Partitions = n
		case "cache_mib":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1<<20 {
				return bad("cache_mib must be a positive number of MiB")
			}
			c.CacheMiB = n
		default:
			return bad("unknown parameter %q (known: prefix, busy_timeout, synchronous, max_conns, cache_mib, partitions)", k)
		}
	}
	if !prefixRE.MatchString(c.Prefix) {
		return bad("prefix must be lower-case letters, digits and _, at most 32")
	}
	return c, nil
}

// DSN returns the database/sql data source name trustlog opens a file
// with: WAL journal, the busy timeout, the synchronous level, foreign keys
// on, and IMMEDIATE transactions (a transaction takes the write lock when
// it begins, so two writers never deadlock upgrading their read locks).
func (c Config) DSN() string {
	v := url.Values{}
	v.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", c.BusyTimeout.Milliseconds()))
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous("+c.Synchronous+")")
	v.Add("_pragma", "foreign_keys(ON)")
	// The page cache lives in this process, once per connection. 8 MiB
	// drains as fast as 64 MiB did (200k backlog: within run-to-run noise,
	// BENCHMARKS.md) while a relay's resident memory stays flat as the
	// file grows; cache_mib changes it.
	v.Add("_pragma", fmt.Sprintf("cache_size(-%d)", cmp.Or(c.CacheMiB, cacheMiBDefault)*1024))
	v.Set("_txlock", "immediate")
	return "file:" + c.Path + "?" + v.Encode()
}

// Open opens the store a sqlite URL names (see ParseURL). It does not
// migrate; call Migrate.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	c, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if dir := filepath.Dir(c.Path); c.Path != "" {
		// SQLite creates the file but not its directory, and says "out of
		// memory (14)" when the directory is missing.
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, &core.ConfigError{Field: "store", Reason: fmt.Sprintf("sqlite: the directory %s of %s does not exist", redact.URL(dir), redact.URL(c.Path))}
		}
	}
	sqldb, err := sql.Open(sqliteshim.ShimName, c.DSN())
	if err != nil {
		return nil, fmt.Errorf("trustlog/sqlite: open %s: %w", redact.URL(c.Path), err)
	}
	sqldb.SetMaxOpenConns(c.MaxConns)
	sqldb.SetMaxIdleConns(c.MaxConns)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("trustlog/sqlite: open %s: %w", redact.URL(c.Path), err)
	}
	s, err := newStore(bun.NewDB(sqldb, sqlitedialect.New()), c.Options, true)
	if err != nil {
		sqldb.Close()
		return nil, err
	}
	return s, nil
}

// NewStore returns a store on a database the application already opened
// (through sqliteshim or modernc.org/sqlite). Close leaves db open. Open
// it with Config.DSN's settings: without a busy timeout and IMMEDIATE
// transactions, concurrent writers fail with SQLITE_BUSY.
func NewStore(db *bun.DB, opts Options) (*Store, error) {
	return newStore(db, opts, false)
}

func newStore(db *bun.DB, opts Options, owns bool) (*Store, error) {
	if !prefixRE.MatchString(opts.Prefix) {
		return nil, &core.ConfigError{Field: "Prefix", Reason: "must be lower-case letters, digits and _, at most 32"}
	}
	if opts.Partitions < 0 || opts.Partitions > core.MaxPartitions {
		return nil, &core.ConfigError{Field: "Partitions", Reason: fmt.Sprintf("must be 1 to %d (0: %d)", core.MaxPartitions, core.PartitionsDefault)}
	}
	p := opts.Prefix
	q := func(name string) string { return `"` + p + name + `"` }
	names := sqlstore.Names{
		Prefix: p, Op: q("operation"), Cursor: q("trustlog_cursor"), Lease: q("trustlog_lease"),
		Hash: q("trustlog_hash"), Tree: q("trustlog_tree"), Checkpoint: q("trustlog_checkpoint"),
		Partition: q("trustlog_partition"), Retry: q("trustlog_retries"), Relay: q("trustlog_relay"),
		Status:     q("operation_status"),
		Migrations: p + "trustlog_migrations", MigrationLocks: p + "trustlog_migration_locks",
	}
	d := dialect()
	d.Partitions = opts.Partitions
	s, err := sqlstore.New(d, db, names, owns)
	if err != nil {
		return nil, err
	}
	// Handles on one database file in this process take turns for its one
	// writer (sqlstore.Store.ShareWriteLock); an in-memory database is
	// private to its handle.
	var seq int
	var name, file string
	if err := db.QueryRow("PRAGMA database_list").Scan(&seq, &name, &file); err == nil && file != "" {
		s.ShareWriteLock("sqlite:" + file)
	}
	return &Store{s}, nil
}
