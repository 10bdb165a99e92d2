// Custom driver: a third-party store (package memstore, the "memstore" URL
// scheme) plugged in by an import and a URL, exactly like the built-in
// SQLite, PostgreSQL and MySQL drivers. It records a few operations through
// core.Open, runs the relay engine until the memory sink has them all, and
// prints what the sink received. memstore's test runs conformance.RunStore
// and conformance.RunPair: the path a driver author follows
// (docs/extending.md).
//
//	go run ./examples/custom-driver
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/go-trustlog/trustlog/core"
	_ "github.com/go-trustlog/trustlog/examples/custom-driver/memstore" // registers memstore:
	"github.com/go-trustlog/trustlog/sinks/memory"                      // registers memory:
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, "memstore://demo", os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run records three operations in the store at storeURL, relays them to a
// memory sink and writes one line per message the sink received to w. It
// returns when the sink has them all, or with ctx's error.
func run(ctx context.Context, storeURL string, w io.Writer) (err error) {
	client, err := core.Open(ctx, core.Config{
		Store:   storeURL, // the third-party scheme, opened through the registry
		Sink:    "memory://",
		Migrate: true,
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := client.Close(); err == nil {
			err = cerr
		}
	}()
	engine, err := client.Engine()
	if err != nil {
		return err
	}
	if err := engine.Start(ctx); err != nil {
		return err
	}
	defer func() {
		if serr := engine.Stop(context.WithoutCancel(ctx)); err == nil {
			err = serr
		}
	}()

	ops := []*core.Operation{
		newOp("doc-1", core.OpCreate),
		newOp("doc-1", core.OpUpdate),
		newOp("doc-2", core.OpCreate),
	}
	if err := client.Record(ctx, ops...); err != nil {
		return err
	}

	sink := client.Sink().(*memory.Sink)
	if err := sink.WaitFor(ctx, len(ops)); err != nil {
		return fmt.Errorf("waiting for %d messages (the sink has %d): %w", len(ops), sink.Len(), err)
	}
	for _, m := range sink.Messages() {
		fmt.Fprintf(w, "position=%d stream=%s key=%s op_id=%s op_hash=%s\n", m.Position, m.Stream, m.Key, m.ID, m.OpHash)
	}
	return nil
}

// newOp returns an operation of the demo's actor on object 10.1000/<local>;
// Record fills op_id, created_at and op_hash.
func newOp(local, typ string) *core.Operation {
	return &core.Operation{
		Source:     core.SourceDOIP,
		Type:       typ,
		DOID:       "10.1000/custom-driver/" + local,
		DOPrefix:   "10.1000",
		Actor:      "alice",
		ProducerID: "custom-driver-demo",
	}
}
