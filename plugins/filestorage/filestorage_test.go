package filestorage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	zhcl "github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/filestorage"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "filestorage", Level: hclog.Debug, Output: testWriter{t}})
}

func open(t testing.TB, path string, opts filestorage.Options) *filestorage.Storage {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	st, err := filestorage.Open(path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func commit(t testing.TB, st storage.Storage, recs ...storage.Record) storage.Tid {
	t.Helper()
	tid, err := storagetest.Commit(testCtx(t), st, storage.TxMeta{User: "test", Description: t.Name()}, recs...)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return tid
}

func load(t testing.TB, st storage.Storage, oid storage.Oid) storage.Record {
	t.Helper()
	rec, err := st.Load(testCtx(t), oid)
	if err != nil {
		t.Fatalf("load %s: %v", oid, err)
	}
	return rec
}

func closeOK(t testing.TB, st *filestorage.Storage) {
	t.Helper()
	if err := st.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// counter commits n versions of the root, whose data is the version
// number, and returns their tids.
func counter(t testing.TB, st storage.Storage, from, n int) []storage.Tid {
	t.Helper()
	var serial storage.Tid
	if from > 1 {
		serial = load(t, st, storage.RootOid).Serial
	}
	var tids []storage.Tid
	for i := from; i < from+n; i++ {
		serial = commit(t, st, storage.Record{Oid: storage.RootOid, Serial: serial, Data: []byte(strconv.Itoa(i))})
		tids = append(tids, serial)
	}
	return tids
}

func rootVersion(t testing.TB, st storage.Storage) int {
	t.Helper()
	v, err := strconv.Atoi(string(load(t, st, storage.RootOid).Data))
	if err != nil {
		t.Fatalf("root data: %v", err)
	}
	return v
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestIndexTrustedOnlyWhenItMatches(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 20)
	closeOK(t, st)

	st = open(t, path, filestorage.Options{})
	if used, scanned := st.OpenStats(); !used || scanned != 0 {
		t.Fatalf("clean reopen: index used %v, scanned %d bytes; want the index and no scan", used, scanned)
	}
	closeOK(t, st)
	copyFile(t, path+".index", filepath.Join(dir, "index.20"))

	// An index that lags behind the file is used, and only the newer
	// transactions are read.
	st = open(t, path, filestorage.Options{})
	counter(t, st, 21, 5)
	closeOK(t, st)
	copyFile(t, filepath.Join(dir, "index.20"), path+".index")
	st = open(t, path, filestorage.Options{})
	used, scanned := st.OpenStats()
	if !used || scanned <= 0 || scanned >= fileSize(t, path)/2 {
		t.Fatalf("stale index: used %v, scanned %d of %d bytes; want the index and a short scan", used, scanned, fileSize(t, path))
	}
	if v := rootVersion(t, st); v != 25 {
		t.Fatalf("root at %d after a tail scan, want 25", v)
	}
	closeOK(t, st)

	// A damaged index is not trusted.
	b, err := os.ReadFile(path + ".index")
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path+".index", b, 0o644); err != nil {
		t.Fatal(err)
	}
	st = open(t, path, filestorage.Options{})
	if used, _ := st.OpenStats(); used {
		t.Fatal("a corrupted index was trusted")
	}
	if v := rootVersion(t, st); v != 25 {
		t.Fatalf("root at %d after a rebuild, want 25", v)
	}
	closeOK(t, st)

	// The index of another file is not trusted, even if it looks newer.
	other := filepath.Join(dir, "Other.fs")
	ost := open(t, other, filestorage.Options{})
	counter(t, ost, 1, 40)
	closeOK(t, ost)
	copyFile(t, other+".index", path+".index")
	st = open(t, path, filestorage.Options{})
	if used, _ := st.OpenStats(); used {
		t.Fatal("the index of another data file was trusted")
	}
	if v := rootVersion(t, st); v != 25 {
		t.Fatalf("root at %d with a foreign index, want 25", v)
	}
	closeOK(t, st)

	// A file cut shorter than the index covers is rescanned.
	st = open(t, path, filestorage.Options{})
	closeOK(t, st)
	if err := filestorage.DamageTail(path, 10, false); err != nil {
		t.Fatal(err)
	}
	st = open(t, path, filestorage.Options{})
	if used, _ := st.OpenStats(); used {
		t.Fatal("an index covering more than the file was trusted")
	}
	if v := rootVersion(t, st); v != 24 {
		t.Fatalf("root at %d after losing the last transaction, want 24", v)
	}
}

func TestTornTailIsCutAndSaved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 10)
	closeOK(t, st)
	before := fileSize(t, path)
	if err := filestorage.DamageTail(path, 5, false); err != nil {
		t.Fatal(err)
	}
	st = open(t, path, filestorage.Options{})
	if v := rootVersion(t, st); v != 9 {
		t.Fatalf("root at %d, want 9", v)
	}
	closeOK(t, st)
	after := fileSize(t, path)
	tr0, err := os.ReadFile(path + ".tr0")
	if err != nil {
		t.Fatalf("torn tail not saved: %v", err)
	}
	if int64(len(tr0)) != before-5-after {
		t.Fatalf("saved %d bytes, cut %d", len(tr0), before-5-after)
	}

	// Garbage over the end: cut again, saved under the next name.
	if err := filestorage.DamageTail(path, 3, true); err != nil {
		t.Fatal(err)
	}
	st = open(t, path, filestorage.Options{})
	if v := rootVersion(t, st); v != 8 {
		t.Fatalf("root at %d, want 8", v)
	}
	if _, err := os.Stat(path + ".tr1"); err != nil {
		t.Fatalf("second torn tail not saved as .tr1: %v", err)
	}
	// The recovered file takes commits.
	counter(t, st, 9, 2)
	closeOK(t, st)
	st = open(t, path, filestorage.Options{})
	if v := rootVersion(t, st); v != 10 {
		t.Fatalf("root at %d, want 10", v)
	}
}

