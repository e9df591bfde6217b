package server_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/host/wire"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "server", Level: hclog.Info, Output: testWriter{t}})
}

// start serves a fresh memstorage as "main" (plus "ro", read-only, over
// another memstorage) on a free port.
func start(t testing.TB, mod func(*server.Options)) (*server.Server, string, *memstorage.Storage) {
	t.Helper()
	st := memstorage.New(memstorage.Options{})
	ro := memstorage.New(memstorage.Options{})
	t.Cleanup(func() { st.Close(); ro.Close() })
	opts := server.Options{
		Listen: "127.0.0.1:0",
		Partitions: map[string]server.Partition{
			"main": {Storage: st},
			"ro":   {Storage: ro, ReadOnly: true},
		},
		Logger: testLogger(t),
	}
	if mod != nil {
		mod(&opts)
	}
	srv := serve(t, opts)
	return srv, srv.Addr().String(), st
}

// serve starts a server with opts (Listen defaults to 127.0.0.1:0 and
// Logger to the test's) and shuts it down when the test ends.
func serve(t testing.TB, opts server.Options) *server.Server {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// raw is a hand-driven protocol connection.
type raw struct {
	t  testing.TB
	c  net.Conn
	fr wire.FrameReader
	id uint32
}

func dialRaw(t testing.TB, addr string) *raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, fr: wire.FrameReader{R: bufio.NewReader(c), Max: wire.DefaultMaxMessageSize}}
}

func (r *raw) send(m wire.Message) uint32 {
	r.t.Helper()
	r.id++
	if _, err := r.c.Write(wire.EncodeFrame(r.id, m)); err != nil {
		r.t.Fatal(err)
	}
	return r.id
}

// recv returns the next reply (skipping pushes).
func (r *raw) recv() (wire.Frame, wire.Message) {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("read: %v", err)
		}
		m, err := wire.Decode(f)
		if err != nil {
			r.t.Fatalf("decode: %v", err)
		}
		if !f.Kind.IsPush() {
			return f, m
		}
	}
}

func (r *raw) hello() {
	r.t.Helper()
	r.send(&wire.Hello{Magic: wire.Magic, Version: wire.Version, Name: "raw"})
	if _, m := r.recv(); m.Kind() != wire.KindWelcome {
		r.t.Fatalf("hello answered %v", m)
	}
}

func (r *raw) open(partition string) uint32 {
	r.t.Helper()
	r.send(&wire.Open{Partition: partition})
	_, m := r.recv()
	o, ok := m.(*wire.Opened)
	if !ok {
		r.t.Fatalf("open answered %#v", m)
	}
	return o.Handle
}

// expectClosed reads until the server closes the connection, returning
// the error frame it sent last, if any.
func (r *raw) expectClosed(within time.Duration) *wire.Error {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(within))
	var last *wire.Error
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatalf("connection still open after %s", within)
			}
			return last
		}
		if m, err := wire.Decode(f); err == nil {
			if e, ok := m.(*wire.Error); ok {
				last = e
			}
		}
	}
}

func expectCode(t testing.TB, m wire.Message, code wire.Code) {
	t.Helper()
	e, ok := m.(*wire.Error)
	if !ok || e.Code != code {
		t.Fatalf("got %#v, want an Error with code %d", m, code)
	}
}

// healthy checks that a normal client is served: a commit and a load.
func healthy(t testing.TB, c *client.Client) {
	t.Helper()
	ctx := ctxT(t)
	oids, err := c.NewOids(ctx, 1)
	if err != nil {
		t.Fatalf("healthy client: %v", err)
	}
	txn, _ := c.Begin(ctx, storage.TxMeta{})
	txn.Store(ctx, storage.Record{Oid: oids[0], Data: []byte("ok")})
	if err := txn.Vote(ctx); err != nil {
		t.Fatalf("healthy client vote: %v", err)
	}
	if _, err := txn.Finish(ctx); err != nil {
		t.Fatalf("healthy client finish: %v", err)
	}
}

