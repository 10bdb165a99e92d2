package ledger

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// TrustedCheckpoint is a signed checkpoint held outside the store: a file
// an auditor kept, the checkpoint of a saved proof, a copy the relay
// published to the sink. Audit checks the store against it
// (AuditOptions.Trusted).
type TrustedCheckpoint struct {
	// Source says where it came from, for findings: "file old.cp",
	// "sink 0/17".
	Source string
	// Note is the signed checkpoint note.
	Note []byte
}

// CheckpointNote returns the signed checkpoint note in text: the text
// itself when it is a checkpoint note, else the checkpoint that a C2SP
// tlog-proof (Proof) or a consistency proof (ConsistencyProof) ends with.
// It checks the form (a checkpoint body, a blank line, signature lines),
// not the signature (OpenCheckpoint).
func CheckpointNote(text []byte) ([]byte, error) {
	note, err := checkpointNote(text)
	if err != nil {
		return nil, err
	}
	i := bytes.Index(note, []byte("\n\n"))
	if i < 0 || !bytes.HasPrefix(note[i+2:], []byte(sigPrefix)) {
		return nil, fmt.Errorf("ledger: not a signed checkpoint: no signature lines after a blank line")
	}
	if _, err := ParseCheckpoint(note[:i+1]); err != nil {
		return nil, fmt.Errorf("ledger: not a signed checkpoint: %w", err)
	}
	return note, nil
}

func checkpointNote(text []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(text, []byte(proofHeader+"\n")):
		p, err := ParseProof(text)
		if err != nil {
			return nil, err
		}
		return p.Checkpoint, nil
	case bytes.HasPrefix(text, []byte("old ")):
		p, err := ParseConsistencyProof(text)
		if err != nil {
			return nil, err
		}
		return p.Checkpoint, nil
	}
	return text, nil
}

// PublishedCheckpoints reads the sink's topic back from the beginning and
// returns the checkpoints of the log origin that it holds: the messages
// of kind checkpoint keyed by the origin (CheckpointMessage), each with
// its position as Source. Other messages are skipped; their signatures
// are Audit's to check.
func PublishedCheckpoints(ctx context.Context, sink core.Replayer, origin string) ([]TrustedCheckpoint, error) {
	var out []TrustedCheckpoint
	err := sink.Replay(ctx, time.Time{}, func(d core.Delivered) error {
		if d.Headers[core.HeaderKind] != string(core.KindCheckpoint) || d.Key != origin {
			return nil
		}
		out = append(out, TrustedCheckpoint{Source: "sink " + strings.TrimSpace(d.Position), Note: d.Payload})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: read the checkpoints back from the sink: %w", err)
	}
	return out, nil
}
