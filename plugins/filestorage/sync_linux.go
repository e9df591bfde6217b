package filestorage

import (
	"os"
	"syscall"
)

// fdatasync flushes the file's data and the metadata needed to read it
// back (its size), skipping timestamps: on ext4 this saves a quarter of a
// small append's fsync.
func fdatasync(f *os.File) error {
	for range 100 {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
	return f.Sync()
}

// fallocate allocates n bytes at off (mode 0: the file grows to cover
// them and they read as zeros). An error wrapping errors.ErrUnsupported
// means the file system cannot, and the caller writes zeros instead.
func fallocate(f *os.File, off, n int64) error {
	var err error
	for range 100 {
		if err = syscall.Fallocate(int(f.Fd()), 0, off, n); err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
	return nil
}
