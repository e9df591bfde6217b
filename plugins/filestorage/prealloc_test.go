package filestorage_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/filestorage"
)

// trFiles lists the torn tails saved beside path.
func trFiles(t testing.TB, path string) []string {
	t.Helper()
	m, err := filepath.Glob(path + ".tr*")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// zeroAfter checks that every byte of the file at path from off on is zero.
func zeroAfter(t testing.TB, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.IndexFunc(b[off:], func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("non-zero byte at %d after the data end %d", off+int64(i), off)
	}
}

func TestPreallocatedCommitsKeepTheFileSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 1)
	size := fileSize(t, path)
	if end := st.DataEnd(); size < end+1<<20 || st.Alloc() != size {
		t.Fatalf("after one commit: file %d bytes, data %d, alloc %d; want 1 MiB or more preallocated", size, end, st.Alloc())
	}
	counter(t, st, 2, 50)
	if got := fileSize(t, path); got != size {
		t.Fatalf("50 small commits changed the file size from %d to %d", size, got)
	}
	zeroAfter(t, path, st.DataEnd())
	// A transaction larger than the space left extends it.
	big := bytes.Repeat([]byte("b"), 3<<20)
	commit(t, st, storage.Record{Oid: 7, Data: big})
	if end := st.DataEnd(); fileSize(t, path) <= end || st.Alloc() != fileSize(t, path) {
		t.Fatalf("after a 3 MiB commit: file %d, data %d, alloc %d", fileSize(t, path), end, st.Alloc())
	}
	end := st.DataEnd()
	closeOK(t, st)
	if got := fileSize(t, path); got != end {
		t.Fatalf("closed file is %d bytes, its data %d: Close must cut the preallocated zeros", got, end)
	}
	st = open(t, path, filestorage.Options{})
	if v := rootVersion(t, st); v != 51 {
		t.Fatalf("root at %d, want 51", v)
	}
	if !bytes.Equal(load(t, st, 7).Data, big) {
		t.Fatal("big record differs after reopen")
	}
}

// TestCrashWithPreallocatedTail opens a copy of a live file (a crash: the
// zeros after the data are still there) with and without the saved index.
func TestCrashWithPreallocatedTail(t *testing.T) {
	for _, withIndex := range []bool{false, true} {
		t.Run("index="+strconv.FormatBool(withIndex), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "Data.fs")
			st := open(t, path, filestorage.Options{Sync: filestorage.SyncGroup})
			counter(t, st, 1, 20)
			if withIndex {
				if err := st.SaveIndex(); err != nil {
					t.Fatal(err)
				}
				counter(t, st, 21, 5)
			} else {
				counter(t, st, 21, 5)
			}
			end := st.DataEnd()
			crashed := filepath.Join(dir, "Crashed.fs")
			copyFile(t, path, crashed)
			if withIndex {
				copyFile(t, path+".index", crashed+".index")
			}
			size := fileSize(t, crashed)
			if size <= end {
				t.Fatalf("the live file has no preallocated tail: %d bytes, data %d", size, end)
			}
			cst := open(t, crashed, filestorage.Options{})
			if v := rootVersion(t, cst); v != 25 {
				t.Fatalf("root at %d after the crash, want 25", v)
			}
			if used, _ := cst.OpenStats(); used != withIndex {
				t.Fatalf("index used %v, want %v", used, withIndex)
			}
			if tr := trFiles(t, crashed); len(tr) != 0 {
				t.Fatalf("a preallocated zero tail was saved as a torn tail: %v", tr)
			}
			if cst.DataEnd() != end || cst.Alloc() != size || fileSize(t, crashed) != size {
				t.Fatalf("after open: data %d (want %d), alloc %d, file %d (want the zeros kept, %d)", cst.DataEnd(), end, cst.Alloc(), fileSize(t, crashed), size)
			}
			counter(t, cst, 26, 3)
			if fileSize(t, crashed) != size {
				t.Fatal("commits after recovery did not use the preallocated space")
			}
			closeOK(t, cst)
			cst = open(t, crashed, filestorage.Options{})
			if v := rootVersion(t, cst); v != 28 {
				t.Fatalf("root at %d, want 28", v)
			}
		})
	}
}

