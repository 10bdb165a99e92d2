// PostgreSQL + Kafka: an application with its own bun models records an
// operation in the same transaction as its own change, so both commit or
// neither does; a relay publishes the operations to Kafka, woken by
// NOTIFY at commit; a consumer reads them back from the topic.
//
//	go run ./examples/postgres-kafka \
//	  -store 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  -sink  kafka://127.0.0.1:9092/attestations
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/uptrace/bun"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres" // registers postgres://
	_ "github.com/go-trustlog/trustlog/sinks/kafka"    // registers kafka://
)

// Document is the application's own model.
type Document struct {
	bun.BaseModel `bun:"table:documents"`

	ID      string `bun:",pk"`
	Title   string `bun:",notnull"`
	Version int    `bun:",notnull"`
}

func main() {
	store := flag.String("store", os.Getenv("TRUSTLOG_STORE"), "PostgreSQL store URL")
	sink := flag.String("sink", os.Getenv("TRUSTLOG_SINK"), "Kafka sink URL")
	flag.Parse()
	if err := run(context.Background(), *store, *sink, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// errRejected is the application's own reason to roll back.
var errRejected = errors.New("rejected by the application")

func run(ctx context.Context, storeURL, sinkURL string, out io.Writer) error {
	client, err := core.Open(ctx, core.Config{Store: storeURL, Sink: sinkURL, Migrate: true})
	if err != nil {
		return err
	}
	defer client.Close()

	// The application's handle on the same database; trustlog's tables
	// may live in their own schema (?schema=), the application's here
	// too, to keep the example self-cleaning.
	st := client.Store().(*postgres.Store)
	db := st.Bun()
	table := "documents"
	if s := st.Names().Schema; s != "" {
		table = `"` + s + `".documents`
	}
	if _, err := db.NewCreateTable().Model((*Document)(nil)).ModelTableExpr(table).IfNotExists().Exec(ctx); err != nil {
		return err
	}

	// save changes a document and records the operation in one
	// transaction; reject makes the application roll it back.
	save := func(doc *Document, reject bool) (*core.Operation, error) {
		op := &core.Operation{
			Source: core.SourceDOIP, Type: core.OpUpdate,
			DOID: "10.1000/docs/" + doc.ID, DOPrefix: "10.1000", DORepository: "docs",
			Actor: "alice@example.org", ProducerID: "postgres-kafka-example",
		}
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.NewInsert().Model(doc).ModelTableExpr(table).
				On("CONFLICT (id) DO UPDATE").Set("title = EXCLUDED.title, version = EXCLUDED.version").Exec(ctx); err != nil {
				return err
			}
			if err := client.RecordTx(ctx, tx, op); err != nil {
				return err
			}
			if reject {
				return errRejected
			}
			return nil
		})
		return op, err
	}
	var kept []*core.Operation
	for v := 1; v <= 3; v++ {
		op, err := save(&Document{ID: "doc-1", Title: fmt.Sprintf("Report v%d", v), Version: v}, false)
		if err != nil {
			return err
		}
		kept = append(kept, op)
	}
	if _, err := save(&Document{ID: "doc-2", Title: "Draft", Version: 1}, true); !errors.Is(err, errRejected) {
		return fmt.Errorf("the rejected save: %v", err)
	}
	n, err := db.NewSelect().ModelTableExpr(table).Count(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "documents stored: %d\n", n)

	// The relay: usually `trustlog relay` processes next to the app.
	engine, err := client.Engine()
	if err != nil {
		return err
	}
	if err := engine.Start(ctx); err != nil {
		return err
	}
	defer engine.Stop(context.WithoutCancel(ctx))

	// A consumer reads the topic back with Kafka's own consumer protocol.
	replayer := client.Sink().(core.Replayer)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got []core.Delivered
		if err := replayer.Replay(ctx, time.Time{}, func(d core.Delivered) error { got = append(got, d); return nil }); err != nil {
			return err
		}
		if len(got) >= len(kept) {
			for i, d := range got {
				fmt.Fprintf(out, "kafka %s key=%s op_id matches=%t\n", d.Position, d.Key, d.ID == kept[i].OpID)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d operations reached Kafka", len(got), len(kept))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
