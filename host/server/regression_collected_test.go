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
	"github.com/zhostdb/zhost/host/wire"
	"github.com/zhostdb/zhost/plugins/packless"
)

// TestRegressionCollectedInvalidationTooLarge: a packless commit that
// unlinks a large tree collects all of it, and the server names every
// collected oid in the committer's reply and in the other clients'
// Invalidate. Past the message size limit both were replaced by a
// TooLarge error: the committer was told its committed transaction
// failed, and the other clients never learnt that the collected objects
// were gone (they went on serving them from their caches).
func TestRegressionCollectedInvalidationTooLarge(t *testing.T) {
	st, err := packless.Open(filepath.Join(t.TempDir(), "sessions"), packless.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := serve(t, server.Options{Partitions: map[string]server.Partition{"s": {Storage: st}}, MaxMessageSize: wire.MinMaxMessageSize})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr := srv.Addr().String()
	a, err := client.Open(ctx, client.Options{Addr: addr, Partition: "s", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	// A chain root -> o1 -> o2 -> ... of 600 objects, built from its end
	// in commits that fit the limit.
	const n, batch = 600, 60
	var oids []storage.Oid
	for len(oids) < n {
		more, err := a.NewOids(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		oids = append(oids, more...)
	}
	var rootSerial storage.Tid
	for hi := n; hi > 0; hi -= batch {
		recs := []storage.Record{{Oid: storage.RootOid, Serial: rootSerial, Data: []byte("r"), Refs: []storage.Oid{oids[hi-batch]}}}
		for i := hi - batch; i < hi; i++ {
			var refs []storage.Oid
			if i+1 < n {
				refs = []storage.Oid{oids[i+1]}
			}
			recs = append(recs, storage.Record{Oid: oids[i], Data: []byte("s"), Refs: refs})
		}
		if rootSerial, err = commitVia(ctx, a, recs...); err != nil {
			t.Fatal(err)
		}
	}
	b, err := client.Open(ctx, client.Options{Addr: addr, Partition: "s", Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	last := oids[n-1]
	if _, err := b.Load(ctx, last); err != nil { // b caches it
		t.Fatal(err)
	}
	if _, err := commitVia(ctx, a, storage.Record{Oid: storage.RootOid, Serial: rootSerial, Data: []byte("r, unlinked")}); err != nil {
		t.Fatalf("the commit that collects the chain: %v", err)
	}
	if _, err := st.Load(ctx, last); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("backend load of a collected object: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// A new transaction of b reads at b's newest tid.
		r, err := b.Load(ctx, last)
		if errors.Is(err, storage.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client b still loads the collected object: %q, %v", r.Data, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