func openClient(t testing.TB, addr, partition string) *client.Client {
	t.Helper()
	c, err := client.Open(ctxT(t), client.Options{Addr: addr, Partition: partition, Name: "good", WaitTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestBadInput(t *testing.T) {
	_, addr, _ := start(t, func(o *server.Options) {
		o.FrameTimeout = 300 * time.Millisecond
		o.MaxMessageSize = 64 << 10
	})
	good := openClient(t, addr, "main")
	healthy(t, good)

	t.Run("random bytes", func(t *testing.T) {
		r := dialRaw(t, addr)
		junk := make([]byte, 4096)
		for i := range junk {
			junk[i] = byte(rand.IntN(256))
		}
		r.c.Write(junk)
		r.expectClosed(3 * time.Second)
		healthy(t, good)
	})
	t.Run("http request", func(t *testing.T) {
		r := dialRaw(t, addr)
		io.WriteString(r.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		r.expectClosed(3 * time.Second)
		healthy(t, good)
	})
	t.Run("request before hello", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.send(&wire.Ping{})
		if e := r.expectClosed(3 * time.Second); e == nil || e.Code != wire.CodeProtocol {
			t.Fatalf("got %#v, want a protocol error", e)
		}
	})
	t.Run("bad version", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.send(&wire.Hello{Magic: wire.Magic, Version: 99})
		if e := r.expectClosed(3 * time.Second); e == nil || e.Code != wire.CodeProtocol {
			t.Fatalf("got %#v, want a protocol error", e)
		}
	})
	t.Run("malformed body keeps the connection", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.hello()
		h := r.open("main")
		frame := wire.EncodeFrame(50, &wire.Load{Handle: h, Oid: 1})
		frame = frame[:len(frame)-3] // cut the oid short
		binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
		r.c.Write(frame)
		f, m := r.recv()
		if f.ID != 50 {
			t.Fatalf("error for id %d, want 50", f.ID)
		}
		expectCode(t, m, wire.CodeMalformed)
		r.send(&wire.Ping{})
		if _, m := r.recv(); m.Kind() != wire.KindOK {
			t.Fatalf("ping after a malformed frame: %v", m)
		}
	})
	t.Run("unknown kind keeps the connection", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.hello()
		frame := wire.EncodeFrame(7, &wire.Ping{})
		frame[4] = 50
		r.c.Write(frame)
		_, m := r.recv()
		expectCode(t, m, wire.CodeMalformed)
		r.send(&wire.Ping{})
		if _, m := r.recv(); m.Kind() != wire.KindOK {
			t.Fatalf("ping: %v", m)
		}
	})
	t.Run("unknown partition and handle", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.hello()
		r.send(&wire.Open{Partition: "nope"})
		_, m := r.recv()
		expectCode(t, m, wire.CodeUnknownPartition)
		r.send(&wire.Load{Handle: 99, Oid: 0})
		_, m = r.recv()
		expectCode(t, m, wire.CodeUnknownHandle)
		if h := r.open("main"); h == 0 {
			t.Fatal("zero handle")
		}
	})
	t.Run("oversized frame", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.hello()
		var h [wire.HeaderSize]byte
		binary.BigEndian.PutUint32(h[:], 1<<30)
		h[4] = byte(wire.KindVote)
		r.c.Write(h[:])
		if e := r.expectClosed(3 * time.Second); e == nil || e.Code != wire.CodeTooLarge {
			t.Fatalf("got %#v, want a too-large error", e)
		}
		healthy(t, good)
	})
	t.Run("half a frame then silence", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.hello()
		frame := wire.EncodeFrame(1, &wire.Load{Handle: 1, Oid: 1})
		r.c.Write(frame[:7])
		start := time.Now()
		r.expectClosed(5 * time.Second)
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Fatalf("closed after %s, before the frame timeout", d)
		}
		healthy(t, good)
	})
	t.Run("no hello", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.expectClosed(5 * time.Second)
	})
	t.Run("idle after hello is fine", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.hello()
		time.Sleep(500 * time.Millisecond) // longer than the frame timeout
		r.send(&wire.Ping{})
		if _, m := r.recv(); m.Kind() != wire.KindOK {
			t.Fatalf("ping after idling: %v", m)
		}
	})
}

// TestCommitLockHolderTimesOut: a client that votes and never finishes
// loses its transaction after TransactionTimeout and the lock goes to
// the next committer.
func TestCommitLockHolderTimesOut(t *testing.T) {
	_, addr, _ := start(t, func(o *server.Options) { o.TransactionTimeout = 300 * time.Millisecond })
	r := dialRaw(t, addr)
	r.hello()
	h := r.open("main")
	r.send(&wire.NewOids{Handle: h, N: 1})
	_, m := r.recv()
	oid := m.(*wire.Oids).Oids[0]
	r.send(&wire.Vote{Handle: h, Txn: 1, Records: []storage.Record{{Oid: oid, Data: []byte("held")}}})
	if _, m := r.recv(); m.Kind() != wire.KindOK {
		t.Fatalf("vote: %#v", m)
	}
	good := openClient(t, addr, "main")
	start := time.Now()
	healthy(t, good) // waits for the lock
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("second commit got the lock after %s, while the first held it", d)
	}
	r.send(&wire.Finish{Handle: h, Txn: 1})
	_, m = r.recv()
	expectCode(t, m, wire.CodeUnknownTxn)
	if _, err := good.Load(ctxT(t), oid); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the timed-out transaction left a trace: %v", err)
	}
}

