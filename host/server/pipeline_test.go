package server_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/filestorage"
)

// TestPipelinedCommitsPublishInOrder: the partition's commit lock is
// released before the backend's Finish, so several Finishes (and a group
// fsync) run at once. Every client must still see invalidations in
// strictly increasing tid order, exactly once per transaction, and no
// write may be lost.
func TestPipelinedCommitsPublishInOrder(t *testing.T) {
	for _, sync := range []string{"group", "always"} {
		t.Run(sync, func(t *testing.T) { testPipelined(t, sync) })
	}
}

func testPipelined(t *testing.T, syncPolicy string) {
	st, err := filestorage.FromConfig(hcl.Values{"path": filepath.Join(t.TempDir(), "Data.fs"), "sync": syncPolicy}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, addr, _ := start(t, func(o *server.Options) {
		o.Partitions = map[string]server.Partition{"main": {Storage: st}}
	})
	ctx := ctxT(t)

	var mu sync.Mutex
	var seen []storage.Tid
	watcher := openClient(t, addr, "main")
	cancel := watcher.Watch(func(tid storage.Tid, _ []storage.Oid) {
		mu.Lock()
		seen = append(seen, tid)
		mu.Unlock()
	})
	t.Cleanup(cancel)

	const writers, commits = 4, 40
	oids, err := watcher.NewOids(ctx, writers)
	if err != nil {
		t.Fatal(err)
	}
	last := make([]storage.Tid, writers)
	committed := make([][]storage.Tid, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		c := openClient(t, addr, "main")
		wg.Add(1)
		go func() {
			defer wg.Done()
			var serial storage.Tid
			for i := range commits {
				txn, err := c.Begin(ctx, storage.TxMeta{})
				if err != nil {
					errs <- err
					return
				}
				txn.Store(ctx, storage.Record{Oid: oids[w], Serial: serial, Data: []byte{byte(w), byte(i)}})
				if err := txn.Vote(ctx); err != nil {
					txn.Abort(ctx)
					errs <- err
					return
				}
				tid, err := txn.Finish(ctx)
				if err != nil {
					errs <- err
					return
				}
				if tid <= serial {
					t.Errorf("writer %d: tid %s not after its previous %s", w, tid, serial)
				}
				serial = tid
				committed[w] = append(committed[w], tid)
			}
			last[w] = serial
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var all []storage.Tid
	for _, c := range committed {
		all = append(all, c...)
	}
	slices.Sort(all)
	if err := watcher.WaitForTid(ctx, all[len(all)-1]); err != nil {
		t.Fatal(err)
	}
	// Invalidations are pushed before WaitForTid returns; give the watch
	// callbacks a bounded moment to run.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= len(all) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	got := slices.Clone(seen)
	mu.Unlock()
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("invalidation %d: tid %s after %s: not in tid order", i, got[i], got[i-1])
		}
	}
	if !slices.Equal(got, all) {
		t.Fatalf("watcher saw %d transactions, %d were committed (or different tids)", len(got), len(all))
	}
	for w, oid := range oids {
		r, err := watcher.Load(context.Background(), oid)
		if err != nil {
			t.Fatal(err)
		}
		if r.Serial != last[w] || r.Data[0] != byte(w) || r.Data[1] != commits-1 {
			t.Fatalf("oid %s: serial %s data %v, want serial %s data [%d %d]", oid, r.Serial, r.Data, last[w], w, commits-1)
		}
	}
}
