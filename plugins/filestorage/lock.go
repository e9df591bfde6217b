package filestorage

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// ErrLocked: the data file is open in another process, or already open in
// this one. Test it with errors.Is.
var ErrLocked = errors.New("data file is locked by another open")

// lockFile takes Data.fs.lock: exclusively for a writer, shared for a
// read-only open. flock locks belong to the open file description, so a
// second Open of the same file in this process is kept out as well.
func lockFile(path string, shared bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil && shared {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	for range 100 {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			owner := ""
			if b, rerr := os.ReadFile(path); rerr == nil && len(b) > 0 {
				owner = " (pid " + string(trimSpace(b)) + " wrote the lock file)"
			}
			return nil, fmt.Errorf("lock %s%s: %w", path, owner, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !shared {
		// Informational only: the flock is the lock.
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
	}
	return f, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// unlockFile releases and closes the lock. The lock file itself stays: a
// file removed while another process waits on it would let two writers in.
func unlockFile(f *os.File) error {
	if f == nil {
		return nil
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if err := f.Close(); err != nil {
		return fmt.Errorf("close lock file: %w", err)
	}
	return nil
}
