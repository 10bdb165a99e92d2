package memstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
)

// Scheme is the URL scheme the package registers.
const Scheme = "memstore"

func init() {
	core.RegisterDriver(Scheme, core.StoreDriverFunc(func(ctx context.Context, rawURL string) (core.Store, error) {
		return Open(ctx, rawURL)
	}))
}

// ErrNotMigrated is returned by every method that needs the schema (all but
// Capabilities, Migrate, Locker and Close) on a store Migrate has not run on.
var ErrNotMigrated = errors.New("memstore: store not migrated (run Migrate)")

// ErrDuplicateOpID is wrapped when Insert is given an op_id the store
// already holds (or twice in one batch); nothing of the batch is stored.
var ErrDuplicateOpID = errors.New("memstore: duplicate op_id")

// Options configure a store handle.
type Options struct {
	// Partitions is how many partitions Migrate creates in a new store
	// (default core.PartitionsDefault, at most core.MaxPartitions). For a
	// store that is already migrated it must be 0 or the existing count.
	Partitions int
}

// Store is a handle on an in-memory store. Handles opened with the same
// name share their data; each has its own Close, leases and subscriptions.
// It is safe for concurrent use.
type Store struct {
	d      *data
	opt    Options
	closed atomic.Bool
}

// Compile-time checks of what the package promises.
var (
	_ core.Store     = (*Store)(nil)
	_ core.Notifier  = (*Store)(nil)
	_ ledger.Storage = (*Store)(nil)
)

// registry holds the named stores of the process.
var registry = struct {
	sync.Mutex
	m map[string]*data
}{m: map[string]*data{}}

// dataIDs numbers data values, to lock several in a fixed order.
var dataIDs atomic.Uint64

// New returns a handle on the store called name, creating it empty if the
// process has none of that name; name "" creates a private store that no
// other call can open. It is the typed constructor, for code that holds no
// URL.
func New(name string, opt Options) (*Store, error) {
	if opt.Partitions < 0 || opt.Partitions > core.MaxPartitions {
		return nil, &core.ConfigError{Field: "partitions", Reason: fmt.Sprintf("must be between 1 and %d", core.MaxPartitions)}
	}
	if name == "" {
		return &Store{d: newData(""), opt: opt}, nil
	}
	registry.Lock()
	defer registry.Unlock()
	d := registry.m[name]
	if d == nil {
		d = newData(name)
		registry.m[name] = d
	}
	return &Store{d: d, opt: opt}, nil
}

// Open parses a memstore URL ("memstore://name?partitions=N", or
// "memstore:name") and returns a handle on that store (see New). Unknown
// parameters are an error naming them.
func Open(_ context.Context, rawURL string) (*Store, error) {
	name, opt, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return New(name, opt)
}

func parseURL(rawURL string) (string, Options, error) {
	var opt Options
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", opt, fmt.Errorf("%w: %v", core.ErrInvalidURL, err)
	}
	if !strings.EqualFold(u.Scheme, Scheme) {
		return "", opt, fmt.Errorf("%w: scheme %q is not %s", core.ErrInvalidURL, u.Scheme, Scheme)
	}
	if u.User != nil {
		return "", opt, fmt.Errorf("%w: a memstore URL has no user", core.ErrInvalidURL)
	}
	name := u.Opaque
	if name == "" {
		name = u.Host + u.Path
	}
	var unknown []string
	for k, vs := range u.Query() {
		switch k {
		case "partitions":
			n, err := strconv.Atoi(vs[len(vs)-1])
			if err != nil || n < 1 || n > core.MaxPartitions {
				return "", opt, fmt.Errorf("%w: partitions=%q must be an integer between 1 and %d", core.ErrInvalidURL, vs[len(vs)-1], core.MaxPartitions)
			}
			opt.Partitions = n
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return "", opt, fmt.Errorf("%w: unknown memstore parameter(s) %s", core.ErrInvalidURL, strings.Join(unknown, ", "))
	}
	return name, opt, nil
}

// Drop forgets the store called name: later opens of the name get a new,
// empty store. Handles already open keep the old data until closed.
func Drop(name string) {
	registry.Lock()
	defer registry.Unlock()
	delete(registry.m, name)
}

// Name returns the store's name ("" for a private one).
func (s *Store) Name() string { return s.d.name }

// Capabilities implements core.Store: the store wakes engines (Notifier),
// and named leases end with the handle that holds them.
func (s *Store) Capabilities() core.Capabilities {
	return core.Capabilities{ListenNotify: true, SessionLeases: true}
}

