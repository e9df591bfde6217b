package sdk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
)

// recordData is the content a test transaction writes for oid: unique
// per oid, so a record carrying another's bytes is seen.
func recordData(oid storage.Oid, size int) []byte {
	b := make([]byte, size)
	for i := 0; i+8 <= size; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(oid)*0x9e3779b97f4a7c15+uint64(i))
	}
	return b
}

// TestPackedBuffersConcurrentLargeTxns runs concurrent transactions large
// enough that their packed batches use pooled buffers (several 1 MiB
// Store flushes, then Commit), some canceled at random points, and then
// reads every record back: a buffer handed back to the pool while gRPC or
// a later call still used it would show as another transaction's bytes.
// A canceled transaction is all there or not at all.
func TestPackedBuffersConcurrentLargeTxns(t *testing.T) {
	if testing.Short() {
		t.Skip("moves about 50 MB through the plugin transport")
	}
	c, _ := serveInProcess(t, testPlugin())
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	const (
		writers = 4
		txns    = 6
		recs    = 700 // about 2.2 MB a transaction
		size    = 3000
	)
	type txnResult struct {
		oids      []storage.Oid
		committed bool
		unknown   bool // canceled: either outcome, but all or nothing
	}
	var mu sync.Mutex
	var results []txnResult
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for n := range txns {
				tctx, cancel := context.WithCancel(ctx)
				canceled := n%3 == 2
				if canceled {
					time.AfterFunc(time.Duration(w*n%7)*time.Millisecond, cancel)
				}
				txn, err := st.Begin(tctx, storage.TxMeta{User: fmt.Sprint(w, n)})
				if err != nil {
					t.Error(err)
					cancel()
					return
				}
				res := txnResult{unknown: canceled}
				var serr error
				for i := range recs {
					oid := storage.Oid(w+1)<<32 | storage.Oid(n+1)<<16 | storage.Oid(i+1)
					res.oids = append(res.oids, oid)
					if serr = txn.Store(tctx, storage.Record{Oid: oid, Data: recordData(oid, size)}); serr != nil {
						break
					}
				}
				if serr == nil {
					_, serr = txn.(storage.OnePhaseTxn).Commit(tctx)
				}
				if serr != nil {
					if !canceled {
						t.Errorf("writer %d txn %d: %v", w, n, serr)
					}
					_ = txn.Abort(context.Background())
				} else {
					res.committed = true
				}
				cancel()
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, res := range results {
		found := 0
		for _, oid := range res.oids {
			rec, err := st.Load(ctx, oid)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			found++
			if want := recordData(oid, size); string(rec.Data) != string(want) {
				t.Fatalf("%v: the stored bytes are not the ones written", oid)
			}
		}
		switch {
		case res.committed && found != len(res.oids):
			t.Fatalf("committed transaction: %d of %d records found", found, len(res.oids))
		case !res.committed && !res.unknown && found != 0:
			t.Fatalf("failed transaction: %d records found", found)
		case res.unknown && found != 0 && found != len(res.oids):
			t.Fatalf("canceled transaction: %d of %d records found, want all or none", found, len(res.oids))
		}
	}
}
