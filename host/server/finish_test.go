package server_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

// flakyFinish is a memstorage whose Finish commits and then reports an
// error, the worst case of a backend (or plugin hop) failing mid-finish.
type flakyFinish struct {
	*memstorage.Storage
	fail atomic.Bool
}

type flakyTxn struct {
	storage.Txn
	s *flakyFinish
}

func (f *flakyFinish) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	t, err := f.Storage.Begin(ctx, meta)
	if err != nil {
		return nil, err
	}
	return &flakyTxn{Txn: t, s: f}, nil
}

func (t *flakyTxn) Finish(ctx context.Context) (storage.Tid, error) {
	tid, err := t.Txn.Finish(ctx)
	if err == nil && t.s.fail.Load() {
		return 0, errors.New("plugin connection lost after finish")
	}
	return tid, err
}

// TestFinishOutcomeUnknown: when the backend's Finish fails after it
// committed, every client is told to drop its cache, so none keeps
// serving the revision the commit replaced.
func TestFinishOutcomeUnknown(t *testing.T) {
	st := &flakyFinish{Storage: memstorage.New(memstorage.Options{})}
	t.Cleanup(func() { st.Close() })
	srv := serve(t, server.Options{Partitions: map[string]server.Partition{"main": {Storage: st}}})
	ctx := ctxT(t)
	a := openClient(t, srv.Addr().String(), "main")
	b := openClient(t, srv.Addr().String(), "main")
	commitOne := func(serial storage.Tid, data string) (storage.Tid, error) {
		txn, _ := a.Begin(ctx, storage.TxMeta{})
		txn.Store(ctx, storage.Record{Oid: 1, Serial: serial, Data: []byte(data)})
		if err := txn.Vote(ctx); err != nil {
			return 0, err
		}
		return txn.Finish(ctx)
	}
	t1, err := commitOne(0, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForTid(ctx, t1); err != nil {
		t.Fatal(err)
	}
	if r, _ := b.Load(ctx, 1); string(r.Data) != "v1" {
		t.Fatalf("b loads %q", r.Data)
	}
	var resets atomic.Int64
	b.Watch(func(_ storage.Tid, oids []storage.Oid) {
		if oids == nil {
			resets.Add(1)
		}
	})
	st.fail.Store(true)
	if _, err := commitOne(t1, "v2"); err == nil {
		t.Fatal("finish error not reported")
	}
	st.fail.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for resets.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if resets.Load() == 0 {
		t.Fatal("other client not told to drop its cache")
	}
	for _, c := range []interface {
		Load(context.Context, storage.Oid) (storage.Record, error)
	}{a, b} {
		if r, err := c.Load(ctx, 1); err != nil || string(r.Data) != "v2" {
			t.Fatalf("after an unknown outcome a client loads %q, %v; the backend has v2", r.Data, err)
		}
	}
}