// Migrate implements core.Store: it creates the partitions (Options.
// Partitions, default core.PartitionsDefault) and the log's identity
// (core.LogIDCursor, a random UUID) if missing. It is idempotent; a
// partition count that differs from the existing one is an error.
func (s *Store) Migrate(ctx context.Context) error {
	d, now, err := s.lock(ctx, false)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	if d.migrated {
		if s.opt.Partitions != 0 && s.opt.Partitions != len(d.parts) {
			return &core.ConfigError{Field: "partitions", Reason: fmt.Sprintf("the store has %d partitions, not %d", len(d.parts), s.opt.Partitions)}
		}
		return nil
	}
	n := s.opt.Partitions
	if n == 0 {
		n = core.PartitionsDefault
	}
	d.parts = make([]*partition, n)
	for i := range d.parts {
		d.parts[i] = &partition{Partition: core.Partition{Part: i, Cursor: -1}}
	}
	if _, ok := d.cursors[core.LogIDCursor]; !ok {
		d.cursors[core.LogIDCursor] = core.Cursor{Name: core.LogIDCursor, Value: uuid.NewString(), UpdatedAt: now}
	}
	d.migrated = true
	return nil
}

// Close implements core.Store: it ends the handle's named leases (their
// Lost channels close) and subscriptions. The data stays for other
// handles and later opens. It is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, l := range d.leases {
		if l.holder == s {
			delete(d.leases, name)
			close(l.lost)
		}
	}
	for sub := range d.subs {
		if sub.holder == s {
			d.unsubscribe(sub)
		}
	}
	return nil
}

// lock checks the handle and ctx, takes the store's mutex and returns the
// store's clock reading for the call. With needSchema it also requires
// Migrate to have run. The caller unlocks d.mu.
func (s *Store) lock(ctx context.Context, needSchema bool) (*data, time.Time, error) {
	if s.closed.Load() {
		return nil, time.Time{}, core.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, err
	}
	d := s.d
	d.mu.Lock()
	if needSchema && !d.migrated {
		d.mu.Unlock()
		return nil, time.Time{}, ErrNotMigrated
	}
	return d, d.now(), nil
}

// data is one store's content. Every field is guarded by mu.
type data struct {
	id   uint64
	name string

	mu       sync.Mutex
	migrated bool
	nextSeq  int64 // the last seq handed out (committed or not)
	maxSeq   int64 // the largest committed seq

	rows     []*row          // committed operations, in seq order
	byID     map[string]*row // by op_id
	unseq    []*row          // rows without a position, in seq order
	byPos    []*row          // rows with a position, index = position
	hashes   []tlog.Hash     // stored Merkle hashes, index = stored-hash index
	parts    []*partition
	retry    map[int64]*retryRow // the retry table, by seq
	members  map[string]time.Time
	cursors  map[string]core.Cursor
	leases   map[string]*lease
	subs     map[*subscription]struct{}
	ckpts    map[int64]*ledger.StoredCheckpoint
	ckptList []int64 // checkpoint sizes, sorted
}

func newData(name string) *data {
	return &data{
		id:      dataIDs.Add(1),
		name:    name,
		byID:    map[string]*row{},
		retry:   map[int64]*retryRow{},
		members: map[string]time.Time{},
		cursors: map[string]core.Cursor{},
		leases:  map[string]*lease{},
		subs:    map[*subscription]struct{}{},
		ckpts:   map[int64]*ledger.StoredCheckpoint{},
	}
}

// now is the store's clock, at a database timestamp's precision.
func (d *data) now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// row is one stored operation.
type row struct {
	seq        int64
	op         core.Operation
	part       int
	pos        int64 // -1 until sequenced
	recordedAt time.Time
}

// partition is one partition's publishing state, with its sequenced rows.
type partition struct {
	core.Partition
	rows []*row // sequenced rows of the partition, in position order
}

// retryRow is an operation's row in the retry table.
type retryRow struct {
	r         *row
	attempts  int
	dueAt     time.Time
	lastError string
	dead      bool
	held      bool
	updatedAt time.Time
}

// dur is a duration as a database binds it: whole microseconds.
func dur(d time.Duration) time.Duration { return d.Truncate(time.Microsecond) }

// copyOp returns a deep copy of op (Sign is the only reference field).
func copyOp(op *core.Operation) core.Operation {
	c := *op
	if op.Sign != nil {
		c.Sign = append([]byte(nil), op.Sign...)
	}
	return c
}
