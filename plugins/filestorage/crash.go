package filestorage

import (
	"crypto/rand"
	"fmt"
	"os"
)

// DamageTail damages the end of the data file at path the way a crash
// does, for recovery tests and drills: it cuts n bytes off the end (a
// write torn by kill -9 or power loss), or, with garbage, overwrites the
// last n bytes with random bytes (a sector the disk never finished). The
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
	n = min(n, size-fileHeaderSize)
	if n <= 0 {
		return nil
	}
	if garbage {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("damage %s: %w", path, err)
		}
		if _, err := f.WriteAt(b, size-n); err != nil {
			return fmt.Errorf("damage %s: %w", path, err)
		}
	} else if err := f.Truncate(size - n); err != nil {
		return fmt.Errorf("damage %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("damage %s: %w", path, err)
	}
	return nil
}
