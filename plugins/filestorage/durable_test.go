package filestorage_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/filestorage"
)

// groupOid is the object the i-th transaction of an unsynced group writes.
func groupOid(i int) storage.Oid { return storage.Oid(100 + i) }

// unsyncedGroup writes len(sizes) transactions (the i-th stores
// sizes[i] bytes under groupOid(i)) into one group commit whose fsync has not started, and returns a copy
// of the data file as the disk may hold it if the power fails then
// (written, never synced: the test then damages it as a power loss
// could), and the group's boundaries: transaction i spans
// bounds[i]..bounds[i+1]. The fsync is then let run and every Finish
// must succeed. undoOf, if non-zero, makes the last transaction an Undo
// of that tid instead. With sync "none" (nosync) there is no fsync to
// hold: nothing written after open is ever known durable.
func unsyncedGroup(t *testing.T, st *filestorage.Storage, path string, sizes []int, undoOf storage.Tid, nosync bool) (string, []int64) {
	t.Helper()
	n := len(sizes)
	ctx := testCtx(t)
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	st.SetSyncHook(func() {
		once.Do(func() {
			close(held)
			<-release
		})
	})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	bounds := []int64{st.DataEnd()}
	for i := range n {
		if i == n-1 && undoOf != 0 {
			wg.Go(func() {
				if _, _, err := st.Undo(ctx, undoOf, storage.TxMeta{}); err != nil {
					errs <- err
				}
			})
			// The undo is written once the data end moves.
			deadline := time.Now().Add(time.Minute)
			for st.DataEnd() == bounds[i] && time.Now().Before(deadline) {
				time.Sleep(100 * time.Microsecond)
			}
			bounds = append(bounds, st.DataEnd())
			continue
		}
		tx, err := st.Begin(ctx, storage.TxMeta{User: "group"})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Store(ctx, storage.Record{Oid: groupOid(i), Data: bytes.Repeat([]byte{'g'}, sizes[i])}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if _, err := tx.Finish(ctx); err != nil {
				errs <- err
			}
		})
		if i == 0 && !nosync {
			<-held // the first Finish leads the fsync, and waits in the hook
		}
		// DataEnd takes the commit lock, which this Finish releases once
		// its transaction is marked committed.
		bounds = append(bounds, st.DataEnd())
	}
	snap := path + ".powerloss"
	copyFile(t, path, snap)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("finish in the group: %v", err)
	}
	return snap, bounds
}

// small is the sizes of n small transactions for unsyncedGroup.
func small(n int) []int { return slices.Repeat([]int{300}, n) }

// zeroRange overwrites [from, to) of the file at path with zeros.
func zeroRange(t *testing.T, path string, from, to int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, to-from), from); err != nil {
		t.Fatal(err)
	}
}

// checkCutAt checks that the storage at path was cut at end: every
// transaction before it kept, the tail saved whole as .tr0, and the file
// taking commits again.
func checkCutAt(t *testing.T, st *filestorage.Storage, path string, end int64, tail []byte, base []storage.Tid, groupLen int) {
	t.Helper()
	ctx := testCtx(t)
	if got := fileSize(t, path); got != end {
		t.Fatalf("data file is %d bytes after open, want it cut at %d", got, end)
	}
	if last, _ := st.LastTid(ctx); last != base[len(base)-1] {
		t.Fatalf("last tid %s, want %s", last, base[len(base)-1])
	}
	if v := rootVersion(t, st); v != len(base) {
		t.Fatalf("root at version %d, want %d", v, len(base))
	}
	for i := range groupLen {
		if _, err := st.Load(ctx, groupOid(i)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("oid %s of the torn group: %v, want not found", groupOid(i), err)
		}
	}
	saved, err := os.ReadFile(path + ".tr0")
	if err != nil {
		t.Fatalf("torn group not saved: %v", err)
	}
	if !bytes.Equal(saved, tail) {
		t.Fatalf("saved %d bytes, want the %d bytes of the torn group", len(saved), len(tail))
	}
	counter(t, st, len(base)+1, 1)
}

