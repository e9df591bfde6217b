package sdk

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// usesStream fails the test unless c carries its calls on the stream.
func usesStream(t *testing.T, c *Client) {
	t.Helper()
	if c.noStream.Load() || c.stream.Load() == nil {
		t.Fatalf("the client does not use the Calls stream (noStream %v)", c.noStream.Load())
	}
}

// TestConformanceOverCalls runs the storage conformance suite with every
// way the host can carry the hot calls.
func TestConformanceOverCalls(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode callsMode
	}{{"packed", callsPacked}, {"stream", callsStream}, {"unary", callsUnary}} {
		t.Run(mode.name, func(t *testing.T) {
			c, _ := serveInProcess(t, testPlugin())
			c.mode = mode.mode
			storagetest.Run(t, storagetest.Factory{
				Open: func(t testing.TB, dir string) (storage.Storage, error) {
					return c.Open(context.Background(), "memory", "main", nil)
				},
			})
			if got := c.stream.Load() != nil; got != (mode.mode != callsUnary) {
				t.Fatalf("stream opened: %v in mode %s", got, mode.name)
			}
		})
	}
}

// TestCallsVoteWaitsWhileFinishPasses: a Vote waiting on the stream for
// the backend's commit lock must not hold up the Finish, sent later on
// the same stream, of the transaction that holds the lock.
func TestCallsVoteWaitsWhileFinishPasses(t *testing.T) {
	c, _ := serveInProcess(t, testPlugin())
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, _ := st.Begin(ctx, storage.TxMeta{User: "a"})
	if err := a.Store(ctx, storage.Record{Oid: storage.RootOid, Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if err := a.Vote(ctx); err != nil { // a holds the commit lock
		t.Fatal(err)
	}
	usesStream(t, c)

	b, _ := st.Begin(ctx, storage.TxMeta{User: "b"})
	if err := b.Store(ctx, storage.Record{Oid: 1, Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	voted := make(chan error, 1)
	go func() {
		vctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		voted <- b.Vote(vctx)
	}()
	// Let b's Vote reach the plugin and wait there for the lock.
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-voted:
		t.Fatalf("b voted while a held the commit lock: %v", err)
	default:
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := a.Finish(fctx); err != nil {
		t.Fatalf("finish of the lock holder behind a waiting vote: %v", err)
	}
	if err := <-voted; err != nil {
		t.Fatalf("vote after the lock was released: %v", err)
	}
	if _, err := b.Finish(ctx); err != nil {
		t.Fatal(err)
	}
}

// blockBackend serves memstorage whose Load of oid 99 blocks until its
// context ends, and reports that context on seen.
type blockBackend struct{ seen chan context.Context }

func (blockBackend) Schema() hcl.Schema { return hcl.Schema{} }
func (b blockBackend) Open(context.Context, string, hcl.Values) (storage.Storage, error) {
	return blockStorage{memstorage.New(memstorage.Options{}), b.seen}, nil
}

type blockStorage struct {
	storage.Storage
	seen chan context.Context
}

func (s blockStorage) Load(ctx context.Context, oid storage.Oid) (storage.Record, error) {
	if oid != 99 {
		return s.Storage.Load(ctx, oid)
	}
	<-ctx.Done()
	s.seen <- ctx
	return storage.Record{}, ctx.Err()
}

func blockPlugin(seen chan context.Context) *Plugin {
	return &Plugin{Name: "block", Version: "0", Backends: map[string]Backend{"block": blockBackend{seen}}}
}

// TestCallsCancel: a caller whose context ends returns at once, and the
// plugin's call sees its context canceled; other calls on the stream go
// on.
func TestCallsCancel(t *testing.T) {
	seen := make(chan context.Context, 1)
	c, _ := serveInProcess(t, blockPlugin(seen))
	ctx := context.Background()
	st, err := c.Open(ctx, "block", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.LastTid(ctx); err != nil {
		t.Fatal(err)
	}
	usesStream(t, c)

	lctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(30*time.Millisecond, cancel)
	start := time.Now()
	_, err = st.Load(lctx, 99)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `plugin "block"`) {
		t.Fatalf("canceled load: %v, want context.Canceled naming the plugin", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("canceled load returned after %s", d)
	}
	select {
	case pctx := <-seen:
		if !errors.Is(pctx.Err(), context.Canceled) {
			t.Fatalf("plugin's call context ended with %v", pctx.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the plugin's call was never canceled")
	}
	if _, err := st.Load(ctx, 99+1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("load after a canceled call: %v, want ErrNotFound", err)
	}
}

// TestCallsDeadline: the caller's deadline travels with the call, so
// the plugin's call ends by itself, and the caller gets
// DeadlineExceeded.
func TestCallsDeadline(t *testing.T) {
	seen := make(chan context.Context, 1)
	c, _ := serveInProcess(t, blockPlugin(seen))
	ctx := context.Background()
	st, err := c.Open(ctx, "block", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	want, _ := dctx.Deadline()
	if _, err := st.Load(dctx, 99); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("load past its deadline: %v", err)
	}
	usesStream(t, c)
	pctx := <-seen
	dl, ok := pctx.Deadline()
	if !ok || dl.After(want.Add(time.Second)) {
		t.Fatalf("plugin's call deadline %v (set %v), want about %v", dl, ok, want)
	}
}

// TestCallsProcessExitFailsInFlight: when the plugin process goes away,
// every call waiting on the stream fails at once with an error naming
// the plugin, including votes waiting for the commit lock.
func TestCallsProcessExitFailsInFlight(t *testing.T) {
	seen := make(chan context.Context, 8)
	c, exit := serveInProcess(t, blockPlugin(seen))
	ctx := context.Background()
	st, err := c.Open(ctx, "block", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	holder, _ := st.Begin(ctx, storage.TxMeta{})
	_ = holder.Store(ctx, storage.Record{Oid: storage.RootOid, Data: []byte("r")})
	if err := holder.Vote(ctx); err != nil {
		t.Fatal(err)
	}
	usesStream(t, c)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			txn, _ := st.Begin(ctx, storage.TxMeta{})
			_ = txn.Store(ctx, storage.Record{Oid: storage.Oid(i + 1), Data: []byte("x")})
			errs <- txn.Vote(ctx) // waits for the holder's lock
		})
		wg.Go(func() {
			_, err := st.Load(ctx, 99) // waits for its context
			errs <- err
		})
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	exit()
	wg.Wait()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("calls in flight took %s to fail", d)
	}
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrPluginUnavailable) || !strings.Contains(err.Error(), `plugin "block"`) {
			t.Fatalf("call in flight when the plugin exited: %v, want ErrPluginUnavailable naming the plugin", err)
		}
	}
}

// noCallsBackend is a plugin built before the Calls stream.
type noCallsBackend struct{ *Server }

func (noCallsBackend) Calls(pb.Backend_CallsServer) error {
	return status.Error(codes.Unimplemented, "method Calls not implemented")
}

// TestCallsOldPlugin: a plugin without the Calls stream is asked once,
// then served with the unary calls (records as messages: it would not
// read packed ones), and passes the conformance suite.
func TestCallsOldPlugin(t *testing.T) {
	old := &countingOld{}
	c, _ := serveWith(t, testPlugin(), "old", func(srv *Server) pb.BackendServer {
		old.noCallsBackend = noCallsBackend{srv}
		return old
	})
	storagetest.Run(t, storagetest.Factory{
		Open: func(t testing.TB, dir string) (storage.Storage, error) {
			return c.Open(context.Background(), "memory", "main", nil)
		},
	})
	if !c.noStream.Load() || c.stream.Load() != nil {
		t.Fatal("the client did not fall back to unary calls")
	}
	old.mu.Lock()
	defer old.mu.Unlock()
	if old.asked != 1 {
		t.Fatalf("the host asked for the stream %d times, want once per connection", old.asked)
	}
	if old.packed > 0 {
		t.Fatalf("%d unary requests carried packed records an old plugin would ignore", old.packed)
	}
}

// countingOld counts the stream requests and packed unary requests an old
// plugin sees.
type countingOld struct {
	noCallsBackend
	mu     sync.Mutex
	asked  int
	packed int
}

func (o *countingOld) Calls(s pb.Backend_CallsServer) error {
	o.mu.Lock()
	o.asked++
	o.mu.Unlock()
	return o.noCallsBackend.Calls(s)
}

func (o *countingOld) sawPacked(req *pb.StoreRequest) {
	if len(req.GetPackedRecords()) > 0 {
		o.mu.Lock()
		o.packed++
		o.mu.Unlock()
	}
}

func (o *countingOld) Store(ctx context.Context, req *pb.StoreRequest) (*pb.StoreResponse, error) {
	o.sawPacked(req)
	return o.Server.Store(ctx, req)
}

func (o *countingOld) Vote(ctx context.Context, req *pb.StoreRequest) (*pb.StoreResponse, error) {
	o.sawPacked(req)
	return o.Server.Vote(ctx, req)
}

func (o *countingOld) Commit(ctx context.Context, req *pb.StoreRequest) (*pb.FinishResponse, error) {
	o.sawPacked(req)
	return o.Server.Commit(ctx, req)
}

// TestCallsLargeAndSmallRecords: a transaction mixing packed small
// records and a large one (sent as a unary call) arrives intact, refs
// included, while the client uses the stream.
func TestCallsLargeAndSmallRecords(t *testing.T) {
	c, _ := serveInProcess(t, testPlugin())
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	oids, _ := st.NewOids(ctx, 2)
	small := storage.Record{Oid: oids[0], Data: []byte("small"), Refs: []storage.Oid{oids[1]}}
	big := storage.Record{Oid: oids[1], Data: bytes.Repeat([]byte{7}, 3*storeBatchBytes)}
	tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, small, big, storage.Record{Oid: storage.RootOid, Data: []byte("root"), Refs: oids})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []storage.Record{small, big} {
		r, err := st.Load(ctx, want.Oid)
		if err != nil || r.Serial != tid || !bytes.Equal(r.Data, want.Data) || len(r.Refs) != len(want.Refs) {
			t.Fatalf("load %s: %d bytes @%s refs %v, %v", want.Oid, len(r.Data), r.Serial, r.Refs, err)
		}
	}
	usesStream(t, c)
}

func TestPackedRoundTrip(t *testing.T) {
	in := []storage.Record{
		{Oid: 1, Serial: 2, Data: []byte("one"), Refs: []storage.Oid{3, 4}},
		{Oid: 5, Data: []byte{}},
		{Oid: 1<<64 - 1, Serial: 1<<64 - 1, Data: bytes.Repeat([]byte{9}, 1000), Refs: []storage.Oid{6}},
	}
	var p packedBatch
	for _, r := range in {
		p.add(r)
	}
	out, err := unpackRecords(p.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d records back, want %d", len(out), len(in))
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.Oid != b.Oid || a.Serial != b.Serial || !bytes.Equal(a.Data, b.Data) || b.Data == nil || !equalOids(a.Refs, b.Refs) {
			t.Fatalf("record %d: %+v back as %+v", i, a, b)
		}
	}
	// Refs of one record cannot grow into the next one's.
	out[0].Refs = append(out[0].Refs, 100)
	if out[2].Refs[0] != 6 {
		t.Fatal("refs of two records share capacity")
	}
	if recs, err := unpackRecords(nil); err != nil || recs != nil {
		t.Fatalf("empty: %v, %v", recs, err)
	}
}

func equalOids(a, b []storage.Oid) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPackedInvalid: every cut of a valid buffer, and a few lies about
// lengths, are ErrInvalid, never a panic.
func TestPackedInvalid(t *testing.T) {
	var p packedBatch
	p.add(storage.Record{Oid: 1, Data: []byte("abc"), Refs: []storage.Oid{2}})
	p.add(storage.Record{Oid: 3, Data: []byte("de")})
	good := p.bytes()
	for n := 1; n < len(good); n++ {
		if _, err := unpackRecords(good[:n]); !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("cut at %d of %d: %v, want ErrInvalid", n, len(good), err)
		}
	}
	if _, err := unpackRecords(append(bytes.Clone(good), 0)); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("a byte left over: %v", err)
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	if _, err := unpackRecords(huge); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("count 2^32-1 in 4 bytes: %v", err)
	}
	if _, err := unpackRecords([]byte{0, 0, 0, 0, 1}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("zero records and a byte: %v", err)
	}
}

