package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/uptrace/bun"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/backoff"
	"github.com/go-trustlog/trustlog/ledger"
)

// deadlockRetry spaces the tries of a statement the database rolled back
// (see retrying): 2-4ms, 4-8ms, 8-16ms, 16-32ms.
var deadlockRetry = backoff.Policy{Base: 3 * time.Millisecond, Max: 32 * time.Millisecond, Jitter: 1.0 / 3}

// deadlockTries is how many times retrying runs a statement.
const deadlockTries = 5

// Store implements core.Store on a SQL database through a Dialect.
type Store struct {
	d      *Dialect
	db     *sql.DB
	bun    *bun.DB
	names  Names
	q      Queries
	locker core.Locker
	owns   bool
	closed atomic.Bool

	insertMu    sync.Mutex
	insertCache map[insertKey]string
	writeMu     *sync.Mutex    // this store's, or shared (ShareWriteLock)
	retry       backoff.Policy // deadlockRetry, or a test's shorter one

	// parts is the store's number of partitions once read (0 before).
	parts atomic.Int64
	// noRaw is set once Dialect.QueryRaw found a connection of another
	// driver: records are read through database/sql from then on.
	noRaw atomic.Bool
	// unqueuedAt is when Unsequenced last looked for queued seqs whose
	// operation is gone (Queries.UnqueueMissing), in Unix nanoseconds.
	unqueuedAt atomic.Int64

	// statsFor holds Stats' statements rendered for a partition count
	// (Dialect.PerPartition).
	statsMu  sync.Mutex
	statsFor struct {
		parts          int
		counts, oldest string
	}
}

// writeLocks are the write mutexes stores of this process share, by key
// (ShareWriteLock).
var writeLocks sync.Map

// ShareWriteLock makes s serialise its writes (Dialect.SerializeWrites)
// with every other store of this process given the same key: the SQLite
// driver passes the database file, so that two handles on one file (two
// engines of one process, a relay and the CLI's own handle) queue for it
// in Go, in turn, rather than poll its busy lock, which does not take
// waiters in order and let one writer wait for seconds (past a lease)
// while others wrote. Call it before s is used.
func (s *Store) ShareWriteLock(key string) {
	m, _ := writeLocks.LoadOrStore(key, new(sync.Mutex))
	s.writeMu = m.(*sync.Mutex)
}

// writing serialises the store's own writes when the dialect asks for it;
// call the returned function when the write is done.
func (s *Store) writing() func() {
	if !s.d.SerializeWrites {
		return func() {}
	}
	s.writeMu.Lock()
	return s.writeMu.Unlock
}

type insertKey struct {
	rows int
	bun  bool
}

// New returns a store over db (a bun handle on the driver's database/sql
// pool) with the dialect's statements rendered for names. If owns is true,
// Close closes db.
func New(d *Dialect, db *bun.DB, names Names, owns bool) (*Store, error) {
	s := &Store{d: d, db: db.DB, bun: db, names: names, owns: owns, insertCache: map[insertKey]string{}, writeMu: new(sync.Mutex), retry: deadlockRetry}
	if err := render(&d.Queries, &s.q, names); err != nil {
		return nil, fmt.Errorf("trustlog/%s: %w", d.Name, err)
	}
	if d.NewLocker != nil {
		s.locker = d.NewLocker(s)
	} else {
		s.locker = &rowLocker{s: s}
	}
	return s, nil
}

// render fills dst with every string field of src executed as a template.
func render(src, dst *Queries, names Names) error {
	sv, dv := reflect.ValueOf(src).Elem(), reflect.ValueOf(dst).Elem()
	for i := 0; i < sv.NumField(); i++ {
		text := sv.Field(i).String()
		t, err := template.New(sv.Type().Field(i).Name).Option("missingkey=error").Parse(text)
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, names); err != nil {
			return err
		}
		dv.Field(i).SetString(b.String())
	}
	return nil
}

