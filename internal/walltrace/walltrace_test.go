package walltrace

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMarkAppendsWallClockLines checks the file format the breakdown
// script reads: one "unix-ns mark" line per Mark, in order, written by
// Flush.
func TestMarkAppendsWallClockLines(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "walltrace-1.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mu.Lock()
	oldOn, oldFile, oldBuf := On, file, buf
	On, file, buf = true, f, nil
	mu.Unlock()
	t.Cleanup(func() {
		mu.Lock()
		On, file, buf = oldOn, oldFile, oldBuf
		mu.Unlock()
	})

	before := time.Now().UnixNano()
	Mark("c.send Commit")
	Mark("s.read")
	Flush()
	after := time.Now().UnixNano()

	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %q", len(lines), b)
	}
	var last int64
	for i, want := range []string{"c.send Commit", "s.read"} {
		ts, what, ok := strings.Cut(lines[i], " ")
		n, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil || what != want {
			t.Fatalf("line %d = %q, want \"<ns> %s\"", i, lines[i], want)
		}
		if n < before || n > after || n < last {
			t.Errorf("line %d: time %d not within [%d, %d] and after %d", i, n, before, after, last)
		}
		last = n
	}
}
