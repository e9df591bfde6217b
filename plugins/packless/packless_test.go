package packless_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/packless"
)

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "packless", Level: hclog.Warn, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Factory{
		Open: func(t testing.TB, dir string) (storage.Storage, error) {
			return packless.Open(dir, packless.Options{Logger: testLogger(t)})
		},
		Persistent:      true,
		Crash:           crashJournal,
		CollectsGarbage: true,
	})
}

// capture is a logger that keeps every line, for tests that check what was
// logged.
type capture struct {
	mu    sync.Mutex
	lines []string
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, string(p))
	return len(p), nil
}

func (c *capture) contains(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func (c *capture) logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "packless", Level: hclog.Info, Output: c})
}

func open(t *testing.T, dir string, opts packless.Options) *packless.Storage {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	st, err := packless.Open(dir, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// fill commits n objects of size bytes each, all referenced from the
// root, in transactions of per objects, and returns their oids.
func fill(t testing.TB, st storage.Storage, n, per, size int) []storage.Oid {
	t.Helper()
	ctx := context.Background()
	var oids []storage.Oid
	for len(oids) < n {
		got, err := st.NewOids(ctx, min(n-len(oids), 65536))
		if err != nil {
			t.Fatal(err)
		}
		oids = append(oids, got...)
	}
	var root storage.Tid
	for i := 0; i < n; i += per {
		recs := []storage.Record{{Oid: storage.RootOid, Serial: root, Data: []byte("root"), Refs: oids[:min(i+per, n)]}}
		for _, o := range oids[i:min(i+per, n)] {
			d := make([]byte, size)
			copy(d, fmt.Sprintf("object %d", o))
			recs = append(recs, storage.Record{Oid: o, Data: d})
		}
		tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, recs...)
		if err != nil {
			t.Fatal(err)
		}
		root = tid
	}
	return oids
}

func TestLockedStore(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, packless.Options{})
	_, err := packless.Open(dir, packless.Options{})
	if !errors.Is(err, packless.ErrLocked) {
		t.Fatalf("second open = %v, want ErrLocked", err)
	}
	_, err = packless.Open(dir, packless.Options{ReadOnly: true})
	if !errors.Is(err, packless.ErrLocked) {
		t.Fatalf("read-only open of a store open for writing = %v, want ErrLocked", err)
	}
}

func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := open(t, dir, packless.Options{})
	oids := fill(t, st, 10, 10, 100)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	ro := open(t, dir, packless.Options{ReadOnly: true})
	ro2 := open(t, dir, packless.Options{ReadOnly: true}) // readers share the lock
	if !ro.Capabilities().ReadOnly {
		t.Fatal("Capabilities().ReadOnly is false")
	}
	for _, s := range []*packless.Storage{ro, ro2} {
		if rec, err := s.Load(ctx, oids[3]); err != nil || !bytes.HasPrefix(rec.Data, []byte("object")) {
			t.Fatalf("read-only load = %q, %v", rec.Data, err)
		}
	}
	if _, err := ro.Begin(ctx, storage.TxMeta{}); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("Begin = %v, want ErrReadOnly", err)
	}
	if _, err := ro.NewOids(ctx, 1); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("NewOids = %v, want ErrReadOnly", err)
	}
	if _, err := packless.Open(dir, packless.Options{}); !errors.Is(err, packless.ErrLocked) {
		t.Fatalf("writable open beside readers = %v, want ErrLocked", err)
	}
}

func TestTidsSurviveClockGoingBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := open(t, dir, packless.Options{})
	future := time.Now().Add(24 * time.Hour)
	packless.SetClock(st, func() time.Time { return future })
	tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: storage.RootOid, Data: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	if tid != storage.TidAt(future) {
		t.Fatalf("tid %s, want the clock's %s", tid, storage.TidAt(future))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened with the real clock, a day behind the newest tid.
	st = open(t, dir, packless.Options{})
	tid2, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: storage.RootOid, Serial: tid, Data: []byte("2")})
	if err != nil {
		t.Fatal(err)
	}
	if tid2 != tid+1 {
		t.Fatalf("tid after the clock went back = %s, want %s", tid2, tid+1)
	}
}

