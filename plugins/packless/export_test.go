package packless

import "time"

// SetClock replaces the clock tids are derived from, so tests can move it
// back.
func SetClock(s *Storage, now func() time.Time) { s.now = now }

// NewestFile exposes newestFile to tests that damage a chosen file.
var NewestFile = newestFile
