package server_test

import (
	"runtime"
	"testing"

	"github.com/zhostdb/zhost/host/storage"
)

// TestRegressionCachePinsVoteFrames: publish caches the voted records as
// they were decoded, aliasing the Vote frame's body. One small record
// cached from a transaction that also carried a big one keeps the whole
// frame alive, while the cache accounts only for the small record: the
// server's memory is no longer bounded by CacheSize.
func TestRegressionCachePinsVoteFrames(t *testing.T) {
	_, addr, st := start(t, nil)
	c := openClient(t, addr, "main")
	ctx := ctxT(t)
	const txns, big = 8, 20 << 20
	for i := 0; i < txns; i++ {
		oids, err := c.NewOids(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		txn, _ := c.Begin(ctx, storage.TxMeta{})
		txn.Store(ctx, storage.Record{Oid: oids[0], Data: []byte("small")})
		txn.Store(ctx, storage.Record{Oid: oids[1], Data: make([]byte, big)})
		if err := txn.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := txn.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The client's cache and the memstorage hold copies of their own;
	// measure what remains after dropping them.
	c.Close()
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	// memstorage keeps every big record: txns*big. Anything well beyond
	// that is pinned frames.
	extra := int64(ms.HeapInuse) - txns*big
	t.Logf("heap in use %d MiB, of which memstorage holds %d MiB", ms.HeapInuse>>20, (txns*big)>>20)
	if extra > int64(txns*big)/2 {
		t.Fatalf("about %d MiB more than the backend holds: the server cache pins whole Vote frames", extra>>20)
	}
	_ = st
}