// TestTornTransactionThenZeros: a crash in the middle of a commit into
// preallocated space leaves the transaction's last bytes as zeros; open
// cuts the transaction (saving it) and the zeros after it.
func TestTornTransactionThenZeros(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 10)
	lastStart := st.DataEnd()
	counter(t, st, 11, 1)
	lastEnd := st.DataEnd()
	crashed := filepath.Join(dir, "Crashed.fs")
	copyFile(t, path, crashed)
	size := fileSize(t, crashed)
	// The last 20 bytes of the data never reached the disk.
	if err := filestorage.DamageTail(crashed, 20, false); err != nil {
		t.Fatal(err)
	}
	if fileSize(t, crashed) != size {
		t.Fatal("DamageTail changed the size of a preallocated file")
	}
	cst := open(t, crashed, filestorage.Options{Logger: testLogger(t)})
	if v := rootVersion(t, cst); v != 10 {
		t.Fatalf("root at %d, want 10", v)
	}
	tr, err := os.ReadFile(crashed + ".tr0")
	if err != nil {
		t.Fatalf("torn transaction not saved: %v", err)
	}
	if int64(len(tr)) != lastEnd-lastStart {
		t.Fatalf("saved %d bytes, the torn transaction had %d", len(tr), lastEnd-lastStart)
	}
	if cst.DataEnd() != lastStart || fileSize(t, crashed) != lastStart {
		t.Fatalf("after open: data %d, file %d; want both cut at %d", cst.DataEnd(), fileSize(t, crashed), lastStart)
	}
	counter(t, cst, 11, 2)
	closeOK(t, cst)
	cst = open(t, crashed, filestorage.Options{})
	if v := rootVersion(t, cst); v != 12 {
		t.Fatalf("root at %d, want 12", v)
	}
	if len(trFiles(t, crashed)) != 1 {
		t.Fatal("a clean reopen cut something again")
	}
}

// TestVotedThenZeros: a crash between Vote and Finish with preallocated
// space after the voted transaction.
func TestVotedThenZeros(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	st := open(t, path, filestorage.Options{})
	ctx := testCtx(t)
	tid := counter(t, st, 1, 1)[0]
	end := st.DataEnd()
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
	crashed := filepath.Join(dir, "Crashed.fs")
	copyFile(t, path, crashed)
	if err := txn.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	// Abort zeroes the voted transaction and keeps the space.
	if st.DataEnd() != end || st.Alloc() != fileSize(t, path) || st.Alloc() <= end {
		t.Fatalf("after abort: data %d (want %d), alloc %d, file %d", st.DataEnd(), end, st.Alloc(), fileSize(t, path))
	}
	zeroAfter(t, path, end)
	afterAbort := filepath.Join(dir, "AfterAbort.fs")
	copyFile(t, path, afterAbort)
	ast := open(t, afterAbort, filestorage.Options{})
	if v := rootVersion(t, ast); v != 1 || len(trFiles(t, afterAbort)) != 0 {
		t.Fatalf("crash after abort: root %d, torn tails %v", v, trFiles(t, afterAbort))
	}

	cst := open(t, crashed, filestorage.Options{})
	if v := rootVersion(t, cst); v != 1 {
		t.Fatalf("root at %d: an unfinished transaction became visible", v)
	}
	if len(trFiles(t, crashed)) != 1 || fileSize(t, crashed) != end {
		t.Fatalf("unfinished transaction: saved %v, file %d bytes (want %d)", trFiles(t, crashed), fileSize(t, crashed), end)
	}
}

// TestCrashDuringExtension: a crash while the file grows leaves any
// number of zeros after the data, even fewer than a transaction header.
func TestCrashDuringExtension(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 5)
	closeOK(t, st)
	exact, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, zeros := range []int{1, 20, 35, 36, 37, 4096, 3<<20 + 7} {
		t.Run(strconv.Itoa(zeros), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "Data.fs")
			if err := os.WriteFile(p, append(bytes.Clone(exact), make([]byte, zeros)...), 0o644); err != nil {
				t.Fatal(err)
			}
			st := open(t, p, filestorage.Options{})
			if v := rootVersion(t, st); v != 5 || len(trFiles(t, p)) != 0 {
				t.Fatalf("root at %d (want 5), torn tails %v", v, trFiles(t, p))
			}
			counter(t, st, 6, 1)
			closeOK(t, st)
			st = open(t, p, filestorage.Options{})
			if v := rootVersion(t, st); v != 6 {
				t.Fatalf("root at %d, want 6", v)
			}
		})
	}
}