// Render executes one statement's template with the store's names
// ({{.Op}} and the rest).
func (s *Store) Render(text string) (string, error) {
	t, err := template.New("sql").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, s.names); err != nil {
		return "", err
	}
	return b.String(), nil
}

// DB returns the database/sql pool.
func (s *Store) DB() *sql.DB { return s.db }

// Bun returns the bun handle.
func (s *Store) Bun() *bun.DB { return s.bun }

// Dialect returns the store's dialect (to read, not to change).
func (s *Store) Dialect() *Dialect { return s.d }

// Names returns the store's table names.
func (s *Store) Names() Names { return s.names }

// Capabilities implements core.Store.
func (s *Store) Capabilities() core.Capabilities { return s.d.Caps }

// Locker implements core.Store.
func (s *Store) Locker() core.Locker { return s.locker }

// Close implements core.Store.
func (s *Store) Close() error {
	if s.closed.Swap(true) || !s.owns {
		return nil
	}
	return s.bun.Close()
}

func (s *Store) errf(format string, args ...any) error {
	return fmt.Errorf("trustlog/"+s.d.Name+": "+format, args...)
}

// Insert implements core.Store. Each row gets its partition
// (core.PartitionOf its DOID over the store's partitions, counted once).
func (s *Store) Insert(ctx context.Context, ex core.Execer, ops []*core.Operation) error {
	if s.closed.Load() {
		return core.ErrClosed
	}
	if len(ops) == 0 {
		return nil
	}
	// Before any transaction: a pool of one connection must not wait on
	// itself.
	parts, err := s.partitionCount(ctx)
	if err != nil {
		return s.errf("insert: %w", err)
	}
	if ex == nil {
		defer s.writing()()
		return s.retrying(ctx, func() error {
			tx, err := s.db.BeginTx(ctx, nil)
			if err != nil {
				return s.errf("insert: %w", err)
			}
			if err := s.insert(ctx, tx, ops, parts); err != nil {
				tx.Rollback()
				return err
			}
			if err := tx.Commit(); err != nil {
				return s.errf("insert: commit: %w", err)
			}
			return nil
		})
	}
	return s.insert(ctx, ex, ops, parts)
}

// retrying runs fn again, up to five times with a short growing backoff
// (s.retry), while it fails with an error the dialect calls retryable (a
// deadlock victim: the database rolled the work back, so running it again
// is safe). When ctx ends during a wait, the error wraps ctx's and fn's.
func (s *Store) retrying(ctx context.Context, fn func() error) error {
	return backoff.Retry(ctx, s.retry, deadlockTries, func(int) error {
		err := fn()
		if err != nil && (s.d.Retryable == nil || !s.d.Retryable(err)) {
			return backoff.Stop(err)
		}
		return err
	})
}

// arrayInsertMin is the fewest rows Dialect.ArrayInsert is used for:
// with one row, 19 one-element arrays cost more to encode and unnest than
// 19 plain arguments (RecordTx over the plain INSERT on PostgreSQL: 1.18–
// 1.24 with arrays, 1.07–1.08 without), with 100 rows much less (0.89–
// 0.96 with arrays, 1.10–1.17 without); at 5 rows the plain arguments
// still win.
const arrayInsertMin = 16

// insertChunk keeps every statement under every database's parameter
// limit (SQLite's 32766 is the smallest).
const insertChunk = 1000

func (s *Store) insertRows() int {
	if s.d.InsertRows > 0 {
		return min(s.d.InsertRows, insertChunk)
	}
	return insertChunk
}

