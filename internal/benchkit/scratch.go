package benchkit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

// Scratch is a fresh, empty place for trustlog's tables inside the
// database a store URL names: a new schema on PostgreSQL, a new table
// prefix on MySQL/MariaDB and SQLite (a new file in a temporary directory
// when no URL is given). Drop removes everything it created, so a
// benchmark can run against a production-like server without touching its
// tables.
type Scratch struct {
	// URL is the store URL of the scratch place.
	URL  string
	kind string
	dir  string // temporary directory of the default SQLite file
	name string // schema (PostgreSQL) or table prefix
}

// NewScratch returns a scratch place in the database base names (empty: a
// SQLite file in a new temporary directory).
func NewScratch(base string) (*Scratch, error) {
	var b [5]byte
	rand.Read(b[:])
	id := "tlbench_" + hex.EncodeToString(b[:])
	if base == "" {
		dir, err := os.MkdirTemp("", "trustlog-bench-")
		if err != nil {
			return nil, err
		}
		return &Scratch{URL: "sqlite:" + filepath.Join(dir, "bench.db"), kind: "sqlite", dir: dir}, nil
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	switch {
	case strings.HasPrefix(base, "postgres://"), strings.HasPrefix(base, "postgresql://"):
		if strings.Contains(base, "schema=") {
			return nil, fmt.Errorf("benchkit: the store URL already names a schema; the benchmark creates its own")
		}
		return &Scratch{URL: base + sep + "schema=" + id, kind: "postgres", name: id}, nil
	case strings.HasPrefix(base, "mysql://"), strings.HasPrefix(base, "sqlite:"):
		if strings.Contains(base, "prefix=") {
			return nil, fmt.Errorf("benchkit: the store URL already names a table prefix; the benchmark uses its own")
		}
		kind := "mysql"
		if strings.HasPrefix(base, "sqlite:") {
			kind = "sqlite"
		}
		return &Scratch{URL: base + sep + "prefix=" + id + "_", kind: kind, name: id + "_"}, nil
	}
	return nil, fmt.Errorf("benchkit: %w: want sqlite:, postgres:// or mysql://", core.ErrUnknownScheme)
}

// Open opens and migrates a store on the scratch place; each call is an
// own handle with its own connection pool, as a separate process would
// have.
func (s *Scratch) Open(ctx context.Context) (core.Store, error) {
	st, err := core.OpenStore(ctx, s.URL)
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// Drop removes the scratch place and everything in it.
func (s *Scratch) Drop(ctx context.Context) error {
	if s.dir != "" {
		return os.RemoveAll(s.dir)
	}
	st, err := core.OpenStore(ctx, s.URL)
	if err != nil {
		return err
	}
	defer st.Close()
	db := st.(interface{ DB() *sql.DB }).DB()
	if s.kind == "postgres" {
		_, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS "`+s.name+`" CASCADE`)
		return err
	}
	// Views first (the derived status view reads the tables), then tables.
	list := `SELECT name, type = 'view' FROM sqlite_master WHERE type IN ('table', 'view') AND name LIKE ?`
	quote := func(t string) string { return `"` + t + `"` }
	if s.kind == "mysql" {
		list = `SELECT table_name, table_type = 'VIEW' FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE ?`
		quote = func(t string) string { return "`" + t + "`" }
	}
	rows, err := db.QueryContext(ctx, list, s.name+"%")
	if err != nil {
		return err
	}
	var views, tables []string
	for rows.Next() {
		var t string
		var view bool
		if err := rows.Scan(&t, &view); err != nil {
			rows.Close()
			return err
		}
		switch {
		case !strings.HasPrefix(t, s.name):
		case view:
			views = append(views, t)
		default:
			tables = append(tables, t)
		}
	}
	rows.Close()
	for _, v := range views {
		if _, err := db.ExecContext(ctx, `DROP VIEW IF EXISTS `+quote(v)); err != nil {
			return err
		}
	}
	for _, t := range tables {
		if _, err := db.ExecContext(ctx, `DROP TABLE IF EXISTS `+quote(t)); err != nil {
			return err
		}
	}
	return nil
}

// sqlHandle is what the bare loops and the plain INSERT need of a store.
type sqlHandle interface {
	DB() *sql.DB
	Names() sqlstore.Names
}
