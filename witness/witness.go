package witness

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/ledger"
)

// Reasons a witness rejects a checkpoint. A *RejectError wraps one, so
// errors.Is(err, ErrRollback) and the like tell them apart.
var (
	// ErrMalformed: the request or the checkpoint is not well-formed
	// (HTTP 400).
	ErrMalformed = errors.New("witness: malformed request")
	// ErrUnknownLog: the checkpoint's origin is not a log the witness
	// follows (HTTP 404).
	ErrUnknownLog = errors.New("witness: unknown log")
	// ErrBadSignature: no signature of the log's key verifies (HTTP 403).
	ErrBadSignature = errors.New("witness: bad log signature")
	// ErrRollback: the checkpoint is smaller than the latest one the
	// witness cosigned: the log was truncated or rolled back.
	ErrRollback = errors.New("witness: rollback")
	// ErrFork: the checkpoint is not provably consistent with the latest
	// one the witness cosigned: another root at the same size, or a
	// consistency proof that does not verify (the log rewrote or forked
	// its history, or the proof is wrong).
	ErrFork = errors.New("witness: fork")
	// ErrConflict: the request's old size is not the size of the latest
	// checkpoint the witness cosigned (HTTP 409): prove consistency from
	// RejectError.Latest and try again.
	ErrConflict = errors.New("witness: old size is not the witness's latest size")
)

// RejectError is a rejected checkpoint: why (Reason, one of ErrMalformed,
// ErrUnknownLog, ErrBadSignature, ErrRollback, ErrFork, ErrConflict) and
// the sizes involved. The witness's state is unchanged.
type RejectError struct {
	Reason error
	// Origin is the checkpoint's origin (empty if it could not be parsed).
	Origin string
	// OldSize is the request's old size; Size the checkpoint's size.
	OldSize, Size int64
	// Latest is the size of the latest checkpoint the witness cosigned
	// for Origin (0 if none, or if the rejection came before the state
	// was read: ErrMalformed, ErrUnknownLog, ErrBadSignature).
	Latest int64
	// Detail says what exactly is wrong.
	Detail string
}

// Error says why the checkpoint was rejected.
func (e *RejectError) Error() string { return e.Reason.Error() + ": " + e.Detail }

// Unwrap returns the reason.
func (e *RejectError) Unwrap() error { return e.Reason }

// Config configures a Witness.
type Config struct {
	// State is the path of the state file (CreateState makes an empty
	// one). Every Witness and process using it is serialized by a lock.
	State string
	// Key is the witness's cosigning key.
	Key *Signer
	// Logs are the public keys (note.Verifier, e.g. from note.NewVerifier)
	// of the logs the witness follows. A key's name is its log's origin;
	// an origin may have several keys (a key rotation), any of which
	// verifies its checkpoints.
	Logs []note.Verifier
	// Now is the clock of cosignature timestamps (time.Now when nil).
	Now func() time.Time
}

// Witness verifies and cosigns checkpoints of the logs it follows, keeping
// the latest cosigned checkpoint of each in its state file. It is safe
// for concurrent use, and several Witnesses (in several processes) may
// share a state file: updates are serialized.
type Witness struct {
	path string
	key  *Signer
	logs map[string][]note.Verifier
	now  func() time.Time
}

// New returns a witness. The state file must exist (CreateState) and be
// valid.
func New(cfg Config) (*Witness, error) {
	if cfg.Key == nil {
		return nil, errors.New("witness: no cosigning key")
	}
	if len(cfg.Logs) == 0 {
		return nil, errors.New("witness: no log keys: a witness follows at least one log")
	}
	w := &Witness{path: cfg.State, key: cfg.Key, logs: make(map[string][]note.Verifier), now: cfg.Now}
	if w.now == nil {
		w.now = time.Now
	}
	for _, v := range cfg.Logs {
		w.logs[v.Name()] = append(w.logs[v.Name()], v)
	}
	if _, err := readState(cfg.State); err != nil {
		return nil, err
	}
	return w, nil
}

// Name returns the witness's name (its key's name).
func (w *Witness) Name() string { return w.key.Name() }

// Latest returns the witness's state for the log of the given origin, and
// false if it never cosigned one of its checkpoints.
func (w *Witness) Latest(origin string) (LogState, bool, error) {
	st, err := readState(w.path)
	if err != nil {
		return LogState{}, false, err
	}
	l, ok := st.Logs[origin]
	return l, ok, nil
}

// Cosigned is an accepted checkpoint and the witness's cosignature of it.
type Cosigned struct {
	// Checkpoint is the checkpoint cosigned.
	Checkpoint ledger.Checkpoint
	// Note is the checkpoint note with the cosignature line added after
	// the signatures it carried (an earlier cosignature by this witness's
	// key is replaced).
	Note []byte
	// Line is the cosignature line alone, "— <name> <base64>\n": the
	// body of a C2SP tlog-witness add-checkpoint response.
	Line []byte
	// Time is the cosignature's timestamp.
	Time time.Time
}

