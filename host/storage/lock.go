package storage

import (
	"context"
	"fmt"
)

// CommitLock serializes the commits of one storage: a transaction takes it
// at Vote and releases it at Finish or Abort. Unlike sync.Mutex, waiting
// for it is bounded by a context, which is what the contract's
// ErrCommitLockTimeout needs. Backends share it so every one of them waits
// the same way.
//
// The zero value is not usable; create one with NewCommitLock. All methods
// are safe for concurrent use.
type CommitLock struct {
	ch chan struct{}
}

// NewCommitLock returns an unlocked commit lock.
func NewCommitLock() *CommitLock {
	return &CommitLock{ch: make(chan struct{}, 1)}
}

// Lock takes the lock, waiting until ctx ends. If ctx ends first it
// returns an error matching both ErrCommitLockTimeout and the context's
// error (context.DeadlineExceeded or context.Canceled). An already ended
// context fails even when the lock is free, so a caller out of time never
// starts a commit it cannot finish in time.
func (l *CommitLock) Lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrCommitLockTimeout, err)
	}
	select {
	case l.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrCommitLockTimeout, ctx.Err())
	}
}

// TryLock takes the lock if it is free and reports whether it did.
func (l *CommitLock) TryLock() bool {
	select {
	case l.ch <- struct{}{}:
		return true
	default:
		return false
	}
}

// Unlock releases the lock. Unlocking an unlocked CommitLock is a no-op,
// so an abort racing a close never blocks or panics.
func (l *CommitLock) Unlock() {
	select {
	case <-l.ch:
	default:
	}
}