func TestVotedButUnfinishedIsDropped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	st := open(t, path, filestorage.Options{})
	ctx := testCtx(t)
	tid := counter(t, st, 1, 1)[0]
	txn, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(ctx, storage.Record{Oid: storage.RootOid, Serial: tid, Data: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if err := txn.Vote(ctx); err != nil {
		t.Fatal(err)
	}
	// The process dies here: what is on disk is a voted transaction.
	crashed := filepath.Join(dir, "Crashed.fs")
	copyFile(t, path, crashed)
	if err := txn.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	cst := open(t, crashed, filestorage.Options{})
	if v := rootVersion(t, cst); v != 1 {
		t.Fatalf("root at %d: an unfinished transaction became visible", v)
	}
	if _, err := os.Stat(crashed + ".tr0"); err != nil {
		t.Fatalf("unfinished transaction not saved aside: %v", err)
	}
	// Abort cut the transaction from the original file too.
	closeOK(t, st)
	st = open(t, path, filestorage.Options{})
	if used, _ := st.OpenStats(); !used {
		t.Fatal("index not used after abort and close")
	}
	if _, err := os.Stat(path + ".tr0"); err == nil {
		t.Fatal("abort left bytes that open had to cut")
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 1)
	if _, err := filestorage.Open(path, filestorage.Options{}); !errors.Is(err, filestorage.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if _, err := filestorage.Open(path, filestorage.Options{ReadOnly: true}); !errors.Is(err, filestorage.ErrLocked) {
		t.Fatalf("read-only open beside a writer: %v, want ErrLocked", err)
	}
	// Another process is kept out too.
	out, err := helper(t, path).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("locked")) {
		t.Fatalf("helper process: %v: %s", err, out)
	}
	closeOK(t, st)
	out, err = helper(t, path).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("opened 1")) {
		t.Fatalf("helper process after close: %v: %s", err, out)
	}
	// Read-only opens share the file; a writer is kept out meanwhile.
	r1 := open(t, path, filestorage.Options{ReadOnly: true})
	r2 := open(t, path, filestorage.Options{ReadOnly: true})
	if rootVersion(t, r1) != 1 || rootVersion(t, r2) != 1 {
		t.Fatal("read-only opens disagree")
	}
	if _, err := filestorage.Open(path, filestorage.Options{}); !errors.Is(err, filestorage.ErrLocked) {
		t.Fatalf("writer beside readers: %v, want ErrLocked", err)
	}
}

func helper(t *testing.T, path string) *exec.Cmd {
	ctx := testCtx(t)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), "FILESTORAGE_LOCK_HELPER="+path)
	return cmd
}

