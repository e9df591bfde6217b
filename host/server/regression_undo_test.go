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

// flakyUndo is a memstorage whose Undo commits and then reports an
// error while fail is set: a plugin that crashed after writing the undo,
// or an fsync that failed after the undo's transaction was written.
type flakyUndo struct {
	*memstorage.Storage
	fail atomic.Bool
}

func (s *flakyUndo) Undo(ctx context.Context, tid storage.Tid, meta storage.TxMeta) (storage.Tid, []storage.Oid, error) {
	t, oids, err := s.Storage.Undo(ctx, tid, meta)
	if err == nil && s.fail.Load() {
		return 0, nil, errors.New("plugin connection lost after undo")
	}
	return t, oids, err
}

// TestRegressionUndoOutcomeUnknownKeepsStaleCache: an Undo whose backend
// call fails may still have committed (the plugin died after writing it).
// The server kept the undone revision in its record cache and told no
// client, so every client went on reading the revision the undo replaced,
// forever (and conflicted on every write based on it).
func TestRegressionUndoOutcomeUnknownKeepsStaleCache(t *testing.T) {
	st := &flakyUndo{Storage: memstorage.New(memstorage.Options{})}
	t.Cleanup(func() { st.Close() })
	srv := serve(t, server.Options{Partitions: map[string]server.Partition{"main": {Storage: st}}})
	ctx := ctxT(t)
	a := openClient(t, srv.Addr().String(), "main")
	commitOne := func(serial storage.Tid, data string) storage.Tid {
		t.Helper()
		txn, _ := a.Begin(ctx, storage.TxMeta{})
		txn.Store(ctx, storage.Record{Oid: 1, Serial: serial, Data: []byte(data)})
		if err := txn.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		tid, err := txn.Finish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tid
	}
	t1 := commitOne(0, "v1")
	t2 := commitOne(t1, "v2")

	r := dialRaw(t, srv.Addr().String())
	r.hello()
	h := r.open("main")
	// The server caches oid 1 at t2.
	r.send(&wire.Load{Handle: h, Oid: 1})
	if _, m := r.recv(); m.(*wire.RecordReply).Record.Serial != t2 {
		t.Fatalf("load answered %#v", m)
	}
	st.fail.Store(true)
	r.send(&wire.Undo{Handle: h, Tid: t2})
	if _, m := r.recv(); m.Kind() != wire.KindError {
		t.Fatalf("undo answered %#v, want an error", m)
	}
	st.fail.Store(false)
	cur, err := st.Load(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(cur.Data) != "v1" {
		t.Fatalf("backend holds %q after the undo, want v1", cur.Data)
	}
	r.send(&wire.Load{Handle: h, Oid: 1})
	_, m := r.recv()
	got := m.(*wire.RecordReply).Record
	if got.Serial != cur.Serial {
		t.Fatalf("server serves oid 1 at %s (%q) after an undo of unknown outcome; the backend holds %s (%q)", got.Serial, got.Data, cur.Serial, cur.Data)
	}
}