// TestTornGroupCommitIsCut: a power loss while a group commit's fsync
// had not finished leaves an earlier transaction of the group torn or
// missing and later ones whole. None was acknowledged, and each records
// that the file was durable only up to before the group: open cuts at
// the torn one, keeps everything before it, and saves the group.
func TestTornGroupCommitIsCut(t *testing.T) {
	const n = 4
	damages := []struct {
		name string
		// damage tears the group, transaction i spanning b[i]..b[i+1].
		damage func(t *testing.T, p string, b []int64)
	}{
		{"first missing", func(t *testing.T, p string, b []int64) { zeroRange(t, p, b[0], b[1]) }},
		{"first header missing", func(t *testing.T, p string, b []int64) { zeroRange(t, p, b[0], b[0]+64) }},
		{"first half written", func(t *testing.T, p string, b []int64) { zeroRange(t, p, (b[0]+b[1])/2, b[1]) }},
		{"torn in two places", func(t *testing.T, p string, b []int64) {
			zeroRange(t, p, b[0]+40, b[0]+80)
			zeroRange(t, p, b[2], b[3])
		}},
		{"last one whole only", func(t *testing.T, p string, b []int64) { zeroRange(t, p, b[0], b[n-1]) }},
	}
	for _, policy := range []filestorage.SyncPolicy{filestorage.SyncGroup, filestorage.SyncNone} {
		for _, d := range damages {
			t.Run(string(policy)+"/"+d.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "Data.fs")
				st := open(t, path, filestorage.Options{Sync: policy})
				base := counter(t, st, 1, 3)
				snap, b := unsyncedGroup(t, st, path, small(n), 0, policy == filestorage.SyncNone)
				closeOK(t, st)
				d.damage(t, snap, b)
				whole, err := os.ReadFile(snap)
				if err != nil {
					t.Fatal(err)
				}
				st = open(t, snap, filestorage.Options{Sync: policy})
				checkCutAt(t, st, snap, b[0], whole[b[0]:b[n]], base, n)
				closeOK(t, st)
				st = open(t, snap, filestorage.Options{Sync: policy})
				if v := rootVersion(t, st); v != len(base)+1 {
					t.Fatalf("after reopen: root at %d, want %d", v, len(base)+1)
				}
			})
		}
	}
}

// TestTornGroupAfterSavedIndex: a torn group after the position a saved
// index covers is cut the same way, and the group that extended the
// preallocated space (its last transaction larger than the space left)
// too.
func TestTornGroupAfterSavedIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	base := counter(t, st, 1, 3)
	if err := st.SaveIndex(); err != nil {
		t.Fatal(err)
	}
	saved := path + ".index.saved"
	copyFile(t, path+".index", saved) // Close saves it again
	alloc := st.Alloc()
	snap, b := unsyncedGroup(t, st, path, []int{300, 300, 2 << 20}, 0, false)
	if st.Alloc() <= alloc || fileSize(t, snap) <= alloc {
		t.Fatalf("the group did not extend the preallocated space (%d, then %d)", alloc, st.Alloc())
	}
	closeOK(t, st)
	copyFile(t, saved, snap+".index")
	zeroRange(t, snap, b[0]+50, b[1]-50)
	whole, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	st = open(t, snap, filestorage.Options{})
	if used, _ := st.OpenStats(); !used {
		t.Fatal("open did not use the index saved before the group")
	}
	checkCutAt(t, st, snap, b[0], whole[b[0]:b[3]], base, 3)
}