func (s *Store) insert(ctx context.Context, ex core.Execer, ops []*core.Operation, parts int) error {
	_, isBun := ex.(bun.IDB)
	now := time.Now().UTC()
	for len(ops) > 0 {
		n := min(len(ops), s.insertRows())
		if s.d.ArrayInsert != nil && !isBun && n >= arrayInsertMin {
			q, args := s.d.ArrayInsert(s.names.Op, ops[:n], now, parts)
			if s.d.WrapInsert != nil {
				q = s.d.WrapInsert(q)
			}
			if _, err := ex.ExecContext(ctx, q, args...); err != nil {
				return s.errf("insert %d operations: %w", n, err)
			}
			ops = ops[n:]
			continue
		}
		args := make([]any, 0, n*insertColumnCount)
		for _, op := range ops[:n] {
			args = append(args,
				op.OpID, string(op.Source), op.Type, op.DOID, op.DOPrefix, op.DORepository, op.Actor,
				op.ProducerID, string(op.HashAlg), op.RequestBodyHash, op.ResponseBodyHash,
				nullString(op.ClientIP), nullString(op.ServerIP), s.d.TimeArg(op.CreatedAt),
				op.OpHash, op.Signer, hex.EncodeToString(op.Sign), s.d.TimeArg(now), core.PartitionOf(op.DOID, parts))
		}
		if _, err := ex.ExecContext(ctx, s.insertSQL(n, isBun), args...); err != nil {
			return s.errf("insert %d operations: %w", n, err)
		}
		ops = ops[n:]
	}
	return nil
}

// insertSQL returns the INSERT for n rows, with "?" placeholders when the
// caller's handle is bun's (bun formats "?" itself) and native ones
// otherwise.
func (s *Store) insertSQL(n int, isBun bool) string {
	key := insertKey{n, isBun}
	s.insertMu.Lock()
	defer s.insertMu.Unlock()
	if q, ok := s.insertCache[key]; ok {
		return q
	}
	ph := s.d.Placeholder
	if isBun {
		ph = func(int) string { return "?" }
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + s.names.Op + " (" + InsertColumns)
	if s.d.MarkColumn != "" {
		b.WriteString(", " + s.d.MarkColumn)
	}
	b.WriteString(") VALUES ")
	p := 1
	for r := 0; r < n; r++ {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := 0; c < insertColumnCount; c++ {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteString(ph(p))
			p++
		}
		if s.d.MarkColumn != "" {
			b.WriteString("," + s.d.MarkValue)
		}
		b.WriteByte(')')
	}
	q := b.String()
	if s.d.WrapInsert != nil {
		q = s.d.WrapInsert(q)
	}
	if len(s.insertCache) > 64 {
		clear(s.insertCache)
	}
	s.insertCache[key] = q
	return q
}

// list replaces marker in q by a list operand for vals whose parameters
// start at first, and returns the arguments to bind.
func list[T any](s *Store, q, marker string, first int, vals []T) (string, []any) {
	if s.d.ListOperand != nil {
		frag, arg := s.d.ListOperand(s.d.Placeholder(first), vals)
		return strings.Replace(q, marker, frag, 1), []any{arg}
	}
	var b strings.Builder
	args := make([]any, len(vals))
	b.WriteString("IN (")
	for i, v := range vals {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.d.Placeholder(first + i))
		args[i] = v
	}
	b.WriteByte(')')
	return strings.Replace(q, marker, b.String(), 1), args
}

func (s *Store) list(q, marker string, first int, seqs []int64) (string, []any) {
	return list(s, q, marker, first, seqs)
}

// ListDead implements core.Store.
func (s *Store) ListDead(ctx context.Context, p core.ListParams) ([]core.Record, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	recs, err := s.queryRecords(ctx, s.db, s.q.ListDead, p.AfterSeq, limit)
	if err != nil {
		return nil, s.errf("list dead: %w", err)
	}
	return recs, nil
}

// Scan implements core.Store.
func (s *Store) Scan(ctx context.Context, p core.ScanParams) ([]core.Record, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	recs, err := s.queryRecords(ctx, s.db, s.q.Scan, p.AfterSeq, limit)
	if err != nil {
		return nil, s.errf("scan: %w", err)
	}
	return recs, nil
}