// TestLockHelperProcess is the other process of TestLock.
func TestLockHelperProcess(t *testing.T) {
	path := os.Getenv("FILESTORAGE_LOCK_HELPER")
	if path == "" {
		t.Skip("helper process for TestLock")
	}
	st, err := filestorage.Open(path, filestorage.Options{})
	if errors.Is(err, filestorage.ErrLocked) {
		fmt.Println("locked:", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fmt.Println("opened", rootVersion(t, st))
}

func TestTidsNeverGoBackAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	clock := time.Unix(2_000_000_000, 0)
	st := open(t, path, filestorage.Options{Now: func() time.Time { return clock }})
	tid1 := counter(t, st, 1, 1)[0]
	if tid1 != storage.TidAt(clock) {
		t.Fatalf("tid %s not derived from the clock", tid1)
	}
	closeOK(t, st)
	if err := os.Remove(path + ".index"); err != nil {
		t.Fatal(err)
	}
	st = open(t, path, filestorage.Options{Now: func() time.Time { return clock.Add(-time.Hour) }})
	tid2 := counter(t, st, 2, 1)[0]
	if tid2 <= tid1 {
		t.Fatalf("tid %s after restart under a clock that went back, previous %s", tid2, tid1)
	}
}

func TestUndoRestoresByBackPointer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	ctx := testCtx(t)
	big := bytes.Repeat([]byte("a"), 100_000)
	oids, _ := st.NewOids(ctx, 1)
	x := oids[0]
	t1 := commit(t, st, storage.Record{Oid: storage.RootOid, Data: []byte("root"), Refs: []storage.Oid{x}},
		storage.Record{Oid: x, Data: big, Refs: []storage.Oid{storage.RootOid}})
	t2 := commit(t, st, storage.Record{Oid: x, Serial: t1, Data: []byte("small")})
	size := st.DataEnd()
	u1, changed, err := st.Undo(ctx, t2, storage.TxMeta{User: "undoer"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(changed, []storage.Oid{x}) {
		t.Fatalf("undo changed %v, want [%s]", changed, x)
	}
	if grew := st.DataEnd() - size; grew > 1000 {
		t.Fatalf("undo of a 100 kB revision grew the file by %d bytes: it copied the data", grew)
	}
	rec := load(t, st, x)
	if !bytes.Equal(rec.Data, big) || rec.Serial != u1 || !slices.Equal(rec.Refs, []storage.Oid{storage.RootOid}) {
		t.Fatalf("after undo: %d bytes, serial %s, refs %v", len(rec.Data), rec.Serial, rec.Refs)
	}
	hist, err := st.History(ctx, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 3 || hist[0].Serial != u1 || hist[0].Size != len(big) || hist[0].User != "undoer" || hist[0].Extension["undo"] != t2.String() {
		t.Fatalf("history %+v", hist)
	}
	// An undo of the undo brings back the small revision.
	u2, _, err := st.Undo(ctx, u1, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if got := load(t, st, x); string(got.Data) != "small" || got.Serial != u2 {
		t.Fatalf("undo of undo: %q", got.Data)
	}
	// t2 is no longer current: undoing it again conflicts.
	if _, _, err := st.Undo(ctx, t2, storage.TxMeta{}); !errors.Is(err, storage.ErrUndoConflict) {
		t.Fatalf("undo of a superseded transaction: %v, want ErrUndoConflict", err)
	}

	// Undoing a creation makes the object not found; undoing that brings it back.
	oids, _ = st.NewOids(ctx, 1)
	y := oids[0]
	root := load(t, st, storage.RootOid)
	t3 := commit(t, st, storage.Record{Oid: y, Data: []byte("y")}, storage.Record{Oid: storage.RootOid, Serial: root.Serial, Data: []byte("root"), Refs: []storage.Oid{x, y}})
	u3, _, err := st.Undo(ctx, t3, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx, y); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("load after undoing the creation: %v", err)
	}
	// The state survives a rebuild of the index from the file alone.
	closeOK(t, st)
	if err := os.Remove(path + ".index"); err != nil {
		t.Fatal(err)
	}
	st = open(t, path, filestorage.Options{})
	if _, err := st.Load(ctx, y); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("load after rebuild: %v", err)
	}
	if got := load(t, st, x); string(got.Data) != "small" {
		t.Fatalf("x after rebuild: %q", got.Data)
	}
	if _, _, err := st.Undo(ctx, u3, storage.TxMeta{}); err != nil {
		t.Fatal(err)
	}
	if got := load(t, st, y); string(got.Data) != "y" {
		t.Fatalf("y after undoing the undo of its creation: %q", got.Data)
	}
	if _, _, err := st.Undo(ctx, 12345, storage.TxMeta{}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("undo of an unknown tid: %v", err)
	}
}

func TestSyncPolicies(t *testing.T) {
	const writers, each = 8, 25
	for _, p := range []filestorage.SyncPolicy{filestorage.SyncAlways, filestorage.SyncGroup, filestorage.SyncNone, ""} {
		name := string(p)
		if p == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "Data.fs")
			st := open(t, path, filestorage.Options{Sync: p})
			ctx := testCtx(t)
			oids, err := st.NewOids(ctx, writers)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Go(func() {
					var serial storage.Tid
					for i := range each {
						tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: oids[w], Serial: serial, Data: []byte(strconv.Itoa(i))})
						if err != nil {
							errs <- err
							return
						}
						// Finish returned: the revision is visible.
						rec, err := st.Load(ctx, oids[w])
						if err != nil || rec.Serial != tid {
							errs <- fmt.Errorf("load after finish: serial %s, err %v; want %s", rec.Serial, err, tid)
							return
						}
						serial = tid
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			n, total := st.Fsyncs(), int64(writers*each)
			t.Logf("%s: %d fsyncs for %d commits", p, n, total)
			switch p {
			case filestorage.SyncAlways:
				if n != total {
					t.Fatalf("always: %d fsyncs for %d commits", n, total)
				}
			case filestorage.SyncGroup, "": // the default is group commit
				if n >= total || n == 0 {
					t.Fatalf("group: %d fsyncs for %d concurrent commits; want shared fsyncs", n, total)
				}
			case filestorage.SyncNone:
				if n != 0 {
					t.Fatalf("none: %d fsyncs", n)
				}
			}
			closeOK(t, st)
			st = open(t, path, filestorage.Options{})
			for _, o := range oids {
				if got := string(load(t, st, o).Data); got != strconv.Itoa(each-1) {
					t.Fatalf("object %s at %q after reopen", o, got)
				}
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	if _, err := filestorage.Open(path, filestorage.Options{ReadOnly: true}); err == nil {
		t.Fatal("read-only open of a missing file succeeded")
	}
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 3)
	closeOK(t, st)
	if err := filestorage.DamageTail(path, 7, false); err != nil {
		t.Fatal(err)
	}
	size := fileSize(t, path)
	ro := open(t, path, filestorage.Options{ReadOnly: true})
	ctx := testCtx(t)
	if v := rootVersion(t, ro); v != 2 {
		t.Fatalf("read-only root at %d, want 2", v)
	}
	if !ro.Capabilities().ReadOnly {
		t.Fatal("capabilities do not say read-only")
	}
	if _, err := ro.Begin(ctx, storage.TxMeta{}); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("begin: %v", err)
	}
	if _, err := ro.NewOids(ctx, 1); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("new oids: %v", err)
	}
	if err := ro.Pack(ctx, storage.TidAt(time.Now()), nil); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("pack: %v", err)
	}
	if _, _, err := ro.Undo(ctx, 1, storage.TxMeta{}); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("undo: %v", err)
	}
	closeOK(t, ro)
	if fileSize(t, path) != size {
		t.Fatal("a read-only open changed the file")
	}
	if _, err := os.Stat(path + ".tr0"); err == nil {
		t.Fatal("a read-only open wrote a .tr file")
	}
}

