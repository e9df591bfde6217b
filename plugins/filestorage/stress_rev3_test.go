package filestorage_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/filestorage"
)

// TestStressPackUndoCommits runs writers, an undoer and a packer at once
// and checks that every acknowledged commit loads, before and after a
// reopen.
func TestStressPackUndoCommits(t *testing.T) {
	for _, sync := range []filestorage.SyncPolicy{filestorage.SyncGroup, filestorage.SyncAlways, filestorage.SyncNone} {
		t.Run(string(sync), func(t *testing.T) { stressPackUndo(t, sync) })
	}
}

func stressPackUndo(t *testing.T, sp filestorage.SyncPolicy) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	opts := filestorage.Options{Sync: sp, KeepOld: true, IndexInterval: 4096}
	st := open(t, path, opts)
	ctx := testCtx(t)
	const writers = 3
	oids, _ := st.NewOids(ctx, writers+2)
	undoOid, garbage := oids[writers], oids[writers+1]
	commit(t, st, storage.Record{Oid: storage.RootOid, Data: []byte("root"), Refs: oids[:writers+1]}, storage.Record{Oid: garbage, Data: []byte("g")})
	for _, o := range oids[:writers+1] {
		commit(t, st, storage.Record{Oid: o, Data: []byte("0")})
	}
	type ack struct {
		tid  storage.Tid
		data string
	}
	last := make([]ack, writers)
	deadline := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for w := range writers {
		wg.Go(func() {
			o := oids[w]
			serial := load(t, st, o).Serial
			for i := 0; time.Now().Before(deadline) && i < 5000; i++ {
				d := fmt.Sprintf("w%d-%d", w, i)
				tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: o, Serial: serial, Data: []byte(d)})
				if err != nil {
					errc <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				serial = tid
				last[w] = ack{tid, d}
				r, err := st.Load(ctx, o)
				if err != nil || r.Serial != tid || string(r.Data) != d {
					errc <- fmt.Errorf("writer %d: load after commit %s: %v %s %q", w, tid, err, r.Serial, r.Data)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; time.Now().Before(deadline) && i < 2000; i++ {
			r, err := st.Load(ctx, undoOid)
			if err != nil {
				errc <- err
				return
			}
			tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: undoOid, Serial: r.Serial, Data: []byte(fmt.Sprint("u", i))})
			if err != nil {
				errc <- err
				return
			}
			if _, _, err := st.Undo(ctx, tid, storage.TxMeta{}); err != nil && !errors.Is(err, storage.ErrUndoConflict) && !errors.Is(err, storage.ErrNotFound) {
				errc <- fmt.Errorf("undo: %w", err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := 0; time.Now().Before(deadline) && i < 200; i++ {
			if err := st.Pack(ctx, storage.TidAt(time.Now()), nil); err != nil {
				errc <- fmt.Errorf("pack: %w", err)
				return
			}
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	check := func(st *filestorage.Storage, when string) {
		for w := range writers {
			r := load(t, st, oids[w])
			if r.Serial != last[w].tid || string(r.Data) != last[w].data {
				t.Fatalf("%s: oid %s at %s %q, acknowledged %s %q", when, oids[w], r.Serial, r.Data, last[w].tid, last[w].data)
			}
			if _, _, err := st.LoadBefore(ctx, oids[w], last[w].tid); err != nil && !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("%s: load before: %v", when, err)
			}
			if _, err := st.History(ctx, oids[w], 0); err != nil {
				t.Fatalf("%s: history: %v", when, err)
			}
		}
		if _, err := st.Load(ctx, garbage); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: garbage survived pack: %v", when, err)
		}
		for _, err := range st.Iterate(ctx, 0, 0) {
			if err != nil {
				t.Fatalf("%s: iterate: %v", when, err)
			}
		}
	}
	check(st, "before close")
	lt, _ := st.LastTid(ctx)
	closeOK(t, st)
	st2 := open(t, path, opts)
	check(st2, "after reopen")
	if lt2, _ := st2.LastTid(ctx); lt2 != lt {
		t.Fatalf("last tid %s after reopen, %s before", lt2, lt)
	}
}
