package packless

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
)

var journalName = regexp.MustCompile(`^[0-9]+\.log$`)

// DamageJournal damages the closed store in dir the way a kill -9 or a
// power loss does: it cuts the last n bytes off the newest LevelDB journal
// (garbage false), or overwrites them with garbage (garbage true). At most
// a third of the journal is touched. It is for crash-recovery tests
// (storagetest's Factory.Crash), never for a store in use.
func DamageJournal(dir string, n int64, garbage bool) error {
	p, err := newestFile(dir, journalName)
	if err != nil {
		return err
	}
	return damageTail(p, n, garbage)
}

// newestFile returns the path of the highest numbered file in dir whose
// name matches re. LevelDB numbers its files in creation order.
func newestFile(dir string, re *regexp.Regexp) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("newest file in %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if re.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("no file matching %s in %s", re, dir)
	}
	sort.Slice(names, func(i, j int) bool {
		if len(names[i]) != len(names[j]) {
			return len(names[i]) < len(names[j])
		}
		return names[i] < names[j]
	})
	return filepath.Join(dir, names[len(names)-1]), nil
}

// damageTail cuts or overwrites the last n bytes (at most a third) of path.
func damageTail(path string, n int64, garbage bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("damage %s: %w", path, err)
	}
	n = max(0, min(n, fi.Size()/3))
	if !garbage {
		if err := os.Truncate(path, fi.Size()-n); err != nil {
			return fmt.Errorf("damage %s: %w", path, err)
		}
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("damage %s: %w", path, err)
	}
	junk := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(fi.Size()), 7))
	for i := range junk {
		junk[i] = byte(r.Uint32())
	}
	if _, err := f.WriteAt(junk, fi.Size()-n); err != nil {
		f.Close()
		return fmt.Errorf("damage %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("damage %s: %w", path, err)
	}
	return nil
}