// Requeue implements core.Store.
func (s *Store) Requeue(ctx context.Context, p core.RequeueParams) (int, error) {
	var (
		n   int
		err error
	)
	q, args := s.q.RequeueAll, []any(nil)
	switch {
	case p.All && len(p.OpIDs) == 0:
	case len(p.OpIDs) > 0 && !p.All:
		q, args = list(s, s.q.Requeue, "{ids}", 1, p.OpIDs)
	default:
		return 0, s.errf("requeue: give op ids or All, not both or neither")
	}
	defer s.writing()()
	err = s.retrying(ctx, func() error {
		n, err = execCount(ctx, s.db, q, args...)
		return err
	})
	if err != nil {
		return 0, s.errf("requeue: %w", err)
	}
	return n, nil
}

// Get implements core.Store.
func (s *Store) Get(ctx context.Context, opID string) (core.Record, error) {
	recs, err := s.queryRecords(ctx, s.db, s.q.Get, opID)
	if err != nil {
		return core.Record{}, s.errf("get %s: %w", opID, err)
	}
	if len(recs) == 0 {
		return core.Record{}, fmt.Errorf("%w: operation %s", core.ErrNotFound, opID)
	}
	return recs[0], nil
}

// Stats implements core.Store. Every figure but the oldest unsettled
// comes from one statement of index reads (Queries.Counts), one row per
// partition with its backlog: operations without a position and those
// above their partition's cursor (the backlogs, summed here) are
// pending, the retry table's rows are retrying or dead, and the other
// operations with a position are published.
//
// Nothing counts the operation table: a million rows took PostgreSQL 80
// ms and MariaDB half a second to count, on every refresh of the
// console and of `trustlog status`. The operations with a position are
// instead the tree size less the prune horizon, exactly: Append gives
// positions 0, 1, … and grows the tree size in one transaction, an
// operation row keeps its position until pruned, and PruneLeaves deletes
// the rows of a prefix of positions and moves the horizon
// (ledger.PrunedCursor) in one transaction; nothing else deletes
// operations. The statement reads all of them in one snapshot, so a
// concurrent Append or prune never makes them disagree.
func (s *Store) Stats(ctx context.Context) (core.Stats, error) {
	st := core.Stats{Counts: map[core.State]int64{}}
	counts, oldestQ, err := s.statsQueries(ctx)
	if err != nil {
		return st, s.errf("stats: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, counts, ledger.PrunedCursor)
	if err != nil {
		return st, s.errf("stats: %w", err)
	}
	defer rows.Close()
	var (
		size, unsequenced, above, retrying, dead int64
		pruned                                   sql.NullString
		maxSeq                                   sql.NullInt64
	)
	for rows.Next() {
		var (
			part, cursor, gen, backlog sql.NullInt64
			owner                      sql.NullString
			exp                        flexTime
		)
		if err := rows.Scan(&part, &cursor, &gen, &owner, &exp, &backlog, &size, &pruned, &unsequenced, &retrying, &dead, &maxSeq); err != nil {
			return st, s.errf("stats: %w", err)
		}
		if !part.Valid {
			continue // no partition: the store's figures alone
		}
		st.Partitions = append(st.Partitions, core.Partition{Part: int(part.Int64), Cursor: cursor.Int64, Generation: gen.Int64,
			Owner: owner.String, Expires: exp.t, Backlog: backlog.Int64})
		above += backlog.Int64
	}
	if err := rows.Err(); err != nil {
		return st, s.errf("stats: %w", err)
	}
	var horizon int64
	if pruned.Valid {
		if horizon, err = strconv.ParseInt(pruned.String, 10, 64); err != nil || horizon < 0 || horizon > size {
			return st, s.errf("stats: cursor %s holds %q, not a prune horizon within the tree size %d", ledger.PrunedCursor, pruned.String, size)
		}
	}
	st.TreeSize, st.MaxSeq = size, maxSeq.Int64
	st.Counts[core.StatePending] = unsequenced + above
	st.Counts[core.StateRetrying] = retrying
	st.Counts[core.StateDead] = dead
	st.Counts[core.StatePublished] = max(0, size-horizon-above-retrying-dead)
	var oldest flexTime
	if err := s.db.QueryRowContext(ctx, oldestQ).Scan(&oldest); err != nil {
		return st, s.errf("stats: %w", err)
	}
	st.OldestUnsettled = oldest.t
	return st, nil
}

// statsQueries returns Stats' statements: Counts and OldestUnsettled, or
// the dialect's PerPartition forms for the store's partitions, rendered
// once per partition count.
func (s *Store) statsQueries(ctx context.Context) (counts, oldest string, err error) {
	if s.d.PerPartition == nil {
		return s.q.Counts, s.q.OldestUnsettled, nil
	}
	parts, err := s.partitionCount(ctx)
	if errors.Is(err, ErrNoPartitions) {
		return s.q.Counts, s.q.OldestUnsettled, nil // nothing per partition to count
	}
	if err != nil {
		return "", "", err
	}
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if s.statsFor.parts != parts {
		c, o := s.d.PerPartition(parts)
		if c, err = s.Render(c); err != nil {
			return "", "", err
		}
		if o, err = s.Render(o); err != nil {
			return "", "", err
		}
		s.statsFor.parts, s.statsFor.counts, s.statsFor.oldest = parts, c, o
	}
	return s.statsFor.counts, s.statsFor.oldest, nil
}

// Cursor implements core.Store.
func (s *Store) Cursor(ctx context.Context, name string) (core.Cursor, error) {
	c := core.Cursor{Name: name}
	var at flexTime
	err := s.db.QueryRowContext(ctx, s.q.GetCursor, name).Scan(&c.Value, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("%w: cursor %q", core.ErrNotFound, name)
	}
	if err != nil {
		return c, s.errf("cursor %q: %w", name, err)
	}
	c.UpdatedAt = at.t
	return c, nil
}

// SetCursor implements core.Store.
func (s *Store) SetCursor(ctx context.Context, name, value string) error {
	if name == "" {
		return s.errf("set cursor: empty name")
	}
	defer s.writing()()
	if _, err := s.db.ExecContext(ctx, s.q.SetCursor, name, value); err != nil {
		return s.errf("set cursor %q: %w", name, err)
	}
	return nil
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func execCount(ctx context.Context, db execer, q string, args ...any) (int, error) {
	r, err := db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	return int(n), err
}

func (s *Store) queryRecords(ctx context.Context, db queryer, q string, args ...any) ([]core.Record, error) {
	return s.scanRecords(ctx, db, false, q, args...)
}

// scanRecords runs q and scans rows of Columns, followed by a held column
// if held is set.
func (s *Store) scanRecords(ctx context.Context, db queryer, held bool, q string, args ...any) ([]core.Record, error) {
	var recs []core.Record
	var sc *recordScanner
	each := func(rows RowScanner) error {
		if sc == nil {
			sc = newRecordScanner(held)
		}
		// Scanned in place, the slice doubling: a record is some 400
		// bytes, and append's growth past 256 elements copies a batch of
		// 1,000 several times over.
		if len(recs) == cap(recs) {
			recs = slices.Grow(recs, max(len(recs), 16))
		}
		recs = recs[:len(recs)+1]
		return sc.scan(rows, &recs[len(recs)-1])
	}
	if sdb, ok := db.(*sql.DB); ok && s.d.QueryRaw != nil && !s.noRaw.Load() {
		err := s.d.QueryRaw(ctx, sdb, q, args, each)
		if !errors.Is(err, ErrNoRawQuery) {
			if err != nil {
				return nil, err
			}
			return recs, nil
		}
		s.noRaw.Store(true)
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return nil, err
		}
	}
	return recs, rows.Err()
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
