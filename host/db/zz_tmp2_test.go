package db_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

type logSt struct {
	storage.Storage
	mu  *sync.Mutex
	log *[]string
}

type logTxn struct {
	storage.Txn
	s    logSt
	recs []storage.Record
}

func (s logSt) Begin(ctx context.Context, m storage.TxMeta) (storage.Txn, error) {
	t, err := s.Storage.Begin(ctx, m)
	return &logTxn{Txn: t, s: s}, err
}
func (t *logTxn) Store(ctx context.Context, r storage.Record) error {
	t.recs = append(t.recs, r)
	return t.Txn.Store(ctx, r)
}
func (t *logTxn) Finish(ctx context.Context) (storage.Tid, error) {
	tid, err := t.Txn.Finish(ctx)
	for _, r := range t.recs {
		var env []cbor.RawMessage
		cbor.Unmarshal(r.Data, &env)
		var n int64
		if len(env) == 2 {
			cbor.Unmarshal(env[1], &n)
		}
		t.s.mu.Lock()
		*t.s.log = append(*t.s.log, fmt.Sprintf("%d oid=%d based=%d val=%d err=%v", tid, r.Oid, r.Serial, n, err))
		t.s.mu.Unlock()
	}
	return tid, err
}

func TestTmpDBCounter(t *testing.T) {
	ctx := testCtx(t)
	addr := startServer(t, map[string]storage.Storage{"main": newMem(t)})
	var mu sync.Mutex
	var log []string
	var nodes [2]*db.DB
	for i := range nodes {
		c, err := client.Open(ctx, client.Options{Addr: addr, Partition: "main", Name: "x"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		nodes[i] = openDB(t, logSt{Storage: c, mu: &mu, log: &log}, db.Options{MaxAttempts: 50, CacheBytes: -1})
	}
	t.Cleanup(func() {
	if !t.Failed() { return }
		sort.Strings(log)
		for _, l := range log {
			t.Log(l)
		}
	})
	checkCounterIncrements(t, nodes, "/hits")
}
