//go:build !unix

package witness

import (
	"path/filepath"
	"sync"
)

// locks holds one mutex per state file.
var locks sync.Map

// lockState serializes updates of the state file at path within this
// process only: on systems without flock(2), run one witness process per
// state file.
func lockState(path string) (unlock func(), err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	m, _ := locks.LoadOrStore(abs, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock, nil
}

// syncDir does nothing: directories cannot be fsynced everywhere.
func syncDir(string) error { return nil }
