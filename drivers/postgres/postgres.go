package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/redact"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

func init() {
	d := core.StoreDriverFunc(func(ctx context.Context, url string) (core.Store, error) {
		return Open(ctx, url)
	})
	core.RegisterDriver("postgres", d)
	core.RegisterDriver("postgresql", d)
}

// Options configure a store.
type Options struct {
	// Schema holds the tables (created by Migrate if missing). Empty: the
	// connection's search_path, usually public.
	Schema string
	// Prefix is put in front of every table and index name (lower-case
	// letters, digits and "_", at most 32), so several logs share a schema.
	Prefix string
	// NoNotify turns wake-on-commit off, for poolers in transaction mode
	// (PgBouncer) where LISTEN does not work: inserts and the sequencer
	// send no NOTIFY and engines poll.
	NoNotify bool
	// Partitions is the number of partitions Migrate creates in a new
	// store (1 to core.MaxPartitions; 0: core.PartitionsDefault). An
	// existing store keeps its own, and Migrate refuses another.
	Partitions int
	// Logger receives the store's warnings (the wake-on-commit listener
	// losing its connection); default slog.Default(). Open sets it to the
	// logger its context carries (core.ContextWithLogger).
	Logger *slog.Logger
}

// Store is a trustlog store on PostgreSQL.
type Store struct {
	*sqlstore.Store
	opts    Options
	channel string
	hub     *hub
}

var (
	identRE  = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	prefixRE = regexp.MustCompile(`^[a-z0-9_]{0,32}$`)
)

// ParseURL splits a postgres:// URL into the pgx connection string and
// trustlog's own parameters: schema, prefix, notify (true/false),
// max_conns and partitions (for a new store). Every other parameter goes
// to pgx (sslmode, connect_timeout, application_name, …).
func ParseURL(raw string) (dsn string, opts Options, maxConns int, err error) {
	bad := func(format string, args ...any) (string, Options, int, error) {
		return "", opts, 0, fmt.Errorf("%w: postgres URL %q: %s", core.ErrInvalidURL, redact.URL(raw), fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(raw)
	if err != nil || redact.AmbiguousUserInfo(raw) {
		// Neither the URL nor the parser's error is quoted: both may
		// hold the password.
		return "", opts, 0, fmt.Errorf("%w: postgres URL: %s", core.ErrInvalidURL, redact.Unparseable)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return bad("scheme must be postgres or postgresql")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("the query cannot be parsed (write %% as %%25 and ; as %%3B)")
	}
	opts.Schema, opts.Prefix = q.Get("schema"), q.Get("prefix")
	maxConns = 20
	if v := q.Get("notify"); v != "" {
		on, perr := strconv.ParseBool(v)
		if perr != nil {
			return bad("notify must be true or false")
		}
		opts.NoNotify = !on
	}
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
	for _, k := range []string{"schema", "prefix", "notify", "max_conns", "partitions"} {
		q.Del(k)
	}
	u.RawQuery = q.Encode()
	if err := opts.validate(); err != nil {
		return bad("%v", err)
	}
	return u.String(), opts, maxConns, nil
}

func (o Options) validate() error {
	if o.Schema != "" && !identRE.MatchString(o.Schema) {
		return &core.ConfigError{Field: "Schema", Reason: "must be a lower-case identifier (letters, digits, _)"}
	}
	if !prefixRE.MatchString(o.Prefix) {
		return &core.ConfigError{Field: "Prefix", Reason: "must be lower-case letters, digits and _, at most 32"}
	}
	if o.Partitions < 0 || o.Partitions > core.MaxPartitions {
		return &core.ConfigError{Field: "Partitions", Reason: fmt.Sprintf("must be 1 to %d (0: %d)", core.MaxPartitions, core.PartitionsDefault)}
	}
	return nil
}

// Open connects to the database a postgres URL names, through pgx. It does
// not migrate; call Migrate.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	dsn, opts, maxConns, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres URL %q: %s", core.ErrInvalidURL, redact.URL(rawURL), redact.URL(err.Error()))
	}
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "28") || pe.Code == "3D000" || pe.Code == "42704" || pe.Code == "22023") {
			// Authentication failed, no pg_hba entry, no such database,
			// or a URL option passed on as a run-time parameter that the
			// server does not have (42704) or refuses the value of
			// (22023): not the server down, so waiting would not help.
			return nil, &core.ConfigError{Field: "store", Reason: fmt.Sprintf("postgres at %s refused the connection: %s",
				redact.URL(rawURL), redact.URL(err.Error()))}
		}
		return nil, fmt.Errorf("trustlog/postgres: connect to %s: %s", redact.URL(rawURL), redact.URL(err.Error()))
	}
	opts.Logger = core.LoggerFrom(ctx)
	s, err := newStore(bun.NewDB(sqldb, pgdialect.New()), opts, true)
	if err != nil {
		sqldb.Close()
		return nil, err
	}
	return s, nil
}