// TestDamageBeforeDurableDataIsRefused: the same damage, but a later
// transaction was written once the damaged one was durable (so it and
// everything before it may have been acknowledged): damage in the
// middle, open refuses and changes nothing. With sync "always" every
// transaction is durable before the next is written, so any damage
// followed by a valid transaction is refused.
func TestDamageBeforeDurableDataIsRefused(t *testing.T) {
	t.Run("group then a later commit", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "Data.fs")
		st := open(t, path, filestorage.Options{})
		counter(t, st, 1, 3)
		_, b := unsyncedGroup(t, st, path, small(3), 0, false)
		counter(t, st, 4, 1) // written after the group's fsync
		closeOK(t, st)
		_ = os.Remove(path + ".index")
		zeroRange(t, path, b[0], b[1])
		refused(t, path)
	})
	for _, policy := range []filestorage.SyncPolicy{filestorage.SyncAlways, filestorage.SyncGroup} {
		t.Run("sequential "+string(policy), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "Data.fs")
			st := open(t, path, filestorage.Options{Sync: policy})
			counter(t, st, 1, 3)
			mid := st.DataEnd()
			counter(t, st, 4, 3)
			live := path + ".live"
			copyFile(t, path, live) // with the preallocated zeros
			closeOK(t, st)
			for _, p := range []string{path, live} {
				_ = os.Remove(path + ".index")
				zeroRange(t, p, mid, mid+40)
				refused(t, p)
			}
		})
	}
}

// refused checks that neither a writable nor a read-only open accepts
// the file at path, and that neither changes it.
func refused(t *testing.T, path string) {
	t.Helper()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		if st, err := filestorage.Open(path, filestorage.Options{ReadOnly: ro, Logger: testLogger(t)}); err == nil {
			st.Close()
			t.Fatalf("read-only %v: opened a file damaged before durable data", ro)
		} else {
			t.Logf("refused (good): %v", err)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) || len(trFiles(t, path)) != 0 {
		t.Fatal("a refused open changed the file")
	}
}

// TestFilesWithoutDurableEnds: transactions written before the durable
// end existed (byte for byte as then) record none, and open treats their
// files as it always did: a torn group is refused as damage in the
// middle, a torn tail is cut.
func TestFilesWithoutDurableEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	opts := filestorage.WithoutDurableRecord(filestorage.Options{})
	st := open(t, path, opts)
	base := counter(t, st, 1, 3)
	snap, b := unsyncedGroup(t, st, path, small(3), 0, false)
	closeOK(t, st)
	zeroRange(t, snap, b[0], b[1])
	refused(t, snap)

	if err := filestorage.DamageTail(path, 10, true); err != nil {
		t.Fatal(err)
	}
	st = open(t, path, opts)
	if _, err := st.Load(testCtx(t), groupOid(2)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("torn last transaction: %v", err)
	}
	if _, err := st.Load(testCtx(t), groupOid(1)); err != nil {
		t.Fatalf("transaction before the torn tail: %v", err)
	}
	if v := rootVersion(t, st); v != len(base) {
		t.Fatalf("root at %d", v)
	}
	if len(trFiles(t, path)) != 1 {
		t.Fatal("torn tail not saved")
	}
}

// TestReadOnlyTornGroup: a read-only open of a torn group reads up to
// the torn transaction, ignores the rest and changes nothing.
func TestReadOnlyTornGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 2)
	snap, b := unsyncedGroup(t, st, path, small(3), 0, false)
	closeOK(t, st)
	zeroRange(t, snap, b[1], b[2])
	before, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	ro := open(t, snap, filestorage.Options{ReadOnly: true})
	if v := rootVersion(t, ro); v != 2 {
		t.Fatalf("root at %d, want 2", v)
	}
	if _, err := ro.Load(testCtx(t), groupOid(0)); err != nil {
		t.Fatalf("transaction before the torn one: %v", err)
	}
	if _, err := ro.Load(testCtx(t), groupOid(2)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("transaction after the torn one: %v", err)
	}
	closeOK(t, ro)
	if after, _ := os.ReadFile(snap); !bytes.Equal(before, after) || len(trFiles(t, snap)) != 0 {
		t.Fatal("a read-only open changed the file")
	}
}

// TestUndoInTornGroup: an undo written in a group that a power loss tore
// records its durable end like any commit, and is cut with the group.
func TestUndoInTornGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	base := counter(t, st, 1, 3)
	snap, b := unsyncedGroup(t, st, path, small(2), base[2], false)
	if v := rootVersion(t, st); v != 2 {
		t.Fatalf("undo of version 3 left the root at %d", v)
	}
	closeOK(t, st)
	zeroRange(t, snap, b[0]+36, b[0]+100)
	whole, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	st = open(t, snap, filestorage.Options{})
	checkCutAt(t, st, snap, b[0], whole[b[0]:b[2]], base, 1)
}

