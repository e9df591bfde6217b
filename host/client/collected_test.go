package client

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/packless"
)

// TestCollectedLeavesEveryCache: packless collects, in the commit that
// unlinks it, an object nothing references any more. The committer (told
// by its Finish reply) and every other client (told by the invalidation)
// stop serving it from their caches, including an object stored and
// collected by the same commit.
func TestCollectedLeavesEveryCache(t *testing.T) {
	st, err := packless.Open(filepath.Join(t.TempDir(), "sessions"), packless.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := startServer(t, func(o *server.Options) { o.Partitions["main"] = server.Partition{Storage: st} })
	a := openClient(t, ts.addr, nil)
	b := openClient(t, ts.addr, nil)
	ctx := ctxT(t)
	oids, err := a.NewOids(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	x, y, orphan := oids[0], oids[1], oids[2]
	tid := commit(t, a,
		storage.Record{Oid: storage.RootOid, Data: []byte("root"), Refs: []storage.Oid{x}},
		storage.Record{Oid: x, Data: []byte("x"), Refs: []storage.Oid{y}},
		storage.Record{Oid: y, Data: []byte("y")})
	if err := b.WaitForTid(ctx, tid); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{a, b} {
		for _, o := range []storage.Oid{x, y} {
			if _, err := c.Load(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	hits := b.Stats().Hits
	if _, err := b.Load(ctx, y); err != nil || b.Stats().Hits != hits+1 {
		t.Fatalf("b does not serve y from its cache (%v): the test's premise is wrong", err)
	}
	tid2 := commit(t, a,
		storage.Record{Oid: storage.RootOid, Serial: tid, Data: []byte("root, x unlinked")},
		storage.Record{Oid: orphan, Data: []byte("nobody references me")})
	if err := b.WaitForTid(ctx, tid2); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*Client{a, b} {
		for _, o := range []storage.Oid{x, y, orphan} {
			if r, err := c.Load(ctx, o); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("client %c loads collected %s: %q, %v; want ErrNotFound", 'a'+i, o, r.Data, err)
			}
		}
	}
	// A snapshot from before the unlinking commit still sees x (MVCC),
	// from the cache or from the backend's rule for collected objects.
	if r, _, err := b.LoadBefore(ctx, x, tid2); err == nil && string(r.Data) != "x" {
		t.Errorf("b LoadBefore(x, %s) = %q", tid2, r.Data)
	}
}
