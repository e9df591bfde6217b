package filestorage

import "time"

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