// TestCorruptTable damages the footer of the newest table file: LevelDB
// cannot open that table at all. With Verify, Open finds it, moves it
// aside, recovers the rest with LevelDB's recovery and logs each step.
func TestCorruptTable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := open(t, dir, packless.Options{WriteBuffer: 64 << 10, NoSync: true})
	oids := fill(t, st, 2000, 100, 300)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	table, err := packless.NewestFile(dir, tableName)
	if err != nil {
		t.Fatal(err)
	}
	if err := damageFile(table, 64); err != nil {
		t.Fatal(err)
	}
	var logs capture
	st = open(t, dir, packless.Options{Verify: true, Logger: logs.logger()})
	if _, err := os.Stat(table + ".corrupt"); err != nil {
		t.Fatalf("damaged table not moved aside: %v", err)
	}
	if !logs.contains("store is corrupt") || !logs.contains("corrupt table") {
		t.Fatalf("recovery not logged: %v", logs.lines)
	}
	found := 0
	for _, o := range oids {
		rec, err := st.Load(ctx, o)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			t.Fatalf("load %s after recovery: %v", o, err)
		case !bytes.HasPrefix(rec.Data, fmt.Appendf(nil, "object %d", o)):
			t.Fatalf("load %s after recovery: wrong data %q", o, rec.Data[:20])
		default:
			found++
		}
	}
	if found == 0 {
		t.Fatal("recovery kept nothing")
	}
	t.Logf("%d of %d objects survived losing the newest table", found, len(oids))
	// The recovered store takes commits.
	root, err := st.Load(ctx, storage.RootOid)
	serial := root.Serial
	if errors.Is(err, storage.ErrNotFound) {
		serial = 0
	} else if err != nil {
		t.Fatal(err)
	}
	if _, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: storage.RootOid, Serial: serial, Data: []byte("after")}); err != nil {
		t.Fatalf("commit after recovery: %v", err)
	}
}

// TestCorruptManifest damages LevelDB's MANIFEST, which Open cannot read
// then; recovery rebuilds it from the tables and loses nothing.
func TestCorruptManifest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := open(t, dir, packless.Options{WriteBuffer: 64 << 10, NoSync: true})
	oids := fill(t, st, 1000, 100, 300)
	last, _ := st.LastTid(ctx)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	manifest, err := packless.NewestFile(dir, regexp.MustCompile(`^MANIFEST-[0-9]+$`))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(manifest, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 200), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var logs capture
	st = open(t, dir, packless.Options{Logger: logs.logger()})
	if !logs.contains("store is corrupt") || !logs.contains("store recovered") {
		t.Fatalf("recovery not logged: %v", logs.lines)
	}
	for _, o := range oids {
		if _, err := st.Load(ctx, o); err != nil {
			t.Fatalf("load %s after manifest recovery: %v", o, err)
		}
	}
	if got, _ := st.LastTid(ctx); got != last {
		t.Fatalf("LastTid after recovery %s, want %s", got, last)
	}
}

func TestSchemaAndFromConfig(t *testing.T) {
	names := map[string]bool{}
	for _, a := range packless.Schema().Attributes {
		names[a.Name] = true
		if a.Description == "" {
			t.Errorf("attribute %s has no description", a.Name)
		}
		if a.Name == "path" && !a.Required {
			t.Error("path is not required")
		}
	}
	for _, n := range []string{"path", "sync", "cache_size", "bloom_bits", "write_buffer", "read_only"} {
		if !names[n] {
			t.Errorf("schema lacks %q", n)
		}
	}
	dir := t.TempDir()
	st, err := packless.FromConfig(hcl.Values{
		"path": dir, "sync": false, "cache_size": int64(1 << 20), "bloom_bits": float64(12),
		"write_buffer": float64(1 << 20), "read_only": false,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storagetest.Commit(context.Background(), st, storage.TxMeta{}, storage.Record{Oid: storage.RootOid, Data: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]hcl.Values{
		"no path":           {},
		"sync not bool":     {"path": dir, "sync": "yes"},
		"fractional bloom":  {"path": dir, "bloom_bits": 1.5},
		"negative cache":    {"path": dir, "cache_size": int64(-1)},
		"tiny write buffer": {"path": dir, "write_buffer": int64(100)},
		"size as string":    {"path": dir, "cache_size": "8MiB"},
	} {
		if st, err := packless.FromConfig(v, nil); !errors.Is(err, storage.ErrInvalid) {
			if st != nil {
				st.Close()
			}
			t.Errorf("%s: FromConfig = %v, want ErrInvalid", name, err)
		}
	}
}

// TestChurnKeepsDiskBounded is a small version of BenchmarkChurn: updates
// over a fixed live set must not grow the store without bound.
func TestChurnKeepsDiskBounded(t *testing.T) {
	updates := 10_000
	if testing.Short() {
		updates = 3_000
	}
	r := churn(t, t.TempDir(), 1000, updates, 50, 256<<10)
	t.Logf("%d updates over %d objects: disk %d bytes, live %d bytes, ratio %.2f", updates, 1000, r.disk, r.live, r.ratio())
	if r.ratio() > 6 {
		t.Fatalf("disk use %.1fx the live data after churn", r.ratio())
	}
}

// damageFile overwrites the last n bytes of path with 0xff: a table's
// footer, which LevelDB needs to open the table at all.
func damageFile(path string, n int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xff}, int(n)), fi.Size()-n); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
