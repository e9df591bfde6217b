package client

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

// testServer is a real server over memstorage partitions on a free port.
type testServer struct {
	t      testing.TB
	srv    *server.Server
	addr   string
	opts   server.Options
	stores map[string]storage.Storage
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Warn, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// startServer serves fresh memstorages under the given partition names
// ("main" if none). mod may adjust the options.
func startServer(t testing.TB, mod func(*server.Options), names ...string) *testServer {
	t.Helper()
	if len(names) == 0 {
		names = []string{"main"}
	}
	ts := &testServer{t: t, stores: map[string]storage.Storage{}}
	ts.opts = server.Options{Listen: "127.0.0.1:0", Partitions: map[string]server.Partition{}, Logger: testLogger(t)}
	for _, n := range names {
		st := memstorage.New(memstorage.Options{})
		t.Cleanup(func() { st.Close() })
		ts.stores[n] = st
		ts.opts.Partitions[n] = server.Partition{Storage: st}
	}
	if mod != nil {
		mod(&ts.opts)
	}
	ts.start()
	return ts
}

func (ts *testServer) start() {
	ts.t.Helper()
	srv, err := server.New(ts.opts)
	if err != nil {
		ts.t.Fatal(err)
	}
	var l net.Listener
	for i := 0; ; i++ {
		l, err = net.Listen("tcp", ts.opts.Listen)
		if err == nil || i >= 50 {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old port may linger
	}
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.addr = l.Addr().String()
	ts.opts.Listen = ts.addr // a restart reuses the port
	ts.srv = srv
	go srv.Serve(l)
	ts.t.Cleanup(func() { srv.Shutdown(context.Background()) })
}

// restart shuts the server down and starts a new one on the same port
// over the same storages.
func (ts *testServer) restart() {
	ts.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ts.srv.Shutdown(ctx)
	ts.start()
}

func (ts *testServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ts.srv.Shutdown(ctx)
}

func openClient(t testing.TB, addr string, mod func(*Options)) *Client {
	t.Helper()
	o := Options{Addr: addr, Partition: "main", Name: t.Name(), WaitTimeout: 5 * time.Second, Logger: testLogger(t)}
	if mod != nil {
		mod(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func commit(t testing.TB, st storage.Storage, recs ...storage.Record) storage.Tid {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	txn, err := st.Begin(ctx, storage.TxMeta{User: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := txn.Store(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Vote(ctx); err != nil {
		txn.Abort(ctx)
		t.Fatal(err)
	}
	tid, err := txn.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tid
}
