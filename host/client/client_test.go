package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestInvalidationsReachOtherClients(t *testing.T) {
	ts := startServer(t, nil)
	a := openClient(t, ts.addr, nil)
	b := openClient(t, ts.addr, nil)
	ctx := ctxT(t)
	oids, err := a.NewOids(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	oid := oids[0]
	t1 := commit(t, a, storage.Record{Oid: oid, Data: []byte("v1")})
	if err := b.WaitForTid(ctx, t1); err != nil {
		t.Fatal(err)
	}
	r, err := b.Load(ctx, oid)
	if err != nil || string(r.Data) != "v1" {
		t.Fatalf("b loads %q, %v", r.Data, err)
	}
	// b now caches v1; a commits v2; b must see v2 once it applied t2.
	var mu sync.Mutex
	var seen []storage.Tid
	cancel := b.Watch(func(tid storage.Tid, oids []storage.Oid) {
		mu.Lock()
		seen = append(seen, tid)
		mu.Unlock()
	})
	defer cancel()
	t2 := commit(t, a, storage.Record{Oid: oid, Serial: t1, Data: []byte("v2")})
	if err := b.WaitForTid(ctx, t2); err != nil {
		t.Fatal(err)
	}
	if last, _ := b.LastTid(ctx); last != t2 {
		t.Fatalf("b LastTid %s, want %s", last, t2)
	}
	r, err = b.Load(ctx, oid)
	if err != nil || string(r.Data) != "v2" || r.Serial != t2 {
		t.Fatalf("after invalidation b loads %q@%s, %v", r.Data, r.Serial, err)
	}
	// The old revision stays readable at the old snapshot, from cache.
	hits := b.Stats().Hits
	r, end, err := b.LoadBefore(ctx, oid, t2)
	if err != nil || string(r.Data) != "v1" || end != t2 {
		t.Fatalf("snapshot read %q end %s, %v", r.Data, end, err)
	}
	if b.Stats().Hits != hits+1 {
		t.Fatalf("snapshot read of a cached revision missed the cache: %+v", b.Stats())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != t2 {
		t.Fatalf("watch saw %v, want [%s]", seen, t2)
	}
}

func TestWaitForTidTimesOut(t *testing.T) {
	ts := startServer(t, nil)
	c := openClient(t, ts.addr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	last, _ := c.LastTid(ctx)
	if err := c.WaitForTid(ctx, last+1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForTid of a future tid = %v, want deadline exceeded", err)
	}
}

func TestCacheByteBound(t *testing.T) {
	ts := startServer(t, nil)
	const max = 64 << 10
	c := openClient(t, ts.addr, func(o *Options) { o.CacheSize = max })
	ctx := ctxT(t)
	oids, err := c.NewOids(ctx, 500)
	if err != nil {
		t.Fatal(err)
	}
	txn, _ := c.Begin(ctx, storage.TxMeta{})
	for _, o := range oids {
		txn.Store(ctx, storage.Record{Oid: o, Data: bytes.Repeat([]byte{byte(o)}, 1000)})
	}
	if err := txn.Vote(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := txn.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, o := range oids {
			r, err := c.Load(ctx, o)
			if err != nil || len(r.Data) != 1000 || r.Data[0] != byte(o) {
				t.Fatalf("load %s: %v", o, err)
			}
			if st := c.Stats(); st.Bytes > max {
				t.Fatalf("cache holds %d bytes, bound %d", st.Bytes, max)
			}
		}
	}
	st := c.Stats()
	if st.Evictions == 0 || st.Misses == 0 || st.Objects >= len(oids) {
		t.Fatalf("500 KB through a 64 KiB cache: %+v", st)
	}
	// A recently loaded object is a hit.
	h := st.Hits
	c.Load(ctx, oids[len(oids)-1])
	if c.Stats().Hits != h+1 {
		t.Fatal("most recently used object was evicted")
	}
}

func TestDisconnectedCallsFailThenReconnect(t *testing.T) {
	ts := startServer(t, nil)
	c := openClient(t, ts.addr, func(o *Options) { o.WaitTimeout = 200 * time.Millisecond; o.MaxBackoff = 50 * time.Millisecond })
	ctx := ctxT(t)
	oids, _ := c.NewOids(ctx, 2)
	t1 := commit(t, c, storage.Record{Oid: oids[0], Data: []byte("a")})
	ts.stop()
	start := time.Now()
	_, err := c.Load(ctx, oids[1])
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("load while the server is down = %v, want ErrDisconnected", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("call took %s while disconnected", d)
	}
	if c.State().Connected {
		t.Fatal("state says connected while the server is down")
	}
	// Cached data is still served.
	if r, err := c.Load(ctx, oids[0]); err != nil || string(r.Data) != "a" {
		t.Fatalf("cached load while down: %q %v", r.Data, err)
	}
	if _, err := c.Begin(ctx, storage.TxMeta{}); err != nil {
		t.Fatal(err)
	}
	ts.start()
	deadline := time.Now().Add(10 * time.Second)
	for !c.State().Connected {
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect: %+v", c.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t2 := commit(t, c, storage.Record{Oid: oids[0], Serial: t1, Data: []byte("b")})
	if r, err := c.Load(ctx, oids[0]); err != nil || string(r.Data) != "b" || r.Serial != t2 {
		t.Fatalf("after reconnect: %q %v", r.Data, err)
	}
	if st := c.State(); st.Reconnects < 1 {
		t.Fatalf("state %+v", st)
	}
}

// TestReconnectCatchUp: a client away while others commit catches up
// from the invalidation log (keeping the rest of its cache), and one away
// longer than the log reaches drops its cache.
func TestReconnectCatchUp(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, func(o *server.Options) { o.DataDir = dir; o.InvalidationLogSize = 5 })
	a := openClient(t, ts.addr, func(o *Options) { o.MaxBackoff = 20 * time.Millisecond })
	ctx := ctxT(t)
	oids, _ := a.NewOids(ctx, 3)
	var recs []storage.Record
	for i, o := range oids {
		recs = append(recs, storage.Record{Oid: o, Data: []byte(fmt.Sprint("v0-", i))})
	}
	t0 := commit(t, a, recs...)
	for _, o := range oids {
		a.Load(ctx, o)
	}
	var mu sync.Mutex
	var resets int
	a.Watch(func(tid storage.Tid, oids []storage.Oid) {
		if oids == nil {
			mu.Lock()
			resets++
			mu.Unlock()
		}
	})

	// While a is away (its server is down), another server over the same
	// storage and data dir commits a change to oids[0].
	t1 := awayCommit(t, ts, func(b *Client) storage.Tid {
		return commit(t, b, storage.Record{Oid: oids[0], Serial: t0, Data: []byte("v1")})
	})
	if err := a.WaitForTid(ctx, t1); err != nil {
		t.Fatalf("a did not catch up: %v (state %+v)", err, a.State())
	}
	hits := a.Stats().Hits
	if r, _ := a.Load(ctx, oids[0]); string(r.Data) != "v1" {
		t.Fatalf("after catch-up a loads %q", r.Data)
	}
	if r, _ := a.Load(ctx, oids[1]); string(r.Data) != "v0-1" {
		t.Fatalf("untouched object %q", r.Data)
	}
	if got := a.Stats().Hits - hits; got != 1 {
		t.Fatalf("catch-up kept %d of the untouched cached objects, want the one", got)
	}
	mu.Lock()
	if resets != 0 {
		t.Fatalf("cache dropped on a catch-up within the log")
	}
	mu.Unlock()

	// Now a is away for more transactions than the log keeps.
	last := awayCommit(t, ts, func(b *Client) storage.Tid {
		serial := t0
		for i := range 8 {
			serial = commit(t, b, storage.Record{Oid: oids[2], Serial: serial, Data: []byte(fmt.Sprint("w", i))})
		}
		return serial
	})
	if err := a.WaitForTid(ctx, last); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if resets != 1 {
		t.Fatalf("client past the horizon: %d resets, want 1", resets)
	}
	mu.Unlock()
	if r, _ := a.Load(ctx, oids[2]); string(r.Data) != "w7" {
		t.Fatalf("after resync a loads %q", r.Data)
	}
}

// awayCommit stops ts, runs fn against a second server on another port
// over the same storages and data dir (so ts's clients cannot see it),
// stops that one and starts ts again on its port.
func awayCommit(t *testing.T, ts *testServer, fn func(*Client) storage.Tid) storage.Tid {
	t.Helper()
	ts.stop()
	other := &testServer{t: t, stores: ts.stores, opts: ts.opts}
	other.opts.Listen = "127.0.0.1:0"
	other.start()
	b := openClient(t, other.addr, nil)
	tid := fn(b)
	b.Close()
	other.stop()
	ts.start()
	return tid
}

// TestEmptyTransactionIsNotAReset: a transaction that stores nothing is
// reported with an empty oid list, never nil (which means "drop all").
func TestEmptyTransactionIsNotAReset(t *testing.T) {
	ts := startServer(t, nil)
	a := openClient(t, ts.addr, nil)
	b := openClient(t, ts.addr, nil)
	got := make(chan []storage.Oid, 1)
	b.Watch(func(_ storage.Tid, oids []storage.Oid) { got <- oids })
	tid := commit(t, a)
	if err := b.WaitForTid(ctxT(t), tid); err != nil {
		t.Fatal(err)
	}
	if oids := <-got; oids == nil || len(oids) != 0 {
		t.Fatalf("empty transaction reported as %#v", oids)
	}
}