// NewStore returns a store on a database the application already opened.
// db may be a *bun.DB or a *sql.DB. Wake-on-commit needs the pgx driver
// (github.com/jackc/pgx/v5/stdlib) underneath; with another driver engines
// poll. Close leaves db open.
func NewStore(db any, opts Options) (*Store, error) {
	switch x := db.(type) {
	case *bun.DB:
		return newStore(x, opts, false)
	case *sql.DB:
		return newStore(bun.NewDB(x, pgdialect.New()), opts, false)
	}
	return nil, &core.ConfigError{Field: "db", Reason: fmt.Sprintf("want *bun.DB or *sql.DB, got %T", db)}
}

func newStore(db *bun.DB, opts Options, owns bool) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	qualify := func(name string) string {
		if opts.Schema == "" {
			return `"` + opts.Prefix + name + `"`
		}
		return `"` + opts.Schema + `"."` + opts.Prefix + name + `"`
	}
	bare := func(name string) string {
		if opts.Schema == "" {
			return opts.Prefix + name
		}
		return opts.Schema + "." + opts.Prefix + name
	}
	names := sqlstore.Names{
		Prefix: opts.Prefix, Schema: opts.Schema,
		Op: qualify("operation"), Cursor: qualify("trustlog_cursor"), Lease: qualify("trustlog_lease"),
		Hash: qualify("trustlog_hash"), Tree: qualify("trustlog_tree"), Checkpoint: qualify("trustlog_checkpoint"),
		Partition: qualify("trustlog_partition"), Retry: qualify("trustlog_retries"), Relay: qualify("trustlog_relay"),
		Status:   qualify("operation_status"),
		Position: qualify("trustlog_position"), Unsequenced: qualify("trustlog_unsequenced"),
		QueueFunc: qualify("trustlog_queue_unsequenced"), HashRun: qualify("trustlog_hash_run"),
		Migrations: bare("trustlog_migrations"), MigrationLocks: bare("trustlog_migration_locks"),
	}
	s := &Store{opts: opts, channel: channelName(opts)}
	d := dialect()
	d.Partitions = opts.Partitions
	notify := ""
	if opts.NoNotify {
		d.Caps.ListenNotify = false
	} else {
		// The NOTIFY rides in the INSERT's round trip and is sent at
		// commit; PostgreSQL folds identical notifications of one
		// transaction into one, so a transaction recording many times
		// still wakes listeners once. The sequencer's Append notifies the
		// same channel, so relays of other processes read the positions
		// it gave at once.
		notify = "SELECT pg_notify('" + s.channel + "', '')"
		d.Queries.AppendNotify = notify
	}
	// The INSERT queues its operations for the sequencer in the same
	// statement (the table's trigger would, at a cost: 00007).
	d.WrapInsert = func(insert string) string { return queueInsert(insert, names.Unsequenced, notify) }
	d.BeforeMigrate = s.beforeMigrate
	d.NewLocker = func(st *sqlstore.Store) core.Locker { return advisoryLocker(st, s.channel) }
	inner, err := sqlstore.New(d, db, names, owns)
	if err != nil {
		return nil, err
	}
	s.Store = inner
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s.hub = newHub(inner.DB(), s.channel, logger)
	return s, nil
}

// channelName is the NOTIFY channel of a store: its schema and prefix, so
// two logs in one database wake only their own engines. Identifiers are
// at most 63 bytes; a longer name is shortened with a hash.
func channelName(o Options) string {
	name := "trustlog:" + o.Schema + ":" + o.Prefix
	if len(name) > 63 {
		sum := sha256.Sum256([]byte(name))
		name = name[:46] + ":" + hex.EncodeToString(sum[:8])
	}
	return name
}

// Subscribe implements core.Notifier.
func (s *Store) Subscribe(ctx context.Context) (<-chan struct{}, error) {
	if s.opts.NoNotify {
		return nil, fmt.Errorf("trustlog/postgres: notify is off for this store")
	}
	return s.hub.subscribe(ctx), nil
}

// Close stops the listener and closes the store.
func (s *Store) Close() error {
	s.hub.close()
	return s.Store.Close()
}

func (s *Store) beforeMigrate(ctx context.Context, st *sqlstore.Store) error {
	if s.opts.Schema != "" {
		if _, err := st.DB().ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS "`+s.opts.Schema+`"`); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	return adoptOriginal(ctx, st)
}
