package memstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"

	"github.com/go-trustlog/trustlog/core"
)

// This file is the database/sql side of caller transactions (see the
// package doc): a driver whose only statement is "run a staged batch of
// inserts", so that core.Store.Insert can join a *sql.Tx or a bun.Tx.

// batch is one Insert's rows, staged until the statement that names it
// runs (and, in a transaction, until Commit).
type batch struct {
	d    *data
	rows []*row
}

// pending holds staged batches by id, between Insert and the statement.
var (
	pending   sync.Map // uint64 -> *batch
	batchIDs  atomic.Uint64
	errNoSQL  = errors.New("memstore: this database only carries trustlog inserts")
	sqlPrefix = "/* memstore */ INSERT BATCH "
)

// execBatch runs b through the caller's Execer.
func execBatch(ctx context.Context, ex core.Execer, b *batch) error {
	id := batchIDs.Add(1)
	pending.Store(id, b)
	defer pending.Delete(id) // an Execer of another database never takes it
	if _, err := ex.ExecContext(ctx, sqlPrefix+strconv.FormatUint(id, 10)); err != nil {
		return fmt.Errorf("memstore: insert through the caller's transaction (it must come from a memstore Store.DB): %w", err)
	}
	return nil
}

// applyBatches commits batches atomically: every store involved is locked
// (in a fixed order), every op_id checked, then every row made visible.
func applyBatches(bs []*batch) error {
	byData := map[*data][]*row{}
	for _, b := range bs {
		byData[b.d] = append(byData[b.d], b.rows...)
	}
	ds := make([]*data, 0, len(byData))
	for d := range byData {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].id < ds[j].id })
	for _, d := range ds {
		d.mu.Lock()
		defer d.mu.Unlock()
	}
	for _, d := range ds {
		if err := d.checkDuplicates(byData[d]); err != nil {
			return err
		}
	}
	for _, d := range ds {
		d.commit(byData[d])
	}
	return nil
}

var (
	sqlDBOnce sync.Once
	sqlDB     *bun.DB
)

// DB returns a database handle whose transactions (bun.Tx, or *sql.Tx
// through its embedded *sql.DB) Insert and core.Client.RecordTx join:
// the rows become visible when the transaction commits and are dropped if
// it rolls back. It is one handle for the whole process (a transaction
// may even carry inserts into several memstores), it holds no resources
// and is never closed. It runs no other SQL.
func (s *Store) DB() *bun.DB {
	sqlDBOnce.Do(func() {
		sqlDB = bun.NewDB(sql.OpenDB(connector{}), sqlitedialect.New())
	})
	return sqlDB
}

type connector struct{}

func (connector) Connect(context.Context) (driver.Conn, error) { return &conn{}, nil }
func (connector) Driver() driver.Driver                        { return sqlDriver{} }

type sqlDriver struct{}

func (sqlDriver) Open(string) (driver.Conn, error) { return &conn{}, nil }

// conn is one connection: at most one transaction, holding its batches.
type conn struct {
	tx *tx
}

var (
	_ driver.ExecerContext   = (*conn)(nil)
	_ driver.ConnBeginTx     = (*conn)(nil)
	_ driver.Pinger          = (*conn)(nil)
	_ driver.Validator       = (*conn)(nil)
	_ driver.SessionResetter = (*conn)(nil)
)

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return nil, fmt.Errorf("%w: cannot prepare %q", errNoSQL, query)
}
func (c *conn) Close() error                       { return nil }
func (c *conn) Begin() (driver.Tx, error)          { return c.BeginTx(context.Background(), driver.TxOptions{}) }
func (c *conn) Ping(context.Context) error         { return nil }
func (c *conn) IsValid() bool                      { return true }
func (c *conn) ResetSession(context.Context) error { return nil }

func (c *conn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	if c.tx != nil {
		return nil, errors.New("memstore: a transaction is already open on this connection")
	}
	c.tx = &tx{c: c}
	return c.tx, nil
}

func (c *conn) ExecContext(_ context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	rest, ok := strings.CutPrefix(query, sqlPrefix)
	if !ok || len(args) != 0 {
		return nil, fmt.Errorf("%w: cannot run %q", errNoSQL, query)
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot run %q", errNoSQL, query)
	}
	v, ok := pending.LoadAndDelete(id)
	if !ok {
		return nil, fmt.Errorf("memstore: insert batch %d is unknown or already run", id)
	}
	b := v.(*batch)
	if c.tx != nil {
		c.tx.batches = append(c.tx.batches, b)
	} else if err := applyBatches([]*batch{b}); err != nil {
		return nil, err
	}
	return driver.RowsAffected(len(b.rows)), nil
}

// tx is an open transaction: its batches apply at Commit.
type tx struct {
	c       *conn
	batches []*batch
}

func (t *tx) Commit() error {
	t.c.tx = nil
	if len(t.batches) == 0 {
		return nil
	}
	return applyBatches(t.batches)
}

func (t *tx) Rollback() error {
	t.c.tx = nil
	t.batches = nil
	return nil
}
