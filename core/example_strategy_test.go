package core_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/go-trustlog/trustlog/core"
	_ "github.com/go-trustlog/trustlog/drivers/sqlite" // registers sqlite:
	"github.com/go-trustlog/trustlog/sinks/memory"     // registers memory://
)

// What Record does under each strategy. StoreAndPublish (the default)
// stores the operation and leaves publishing to an engine: the outbox.
// StoreOnly stores it and never publishes it; its engine only gives
// operations their positions in the log (and runs a ledger's signer if
// configured). PublishOnly stores nothing and publishes at once, returning the
// sink's error; it has no RecordTx and no engine.
func ExampleStrategy() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "trustlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	for _, s := range []core.Strategy{core.StoreAndPublish, core.StoreOnly, core.PublishOnly} {
		cfg := core.Config{Strategy: s, Migrate: true}
		if s != core.PublishOnly {
			cfg.Store = "sqlite:" + filepath.Join(dir, s.String()+".db")
		}
		if s != core.StoreOnly {
			cfg.Sink = "memory://"
		}
		client, err := core.Open(ctx, cfg)
		if err != nil {
			log.Fatal(err)
		}
		if err := client.Record(ctx, &core.Operation{
			Source: core.SourceDOIP, Type: core.OpRetrieve,
			DOID: "10.1000/object-1", DOPrefix: "10.1000",
			Actor: "alice", ProducerID: "repo-service",
		}); err != nil {
			log.Fatal(err)
		}

		var stored int64
		if store := client.Store(); store != nil {
			st, err := store.Stats(ctx)
			if err != nil {
				log.Fatal(err)
			}
			for _, n := range st.Counts {
				stored += n
			}
		}
		var sent int
		if sink, ok := client.Sink().(*memory.Sink); ok {
			sent = sink.Len()
		}
		engine := "yes"
		if _, err := client.Engine(); errors.Is(err, core.ErrStrategy) {
			engine = "no (ErrStrategy)"
		} else if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: stored %d, in the sink %d, engine %s\n", s, stored, sent, engine)
		if err := client.Close(); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// store-and-publish: stored 1, in the sink 0, engine yes
	// store-only: stored 1, in the sink 0, engine yes
	// publish-only: stored 0, in the sink 1, engine no (ErrStrategy)
}

// ParseStrategy reads a strategy's flag form (Strategy.String).
func ExampleParseStrategy() {
	s, err := core.ParseStrategy("store-only")
	fmt.Println(s == core.StoreOnly, err)
	_, err = core.ParseStrategy("outbox")
	fmt.Println(errors.Is(err, core.ErrInvalidConfig))
	// Output:
	// true <nil>
	// true
}
