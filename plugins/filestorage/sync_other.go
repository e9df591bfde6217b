//go:build !linux

package filestorage

import "os"

// fdatasync is fsync where the platform has no cheaper data-only sync.
func fdatasync(f *os.File) error { return f.Sync() }
