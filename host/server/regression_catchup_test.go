package server_test

import (
	"testing"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/host/wire"
)

// TestRegressionCatchupLargerThanMessageLimit: a client that was away
// while many transactions committed (a bulk import) reconnects with its
// last tid; the catch-up from the invalidation log is then larger than
// the message size limit, and the server answered its Open with a
// TooLarge error instead of Opened, every time, until the log's horizon
// passed the client's tid: the client could not reconnect at all (and
// the server kept the failed handle subscribed). It must get a Resync.
func TestRegressionCatchupLargerThanMessageLimit(t *testing.T) {
	st := memstorage.New(memstorage.Options{})
	t.Cleanup(func() { st.Close() })
	srv := serve(t, server.Options{Partitions: map[string]server.Partition{"main": {Storage: st}}, MaxMessageSize: wire.MinMaxMessageSize})
	ctx := ctxT(t)
	a := openClient(t, srv.Addr().String(), "main")
	var first, serial storage.Tid
	for i := range 400 {
		txn, _ := a.Begin(ctx, storage.TxMeta{})
		txn.Store(ctx, storage.Record{Oid: 1, Serial: serial, Data: []byte("x")})
		if err := txn.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		tid, err := txn.Finish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = tid
		}
		serial = tid
	}
	r := dialRaw(t, srv.Addr().String())
	r.hello()
	r.send(&wire.Open{Partition: "main", LastTid: first})
	_, m := r.recv()
	o, ok := m.(*wire.Opened)
	if !ok {
		t.Fatalf("open with a last tid 399 transactions back answered %#v", m)
	}
	if !o.Resync && len(o.Catchup) != 399 {
		t.Fatalf("catch-up of %d transactions, want 399 or a resync", len(o.Catchup))
	}
}
