package client

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
)

// TestRaceLoadsCommitsRestarts: several clients load and increment the
// same counters while the server restarts. No client may read a revision
// older than one it was told was invalidated, snapshot reads must match
// the backend exactly, and every committed increment must be in the final
// counts.
func TestRaceLoadsCommitsRestarts(t *testing.T) {
	ts := startServer(t, func(o *server.Options) { o.DataDir = t.TempDir() })
	backend := ts.stores["main"]
	ctx := ctxT(t)
	const nObjects, nClients, perClient = 4, 4, 2
	duration := 1500 * time.Millisecond
	restarts := 3
	if testing.Short() {
		duration, restarts = 600*time.Millisecond, 2
	}

	setup := openClient(t, ts.addr, nil)
	oids, err := setup.NewOids(ctx, nObjects)
	if err != nil {
		t.Fatal(err)
	}
	var recs []storage.Record
	for _, o := range oids {
		recs = append(recs, storage.Record{Oid: o, Data: binary.BigEndian.AppendUint64(nil, 0)})
	}
	commit(t, setup, recs...)
	setup.Close()

	var committed, unknown, violations atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for ci := range nClients {
		c := openClient(t, ts.addr, func(o *Options) {
			o.MaxBackoff = 20 * time.Millisecond
			o.WaitTimeout = 3 * time.Second
			o.Name = "racer"
		})
		var mu sync.Mutex
		told := map[storage.Oid]storage.Tid{} // newest invalidation per oid
		c.Watch(func(tid storage.Tid, os []storage.Oid) {
			mu.Lock()
			for _, o := range os {
				told[o] = tid
			}
			mu.Unlock()
		})
		for g := range perClient {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100000; i++ {
					select {
					case <-stop:
						return
					default:
					}
					oid := oids[(ci+g+i)%nObjects]
					mu.Lock()
					floor := told[oid]
					mu.Unlock()
					r, err := c.Load(ctx, oid)
					if err != nil {
						if !errors.Is(err, ErrDisconnected) {
							t.Errorf("load: %v", err)
							return
						}
						continue
					}
					if r.Serial < floor {
						violations.Add(1)
						t.Errorf("client %d read %s@%s after being told of %s", ci, oid, r.Serial, floor)
					}
					// A snapshot read must match the backend exactly.
					snap, _ := c.LastTid(ctx)
					sr, send, err := c.LoadBefore(ctx, oid, snap+1)
					if err == nil {
						br, bend, berr := backend.LoadBefore(ctx, oid, snap+1)
						if berr != nil || br.Serial != sr.Serial || string(br.Data) != string(sr.Data) ||
							(send != 0 && send != bend) {
							violations.Add(1)
							t.Errorf("snapshot %s of %s: client %s end %s, backend %s end %s (%v)", snap, oid, sr.Serial, send, br.Serial, bend, berr)
						}
					}
					if i%2 == 1 {
						continue
					}
					n := binary.BigEndian.Uint64(r.Data)
					txn, err := c.Begin(ctx, storage.TxMeta{User: "racer"})
					if err != nil {
						t.Errorf("begin: %v", err)
						return
					}
					txn.Store(ctx, storage.Record{Oid: oid, Serial: r.Serial, Data: binary.BigEndian.AppendUint64(nil, n+1)})
					if err := txn.Vote(ctx); err != nil {
						txn.Abort(ctx)
						continue // conflict or disconnect: nothing committed
					}
					if _, err := txn.Finish(ctx); err != nil {
						if errors.Is(err, ErrDisconnected) {
							unknown.Add(1)
						}
						continue
					}
					committed.Add(1)
				}
			}()
		}
	}
	for range restarts {
		time.Sleep(duration / time.Duration(restarts+1))
		ts.restart()
	}
	time.Sleep(duration / time.Duration(restarts+1))
	close(stop)
	wg.Wait()

	var total uint64
	for _, o := range oids {
		r, err := backend.Load(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		total += binary.BigEndian.Uint64(r.Data)
	}
	t.Logf("committed %d, outcome unknown %d, counted %d, restarts %d", committed.Load(), unknown.Load(), total, restarts)
	if total < uint64(committed.Load()) || total > uint64(committed.Load()+unknown.Load()) {
		t.Fatalf("counters sum to %d; %d commits succeeded and %d had an unknown outcome", total, committed.Load(), unknown.Load())
	}
	if committed.Load() == 0 {
		t.Fatal("no commit succeeded")
	}
	if violations.Load() != 0 {
		t.Fatalf("%d consistency violations", violations.Load())
	}
}

// TestConcurrentLoadInvalidateRace hammers one client's loads of an object
// while another client rewrites it, checking after every invalidation that
// the cache never serves the replaced revision as current.
func TestConcurrentLoadInvalidateRace(t *testing.T) {
	ts := startServer(t, nil)
	reader := openClient(t, ts.addr, nil)
	writer := openClient(t, ts.addr, nil)
	ctx := ctxT(t)
	oids, _ := writer.NewOids(ctx, 1)
	oid := oids[0]
	serial := commit(t, writer, storage.Record{Oid: oid, Data: []byte("0")})
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000000; i++ {
				select {
				case <-done:
					return
				default:
				}
				last, _ := reader.LastTid(ctx)
				r, err := reader.Load(ctx, oid)
				if err != nil {
					t.Error(err)
					return
				}
				// Everything up to last was applied before the load
				// began, so the revision must be at least that new
				// whenever the object was written at or before last.
				br, _, err := ts.stores["main"].LoadBefore(ctx, oid, last+1)
				if err == nil && r.Serial < br.Serial {
					t.Errorf("load after applying %s returned %s, backend had %s", last, r.Serial, br.Serial)
					return
				}
				// Drop the object now and then so loads go to the server
				// while invalidations fly.
				if i%3 == 0 {
					reader.cache.mu.Lock()
					if e := reader.cache.items[oid]; e != nil {
						reader.cache.unlink(e)
						delete(reader.cache.items, oid)
						reader.cache.size -= e.size
					}
					reader.cache.mu.Unlock()
				}
			}
		}()
	}
	for i := range 300 {
		serial = commit(t, writer, storage.Record{Oid: oid, Serial: serial, Data: []byte{byte(i)}})
	}
	close(done)
	wg.Wait()
	if err := reader.WaitForTid(ctx, serial); err != nil {
		t.Fatal(err)
	}
	if r, _ := reader.Load(ctx, oid); r.Serial != serial {
		t.Fatalf("final load %s, want %s", r.Serial, serial)
	}
}

var _ = context.Background
