//go:build !linux

package filestorage

import (
	"errors"
	"os"
)

// fdatasync is fsync where the platform has no cheaper data-only sync.
func fdatasync(f *os.File) error { return f.Sync() }

// fallocate is unsupported here: the caller writes zeros instead.
func fallocate(f *os.File, off, n int64) error {
	return &os.PathError{Op: "fallocate", Path: f.Name(), Err: errors.ErrUnsupported}
}