// TestPackedTransactionsAreDurable: the transactions a pack copies are
// durable once the packed file is Data.fs, and record it: damage among
// them is refused, while a group committed after the pack and torn by a
// power loss is cut.
func TestPackedTransactionsAreDurable(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	commit(t, st, storage.Record{Oid: 7, Data: []byte("kept")})
	var base []storage.Tid
	for i := 1; i <= 3; i++ { // the root references oid 7, so pack keeps it
		var serial storage.Tid
		if len(base) > 0 {
			serial = base[len(base)-1]
		}
		base = append(base, commit(t, st, storage.Record{Oid: storage.RootOid, Serial: serial, Data: []byte(strconv.Itoa(i)), Refs: []storage.Oid{7}}))
	}
	time.Sleep(2 * time.Millisecond)
	if err := st.Pack(ctx, storage.TidAt(time.Now()), nil); err != nil {
		t.Fatal(err)
	}
	packedEnd := st.DataEnd()
	snap, b := unsyncedGroup(t, st, path, small(3), 0, false)
	if b[0] != packedEnd {
		t.Fatalf("group starts at %d, the packed data ends at %d", b[0], packedEnd)
	}
	closeOK(t, st)

	// Damage in the packed part, the last transaction a copied one.
	packed := path + ".packed"
	copyFile(t, path, packed)
	if err := os.Truncate(packed, packedEnd); err != nil {
		t.Fatal(err)
	}
	zeroRange(t, packed, 24, 24+40)
	refused(t, packed)

	// A torn group after the pack.
	zeroRange(t, snap, b[0], b[1])
	whole, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	st = open(t, snap, filestorage.Options{})
	checkCutAt(t, st, snap, b[0], whole[b[0]:b[3]], base, 3)
	if got := load(t, st, 7); string(got.Data) != "kept" {
		t.Fatalf("oid 7 after the cut: %q", got.Data)
	}
}

