package witness_test

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/witness"
)

// A witness cosigns a log's first checkpoint; a verifier that trusts the
// witness then requires its cosignature; the witness refuses a rollback.
func Example() {
	dir, err := os.MkdirTemp("", "witness-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The log's key (trustlog keygen) and a checkpoint it signed.
	logSKey, logVKey, _ := note.GenerateKey(rand.Reader, "example.org/log")
	logSigner, _ := note.NewSigner(logSKey)
	logKey, _ := note.NewVerifier(logVKey)
	root := tlog.Hash(sha256.Sum256([]byte("the tree of size 7")))
	cp7, _ := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "example.org/log", Size: 7, Root: root}, logSigner)

	// The witness: its key (trustlog witness keygen), its state file
	// (trustlog witness init) and the logs it follows.
	wSKey, wVKey, _ := witness.GenerateKey(rand.Reader, "witness.example.org/w1")
	wKey, _ := witness.NewSigner(wSKey)
	state := filepath.Join(dir, "w1.state")
	if err := witness.CreateState(state); err != nil {
		log.Fatal(err)
	}
	w, err := witness.New(witness.Config{State: state, Key: wKey, Logs: []note.Verifier{logKey}})
	if err != nil {
		log.Fatal(err)
	}
	// The first checkpoint: old size 0, no proof.
	c, err := w.AddCheckpoint(0, nil, cp7)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("cosigned", c.Checkpoint.Origin, "at size", c.Checkpoint.Size)

	// A verifier: the log's signature, then 1 of its 1 trusted witnesses.
	if _, err := ledger.OpenCheckpoint(c.Note, logKey); err != nil {
		log.Fatal(err)
	}
	trusted, _ := witness.NewVerifier(wVKey)
	fmt.Println("1 of 1:", witness.VerifyCosignatures(c.Note, []note.Verifier{trusted}, 1))
	fmt.Println("bare checkpoint:", witness.VerifyCosignatures(cp7, []note.Verifier{trusted}, 1))

	// The log shows a smaller tree: refused.
	cp5, _ := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "example.org/log", Size: 5, Root: root}, logSigner)
	_, err = w.AddCheckpoint(7, nil, cp5)
	fmt.Println("rollback refused:", errors.Is(err, witness.ErrRollback))
	// Output:
	// cosigned example.org/log at size 7
	// 1 of 1: <nil>
	// bare checkpoint: witness: too few witness cosignatures: 0 valid of the 1 required; no cosignature from witness.example.org/w1
	// rollback refused: true
}
