package packless_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/zhostdb/zhost/host/storage/storagetest"
)

var (
	journalName = regexp.MustCompile(`^[0-9]+\.log$`)
	tableName   = regexp.MustCompile(`^[0-9]+\.(ldb|sst)$`)
)

// newestFile returns the path of the newest (highest numbered) file in dir
// whose name matches re.
func newestFile(dir string, re *regexp.Regexp) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
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

// damageTail cuts or overwrites the last bytes of the file, as a write torn
// by a kill -9 or a power loss leaves it.
func damageTail(path string, mode storagetest.CrashMode, n int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	n = min(n, fi.Size()/3)
	switch mode {
	case storagetest.CrashTruncate:
		return os.Truncate(path, fi.Size()-n)
	case storagetest.CrashGarbage:
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		junk := make([]byte, n)
		r := rand.New(rand.NewPCG(uint64(fi.Size()), 7))
		for i := range junk {
			junk[i] = byte(r.Uint32())
		}
		if _, err := f.WriteAt(junk, fi.Size()-n); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return fmt.Errorf("unknown crash mode %v", mode)
}

// crashJournal damages the tail of the newest LevelDB journal: where a
// kill -9 or a power loss tears the newest commits.
func crashJournal(dir string, mode storagetest.CrashMode) error {
	p, err := newestFile(dir, journalName)
	if err != nil {
		return err
	}
	return damageTail(p, mode, 1500)
}