// TestDurableEndIsNotMetadata: the durable end a transaction records is
// not part of the metadata callers see, and a caller cannot set it.
func TestDurableEndIsNotMetadata(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	ext := map[string]string{"node": "app1", "": "empty key"}
	if _, err := storagetest.Commit(ctx, st, storage.TxMeta{User: "u", Extension: ext}, storage.Record{Oid: storage.RootOid, Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	tid := commit(t, st, storage.Record{Oid: 5, Data: []byte("x")})
	if _, _, err := st.Undo(ctx, tid, storage.TxMeta{}); err != nil {
		t.Fatal(err)
	}
	reserved := map[string]string{"\x00zhost.durable": "12345678"}
	if _, err := st.Begin(ctx, storage.TxMeta{Extension: reserved}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("begin with the reserved extension key: %v, want ErrInvalid", err)
	}
	if _, _, err := st.Undo(ctx, tid, storage.TxMeta{Extension: reserved}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("undo with the reserved extension key: %v, want ErrInvalid", err)
	}
	closeOK(t, st)
	_ = os.Remove(path + ".index")
	st = open(t, path, filestorage.Options{})
	var got []map[string]string
	for tx, err := range st.Iterate(ctx, 0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tx.Extension)
	}
	want := []map[string]string{ext, nil, {"undo": tid.String()}}
	if len(got) != len(want) {
		t.Fatalf("iterate: %d transactions, want %d", len(got), len(want))
	}
	for i := range want {
		if !maps.Equal(got[i], want[i]) || (want[i] == nil) != (got[i] == nil) {
			t.Fatalf("transaction %d: extension %q, want %q", i, got[i], want[i])
		}
	}
	log, err := st.UndoLog(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range log {
		if _, ok := info.Extension["\x00zhost.durable"]; ok {
			t.Fatalf("undo log shows the durable end of %s", info.Tid)
		}
	}
}

// beforeDurableEnd is a data file written by this package before
// transactions recorded their durable end: root "1" and oid 1 "a"
// (extension node=app1), root "2", oid 1 "b", root "3" (description
// "root 3"), then an undo of the oid 1 "b" transaction. Closed cleanly,
// no index.
const beforeDurableEnd = "testdata/before-durable-end.fs"

// txnStarts returns where each transaction of a cleanly closed file
// starts, by their length fields.
func txnStarts(t *testing.T, b []byte) []int64 {
	t.Helper()
	var starts []int64
	for pos := int64(24); pos < int64(len(b)); pos += int64(binary.BigEndian.Uint64(b[pos+8:])) {
		starts = append(starts, pos)
	}
	return starts
}

// TestFileWrittenBeforeDurableEnds: a file from before the record opens
// and reads as it did, an open that commits nothing leaves it byte for
// byte as it was, damage followed by its (record-less) transactions is
// refused and a torn tail cut, as before; transactions appended after
// the upgrade record the durable end, so damage in the old part is
// still refused.
func TestFileWrittenBeforeDurableEnds(t *testing.T) {
	ctx := testCtx(t)
	golden, err := os.ReadFile(beforeDurableEnd)
	if err != nil {
		t.Fatal(err)
	}
	starts := txnStarts(t, golden)
	if len(starts) != 5 {
		t.Fatalf("%s: %d transactions, want 5", beforeDurableEnd, len(starts))
	}
	fresh := func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "Data.fs")
		if err := os.WriteFile(path, golden, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}

	t.Run("reads as before", func(t *testing.T) {
		path := fresh(t)
		st := open(t, path, filestorage.Options{})
		if got := load(t, st, storage.RootOid); string(got.Data) != "3" {
			t.Fatalf("root %q, want 3", got.Data)
		}
		if got := load(t, st, 1); string(got.Data) != "a" {
			t.Fatalf("oid 1 %q, want a (undone)", got.Data)
		}
		var exts []map[string]string
		var descs []string
		var tids []storage.Tid
		for tx, err := range st.Iterate(ctx, 0, 0) {
			if err != nil {
				t.Fatal(err)
			}
			exts, descs, tids = append(exts, tx.Extension), append(descs, tx.Description), append(tids, tx.Tid)
		}
		want := []map[string]string{{"node": "app1"}, nil, nil, nil, {"undo": tids[2].String()}}
		for i := range want {
			if !maps.Equal(exts[i], want[i]) || (want[i] == nil) != (exts[i] == nil) {
				t.Fatalf("transaction %d: extension %q, want %q", i, exts[i], want[i])
			}
		}
		if descs[3] != "root 3" {
			t.Fatalf("descriptions %q", descs)
		}
		closeOK(t, st)
		if after, _ := os.ReadFile(path); !bytes.Equal(after, golden) {
			t.Fatal("an open that committed nothing changed the file")
		}
	})

	t.Run("damage in the middle refused", func(t *testing.T) {
		path := fresh(t)
		zeroRange(t, path, starts[1], starts[1]+40)
		refused(t, path)
	})

	t.Run("torn tail cut", func(t *testing.T) {
		path := fresh(t)
		if err := filestorage.DamageTail(path, 5, true); err != nil {
			t.Fatal(err)
		}
		st := open(t, path, filestorage.Options{})
		if got := load(t, st, 1); string(got.Data) != "b" {
			t.Fatalf("oid 1 %q after the undo was cut, want b", got.Data)
		}
		if fileSize(t, path) != starts[4] || len(trFiles(t, path)) != 1 {
			t.Fatal("torn undo not cut and saved")
		}
	})

	t.Run("appended after upgrade", func(t *testing.T) {
		path := fresh(t)
		st := open(t, path, filestorage.Options{})
		counter(t, st, 4, 2)
		closeOK(t, st)
		_ = os.Remove(path + ".index")
		zeroRange(t, path, starts[1], starts[2])
		refused(t, path)
	})
}
