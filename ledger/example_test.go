package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/go-trustlog/trustlog/core"
	_ "github.com/go-trustlog/trustlog/drivers/sqlite" // registers sqlite:
	"github.com/go-trustlog/trustlog/ledger"
	_ "github.com/go-trustlog/trustlog/sinks/memory" // registers memory://
)

// Sequence stored operations into the Merkle log, sign a checkpoint, prove
// one operation and verify the proof offline with the log's public key
// alone: what `trustlog prove` and `trustlog verify-proof` do.
func ExampleProve() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "trustlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The log's key pair (`trustlog keygen`): the private key signs
	// checkpoints, the public key is all a verifier needs.
	logSKey, logVKey, err := core.GenerateEd25519("example.org/log")
	if err != nil {
		log.Fatal(err)
	}
	// The application's key pair signs operations.
	opSKey, opVKey, err := core.GenerateEd25519("example.org/repo-service")
	if err != nil {
		log.Fatal(err)
	}
	signer, err := core.NewEd25519Signer(opSKey)
	if err != nil {
		log.Fatal(err)
	}

	client, err := core.Open(ctx, core.Config{
		Store:    "sqlite:" + filepath.Join(dir, "app.db"),
		Strategy: core.StoreOnly, // no sink needed to keep a log
		Signer:   signer,
		Migrate:  true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	var ops []*core.Operation
	for _, typ := range []string{core.OpCreate, core.OpUpdate, core.OpDelete} {
		ops = append(ops, &core.Operation{
			Source: core.SourceDOIP, Type: typ,
			DOID: "10.1000/object-1", DOPrefix: "10.1000",
			Actor: "alice", ProducerID: "repo-service",
		})
	}
	if err := client.Record(ctx, ops...); err != nil {
		log.Fatal(err)
	}

	// The sequencer usually runs in the engine (EngineConfig.Ledger); here
	// it is driven by hand: append what is stored, then sign a checkpoint.
	seq, err := ledger.NewSequencer(ledger.Config{Key: logSKey})
	if err != nil {
		log.Fatal(err)
	}
	st := client.Store().(ledger.Storage)
	n, err := seq.Sequence(ctx, st)
	if err != nil {
		log.Fatal(err)
	}
	cp, err := seq.Checkpoint(ctx, st)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sequenced:", n, "checkpoint size:", cp.Size)

	proof, err := ledger.Prove(ctx, client.Store(), ops[1].OpID)
	if err != nil {
		log.Fatal(err)
	}
	text := proof.Marshal() // C2SP tlog-proof text, self-contained

	// Offline: no database, only the public keys.
	logKey, err := note.NewVerifier(logVKey)
	if err != nil {
		log.Fatal(err)
	}
	opKey, err := core.NewEd25519Verifier(opVKey)
	if err != nil {
		log.Fatal(err)
	}
	p, err := ledger.ParseProof(text)
	if err != nil {
		log.Fatal(err)
	}
	op, checkpoint, err := p.Verify(logKey, true, opKey)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verified:", op.Type, "on", op.DOID)
	fmt.Println("leaf", p.Index, "of a tree of", checkpoint.Size, "by", checkpoint.Origin)

	// One changed byte of the operation and the proof no longer holds.
	p.Leaf[len(p.Leaf)/2] ^= 1
	_, _, err = p.Verify(logKey, true, opKey)
	fmt.Println("tampered:", errors.Is(err, ledger.ErrTampered))
	// Output:
	// sequenced: 3 checkpoint size: 3
	// verified: Op.Update on 10.1000/object-1
	// leaf 1 of a tree of 3 by example.org/log
	// tampered: true
}

// The sequencer in the relay engine (EngineConfig.Ledger, or `trustlog
// relay --ledger-key-file`): it appends every stored operation to the log,
// signs checkpoints and publishes them through the sink. Audit then checks
// the whole store against the log's public key.
func ExampleSequencer() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "trustlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	logSKey, logVKey, err := core.GenerateEd25519("example.org/log")
	if err != nil {
		log.Fatal(err)
	}
	seq, err := ledger.NewSequencer(ledger.Config{Key: logSKey, Interval: 20 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	client, err := core.Open(ctx, core.Config{
		Store:   "sqlite:" + filepath.Join(dir, "app.db"),
		Sink:    "memory://",
		Migrate: true,
		Engine:  core.EngineConfig{Ledger: seq},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	engine, err := client.Engine()
	if err != nil {
		log.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		log.Fatal(err)
	}

	op := &core.Operation{
		Source: core.SourceDOIP, Type: core.OpCreate,
		DOID: "10.1000/object-1", DOPrefix: "10.1000",
		Actor: "alice", ProducerID: "repo-service",
	}
	if err := client.Record(ctx, op); err != nil {
		log.Fatal(err)
	}
	// Provable once a signed checkpoint covers it.
	var proof *ledger.Proof
	for deadline := time.Now().Add(10 * time.Second); ; {
		proof, err = ledger.Prove(ctx, client.Store(), op.OpID)
		if err == nil {
			break
		}
		if !errors.Is(err, ledger.ErrNotSequenced) || time.Now().After(deadline) {
			log.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := engine.Stop(stopCtx); err != nil {
		log.Fatal(err)
	}

	logKey, err := note.NewVerifier(logVKey)
	if err != nil {
		log.Fatal(err)
	}
	_, _, err = proof.Verify(logKey, false)
	fmt.Println("proof verifies:", err == nil)
	rep, err := ledger.Audit(ctx, client.Store(), ledger.AuditOptions{Log: logKey})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("audit ok:", rep.OK(), "leaves:", rep.Leaves)
	// Output:
	// proof verifies: true
	// audit ok: true leaves: 1
}
