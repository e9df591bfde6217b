package db_test

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/storage"
)

func TestTmpRawCounter(t *testing.T) {
	ctx := testCtx(t)
	addr := startServer(t, map[string]storage.Storage{"main": newMem(t)})
	var cls [2]*client.Client
	for i := range cls {
		c, err := client.Open(ctx, client.Options{Addr: addr, Partition: "main", Name: "x"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cls[i] = c
	}
	txn, _ := cls[0].Begin(ctx, storage.TxMeta{})
	txn.Store(ctx, storage.Record{Oid: 0, Data: make([]byte, 8)})
	txn.Vote(ctx)
	tid0, _ := txn.Finish(ctx)
	cls[1].WaitForTid(ctx, tid0)
	var wg sync.WaitGroup
	var lost error
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cls[w%2]
			for range 25 {
				snap, _ := c.LastTid(ctx)
				rec, _, err := c.LoadBefore(ctx, 0, snap+1)
				if err != nil {
					lost = err
					return
				}
				for {
					v := binary.BigEndian.Uint64(rec.Data)
					d := make([]byte, 8)
					binary.BigEndian.PutUint64(d, v+1)
					txn, _ := c.Begin(ctx, storage.TxMeta{})
					txn.Store(ctx, storage.Record{Oid: 0, Serial: rec.Serial, Data: d})
					err = txn.Vote(ctx)
					if errors.Is(err, storage.ErrConflict) {
						txn.Abort(ctx)
						rec, err = c.Load(ctx, 0)
						if err != nil {
							lost = err
							return
						}
						continue
					}
					if err != nil {
						lost = err
						return
					}
					if _, err := txn.Finish(ctx); err != nil {
						lost = err
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	if lost != nil {
		t.Fatal(lost)
	}
	rec, _ := cls[0].Load(ctx, 0)
	snap, _ := cls[1].LastTid(ctx)
	rec2, _, _ := cls[1].LoadBefore(ctx, 0, snap+1)
	if v := binary.BigEndian.Uint64(rec.Data); v != 200 {
		t.Fatalf("raw counter %d (other client %d)", v, binary.BigEndian.Uint64(rec2.Data))
	}
}
