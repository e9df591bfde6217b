package server_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/packless"
)

// TestRegressionPacklessCollectedStillServed: packless deletes, in the commit
// that unlinks it, an object nobody references any more. The server
// publishes only the stored oids: its record cache (and every client's)
// keeps serving the collected object as current, where the backend (and
// the contract: "ErrNotFound: ... collected by the packless collector")
// says it is gone.
func TestRegressionPacklessCollectedStillServed(t *testing.T) {
	st, err := packless.Open(filepath.Join(t.TempDir(), "sessions"), packless.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := serve(t, server.Options{Partitions: map[string]server.Partition{"s": {Storage: st}}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr := srv.Addr().String()
	a, err := client.Open(ctx, client.Options{Addr: addr, Partition: "s", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	oids, _ := a.NewOids(ctx, 1)
	x := oids[0]
	t1, err := commitVia(ctx, a, storage.Record{Oid: storage.RootOid, Data: []byte("root"), Refs: []storage.Oid{x}}, storage.Record{Oid: x, Data: []byte("session x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Load(ctx, x); err != nil { // the server caches x
		t.Fatal(err)
	}
	if _, err := commitVia(ctx, a, storage.Record{Oid: storage.RootOid, Serial: t1, Data: []byte("root, x unlinked")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx, x); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("backend load of the collected x: %v, want ErrNotFound", err)
	}
	b, err := client.Open(ctx, client.Options{Addr: addr, Partition: "s", Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if r, err := b.Load(ctx, x); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a fresh client loads the collected x through the server: %q, %v; want ErrNotFound", r.Data, err)
	}
}

func commitVia(ctx context.Context, c *client.Client, recs ...storage.Record) (storage.Tid, error) {
	txn, err := c.Begin(ctx, storage.TxMeta{})
	if err != nil {
		return 0, err
	}
	for _, r := range recs {
		if err := txn.Store(ctx, r); err != nil {
			return 0, err
		}
	}
	if err := txn.Vote(ctx); err != nil {
		txn.Abort(ctx)
		return 0, err
	}
	return txn.Finish(ctx)
}
