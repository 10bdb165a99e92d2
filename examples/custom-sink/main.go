// Custom sink: a third-party sink (package filesink, the "jsonl" URL
// scheme) plugged in by a blank import and a URL, exactly like the
// built-in Kafka and Pulsar sinks. Its test runs conformance.RunSink and
// conformance.RunPair: the path a sink author follows (docs/extending.md).
//
//	go run ./examples/custom-sink [-out attestations.jsonl]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	_ "github.com/go-trustlog/trustlog/drivers/sqlite"              // registers sqlite:
	"github.com/go-trustlog/trustlog/examples/custom-sink/filesink" // registers jsonl:
)

func main() {
	out := flag.String("out", "", "the JSON-lines file to append to (default: a temporary file)")
	flag.Parse()
	if err := run(context.Background(), *out, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out string, w io.Writer) error {
	dir, err := os.MkdirTemp("", "custom-sink-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if out == "" {
		out = filepath.Join(dir, "attestations.jsonl")
	}
	client, err := core.Open(ctx, core.Config{
		Store:   "sqlite:" + filepath.Join(dir, "app.db"),
		Sink:    "jsonl:" + out, // the third-party scheme, opened through the registry
		Migrate: true,
	})
	if err != nil {
		return err
	}
	defer client.Close()
	engine, err := client.Engine()
	if err != nil {
		return err
	}
	if err := engine.Start(ctx); err != nil {
		return err
	}
	defer engine.Stop(context.WithoutCancel(ctx))
	ops := []*core.Operation{conformance.NewOp("custom-sink/doc-1", 1), conformance.NewOp("custom-sink/doc-1", 2), conformance.NewOp("custom-sink/doc-2", 3)}
	if err := client.Record(ctx, ops...); err != nil {
		return err
	}
	// Wait until the relay has appended all three, reading the file as a
	// consumer would.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got []core.Delivered
		if err := filesink.Replay(ctx, out, time.Time{}, func(d core.Delivered) error { got = append(got, d); return nil }); err != nil {
			return err
		}
		if len(got) >= len(ops) {
			for _, d := range got {
				fmt.Fprintf(w, "%s %s %s op_hash=%s\n", d.Position, d.Key, d.ID, d.Headers[core.HeaderOpHash])
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d operations reached %s", len(got), len(ops), out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
