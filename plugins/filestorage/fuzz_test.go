package filestorage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/filestorage"
)

// FuzzOpen damages a valid data file at a fuzzed offset with fuzzed bytes
// and checks that open, and every read after it, returns errors rather
// than panicking, and that whatever opens still takes a commit.
func FuzzOpen(f *testing.F) {
	seedDir := f.TempDir()
	seed := filepath.Join(seedDir, "Data.fs")
	st, err := filestorage.Open(seed, filestorage.Options{Sync: filestorage.SyncNone})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	var serial storage.Tid
	var second int64 // where the second transaction starts
	oids, _ := st.NewOids(ctx, 3)
	for i := range 6 {
		if i == 1 {
			second = st.DataEnd()
		}
		recs := []storage.Record{{Oid: storage.RootOid, Serial: serial, Data: []byte{byte(i)}, Refs: oids}}
		if i == 0 {
			for _, o := range oids {
				recs = append(recs, storage.Record{Oid: o, Data: []byte("child")})
			}
		}
		if serial, err = storagetest.Commit(ctx, st, storage.TxMeta{User: "u", Extension: map[string]string{"k": "v"}}, recs...); err != nil {
			f.Fatal(err)
		}
	}
	if _, _, err := st.Undo(ctx, serial, storage.TxMeta{}); err != nil {
		f.Fatal(err)
	}
	if err := st.Close(); err != nil {
		f.Fatal(err)
	}
	valid, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	index, err := os.ReadFile(seed + ".index")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint16(30), []byte{0xff}, false)
	f.Add(uint16(100), []byte("garbage garbage"), true)
	f.Add(uint16(len(valid)-5), []byte{0, 0, 0, 0, 0}, true)
	f.Add(uint16(8), []byte{1, 2, 3, 4}, false)
	f.Add(uint16(len(valid)), make([]byte, 100), true)      // preallocated zeros after the data
	f.Add(uint16(len(valid)-20), make([]byte, 4096), false) // a torn transaction, then zeros
	// A transaction missing before whole ones that were written while the
	// file was durable only up to before it (sync "none": since open): a
	// torn group, cut.
	f.Add(uint16(second), make([]byte, 60), false)
	f.Fuzz(func(t *testing.T, at uint16, patch []byte, keepIndex bool) {
		dir := t.TempDir()
		path := filepath.Join(dir, "Data.fs")
		b := append([]byte(nil), valid...)
		off := int(at) % (len(b) + 1)
		b = append(b[:off], append(patch, b[min(off+len(patch), len(b)):]...)...)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if keepIndex {
			if err := os.WriteFile(path+".index", index, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		st, err := filestorage.Open(path, filestorage.Options{Logger: hclog.NewNullLogger()})
		if err != nil {
			return
		}
		defer st.Close()
		for _, o := range append([]storage.Oid{storage.RootOid}, oids...) {
			_, _ = st.Load(ctx, o)
			_, _, _ = st.LoadBefore(ctx, o, serial)
			_, _ = st.History(ctx, o, 0)
		}
		for _, err := range st.Iterate(ctx, 0, 0) {
			if err != nil {
				break
			}
		}
		_, _ = st.UndoLog(ctx, 0)
		root, err := st.Load(ctx, storage.RootOid)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			root.Serial = storage.ZeroTid
		case err != nil:
			// Damage inside the part a trusted index covers is found
			// when read; it must be an error, which it was.
			return
		}
		// Whatever opened is a consistent prefix that takes commits.
		tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: storage.RootOid, Serial: root.Serial, Data: []byte("after")})
		if err != nil {
			t.Fatalf("commit after recovery: %v", err)
		}
		if got, err := st.Load(ctx, storage.RootOid); err != nil || string(got.Data) != "after" || got.Serial != tid {
			t.Fatalf("root after the commit: %q, %v", got.Data, err)
		}
		_ = st.Pack(ctx, storage.TidAt(root.Serial.Time()), nil)
	})
}
