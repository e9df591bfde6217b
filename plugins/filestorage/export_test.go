package filestorage

import (
	"context"
	"time"
)

// OpenStats reports whether open trusted the saved index and how many
// bytes of transactions it scanned.
func (s *Storage) OpenStats() (indexUsed bool, scanned int64) {
	return s.openIndexUsed, s.openScanned
}

// Fsyncs counts the commit fsyncs of data file so far.
func (s *Storage) Fsyncs() int64 { return s.fsyncs.Load() }

// FsyncTime is the total time spent in commit fsyncs.
func (s *Storage) FsyncTime() time.Duration { return time.Duration(s.fsyncNanos.Load()) }

// SetIndexSaveHook makes every index save call hook after taking its
// snapshot and before writing it (nil removes it). Set it before any
// save can run.
func (s *Storage) SetIndexSaveHook(hook func()) { s.indexSaveHook = hook }

// SaveIndex saves the index now if it changed.
func (s *Storage) SaveIndex() error { return s.writeIndex() }

// WithoutPrealloc returns o with preallocation of the data file turned
// off, as before it existed (benchmarks compare the two).
func WithoutPrealloc(o Options) Options { o.noPrealloc = true; return o }

// Alloc reports the data file's size as the storage keeps it: the end of
// the data plus the preallocated space.
func (s *Storage) Alloc() int64 {
	if err := s.commit.Lock(context.Background()); err != nil {
		return -1
	}
	defer s.commit.Unlock()
	return s.alloc
}

// DataEnd reports the end of the newest written transaction.
func (s *Storage) DataEnd() int64 {
	if err := s.commit.Lock(context.Background()); err != nil {
		return -1
	}
	defer s.commit.Unlock()
	return s.end
}

// WithoutDurableRecord returns o writing transactions without their
// durable end, byte for byte as the format was before it recorded one.
func WithoutDurableRecord(o Options) Options { o.noDurable = true; return o }

// SetSyncHook makes every commit fsync call hook just before it starts
// (nil removes it), so a test can hold a group commit unsynced. Set it
// while no commit runs.
func (s *Storage) SetSyncHook(hook func()) { s.syncHook = hook }

// Durable reports the end of the data the storage knows to be on stable
// storage: what the next transaction records as its durable end.
func (s *Storage) Durable() int64 { return s.durable.Load() }

// WhileNoWrites runs f holding the commit lock, while nothing writes to
// the data file (votes, finishes and aborts all hold it): a copy taken
// in f is the file as a kill -9 at that instant leaves it.
func (s *Storage) WhileNoWrites(f func()) error {
	if err := s.commit.Lock(context.Background()); err != nil {
		return err
	}
	defer s.commit.Unlock()
	f()
	return nil
}

// SetPackDirSyncHook makes pack call hook instead of fsyncing the
// directory after it renames the packed file over the data file (nil
// removes it), so a test can make that fsync fail. Set it while no pack
// runs.
func (s *Storage) SetPackDirSyncHook(hook func() error) { s.packDirSyncHook = hook }
