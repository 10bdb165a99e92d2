// Quickstart: record operations in your own transactions and relay them,
// on SQLite and the in-memory sink, with no setup.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/uptrace/bun"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite" // registers sqlite:
	"github.com/go-trustlog/trustlog/sinks/memory"   // registers memory://
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	client, err := core.Open(ctx, core.Config{
		Store:   "sqlite:" + filepath.Join(dir, "app.db"),
		Sink:    "memory://",
		Migrate: true,
	})
	if err != nil {
		return err
	}
	defer client.Close()

	// Your application's transaction: its own change and the operation
	// commit (or roll back) together.
	db := client.Store().(*sqlite.Store).Bun() // or your own handle on the same database
	op := &core.Operation{
		Source: core.SourceDOIP, Type: core.OpCreate,
		DOID: "10.1000/my-repo/object-001", DOPrefix: "10.1000", DORepository: "my-repo",
		Actor: "alice", ProducerID: "quickstart",
	}
	if err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// ... tx.NewInsert().Model(&yourObject).Exec(ctx) ...
		return client.RecordTx(ctx, tx, op)
	}); err != nil {
		return err
	}

	// The relay: usually `trustlog relay` in its own processes.
	engine, err := client.Engine()
	if err != nil {
		return err
	}
	if err := engine.Start(ctx); err != nil {
		return err
	}
	sink := client.Sink().(*memory.Sink)
	if err := sink.WaitFor(ctx, 1); err != nil {
		return err
	}
	if err := engine.Stop(ctx); err != nil {
		return err
	}
	msg := sink.Messages()[0]
	fmt.Fprintf(out, "published %t on %s (op_hash %s…)\n", msg.ID == op.OpID, msg.Key, op.OpHash[:12])
	return nil
}