// TestCommitLockHolderDisconnects: a client that votes and disconnects
// releases the lock at once.
func TestCommitLockHolderDisconnects(t *testing.T) {
	_, addr, _ := start(t, func(o *server.Options) { o.TransactionTimeout = time.Minute })
	r := dialRaw(t, addr)
	r.hello()
	h := r.open("main")
	r.send(&wire.Vote{Handle: h, Txn: 1, Records: []storage.Record{{Oid: 1, Data: []byte("held")}}})
	if _, m := r.recv(); m.Kind() != wire.KindOK {
		t.Fatalf("vote: %#v", m)
	}
	good := openClient(t, addr, "main")
	// While the lock is held a commit with a short wait fails.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	txn, _ := good.Begin(ctx, storage.TxMeta{})
	txn.Store(ctx, storage.Record{Oid: 2, Data: []byte("x")})
	if err := txn.Vote(ctx); !errors.Is(err, storage.ErrCommitLockTimeout) {
		t.Fatalf("vote while locked = %v, want ErrCommitLockTimeout", err)
	}
	txn.Abort(context.Background())
	cancel()
	r.c.Close()
	start := time.Now()
	healthy(t, good)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("lock released only after %s", d)
	}
}

func TestReadOnlyPartition(t *testing.T) {
	_, addr, _ := start(t, nil)
	c := openClient(t, addr, "ro")
	ctx := ctxT(t)
	if !c.Capabilities().ReadOnly {
		t.Fatal("read-only partition does not say so")
	}
	if _, err := c.Begin(ctx, storage.TxMeta{}); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("Begin = %v", err)
	}
	if _, err := c.NewOids(ctx, 1); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("NewOids = %v", err)
	}
	if _, err := c.Load(ctx, storage.RootOid); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Load = %v", err)
	}
	// The wire refuses too, whatever a client claims.
	r := dialRaw(t, addr)
	r.hello()
	h := r.open("ro")
	r.send(&wire.Vote{Handle: h, Txn: 1, Records: []storage.Record{{Oid: 1, Data: []byte("x")}}})
	_, m := r.recv()
	expectCode(t, m, wire.CodeReadOnly)
	r.send(&wire.Pack{Handle: h, Tid: 1})
	_, m = r.recv()
	expectCode(t, m, wire.CodeReadOnly)
}

// TestShutdownDrains: Shutdown waits for a voted transaction to finish.
func TestShutdownDrains(t *testing.T) {
	srv, addr, st := start(t, nil)
	r := dialRaw(t, addr)
	r.hello()
	h := r.open("main")
	r.send(&wire.Vote{Handle: h, Txn: 1, Records: []storage.Record{{Oid: 1, Data: []byte("x")}}})
	if _, m := r.recv(); m.Kind() != wire.KindOK {
		t.Fatalf("vote: %#v", m)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("shutdown returned %v while a transaction held the lock", err)
	default:
	}
	r.send(&wire.Finish{Handle: h, Txn: 1})
	_, m := r.recv()
	if m.Kind() != wire.KindTid {
		t.Fatalf("finish during shutdown: %#v", m)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(context.Background(), 1); err != nil {
		t.Fatalf("drained commit lost: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

// TestShutdownAbortsAtDeadline: a transaction that does not finish by
// the shutdown deadline is aborted.
func TestShutdownAbortsAtDeadline(t *testing.T) {
	srv, addr, st := start(t, nil)
	r := dialRaw(t, addr)
	r.hello()
	h := r.open("main")
	r.send(&wire.Vote{Handle: h, Txn: 1, Records: []storage.Record{{Oid: 1, Data: []byte("x")}}})
	r.recv()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown = %v, want deadline exceeded", err)
	}
	if _, err := st.Load(context.Background(), 1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("aborted transaction left a trace: %v", err)
	}
	// The backend's lock is free again.
	txn, _ := st.Begin(context.Background(), storage.TxMeta{})
	txn.Store(context.Background(), storage.Record{Oid: 2, Data: []byte("y")})
	vctx, vcancel := context.WithTimeout(context.Background(), time.Second)
	defer vcancel()
	if err := txn.Vote(vctx); err != nil {
		t.Fatalf("backend still locked: %v", err)
	}
	txn.Abort(context.Background())
}

func TestOptionsValidation(t *testing.T) {
	if _, err := server.New(server.Options{}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("no partitions: %v", err)
	}
	if _, err := server.New(server.Options{Partitions: map[string]server.Partition{"x": {}}}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("nil storage: %v", err)
	}
}

func TestStatus(t *testing.T) {
	srv, addr, _ := start(t, nil)
	c := openClient(t, addr, "main")
	healthy(t, c)
	st := srv.Status()
	if len(st) != 2 || st[0].Name != "main" || st[1].Name != "ro" || !st[1].ReadOnly {
		t.Fatalf("status %+v", st)
	}
	if st[0].Clients != 1 || st[0].LastTid == 0 || st[0].CacheObjects != 1 {
		t.Fatalf("main status %+v", st[0])
	}
	if srv.Sessions() != 1 {
		t.Fatalf("sessions %d", srv.Sessions())
	}
}
