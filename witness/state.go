package witness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/ledger"
)

// stateFormat is the first field of a state file, its format and version.
const stateFormat = "trustlog-witness-state/v1"

// State-file errors.
var (
	// ErrNoState: the state file does not exist. A witness never starts
	// from nothing by accident (a mistyped path would forget every log it
	// witnessed and accept a fork): CreateState makes an empty one.
	ErrNoState = errors.New("witness: no state file")
	// ErrState: the state file is unreadable or corrupt.
	ErrState = errors.New("witness: bad state file")
)

// LogState is what a witness keeps of one log: the latest checkpoint it
// cosigned, which every later checkpoint must provably extend.
type LogState struct {
	// Size and Root are that checkpoint's tree size and root hash.
	Size int64     `json:"size"`
	Root tlog.Hash `json:"root"`
	// Checkpoint is the signed checkpoint note as the log presented it,
	// kept as evidence: if the log ever signs an inconsistent one, the two
	// signed notes prove it.
	Checkpoint string `json:"checkpoint"`
	// LogKey is the log key that verified it (name+key hash).
	LogKey string `json:"log_key"`
	// Cosigned is when the witness last cosigned this tree.
	Cosigned time.Time `json:"cosigned"`
}

// stateFile is the JSON of a witness's state file.
type stateFile struct {
	Format string `json:"format"`
	// Logs maps each log's origin to its state.
	Logs map[string]LogState `json:"logs"`
}

// CreateState creates an empty witness state file at path, failing with an
// error wrapping fs.ErrExist if there is one: a witness's state is never
// reset by accident.
func CreateState(path string) error {
	unlock, err := lockState(path)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("witness: state file %s: %w; not replacing a witness's state", path, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w %s: %v", ErrState, path, err)
	}
	return writeState(path, &stateFile{Format: stateFormat, Logs: map[string]LogState{}})
}

// readState reads and checks the state file.
func readState(path string) (*stateFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s (create an empty one first: `trustlog witness init --state %s`)", ErrNoState, path, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrState, path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var st stateFile
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrState, path, err)
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("%w %s: format %q, want %q", ErrState, path, st.Format, stateFormat)
	}
	if st.Logs == nil {
		st.Logs = map[string]LogState{}
	}
	for origin, l := range st.Logs {
		cp, err := checkpointOf([]byte(l.Checkpoint))
		if err != nil || cp.Origin != origin || cp.Size != l.Size || cp.Root != l.Root {
			return nil, fmt.Errorf("%w %s: the entry of log %q does not match its checkpoint", ErrState, path, origin)
		}
	}
	return &st, nil
}

// checkpointOf parses the body of a signed checkpoint note without
// checking any signature.
func checkpointOf(msg []byte) (ledger.Checkpoint, error) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return ledger.Checkpoint{}, errors.New("no signature lines")
	}
	return ledger.ParseCheckpoint(msg[:i+1])
}

// writeState replaces the state file atomically and durably: it writes a
// temporary file in the same directory, fsyncs it, renames it over the
// state file and fsyncs the directory. A crash leaves the old state or
// the new one, never a mix. The caller holds the lock.
func writeState(path string, st *stateFile) (err error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("%w %s: %v", ErrState, path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("%w %s: %v", ErrState, path, err)
		}
	}()
	if _, err = f.Write(append(b, '\n')); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}