func TestNotAFilestorage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	if err := os.WriteFile(path, []byte("this is not a data file at all, really"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := filestorage.Open(path, filestorage.Options{}); err == nil {
		t.Fatal("opened a file that is not a filestorage")
	}
	if b, _ := os.ReadFile(path); string(b) != "this is not a data file at all, really" {
		t.Fatal("open changed a foreign file")
	}
	if _, err := filestorage.Open(path, filestorage.Options{Sync: "sometimes"}); err == nil {
		t.Fatal("accepted sync policy \"sometimes\"")
	}
}

func TestConfig(t *testing.T) {
	schema := filestorage.Schema()
	byName := map[string]zhcl.Attribute{}
	for _, a := range schema.Attributes {
		byName[a.Name] = a
	}
	if a := byName["path"]; a.Type != zhcl.TypePath || !a.Required {
		t.Fatalf("path attribute %+v", a)
	}
	if a := byName["sync"]; a.Type != zhcl.TypeString || a.Default != "group" {
		t.Fatalf("sync attribute %+v", a)
	}
	for _, n := range []string{"keep_old", "read_only"} {
		if a := byName[n]; a.Type != zhcl.TypeBool || a.Default != false {
			t.Fatalf("%s attribute %+v", n, a)
		}
	}
	path := filepath.Join(t.TempDir(), "Data.fs")
	st, err := filestorage.FromConfig(zhcl.Values{"path": path, "sync": "group", "keep_old": true, "read_only": false}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	counter(t, st, 1, 1)
	closeOK(t, st)
	_, opts, err := filestorage.OptionsFromConfig(zhcl.Values{"path": path, "sync": "group", "keep_old": true}, nil)
	if err != nil || opts.Sync != filestorage.SyncGroup || !opts.KeepOld || opts.ReadOnly {
		t.Fatalf("options %+v, %v", opts, err)
	}
	_, opts, err = filestorage.OptionsFromConfig(zhcl.Values{"path": path, "sync": "always"}, nil)
	if err != nil || opts.Sync != filestorage.SyncAlways {
		t.Fatalf("options %+v, %v", opts, err)
	}
	if _, opts, err = filestorage.OptionsFromConfig(zhcl.Values{"path": path}, nil); err != nil || opts.Sync != filestorage.SyncGroup {
		t.Fatalf("default options %+v, %v; want sync group", opts, err)
	}
	for _, bad := range []zhcl.Values{
		{},
		{"path": 3.0},
		{"path": path, "sync": "sometimes"},
		{"path": path, "keep_old": "yes"},
	} {
		if _, err := filestorage.FromConfig(bad, nil); err == nil {
			t.Fatalf("FromConfig(%v) succeeded", bad)
		}
	}
}

// TestPackWhileCommitting packs a file with history and garbage while
// writers commit and readers load, and checks that commits went on during
// the pack, that nothing reachable was lost, and that what was dropped is
// gone.
func TestPackWhileCommitting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	st := open(t, path, filestorage.Options{Sync: filestorage.SyncGroup, KeepOld: true})
	ctx := testCtx(t)
	const objects, versions = 20, 30
	oids, _ := st.NewOids(ctx, objects+1)
	garbage, oids := oids[objects], oids[:objects]
	pad := bytes.Repeat([]byte("x"), 2000)
	recs := []storage.Record{{Oid: storage.RootOid, Data: []byte("root"), Refs: oids}, {Oid: garbage, Data: []byte("garbage")}}
	for _, o := range oids {
		recs = append(recs, storage.Record{Oid: o, Data: []byte("0")})
	}
	commit(t, st, recs...)
	serials := map[storage.Oid]storage.Tid{}
	for v := 1; v <= versions; v++ {
		var recs []storage.Record
		for _, o := range oids {
			recs = append(recs, storage.Record{Oid: o, Serial: serials[o], Data: append([]byte(strconv.Itoa(v)+" "), pad...)})
		}
		if v == 1 {
			for i := range recs {
				recs[i].Serial = load(t, st, recs[i].Oid).Serial
			}
		}
		tid := commit(t, st, recs...)
		for _, o := range oids {
			serials[o] = tid
		}
	}
	packTid := storage.NextTid(serials[oids[0]], time.Now())
	for !(storage.TidAt(time.Now()) >= packTid) {
		time.Sleep(time.Millisecond)
	}
	before := st.DataEnd()

	// Writers keep committing to half the objects; readers keep loading.
	var commits atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				o := oids[w]
				rec, err := st.Load(ctx, o)
				if err != nil {
					errs <- err
					return
				}
				if _, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: o, Serial: rec.Serial, Data: []byte("w" + strconv.Itoa(i))}); err != nil {
					errs <- err
					return
				}
				commits.Add(1)
			}
		})
	}
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := st.Load(ctx, oids[2+i%(objects-2)]); err != nil {
				errs <- err
				return
			}
		}
	})
	var calls []int64
	var total int64
	progress := func(done, tot int64) {
		if len(calls) == 0 {
			// Commits must go on while the pack copies.
			deadline := time.Now().Add(20 * time.Second)
			for start := commits.Load(); commits.Load() < start+5 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}
		calls = append(calls, done)
		total = tot
	}
	startCommits := commits.Load()
	if err := st.Pack(ctx, packTid, progress); err != nil {
		t.Fatal(err)
	}
	during := commits.Load() - startCommits
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if during < 5 {
		t.Fatalf("only %d commits finished during the pack", during)
	}
	if len(calls) == 0 || calls[len(calls)-1] != total || !slices.IsSorted(calls) {
		t.Fatalf("progress calls %v, total %d", calls, total)
	}
	if after := st.DataEnd(); after >= before/4 {
		t.Fatalf("pack left %d of %d bytes", after, before)
	}
	if fileSize(t, path+".old") < before {
		t.Fatal("Data.fs.old is not the file before the pack")
	}
	check := func(st *filestorage.Storage) {
		t.Helper()
		if _, err := st.Load(ctx, garbage); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("unreachable object after pack: %v", err)
		}
		for i, o := range oids {
			rec := load(t, st, o)
			if i >= 2 && !bytes.HasPrefix(rec.Data, []byte(strconv.Itoa(versions)+" ")) {
				t.Fatalf("object %d at %q after pack", i, rec.Data[:5])
			}
			if i < 2 && !bytes.HasPrefix(rec.Data, []byte("w")) {
				t.Fatalf("writer %d's object at %q after pack", i, rec.Data[:5])
			}
			// The revision current at the pack time is still readable.
			old, _, err := st.LoadBefore(ctx, o, packTid)
			if err != nil || !bytes.HasPrefix(old.Data, []byte(strconv.Itoa(versions)+" ")) {
				t.Fatalf("load %s before the pack time: %v", o, err)
			}
			if _, _, err := st.LoadBefore(ctx, o, old.Serial); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("revision older than the pack time survived: %v", err)
			}
		}
		log, err := st.UndoLog(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range log {
			if info.Tid < packTid {
				t.Fatalf("undo log offers %s from before the pack time", info.Tid)
			}
		}
		if len(log) < int(during) {
			t.Fatalf("undo log has %d transactions, %d were committed during the pack", len(log), during)
		}
	}
	check(st)
	closeOK(t, st)
	st = open(t, path, filestorage.Options{})
	if used, _ := st.OpenStats(); !used {
		t.Fatal("the index saved after pack was not used")
	}
	check(st)
	closeOK(t, st)
	if err := os.Remove(path + ".index"); err != nil {
		t.Fatal(err)
	}
	st = open(t, path, filestorage.Options{})
	check(st)
}

