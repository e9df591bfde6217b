package filestorage

import (
	"crypto/rand"
	"fmt"
	"os"
)

// DamageTail damages the end of the data in the data file at path the way
// a crash does, for recovery tests and drills: it cuts n bytes off the
// end of the data (a write torn by kill -9 or power loss: in a file with
// preallocated space after the data, the cut bytes turn to zeros and the
// file keeps its size), or, with garbage, overwrites the last n bytes of
// the data with random bytes (a sector the disk never finished). The
// storage must be closed. Opening afterwards truncates the damaged tail
// and saves it as path.trN.
func DamageTail(path string, n int64, garbage bool) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("damage %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("damage %s: %w", path, err)
	}
	size := st.Size()
	end := size
	if size > fileHeaderSize {
		d := &dataFile{f: f}
		nz, err := d.dataEnd(fileHeaderSize, size)
		if err != nil {
			return fmt.Errorf("damage %s: %w", path, err)
		}
		end = nz
		if h, ok := d.txnEndingNear(nz, size); ok {
			end = h.end()
		}
	}
	n = min(n, end-fileHeaderSize)
	if n <= 0 {
		return nil
	}
	switch {
	case garbage:
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("damage %s: %w", path, err)
		}
		if _, err := f.WriteAt(b, end-n); err != nil {
			return fmt.Errorf("damage %s: %w", path, err)
		}
	case end < size:
		if err := zeroFill(f, end-n, end); err != nil {
			return fmt.Errorf("damage %s: %w", path, err)
		}
	default:
		if err := f.Truncate(size - n); err != nil {
			return fmt.Errorf("damage %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("damage %s: %w", path, err)
	}
	return nil
}