// TestFilesWithoutPreallocation: a file written without preallocation (by
// an earlier version, or with sync "none") opens and grows with it, and a
// file with preallocated zeros opens without it.
func TestFilesWithoutPreallocation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	st := open(t, path, filestorage.WithoutPrealloc(filestorage.Options{}))
	counter(t, st, 1, 5)
	if fileSize(t, path) != st.DataEnd() {
		t.Fatal("without preallocation the file is longer than its data")
	}
	crashed := filepath.Join(dir, "Crashed.fs")
	copyFile(t, path, crashed)
	closeOK(t, st)
	for _, p := range []string{path, crashed} {
		st = open(t, p, filestorage.Options{})
		if v := rootVersion(t, st); v != 5 || len(trFiles(t, p)) != 0 {
			t.Fatalf("%s: root at %d, torn tails %v", p, v, trFiles(t, p))
		}
		counter(t, st, 6, 2)
		if fileSize(t, p) <= st.DataEnd() {
			t.Fatalf("%s: no space preallocated after reopening", p)
		}
		closeOK(t, st)
	}
	// sync "none" never preallocates.
	st = open(t, path, filestorage.Options{Sync: filestorage.SyncNone})
	counter(t, st, 8, 2)
	if fileSize(t, path) != st.DataEnd() {
		t.Fatal("sync none preallocated")
	}
	// A live preallocated file, opened by a writer that does not
	// preallocate, keeps working.
	closeOK(t, st)
	st = open(t, path, filestorage.Options{})
	counter(t, st, 10, 1)
	copyFile(t, path, crashed)
	closeOK(t, st)
	_ = os.Remove(crashed + ".index")
	st = open(t, crashed, filestorage.WithoutPrealloc(filestorage.Options{}))
	counter(t, st, 11, 1)
	if v := rootVersion(t, st); v != 11 {
		t.Fatalf("root at %d, want 11", v)
	}
}

// TestReadOnlyStopsAtZeros: a read-only open of a crashed file with
// preallocated zeros (and of one with a torn transaction before them)
// reads the data and changes nothing.
func TestReadOnlyStopsAtZeros(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 4)
	for i, damage := range []int64{0, 30} {
		crashed := filepath.Join(dir, "Crashed"+strconv.Itoa(i)+".fs")
		copyFile(t, path, crashed)
		if damage > 0 {
			if err := filestorage.DamageTail(crashed, damage, false); err != nil {
				t.Fatal(err)
			}
		}
		before, err := os.ReadFile(crashed)
		if err != nil {
			t.Fatal(err)
		}
		ro := open(t, crashed, filestorage.Options{ReadOnly: true})
		want := 4
		if damage > 0 {
			want = 3
		}
		if v := rootVersion(t, ro); v != want {
			t.Fatalf("damage %d: root at %d, want %d", damage, v, want)
		}
		n := 0
		for _, err := range ro.Iterate(testCtx(t), 0, 0) {
			if err != nil {
				t.Fatalf("iterate: %v", err)
			}
			n++
		}
		if n != want {
			t.Fatalf("iterate saw %d transactions, want %d", n, want)
		}
		if log, err := ro.UndoLog(testCtx(t), 0); err != nil || len(log) != want {
			t.Fatalf("undo log: %d entries, %v", len(log), err)
		}
		closeOK(t, ro)
		after, err := os.ReadFile(crashed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) || len(trFiles(t, crashed)) != 0 {
			t.Fatalf("damage %d: a read-only open changed the file", damage)
		}
	}
}

// TestZeroHeaderBeforeValidData: zeros where a transaction's header
// should be, followed by transactions that verify, is damage in the
// middle of the data, not the end of it: open refuses to cut.
func TestZeroHeaderBeforeValidData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 2)
	mid := st.DataEnd()
	counter(t, st, 3, 3)
	closeOK(t, st)
	_ = os.Remove(path + ".index")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 64), mid); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := filestorage.Open(path, filestorage.Options{Logger: testLogger(t)}); err == nil {
		t.Fatal("opened a file whose middle transaction lost its header, cutting the acknowledged ones after it")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the refused open changed the file")
	}
}