// TestIterateAcrossPack iterates while a pack swaps the file: the
// iteration keeps reading the generation it started on.
func TestIterateAcrossPack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	ctx := testCtx(t)
	tids := counter(t, st, 1, 30)
	var seen []storage.Tid
	for tx, err := range st.Iterate(ctx, tids[10], tids[25]) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, tx.Tid)
		if len(seen) == 2 {
			if err := st.Pack(ctx, tids[29]+1, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !slices.Equal(seen, tids[10:25]) {
		t.Fatalf("iterated %d transactions across a pack, want %d", len(seen), 15)
	}
	// After the pack only the newest revision is left, in the last transaction.
	var after []storage.Tid
	for tx, err := range st.Iterate(ctx, 0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		after = append(after, tx.Tid)
	}
	if !slices.Equal(after, tids[29:]) {
		t.Fatalf("after pack iterate yields %v, want %v", after, tids[29:])
	}
	if last, _ := st.LastTid(ctx); last != tids[29] {
		t.Fatalf("last tid %s after pack, want %s", last, tids[29])
	}
}

// TestIndexSavedPeriodically checks that the index is saved while the
// storage runs, so a crash (here: a copy of the files taken while open)
// reopens from it instead of scanning everything.
func TestIndexSavedPeriodically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	st := open(t, path, filestorage.Options{IndexInterval: 4096})
	counter(t, st, 1, 100)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path + ".index"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no index saved after 100 commits with a 4 kB interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	crashed := filepath.Join(dir, "Crashed.fs")
	copyFile(t, path, crashed)
	copyFile(t, path+".index", crashed+".index")
	st2, err := filestorage.Open(crashed, filestorage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	used, scanned := st2.OpenStats()
	if !used || scanned >= st2.DataEnd()/2 {
		t.Fatalf("after a crash: index used %v, scanned %d of %d bytes", used, scanned, st2.DataEnd())
	}
	if v := rootVersion(t, st2); v != 100 {
		t.Fatalf("root at %d, want 100", v)
	}
}
