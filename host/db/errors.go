package db

import (
	"errors"
	"fmt"

	"github.com/zhostdb/zhost/host/storage"
)

// Sentinel errors of this package. Storage sentinels (storage.ErrNotFound,
// storage.ErrConflict, ...) pass through wrapped; test both with errors.Is.
var (
	// ErrNotFound: no object at the path (a missing name in a folder).
	// It matches storage.ErrNotFound too.
	ErrNotFound = fmt.Errorf("no such object: %w", storage.ErrNotFound)
	// ErrExists: Create found an object already at the path.
	ErrExists = errors.New("object already exists")
	// ErrNotFolder: a path traverses through an object that is not a
	// folder.
	ErrNotFolder = errors.New("not a folder")
	// ErrWrongType: the object at the path is not of the requested type.
	ErrWrongType = errors.New("object has a different type")
	// ErrInvalidPath: a malformed path or child name (empty name, "..",
	// a name with "/", a name longer than MaxNameLen, invalid UTF-8).
	ErrInvalidPath = errors.New("invalid path")
	// ErrReadOnlyTx: a change in a transaction started by View.
	ErrReadOnlyTx = errors.New("read-only transaction")
	// ErrTxDone: a call on a transaction that was committed or aborted.
	ErrTxDone = errors.New("transaction already finished")
	// ErrMountPoint: a change (put, delete) aimed at a mount point itself,
	// which belongs to the configuration, not to the tree.
	ErrMountPoint = errors.New("path is a mount point")
	// ErrMountUnavailable: the path lies under a mount whose function
	// failed or whose partition is unreachable. Errors that match it are
	// *MountError, naming the mount.
	ErrMountUnavailable = errors.New("mount unavailable")
	// ErrUnknownType: a record names a type that is not registered on
	// this node (see RegisterType).
	ErrUnknownType = errors.New("unknown object type")
	// ErrReadConflict: a transaction's snapshot can no longer be read
	// because a partition without history (packless) already holds a
	// newer revision. It matches storage.ErrConflict, so Update retries.
	ErrReadConflict = fmt.Errorf("read conflict: %w", storage.ErrConflict)
	// ErrDetached: an object handle used outside a transaction's tree
	// (never added with Put, or from another transaction).
	ErrDetached = errors.New("object is not attached to this transaction")
)

// MountError reports an operation that failed because of a mount. It
// matches ErrMountUnavailable when the mount is not ready, and whatever
// the underlying error matches otherwise.
type MountError struct {
	Name string // the mount's name (the config block label)
	Path string // the mount point in the main tree
	Err  error
}

func (e *MountError) Error() string {
	return fmt.Sprintf("mount %q at %s: %v", e.Name, e.Path, e.Err)
}

func (e *MountError) Unwrap() error { return e.Err }

// MergeConflict builds the error a Merger returns when changes cannot be
// merged; it matches storage.ErrConflict.
func MergeConflict(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), storage.ErrConflict)
}
