package server_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/host/wire"
)

// lastTidFails is flakyFinish whose LastTid also fails while failing is
// set: a plugin that crashed in Finish and is not back yet.
type lastTidFails struct {
	flakyFinish
}

func (s *lastTidFails) LastTid(ctx context.Context) (storage.Tid, error) {
	if s.fail.Load() {
		return 0, errors.New("plugin unavailable")
	}
	return s.flakyFinish.LastTid(ctx)
}

func (s *lastTidFails) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	return s.flakyFinish.Begin(ctx, meta)
}

// TestRegressionUnknownFinishLeavesHoleInInvalidationLog: after a Finish whose
// outcome is unknown, resetAll re-reads LastTid; if that fails too, the
// invalidation log keeps going without the transaction that may have
// committed. A client that was not connected at that moment comes back
// with its last tid and gets a catch-up that misses it (and keeps the
// revision that transaction replaced), instead of a Resync.
func TestRegressionUnknownFinishLeavesHoleInInvalidationLog(t *testing.T) {
	st := &lastTidFails{flakyFinish{Storage: memstorage.New(memstorage.Options{})}}
	t.Cleanup(func() { st.Close() })
	srv := serve(t, server.Options{Partitions: map[string]server.Partition{"main": {Storage: st}}})
	ctx := ctxT(t)
	a := openClient(t, srv.Addr().String(), "main")
	commitOne := func(oid storage.Oid, serial storage.Tid, data string) (storage.Tid, error) {
		txn, _ := a.Begin(ctx, storage.TxMeta{})
		txn.Store(ctx, storage.Record{Oid: oid, Serial: serial, Data: []byte(data)})
		if err := txn.Vote(ctx); err != nil {
			return 0, err
		}
		return txn.Finish(ctx)
	}
	t1, err := commitOne(1, 0, "v1")
	if err != nil {
		t.Fatal(err)
	}
	// A client that holds oid 1 at t1 and is away now (its last tid is t1).
	var failed atomic.Bool
	failed.Store(true)
	st.fail.Store(true)
	if _, err := commitOne(1, t1, "v2"); err == nil {
		t.Fatal("finish error not reported")
	}
	st.fail.Store(false)
	t3, err := commitOne(2, 0, "other")
	if err != nil {
		t.Fatal(err)
	}
	r := dialRaw(t, srv.Addr().String())
	r.hello()
	r.send(&wire.Open{Partition: "main", LastTid: t1})
	_, m := r.recv()
	o, ok := m.(*wire.Opened)
	if !ok {
		t.Fatalf("open answered %#v", m)
	}
	if o.Resync {
		return // the client drops its cache: fine
	}
	for _, inv := range o.Catchup {
		for _, oid := range inv.Oids {
			if oid == 1 {
				return
			}
		}
	}
	t.Fatalf("client back at %s gets catch-up %+v up to %s: oid 1, rewritten by the transaction whose finish failed, is never invalidated", t1, o.Catchup, t3)
}