// AddCheckpoint is the C2SP tlog-witness add-checkpoint operation: it
// cosigns the signed checkpoint msg if
//   - its origin is a log the witness follows and the log's key signed it;
//   - its tree is at least as large as the latest one the witness
//     cosigned for that log, and of the same root if of the same size;
//   - oldSize is the size of that latest checkpoint (0 if none), and proof
//     is an RFC 6962 consistency proof from it to msg's tree (empty when
//     oldSize is 0 or equals msg's size);
//
// and records msg as the log's latest checkpoint, durably, before it
// returns. Checking and recording are one atomic step under the state
// file's lock, so of two concurrent calls from the same old size, one
// wins and the other gets ErrConflict or ErrFork.
//
// Otherwise it returns a *RejectError and the state is unchanged.
// A checkpoint equal to the latest one is cosigned again (a fresh
// timestamp).
func (w *Witness) AddCheckpoint(oldSize int64, proof tlog.TreeProof, msg []byte) (*Cosigned, error) {
	reject := func(reason error, cp ledger.Checkpoint, latest int64, format string, args ...any) error {
		return &RejectError{Reason: reason, Origin: cp.Origin, OldSize: oldSize, Size: cp.Size, Latest: latest, Detail: fmt.Sprintf(format, args...)}
	}
	cp, err := checkpointOf(msg)
	if err != nil {
		return nil, reject(ErrMalformed, cp, 0, "not a signed checkpoint: %v", err)
	}
	if oldSize < 0 {
		return nil, reject(ErrMalformed, cp, 0, "old size %d is negative", oldSize)
	}
	keys, ok := w.logs[cp.Origin]
	if !ok {
		return nil, reject(ErrUnknownLog, cp, 0, "the witness follows no log of origin %q", cp.Origin)
	}
	n, logKey, err := openCheckpoint(msg, keys)
	if err != nil {
		return nil, reject(ErrBadSignature, cp, 0, "the checkpoint of %s at size %d has no valid signature by the log's key (%v)", cp.Origin, cp.Size, err)
	}

	unlock, err := lockState(w.path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := readState(w.path)
	if err != nil {
		return nil, err
	}
	last, have := st.Logs[cp.Origin]
	switch {
	case cp.Size < last.Size:
		return nil, reject(ErrRollback, cp, last.Size,
			"%s presents a tree of size %d, smaller than the size %d the witness cosigned: the log was truncated or rolled back", cp.Origin, cp.Size, last.Size)
	case have && cp.Size == last.Size && cp.Root != last.Root:
		return nil, reject(ErrFork, cp, last.Size,
			"%s presents two trees of size %d with different roots (cosigned %s, now %s): the log forked", cp.Origin, cp.Size, last.Root, cp.Root)
	case oldSize > cp.Size:
		return nil, reject(ErrMalformed, cp, last.Size, "old size %d is larger than the checkpoint's size %d", oldSize, cp.Size)
	case oldSize != last.Size:
		return nil, reject(ErrConflict, cp, last.Size,
			"the proof starts at size %d but the latest checkpoint the witness cosigned for %s is of size %d: prove consistency from %d", oldSize, cp.Origin, last.Size, last.Size)
	case oldSize == 0 && len(proof) != 0:
		return nil, reject(ErrMalformed, cp, last.Size, "a consistency proof from size 0 must be empty, it has %d hashes", len(proof))
	case oldSize == cp.Size && len(proof) != 0:
		return nil, reject(ErrMalformed, cp, last.Size, "a consistency proof between trees of equal size %d must be empty, it has %d hashes", cp.Size, len(proof))
	case oldSize > 0 && oldSize < cp.Size:
		if err := tlog.CheckTree(proof, cp.Size, cp.Root, oldSize, last.Root); err != nil {
			return nil, reject(ErrFork, cp, last.Size,
				"the tree of size %d does not provably extend the tree of size %d the witness cosigned for %s (%v): the log rewrote or forked its history, or the proof is wrong", cp.Size, oldSize, cp.Origin, err)
		}
	}

	t := w.now()
	sig, err := w.key.signAt(t, []byte(n.Text))
	if err != nil {
		return nil, err
	}
	cosigned, err := note.Sign(n, fixedSigner{w.key, sig})
	if err != nil {
		return nil, err
	}
	st.Logs[cp.Origin] = LogState{Size: cp.Size, Root: cp.Root, Checkpoint: string(msg), LogKey: logKey, Cosigned: time.Unix(t.Unix(), 0).UTC()}
	line := []byte(sigLine(w.key, sig))
	if !bytes.HasSuffix(cosigned, line) {
		return nil, errors.New("witness: the cosignature line is not the note's last line")
	}
	if err := writeState(w.path, st); err != nil {
		return nil, err
	}
	return &Cosigned{Checkpoint: cp, Note: cosigned, Line: line, Time: time.Unix(t.Unix(), 0).UTC()}, nil
}

// openCheckpoint verifies the checkpoint with one of its log's keys
// (ledger.OpenCheckpoint: signature, canonical encoding, origin) and
// returns the parsed note, to add a signature to, and the key's label.
func openCheckpoint(msg []byte, keys []note.Verifier) (*note.Note, string, error) {
	var first error
	for _, v := range keys {
		if _, err := ledger.OpenCheckpoint(msg, v); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		n, err := note.Open(msg, note.VerifierList(v))
		if err != nil {
			return nil, "", err
		}
		return n, keyLabel(v.Name(), v.KeyHash()), nil
	}
	return nil, "", first
}

// fixedSigner hands note.Sign a signature made already (at a chosen time).
type fixedSigner struct {
	key *Signer
	sig []byte
}

// Name, KeyHash and Sign implement note.Signer.
func (f fixedSigner) Name() string                { return f.key.Name() }
func (f fixedSigner) KeyHash() uint32             { return f.key.KeyHash() }
func (f fixedSigner) Sign([]byte) ([]byte, error) { return f.sig, nil }

// sigLine is the note signature line of sig.
func sigLine(key *Signer, sig []byte) string {
	return "— " + key.Name() + " " + base64.StdEncoding.EncodeToString(append(binary.BigEndian.AppendUint32(nil, key.KeyHash()), sig...)) + "\n"
}