// TestPackPreallocates: the packed file has space after its data like
// the one it replaced, Data.fs.old is exact, and both open.
func TestPackPreallocates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{KeepOld: true})
	ctx := testCtx(t)
	counter(t, st, 1, 30)
	oldEnd := st.DataEnd()
	time.Sleep(2 * time.Millisecond)
	if err := st.Pack(ctx, storage.TidAt(time.Now()), nil); err != nil {
		t.Fatal(err)
	}
	end := st.DataEnd()
	if end >= oldEnd || fileSize(t, path) <= end || st.Alloc() != fileSize(t, path) {
		t.Fatalf("after pack: data %d (was %d), file %d, alloc %d", end, oldEnd, fileSize(t, path), st.Alloc())
	}
	zeroAfter(t, path, end)
	if got := fileSize(t, path+".old"); got != oldEnd {
		t.Fatalf("Data.fs.old is %d bytes, its data %d", got, oldEnd)
	}
	counter(t, st, 31, 2)
	closeOK(t, st)
	st = open(t, path, filestorage.Options{})
	if v := rootVersion(t, st); v != 32 {
		t.Fatalf("root at %d, want 32", v)
	}
	old := open(t, path+".old", filestorage.Options{ReadOnly: true})
	if v := rootVersion(t, old); v != 30 {
		t.Fatalf("Data.fs.old root at %d, want 30", v)
	}
	if _, err := old.Load(ctx, 99); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("load of a missing oid: %v", err)
	}
}

// TestTrailerEndingInZeros: a transaction whose length is a multiple of
// 256 ends in zero bytes (its trailer's length field), so the last
// non-zero byte of the file is not the end of the data. Damage before
// it is still found to be in the middle, and a torn copy of it is saved
// whole.
func TestTrailerEndingInZeros(t *testing.T) {
	ctx := testCtx(t)
	// 36 header + 34 extension (the durable end) + 49 record header +
	// data + 12 trailer = 512 bytes.
	data := bytes.Repeat([]byte("z"), 512-36-34-49-12)
	write := func(st storage.Storage, oid storage.Oid, serial storage.Tid) storage.Tid {
		t.Helper()
		tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: oid, Serial: serial, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		return tid
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 2)
	mid := st.DataEnd()
	tid := write(st, 5, 0)
	before := st.DataEnd()
	write(st, 5, tid)
	if got := st.DataEnd() - before; got != 512 {
		t.Fatalf("transaction of %d bytes, want 512", got)
	}
	live := filepath.Join(dir, "Live.fs")
	copyFile(t, path, live) // with the preallocated zeros
	closeOK(t, st)

	// Zeros over the header of a transaction in the middle, followed by
	// transactions that verify: refused, with or without zeros after.
	for _, p := range []string{path, live} {
		damaged := p + ".damaged"
		copyFile(t, p, damaged)
		f, err := os.OpenFile(damaged, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(make([]byte, 40), mid); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if st, err := filestorage.Open(damaged, filestorage.Options{Logger: testLogger(t)}); err == nil {
			st.Close()
			t.Fatalf("%s: opened a file whose middle transaction lost its header", filepath.Base(p))
		}
	}

	// A torn last transaction is saved whole, with or without zeros
	// after it.
	for _, p := range []string{path, live} {
		if err := filestorage.DamageTail(p, 5, false); err != nil {
			t.Fatal(err)
		}
		st := open(t, p, filestorage.Options{})
		if got := load(t, st, 5).Serial; got != tid {
			t.Fatalf("%s: oid 5 at %s, want %s", filepath.Base(p), got, tid)
		}
		tr, err := os.ReadFile(p + ".tr0")
		if err != nil {
			t.Fatal(err)
		}
		if len(tr) != 512 && len(tr) != 507 {
			t.Fatalf("%s: saved %d bytes of the torn transaction", filepath.Base(p), len(tr))
		}
		closeOK(t, st)
	}
}
