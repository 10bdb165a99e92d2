package core_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// RecordTx with a database/sql transaction: the application's own row and
// the operation commit together, and a rolled-back transaction leaves
// neither. The application opens the SQLite file itself, with the settings
// trustlog's driver uses, and hands the same handle to the store.
func ExampleClient_RecordTx_sqlTx() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "trustlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The application's *sql.DB: WAL, busy timeout, IMMEDIATE transactions.
	cfg, err := sqlite.ParseURL("sqlite:" + filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	db, err := sql.Open(sqliteshim.ShimName, cfg.DSN())
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE document (id TEXT PRIMARY KEY, title TEXT NOT NULL)`); err != nil {
		log.Fatal(err)
	}

	// The store on the same handle, and a client over it.
	store, err := sqlite.NewStore(bun.NewDB(db, sqlitedialect.New()), sqlite.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	client, err := core.NewClient(store, memory.New(memory.Faults{}), core.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	save := func(id, title string, check func() error) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() // after Commit, a no-op
		if _, err := tx.ExecContext(ctx, `INSERT INTO document (id, title) VALUES (?, ?)`, id, title); err != nil {
			return err
		}
		if err := client.RecordTx(ctx, tx, &core.Operation{
			Source: core.SourceDOIP, Type: core.OpCreate,
			DOID: "10.1000/docs/" + id, DOPrefix: "10.1000",
			Actor: "alice", ProducerID: "docs-service",
		}); err != nil {
			return err
		}
		if err := check(); err != nil {
			return err
		}
		return tx.Commit()
	}
	fmt.Println("first:", save("doc-1", "Minutes", func() error { return nil }))
	fmt.Println("second:", save("doc-2", "Draft", func() error { return errors.New("quota exceeded") }))

	var docs int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM document`).Scan(&docs); err != nil {
		log.Fatal(err)
	}
	st, err := store.Stats(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("documents:", docs)
	fmt.Println("operations pending:", st.Counts[core.StatePending])
	// Output:
	// first: <nil>
	// second: quota exceeded
	// documents: 1
	// operations pending: 1
}

// RecordTx with a bun transaction (db.RunInTx): the application's model
// and the operation commit together, and a rolled-back transaction leaves
// neither.
func ExampleClient_RecordTx_bunTx() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "trustlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	client, err := core.Open(ctx, core.Config{
		Store:   "sqlite:" + filepath.Join(dir, "app.db"),
		Sink:    "memory://",
		Migrate: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	type Document struct {
		bun.BaseModel `bun:"table:document"`
		ID            string `bun:",pk"`
		Title         string
	}
	// The store's own handle on the file; your own *bun.DB on it works too.
	db := client.Store().(*sqlite.Store).Bun()
	if _, err := db.NewCreateTable().Model((*Document)(nil)).Exec(ctx); err != nil {
		log.Fatal(err)
	}

	save := func(doc *Document, check func() error) error {
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.NewInsert().Model(doc).Exec(ctx); err != nil {
				return err
			}
			if err := client.RecordTx(ctx, tx, &core.Operation{
				Source: core.SourceDOIP, Type: core.OpCreate,
				DOID: "10.1000/docs/" + doc.ID, DOPrefix: "10.1000",
				Actor: "alice", ProducerID: "docs-service",
			}); err != nil {
				return err
			}
			return check() // an error rolls both back
		})
	}
	fmt.Println("first:", save(&Document{ID: "doc-1", Title: "Minutes"}, func() error { return nil }))
	fmt.Println("second:", save(&Document{ID: "doc-2", Title: "Draft"}, func() error { return errors.New("quota exceeded") }))

	docs, err := db.NewSelect().Model((*Document)(nil)).Count(ctx)
	if err != nil {
		log.Fatal(err)
	}
	st, err := client.Store().Stats(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("documents:", docs)
	fmt.Println("operations pending:", st.Counts[core.StatePending])
	// Output:
	// first: <nil>
	// second: quota exceeded
	// documents: 1
	// operations pending: 1
}
