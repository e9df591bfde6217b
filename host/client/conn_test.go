package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/wire"
)

// TestPartitionsOverOneConn: two partitions on one connection are
// independent storages, and invalidations go to the right one.
func TestPartitionsOverOneConn(t *testing.T) {
	ts := startServer(t, nil, "main", "sessiondata")
	ctx := ctxT(t)
	conn, err := Dial(ctx, ConnOptions{Addr: ts.addr, Name: "multi"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	mainP, err := conn.Open(ctx, "main", PartitionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := conn.Open(ctx, "sessiondata", PartitionOptions{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Open(ctx, "nope", PartitionOptions{}); !errors.Is(err, wire.ErrUnknownPartition) {
		t.Fatalf("unknown partition: %v", err)
	}
	var mainSeen, sessSeen atomic.Int64
	mainP.Watch(func(storage.Tid, []storage.Oid) { mainSeen.Add(1) })
	sess.Watch(func(storage.Tid, []storage.Oid) { sessSeen.Add(1) })

	other := openClient(t, ts.addr, func(o *Options) { o.Partition = "sessiondata" })
	oids, _ := other.NewOids(ctx, 1)
	tid := commit(t, other, storage.Record{Oid: oids[0], Data: []byte("s")})
	if err := sess.WaitForTid(ctx, tid); err != nil {
		t.Fatal(err)
	}
	if r, err := sess.Load(ctx, oids[0]); err != nil || string(r.Data) != "s" {
		t.Fatalf("session partition load: %q %v", r.Data, err)
	}
	if _, err := mainP.Load(ctx, oids[0]); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("object leaked into the other partition: %v", err)
	}
	if sessSeen.Load() != 1 || mainSeen.Load() != 0 {
		t.Fatalf("invalidations: main %d, sessiondata %d", mainSeen.Load(), sessSeen.Load())
	}
	// Closing one partition leaves the other working.
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Load(ctx, oids[0]); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("closed partition: %v", err)
	}
	oids2, _ := mainP.NewOids(ctx, 1)
	commit(t, mainP, storage.Record{Oid: oids2[0], Data: []byte("m")})
	if st := conn.State(); !st.Connected || st.Addr != ts.addr {
		t.Fatalf("state %+v", st)
	}
	if d, err := conn.Ping(ctx); err != nil || d <= 0 {
		t.Fatalf("ping %s %v", d, err)
	}
}

// TestPrefetchFromBackend: batched loads when the server's cache is off
// (every record comes from the backend), with oids that do not exist.
func TestPrefetchFromBackend(t *testing.T) {
	ts := startServer(t, func(o *server.Options) { o.CacheSize = -1 })
	c := openClient(t, ts.addr, nil)
	ctx := ctxT(t)
	oids, _ := c.NewOids(ctx, 300)
	var recs []storage.Record
	for _, o := range oids[:200] {
		recs = append(recs, storage.Record{Oid: o, Data: []byte(fmt.Sprint(o))})
	}
	commit(t, c, recs...)
	fresh := openClient(t, ts.addr, nil)
	if err := fresh.Prefetch(ctx, oids); err != nil {
		t.Fatal(err)
	}
	st := fresh.Stats()
	if st.Objects != 200 {
		t.Fatalf("prefetch cached %d objects, want 200", st.Objects)
	}
	for _, o := range oids[:200] {
		r, err := fresh.Load(ctx, o)
		if err != nil || string(r.Data) != fmt.Sprint(o) {
			t.Fatalf("load %s: %q %v", o, r.Data, err)
		}
	}
	if got := fresh.Stats().Hits - st.Hits; got != 200 {
		t.Fatalf("%d of 200 loads after prefetch hit the cache", got)
	}
	if _, err := fresh.Load(ctx, oids[250]); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
}

// TestPackResetsOtherClients: after a pack removed unreachable objects,
// every client drops its cache, so none serves a collected object.
func TestPackResetsOtherClients(t *testing.T) {
	ts := startServer(t, nil)
	a := openClient(t, ts.addr, nil)
	b := openClient(t, ts.addr, nil)
	ctx := ctxT(t)
	oids, _ := a.NewOids(ctx, 1)
	commit(t, a, storage.Record{Oid: storage.RootOid, Data: []byte("root")})
	tid := commit(t, a, storage.Record{Oid: oids[0], Data: []byte("garbage")})
	if err := b.WaitForTid(ctx, tid); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, oids[0]); err != nil {
		t.Fatal(err)
	}
	var resets atomic.Int64
	b.Watch(func(_ storage.Tid, oids []storage.Oid) {
		if oids == nil {
			resets.Add(1)
		}
	})
	time.Sleep(2 * time.Millisecond) // pack needs a tid after the last commit
	if err := a.Pack(ctx, storage.TidAt(time.Now()), nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for resets.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if _, err := b.Load(ctx, oids[0]); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("other client still serves a packed-away object: %v", err)
	}
	if _, err := a.Load(ctx, oids[0]); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("packing client still serves a packed-away object: %v", err)
	}
}

var _ = context.Background

// TestFrozenServerDoesNotHang: a server that accepts and answers the
// handshake but then never answers cannot hang a call without deadline.
func TestFrozenServerDoesNotHang(t *testing.T) {
	s := startScripted(t, func(*scriptedServer, net.Conn, wire.Frame) {}) // silence
	c, err := Open(context.Background(), Options{Addr: s.addr, Partition: "main", CallTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	if _, err := c.Load(context.Background(), 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("load from a frozen server = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s", d)
	}
}
