package core_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite" // registers sqlite:
	"github.com/go-trustlog/trustlog/sinks/memory"   // registers memory://
)

// Open a client on a SQLite file and the in-memory sink, record an
// operation and relay it with an in-process engine.
func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "trustlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	client, err := core.Open(ctx, core.Config{
		Store:   "sqlite:" + filepath.Join(dir, "app.db"),
		Sink:    "memory://",
		Migrate: true, // create the tables
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	op := &core.Operation{
		Source: core.SourceDOIP, Type: core.OpCreate,
		DOID: "10.1000/my-repo/object-001", DOPrefix: "10.1000",
		Actor: "alice", ProducerID: "repo-service",
	}
	// Record uses a transaction of the store's own; RecordTx joins yours.
	if err := client.Record(ctx, op); err != nil {
		log.Fatal(err)
	}
	fmt.Println("sealed:", op.OpID != "" && op.OpHash != "")

	// The relay: in-process here, or `trustlog relay` processes.
	engine, err := client.Engine()
	if err != nil {
		log.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		log.Fatal(err)
	}
	var rec core.Record
	for deadline := time.Now().Add(10 * time.Second); ; {
		if rec, err = client.Store().Get(ctx, op.OpID); err != nil {
			log.Fatal(err)
		}
		if rec.State == core.StatePublished {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("still %s", rec.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := engine.Stop(stopCtx); err != nil {
		log.Fatal(err)
	}

	fmt.Println("state:", rec.State, rec.State.Status())
	msgs := client.Sink().(*memory.Sink).Messages()
	fmt.Println("messages:", len(msgs))
	fmt.Println("key:", msgs[0].Key)
	fmt.Println("same op_id:", msgs[0].ID == op.OpID)
	// Output:
	// sealed: true
	// state: published TRUSTLOGGED
	// messages: 1
	// key: 10.1000/my-repo/object-001
	// same op_id: true
}

// An engine built with NewEngine on a store and a sink the application
// opened itself: two dispatcher loops, strict order per object. The
// operations of one object reach the sink in the order they were recorded.
func ExampleEngine() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "trustlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	sink := memory.New(memory.Faults{})
	defer sink.Close()

	client, err := core.NewClient(store, sink, core.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	op := func(local, typ string) *core.Operation {
		return &core.Operation{
			Source: core.SourceDOIP, Type: typ,
			DOID: "10.1000/" + local, DOPrefix: "10.1000",
			Actor: "alice", ProducerID: "repo-service",
		}
	}
	if err := client.Record(ctx,
		op("doc-1", core.OpCreate), op("doc-2", core.OpCreate),
		op("doc-1", core.OpUpdate), op("doc-1", core.OpDelete),
	); err != nil {
		log.Fatal(err)
	}

	engine, err := core.NewEngine(store, sink, core.EngineConfig{
		Workers:      2,
		StrictOrder:  true,
		PollInterval: 20 * time.Millisecond,
		OnDead: func(ev core.DeadEvent) {
			log.Printf("dead: %s on %s: %s", ev.OpID, ev.DOID, ev.Err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		st, err := store.Stats(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if st.Counts[core.StatePublished] == 4 {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("published %d of 4", st.Counts[core.StatePublished])
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := engine.Stop(stopCtx); err != nil {
		log.Fatal(err)
	}

	fmt.Println("published:", engine.Stats().Published)
	for _, m := range sink.Messages() {
		if m.Key == "10.1000/doc-1" {
			got, err := core.DecodeSealed(m.Payload)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println(m.Key, got.Type)
		}
	}
	// Output:
	// published: 4
	// 10.1000/doc-1 Op.Create
	// 10.1000/doc-1 Op.Update
	// 10.1000/doc-1 Op.Delete
}

// Sign every operation with an Ed25519 key: anyone with the public key can
// check an operation read back from the sink.
func ExampleNewEd25519Signer() {
	ctx := context.Background()
	skey, vkey, err := core.GenerateEd25519("example.org/repo-service")
	if err != nil {
		log.Fatal(err)
	}
	signer, err := core.NewEd25519Signer(skey)
	if err != nil {
		log.Fatal(err)
	}
	// PublishOnly needs no store: Record publishes at once.
	client, err := core.Open(ctx, core.Config{Sink: "memory://", Strategy: core.PublishOnly, Signer: signer})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if err := client.Record(ctx, &core.Operation{
		Source: core.SourceIRP, Type: core.IRPType(core.IRPCreateHandle),
		DOID: "10.1000/handle-1", DOPrefix: "10.1000",
		Actor: "alice", ProducerID: "handle-service",
	}); err != nil {
		log.Fatal(err)
	}

	// A consumer of the sink, with the public key only.
	verifier, err := core.NewEd25519Verifier(vkey)
	if err != nil {
		log.Fatal(err)
	}
	msg := client.Sink().(*memory.Sink).Messages()[0]
	op, err := core.DecodeSealed(msg.Payload)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signer:", op.Signer == verifier.KeyName())
	fmt.Println("verified:", core.VerifyOperation(op, true, verifier) == nil)

	op.Actor = "mallory" // changed after signing
	err = core.VerifyOperation(op, true, verifier)
	fmt.Println("altered:", errors.Is(err, core.ErrBadSignature))
	// Output:
	// signer: true
	// verified: true
	// altered: true
}

// Record refuses an invalid operation with a *ValidationError that names
// the field; nothing of the batch is stored.
func ExampleValidationError() {
	op := &core.Operation{
		Source: core.SourceDOIP, Type: core.OpUpdate,
		DOID: "10.2000/object-1", DOPrefix: "10.1000", // prefixes differ
		Actor: "alice", ProducerID: "repo-service",
	}
	err := op.Validate()
	var ve *core.ValidationError
	if errors.As(err, &ve) {
		fmt.Println(ve.Field, ve.Reason)
	}
	fmt.Println(errors.Is(err, core.ErrInvalidOperation))
	// Output:
	// doid must start with do_prefix + "/"
	// true
}
