package sdk

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// gateBackend serves memstorage whose transactions report overlapping
// calls to w (as serialTxn does), whose Store of a record with data
// "gate" blocks, ignoring its context, until gate is closed, and whose
// Close aborts the transactions still open with their own Abort, as the
// storage contract says ("Open transactions are aborted") and as a
// backend keeping no lock of its own around a Txn would.
type gateBackend struct {
	w       *overlaps
	entered chan struct{} // gets a value when a gated Store starts
	gate    chan struct{}
	// abortHonoursCtx makes a Txn's Abort do nothing but return ctx's
	// error when ctx has ended, as a backend whose abort is a network
	// call (host/client's) does.
	abortHonoursCtx bool

	mu   sync.Mutex
	open map[*gateTxn]struct{}
	ops  []string // the Txn calls, in the order they started
}

func (b *gateBackend) op(s string) {
	b.mu.Lock()
	b.ops = append(b.ops, s)
	b.mu.Unlock()
}

func newGateBackend() *gateBackend {
	return &gateBackend{w: &overlaps{}, entered: make(chan struct{}, 16), gate: make(chan struct{}), open: map[*gateTxn]struct{}{}}
}

func (*gateBackend) Schema() hcl.Schema { return hcl.Schema{} }
func (b *gateBackend) Open(context.Context, string, hcl.Values) (storage.Storage, error) {
	return &gateStorage{Storage: memstorage.New(memstorage.Options{}), b: b}, nil
}

type gateStorage struct {
	storage.Storage
	b *gateBackend
}

func (s *gateStorage) Begin(ctx context.Context, m storage.TxMeta) (storage.Txn, error) {
	t, err := s.Storage.Begin(ctx, m)
	if err != nil {
		return nil, err
	}
	g := &gateTxn{serialTxn: serialTxn{Txn: t, w: s.b.w}, b: s.b}
	s.b.mu.Lock()
	s.b.open[g] = struct{}{}
	s.b.mu.Unlock()
	return g, nil
}

func (s *gateStorage) Close() error {
	s.b.mu.Lock()
	open := make([]*gateTxn, 0, len(s.b.open))
	for g := range s.b.open {
		open = append(open, g)
	}
	s.b.mu.Unlock()
	for _, g := range open {
		_ = g.Abort(context.Background())
	}
	return s.Storage.Close()
}

// gateTxn is a serialTxn (overlaps are recorded) with a gated Store.
type gateTxn struct {
	serialTxn
	b *gateBackend
}

func (t *gateTxn) Store(ctx context.Context, rec storage.Record) error {
	defer t.enter("store")()
	t.b.op("store " + string(rec.Data))
	if string(rec.Data) == "gate" {
		t.b.entered <- struct{}{}
		<-t.b.gate
	}
	return t.Txn.Store(ctx, rec)
}

func (t *gateTxn) Vote(ctx context.Context) error {
	t.b.op("vote")
	return t.serialTxn.Vote(ctx)
}

func (t *gateTxn) Finish(ctx context.Context) (storage.Tid, error) {
	t.b.op("finish")
	tid, err := t.serialTxn.Finish(ctx)
	if err == nil {
		t.forget()
	}
	return tid, err
}

func (t *gateTxn) Abort(ctx context.Context) error {
	defer t.enter("abort")()
	t.b.op("abort")
	if t.b.abortHonoursCtx && ctx.Err() != nil {
		return ctx.Err()
	}
	t.forget()
	return t.Txn.Abort(ctx)
}

func (t *gateTxn) forget() {
	t.b.mu.Lock()
	delete(t.b.open, t)
	t.b.mu.Unlock()
}

// gateServer opens a storage of b in a Server called directly, begins a
// transaction and starts a gated Store in it, returning once that Store
// runs in the backend; wait returns the Store's error once it ended.
func gateServer(t *testing.T, b *gateBackend) (srv *Server, handle, id uint64, wait func() error) {
	t.Helper()
	srv = newServer(&Plugin{Name: "gate", Version: "0", Backends: map[string]Backend{"gate": b}}, nil)
	t.Cleanup(srv.closeAll)
	ctx := context.Background()
	o, err := srv.Open(ctx, &pb.OpenRequest{Type: "gate", Name: "g"})
	if err != nil {
		t.Fatal(err)
	}
	bg, err := srv.Begin(ctx, &pb.BeginRequest{Handle: o.GetHandle()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := srv.Store(ctx, &pb.StoreRequest{Txn: bg.GetTxn(), Records: []*pb.Record{{Oid: 1, Data: []byte("gate")}}})
		done <- err
	}()
	select {
	case <-b.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the gated store did not start within 5 s")
	}
	return srv, o.GetHandle(), bg.GetTxn(), func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("the store did not return within 5 s of its gate opening")
			return nil
		}
	}
}