// TestPackedInvalidOverCalls: a plugin answers a malformed packed batch
// with an invalid-argument error, not a crash.
func TestPackedInvalidOverCalls(t *testing.T) {
	srv := NewServer(testPlugin(), nil)
	t.Cleanup(srv.CloseAll)
	ctx := context.Background()
	o, err := srv.Open(ctx, &pb.OpenRequest{Type: "memory", Name: "m"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = srv.Vote(ctx, &pb.StoreRequest{Handle: o.GetHandle(), Key: 1, PackedRecords: []byte{1, 0, 0, 0, 9}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("vote with a malformed batch: %v, want InvalidArgument", err)
	}
}

func FuzzUnpackRecords(f *testing.F) {
	var p packedBatch
	p.add(storage.Record{Oid: 1, Data: []byte("abc"), Refs: []storage.Oid{2}})
	f.Add(p.bytes())
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := unpackRecords(b)
		if err != nil {
			if !errors.Is(err, storage.ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes.
		var q packedBatch
		for _, r := range recs {
			q.add(r)
		}
		if !bytes.Equal(q.bytes(), b) && len(recs) > 0 {
			t.Fatalf("re-encoding differs")
		}
	})
}

// TestCallsStoreOrderAroundLargeRecord: records gathered (packed) before a
// large record, which goes at once as a unary call, reach the plugin
// before it, in store order.
func TestCallsStoreOrderAroundLargeRecord(t *testing.T) {
	c, _ := serveInProcess(t, testPlugin())
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	oids, _ := st.NewOids(ctx, 3)
	want := []storage.Record{
		{Oid: storage.RootOid, Data: []byte("root"), Refs: oids},
		{Oid: oids[0], Data: []byte("small")},
		{Oid: oids[1], Data: bytes.Repeat([]byte{1}, storeBatchBytes)},
		{Oid: oids[2], Data: []byte("after")},
	}
	tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, want...)
	if err != nil {
		t.Fatal(err)
	}
	usesStream(t, c)
	seen := 0
	for tx, err := range st.Iterate(ctx, tid, storage.ZeroTid) {
		if err != nil {
			t.Fatal(err)
		}
		seen++
		if len(tx.Records) != len(want) {
			t.Fatalf("%d records in the transaction, want %d", len(tx.Records), len(want))
		}
		for i, r := range tx.Records {
			if r.Oid != want[i].Oid {
				got := make([]storage.Oid, len(tx.Records))
				for j, r := range tx.Records {
					got[j] = r.Oid
				}
				t.Fatalf("records stored in the order %v, want %v", got, []storage.Oid{want[0].Oid, want[1].Oid, want[2].Oid, want[3].Oid})
			}
		}
	}
	if seen != 1 {
		t.Fatalf("iterate from the commit's tid yielded %d transactions, want 1", seen)
	}
}
