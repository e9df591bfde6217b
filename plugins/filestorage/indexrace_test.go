package filestorage_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/filestorage"
)

// TestIndexSaveRacingPack: an index save that took its snapshot before a
// pack swapped the data file finishes after the swap. It writes the old
// file's index; that must not count as the saved index of the new file
// (a pack that drops nothing leaves a file of the same size, so the
// positions match): the new file's index is saved anyway, and the next
// open trusts it and scans nothing.
func TestIndexSaveRacingPack(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "Data.fs")
	st, err := filestorage.Open(path, filestorage.Options{Sync: filestorage.SyncNone, IndexInterval: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	st.SetIndexSaveHook(func() {
		once.Do(func() {
			close(started)
			select {
			case <-release:
			case <-time.After(30 * time.Second):
			}
		})
	})
	// Only reachable current records: pack copies everything and the
	// packed file has exactly the old file's size.
	oids, err := st.NewOids(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	commit(t, st,
		storage.Record{Oid: storage.RootOid, Data: []byte("root"), Refs: oids},
		storage.Record{Oid: oids[0], Data: []byte("a")},
		storage.Record{Oid: oids[1], Data: []byte("b")})
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	saved := make(chan error, 1)
	go func() { saved <- st.SaveIndex() }()
	select {
	case <-started: // the save holds a snapshot of the old file
	case <-time.After(30 * time.Second):
		t.Fatal("index save did not start")
	}
	if err := st.Pack(ctx, storage.TidAt(time.Now()), nil); err != nil {
		close(release)
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() != before.Size() {
		t.Logf("packed file %d bytes, old %d: the positions differ, the race is milder", after.Size(), before.Size())
	}
	close(release)
	if err := <-saved; err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	re, err := filestorage.Open(path, filestorage.Options{Sync: filestorage.SyncNone, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	used, scanned := re.OpenStats()
	if !used || scanned != 0 {
		t.Fatalf("open after pack: index used %v, %d bytes scanned; want the post-pack index trusted, nothing scanned", used, scanned)
	}
	for _, o := range append([]storage.Oid{storage.RootOid}, oids...) {
		load(t, re, o)
	}
}