// TestCloseWaitsForTxnCalls: closing a storage (the host's Close, or the
// plugin shutting down) while a call of one of its transactions still
// runs in the backend, maybe with the host's Abort of it waiting for that
// call, must not let the backend's Close, which aborts its open
// transactions, run beside that call or that Abort; the call is
// interrupted and Close goes on once it, and the Abort, returned.
func TestCloseWaitsForTxnCalls(t *testing.T) {
	for _, c := range []struct {
		name       string
		all, abort bool
	}{
		{name: "close storage"},
		{name: "close storage during an abort", abort: true},
		{name: "plugin shutting down", all: true},
		{name: "plugin shutting down during an abort", all: true, abort: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newGateBackend()
			srv, handle, id, wait := gateServer(t, b)
			aborted := make(chan error, 1)
			if c.abort {
				go func() {
					_, err := srv.Abort(context.Background(), &pb.TxnRequest{Txn: id})
					aborted <- err
				}()
				time.Sleep(20 * time.Millisecond) // the Abort waits for the store
			}
			closed := make(chan error, 1)
			go func() {
				if c.all {
					srv.closeAll()
					closed <- nil
					return
				}
				_, err := srv.Close(context.Background(), &pb.HandleRequest{Handle: handle})
				closed <- err
			}()
			// Give a Close that does not wait the time to run beside the store.
			time.Sleep(50 * time.Millisecond)
			close(b.gate)
			if err := wait(); err != nil {
				t.Logf("the store interrupted: %v", err)
			}
			for what, ch := range map[string]chan error{"close": closed, "abort": aborted} {
				if what == "abort" && !c.abort {
					continue
				}
				select {
				case err := <-ch:
					if err != nil {
						t.Errorf("%s: %v", what, err)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s did not return within 5 s of the store's end", what)
				}
			}
			b.w.check(t)
			b.mu.Lock()
			defer b.mu.Unlock()
			if len(b.open) != 0 {
				t.Errorf("%d transactions still open in the backend after close", len(b.open))
			}
		})
	}
}

// TestAbortAfterItsContextEnded: the backend transaction is aborted even
// if the Abort's context ended while it waited for the call it
// interrupted (the host's stream broke, its deadline passed): a voted
// transaction left behind would hold the commit lock for good, and the
// plugin forgets it, so nothing would abort it later.
func TestAbortAfterItsContextEnded(t *testing.T) {
	b := newGateBackend()
	b.abortHonoursCtx = true
	srv, _, id, wait := gateServer(t, b)
	actx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	aborted := make(chan error, 1)
	go func() {
		_, err := srv.Abort(actx, &pb.TxnRequest{Txn: id})
		aborted <- err
	}()
	<-actx.Done()
	time.Sleep(20 * time.Millisecond)
	close(b.gate)
	_ = wait()
	select {
	case err := <-aborted:
		if err != nil {
			t.Logf("abort: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("abort did not return within 5 s of the store's end")
	}
	b.mu.Lock()
	left := len(b.open)
	b.mu.Unlock()
	if left != 0 {
		t.Errorf("the backend transaction was not aborted: the Abort's context had ended while it waited")
	}
	b.w.check(t)
}

// TestCloseBoundedByStuckTxnCall: a call that ignores its canceled
// context holds Close up for closeWait at most; then the storage closes
// anyway, so a plugin told to exit flushes before go-plugin kills it.
func TestCloseBoundedByStuckTxnCall(t *testing.T) {
	for _, all := range []bool{false, true} {
		name := "close storage"
		if all {
			name = "plugin shutting down"
		}
		t.Run(name, func(t *testing.T) {
			b := newGateBackend()
			srv, handle, _, wait := gateServer(t, b)
			defer func() {
				close(b.gate)
				_ = wait()
			}()
			start := time.Now()
			closed := make(chan error, 1)
			go func() {
				if all {
					srv.closeAll()
					closed <- nil
					return
				}
				_, err := srv.Close(context.Background(), &pb.HandleRequest{Handle: handle})
				closed <- err
			}()
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("close: %v", err)
				}
			case <-time.After(closeWait + 5*time.Second):
				t.Fatalf("close did not return within %v with a call stuck", closeWait+5*time.Second)
			}
			if took := time.Since(start); took < closeWait {
				t.Errorf("close returned after %v, before closeWait (%v) with a call still running", took, closeWait)
			}
		})
	}
}
