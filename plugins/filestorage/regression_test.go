package filestorage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/filestorage"
)

// TestRegressionPackDropsObjectRevivedDuringPack: pack computes reachability
// from a snapshot, without the commit lock. A transaction committed while
// pack copies (after the snapshot) may reference an object that was
// unreachable at the snapshot (a client still held it): step 3 copies that
// transaction but not the object, so the reference dangles and the object
// is lost although a committed transaction references it.
func TestRegressionPackDropsObjectRevivedDuringPack(t *testing.T) {
	ctx := testCtx(t)
	st := open(t, filepath.Join(t.TempDir(), "Data.fs"), filestorage.Options{Sync: filestorage.SyncNone})
	const x, filler, y storage.Oid = 1, 2, 3
	big := bytes.Repeat([]byte("f"), 3<<20) // so pack reports progress while copying
	t1 := commit(t, st,
		storage.Record{Oid: storage.RootOid, Data: []byte("root v1"), Refs: []storage.Oid{x, filler}},
		storage.Record{Oid: x, Data: []byte("precious")},
		storage.Record{Oid: filler, Data: big},
	)
	// x becomes unreachable (a client still holds it in its cache).
	t2 := commit(t, st, storage.Record{Oid: storage.RootOid, Serial: t1, Data: []byte("root v2"), Refs: []storage.Oid{filler}})
	time.Sleep(time.Millisecond)
	packTid := storage.TidAt(time.Now())

	var once sync.Once
	var commitErr error
	progress := func(done, total int64) {
		once.Do(func() {
			// While pack copies, without any lock: a client links x again
			// from a new object y, reachable from the root.
			_, commitErr = commitNoFatal(st, t2, x, y)
		})
	}
	if err := st.Pack(ctx, packTid, progress); err != nil {
		t.Fatalf("pack: %v", err)
	}
	if commitErr != nil {
		t.Fatalf("commit during pack: %v", commitErr)
	}
	root := load(t, st, storage.RootOid)
	if string(root.Data) != "root v3" {
		t.Fatalf("root is %q", root.Data)
	}
	if _, err := st.Load(ctx, y); err != nil {
		t.Fatalf("load y: %v", err)
	}
	if _, err := st.Load(ctx, x); errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("x is referenced by y (committed during pack, reachable from the root) but pack removed it: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
}

func commitNoFatal(st storage.Storage, rootSerial storage.Tid, x, y storage.Oid) (storage.Tid, error) {
	ctx := context_background()
	txn, err := st.Begin(ctx, storage.TxMeta{User: "revive"})
	if err != nil {
		return 0, err
	}
	defer txn.Abort(ctx)
	if err := txn.Store(ctx, storage.Record{Oid: storage.RootOid, Serial: rootSerial, Data: []byte("root v3"), Refs: []storage.Oid{2, y}}); err != nil {
		return 0, err
	}
	if err := txn.Store(ctx, storage.Record{Oid: y, Data: []byte("y"), Refs: []storage.Oid{x}}); err != nil {
		return 0, err
	}
	if err := txn.Vote(ctx); err != nil {
		return 0, err
	}
	return txn.Finish(ctx)
}

func context_background() context.Context { return context.Background() }

// TestRegressionMidFileDamageTruncatesLaterCommits: open treats any
// transaction that does not verify as a torn tail and cuts the file
// there. A damaged byte in the middle of the file (bit rot, a bad
// sector), scanned because the index is missing or stale, makes open
// silently drop every later, acknowledged transaction (moved to .trN),
// and the storage then carries on without them.
func TestRegressionMidFileDamageTruncatesLaterCommits(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "Data.fs")
	st, err := filestorage.Open(path, filestorage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, st, storage.Record{Oid: 1, Data: []byte("first")})
	mid := st.DataEnd()
	commit(t, st, storage.Record{Oid: 2, Data: bytes.Repeat([]byte("m"), 4096)})
	commit(t, st, storage.Record{Oid: 3, Data: []byte("third, acknowledged")})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(path + ".index") // a crash before the index was saved
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, mid+2000); err != nil { // inside transaction 2's data
		t.Fatal(err)
	}
	f.Close()
	st2, err := filestorage.Open(path, filestorage.Options{Logger: testLogger(t)})
	if err != nil {
		t.Logf("open refused the damaged file (good): %v", err)
		return
	}
	defer st2.Close()
	if _, err := st2.Load(ctx, 3); err != nil {
		t.Fatalf("open accepted a file damaged in the middle and dropped the later acknowledged transaction: load oid 3: %v", err)
	}
}
