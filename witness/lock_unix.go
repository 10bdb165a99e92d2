//go:build unix

package witness

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockState takes the exclusive lock that serializes every update of the
// state file at path, between goroutines and between processes: an
// flock(2) on path + ".lock" (the state file itself is replaced on every
// update, so it cannot carry the lock). The lock file is left in place.
func lockState(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%w %s: lock: %v", ErrState, path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w %s: lock: %v", ErrState, path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// syncDir fsyncs a directory, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
