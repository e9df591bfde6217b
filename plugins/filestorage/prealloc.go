package filestorage

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Preallocation. With sync "always" or "group" the data file is kept
// longer than its data: the space after the newest transaction is
// allocated and reads as zeros, so a commit overwrites allocated space and
// its fdatasync need not journal a new file size (on ext4 that is about a
// third of a small commit's fsync). The end of the data is the first
// transaction position whose header is all zeros (see doc.go); Close cuts
// the zeros off again, so a cleanly closed file is exact.

const (
	minPrealloc = 1 << 20
	maxPrealloc = 16 << 20
)

// preallocChunk is how much to allocate past end: an eighth of the file,
// between 1 and 16 MiB, so small files stay small and large ones extend
// rarely.
func preallocChunk(end int64) int64 {
	return min(max(end/8, minPrealloc), maxPrealloc)
}

// zeros is a read-only source of zero bytes for zeroFill.
var zeros = make([]byte, 1<<20)

// zeroFill writes zeros over [from, to).
func zeroFill(f io.WriterAt, from, to int64) error {
	for off := from; off < to; {
		n := min(int64(len(zeros)), to-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("write zeros at %d: %w", off, err)
		}
		off += n
	}
	return nil
}

// extendFile makes the file at least to bytes long, the new space
// reading as zeros: by fallocate where the file system supports it, else
// by writing zeros. The file's size is from. It does not fsync: the
// commit that extends pays for the new size in its own fdatasync.
func extendFile(f *os.File, from, to int64) error {
	if to <= from {
		return nil
	}
	err := fallocate(f, from, to-from)
	if errors.Is(err, errors.ErrUnsupported) {
		err = zeroFill(f, from, to)
	}
	if err != nil {
		return fmt.Errorf("preallocate %s from %d to %d: %w", f.Name(), from, to, err)
	}
	return nil
}

// reserve makes room for a transaction ending at end before it is
// written, extending the preallocated space when end goes past it. The
// caller holds the commit lock. A failed extension is logged, not fatal:
// the transaction is then appended past the allocated end, as without
// preallocation, and the next extension is tried a chunk later.
func (s *Storage) reserve(f *os.File, end int64) {
	if s.opts.Sync == SyncNone || s.opts.noPrealloc || end <= s.alloc || end <= s.allocRetry {
		return
	}
	to := end + preallocChunk(end)
	// Never from before s.end: the zeros fallback must not touch data.
	if err := extendFile(f, max(s.alloc, s.end), to); err != nil {
		s.allocRetry = end + minPrealloc
		s.log.Warn("could not preallocate space in the data file; commits append without it", "path", s.path, "error", err)
		if fi, serr := f.Stat(); serr == nil {
			s.alloc = fi.Size() // a partial extension reads as zeros too
		}
		return
	}
	s.alloc = to
}

// trimSlack cuts the preallocated zeros after end off the file and
// fsyncs, so the file on disk holds exactly its data. The caller holds
// the commit lock or is the only user of the storage (Close).
func (s *Storage) trimSlack(f *os.File, end int64) error {
	if s.alloc <= end {
		return nil
	}
	if err := f.Truncate(end); err != nil {
		return fmt.Errorf("cut preallocated space after %d: %w", end, err)
	}
	s.alloc = end
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cut preallocated space after %d: fsync: %w", end, err)
	}
	return nil
}

// dataEnd returns the position just after the last non-zero byte in
// [from, size), or from if they are all zeros (preallocated space). It
// reads backwards from size, so a torn tail followed by zeros is found
// without reading every zero twice.
func (d *dataFile) dataEnd(from, size int64) (int64, error) {
	buf := make([]byte, min(int64(1<<20), max(size-from, 0)))
	for hi := size; hi > from; {
		lo := max(from, hi-int64(len(buf)))
		b := buf[:hi-lo]
		if err := d.readFull(b, lo); err != nil {
			return 0, fmt.Errorf("read the tail at %d: %w", lo, err)
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return lo + int64(i) + 1, nil
			}
		}
		hi = lo
	}
	return from, nil
}

// txnEndingNear finds the transaction that ends at or just after nz, the
// end of the non-zero bytes (dataEnd): its trailer's length may end in
// up to 7 zero bytes. ok is false if none verifies its trailer there.
func (d *dataFile) txnEndingNear(nz, size int64) (h txnHeader, ok bool) {
	for e := nz; e <= min(nz+7, size); e++ {
		if h, err := d.readTxnHeaderBefore(e); err == nil {
			return h, true
		}
	}
	return txnHeader{}, false
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
