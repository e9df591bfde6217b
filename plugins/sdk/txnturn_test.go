package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// The storage contract says a Txn is used by one goroutine at a time. A
// backend written against it alone takes no lock of its own, so the SDK's
// server must never let two calls of one transaction overlap in it, even
// when an Abort arrives while the call it abandons still runs. These tests
// drive the real host-side client against a backend that records every
// overlap instead of locking.

const (
	// slowStore is how long a Store of a record whose data starts with
	// "slow" takes; it ignores its context, as a backend busy in a write
	// may.
	slowStore = 200 * time.Millisecond
	// voteUnwind is how long a Vote whose context ended takes to return
	// after the commit lock wait gave up (cleaning up, say): the window in
	// which the host's Abort arrives.
	voteUnwind = 50 * time.Millisecond
)

// overlaps records calls that ran while another call of the same
// transaction was running in the backend.
type overlaps struct {
	mu   sync.Mutex
	seen []string
}

func (o *overlaps) add(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, s)
}

func (o *overlaps) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) > 0 {
		t.Errorf("%d calls overlapped another call of the same transaction in the backend, first: %s", len(o.seen), strings.Join(o.seen[:min(len(o.seen), 5)], "; "))
	}
}

// serialBackend serves memstorage whose transactions report overlapping
// calls to w.
type serialBackend struct{ w *overlaps }

func (serialBackend) Schema() hcl.Schema { return hcl.Schema{} }
func (b serialBackend) Open(context.Context, string, hcl.Values) (storage.Storage, error) {
	return serialStorage{memstorage.New(memstorage.Options{}), b.w}, nil
}

type serialStorage struct {
	storage.Storage
	w *overlaps
}

func (s serialStorage) Begin(ctx context.Context, m storage.TxMeta) (storage.Txn, error) {
	t, err := s.Storage.Begin(ctx, m)
	if err != nil {
		return nil, err
	}
	return &serialTxn{Txn: t, w: s.w}, nil
}

// serialTxn counts the calls running in it; a second one is an overlap.
type serialTxn struct {
	storage.Txn
	w       *overlaps
	inUse   atomic.Int32
	running atomic.Pointer[string]
}

func (t *serialTxn) enter(op string) func() {
	if t.inUse.Add(1) > 1 {
		other := "?"
		if p := t.running.Load(); p != nil {
			other = *p
		}
		t.w.add(fmt.Sprintf("%s during %s", op, other))
	} else {
		t.running.Store(&op)
	}
	return func() { t.inUse.Add(-1) }
}

func (t *serialTxn) Store(ctx context.Context, rec storage.Record) error {
	defer t.enter("store")()
	if bytes.HasPrefix(rec.Data, []byte("slow")) {
		time.Sleep(slowStore)
	}
	return t.Txn.Store(ctx, rec)
}

func (t *serialTxn) Vote(ctx context.Context) error {
	defer t.enter("vote")()
	err := t.Txn.Vote(ctx)
	if err != nil && ctx.Err() != nil {
		time.Sleep(voteUnwind)
	}
	return err
}

func (t *serialTxn) Finish(ctx context.Context) (storage.Tid, error) {
	defer t.enter("finish")()
	return t.Txn.Finish(ctx)
}

func (t *serialTxn) Commit(ctx context.Context) (storage.Tid, error) {
	defer t.enter("commit")()
	return storage.CommitOnePhase(ctx, t.Txn)
}

func (t *serialTxn) Abort(ctx context.Context) error {
	defer t.enter("abort")()
	return t.Txn.Abort(ctx)
}

var _ storage.OnePhaseTxn = (*serialTxn)(nil)

// lostCancels is a backend client whose callers' cancellations do not
// reach the plugin: a unary Vote goes on there after its caller gave
// up, and a stream drops its cancel messages (the host sends them on
// their own goroutine, so the Abort that follows may overtake them).
type lostCancels struct{ pb.BackendClient }

func (b lostCancels) Vote(ctx context.Context, req *pb.StoreRequest, opts ...grpc.CallOption) (*pb.StoreResponse, error) {
	type result struct {
		r   *pb.StoreResponse
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := b.BackendClient.Vote(context.WithoutCancel(ctx), req, opts...)
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		return res.r, res.err
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (b lostCancels) Calls(ctx context.Context, opts ...grpc.CallOption) (pb.Backend_CallsClient, error) {
	s, err := b.BackendClient.Calls(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return dropCancels{s}, nil
}

type dropCancels struct{ pb.Backend_CallsClient }

func (s dropCancels) Send(call *pb.Call) error {
	if call.GetCancel() != nil {
		return nil
	}
	return s.Backend_CallsClient.Send(call)
}

var turnModes = []struct {
	name string
	mode callsMode
}{{"unary", callsUnary}, {"stream", callsStream}, {"packed", callsPacked}}

// serveSerial serves serialBackend in process over the transport mode and
// opens a storage of it.
func serveSerial(t *testing.T, mode callsMode, lose bool) (*overlaps, *RemoteStorage) {
	w, st, _ := serveSerialServer(t, mode, lose)
	return w, st
}

// serveSerialServer is serveSerial that also returns the plugin's Server.
func serveSerialServer(t *testing.T, mode callsMode, lose bool) (*overlaps, *RemoteStorage, *Server) {
	t.Helper()
	w := &overlaps{}
	var srv *Server
	p := &Plugin{Name: "serial", Version: "0", Backends: map[string]Backend{"serial": serialBackend{w}}}
	c, _ := serveWith(t, p, p.Name, func(s *Server) pb.BackendServer { srv = s; return s })
	c.mode = mode
	if lose {
		c.backend = lostCancels{c.backend}
	}
	st, err := c.Open(context.Background(), "serial", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return w, st, srv
}

// tablesEmpty fails the test unless, within 2 s (a call the host gave up
// on may still be returning in the plugin), the server holds no
// transaction and no key of one: every path frees them.
func tablesEmpty(t *testing.T, srv *Server) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		srv.mu.Lock()
		txns, keys, aborted := len(srv.txns), len(srv.keys), srv.aborted.len()
		srv.mu.Unlock()
		if txns == 0 && keys == 0 {
			// Early aborts whose request had already ended stay (up to
			// maxAbortedKeys): the plugin cannot tell them apart.
			t.Logf("%d early aborts remembered", aborted)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after every transaction ended the server still holds %d transactions, %d keys", txns, keys)
		}
	}
}

// commitsNow fails the test unless a transaction storing oid commits
// within 2 s: nothing left the commit lock held.
func commitsNow(t *testing.T, st storage.Storage, oid storage.Oid) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	serial := storage.ZeroTid
	if rec, err := st.Load(ctx, oid); err == nil {
		serial = rec.Serial
	}
	txn, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort(context.Background())
	if err := txn.Store(ctx, storage.Record{Oid: oid, Serial: serial, Data: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.CommitOnePhase(ctx, txn); err != nil {
		t.Fatalf("a later transaction could not commit: %v", err)
	}
}

// voteHoldingLock returns a voted transaction: it holds the commit lock
// until it is finished or aborted.
func voteHoldingLock(t *testing.T, st storage.Storage, oid storage.Oid) storage.Txn {
	t.Helper()
	ctx := context.Background()
	txn, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(ctx, storage.Record{Oid: oid, Data: []byte("holder")}); err != nil {
		t.Fatal(err)
	}
	if err := txn.Vote(ctx); err != nil {
		t.Fatal(err)
	}
	return txn
}

// abortWithin aborts txn, failing the test if that takes longer than d,
// and returns how long it took. An Abort stuck longer is waited for after
// release runs (which frees what it waits on), so nothing leaks.
func abortWithin(t *testing.T, txn storage.Txn, d time.Duration, release func()) time.Duration {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- txn.Abort(context.Background()) }()
	select {
	case err := <-done:
		took := time.Since(start)
		if err != nil {
			t.Errorf("abort: %v", err)
		}
		return took
	case <-time.After(d):
		t.Errorf("abort did not return within %v", d)
		release()
		<-done
		return time.Since(start)
	}
}

// TestTxnCallsOneAtATime: an Abort that arrives while a call of its
// transaction still runs in the backend (a vote waiting for the commit
// lock, a slow store) waits for that call, having canceled it, instead of
// running beside it; many transactions canceled at random never run two
// calls of one transaction at once. Every transport.
func TestTxnCallsOneAtATime(t *testing.T) {
	for _, m := range turnModes {
		t.Run(m.name, func(t *testing.T) {
			t.Run("abort during a vote waiting for the lock", func(t *testing.T) {
				w, st := serveSerial(t, m.mode, false)
				holder := voteHoldingLock(t, st, 1)
				txn, _ := st.Begin(context.Background(), storage.TxMeta{})
				_ = txn.Store(context.Background(), storage.Record{Oid: 2, Data: []byte("x")})
				vctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				err := txn.Vote(vctx)
				cancel()
				if !errors.Is(err, storage.ErrCommitLockTimeout) {
					t.Fatalf("vote while another transaction holds the lock: %v, want ErrCommitLockTimeout", err)
				}
				abortWithin(t, txn, 5*time.Second, func() { _ = holder.Abort(context.Background()) })
				_ = holder.Abort(context.Background())
				commitsNow(t, st, 2)
				w.check(t)
			})
			for _, byID := range []bool{false, true} {
				name := "abort by key"
				if byID {
					name = "abort by id"
				}
				t.Run(name+" cancels a vote whose cancel was lost", func(t *testing.T) {
					w, st := serveSerial(t, m.mode, true)
					holder := voteHoldingLock(t, st, 1)
					txn, _ := st.Begin(context.Background(), storage.TxMeta{})
					if byID {
						// A record of storeBatchBytes goes at once and
						// begins the transaction: the host learns its id.
						if err := txn.Store(context.Background(), storage.Record{Oid: 3, Data: make([]byte, storeBatchBytes)}); err != nil {
							t.Fatal(err)
						}
					}
					_ = txn.Store(context.Background(), storage.Record{Oid: 2, Data: []byte("x")})
					// No deadline: the plugin's vote would wait for the
					// lock until its context is canceled.
					vctx, cancel := context.WithCancel(context.Background())
					time.AfterFunc(50*time.Millisecond, cancel)
					err := txn.Vote(vctx)
					if !errors.Is(err, storage.ErrCommitLockTimeout) {
						t.Fatalf("vote while another transaction holds the lock: %v, want ErrCommitLockTimeout", err)
					}
					took := abortWithin(t, txn, 2*time.Second, func() { _ = holder.Abort(context.Background()) })
					t.Logf("abort took %v with the vote still waiting in the plugin", took)
					_ = holder.Abort(context.Background())
					commitsNow(t, st, 2)
					w.check(t)
				})
			}
			t.Run("abort during a slow store", func(t *testing.T) {
				w, st := serveSerial(t, m.mode, false)
				txn, _ := st.Begin(context.Background(), storage.TxMeta{})
				_ = txn.Store(context.Background(), storage.Record{Oid: 4, Data: []byte("slow")})
				vctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
				err := txn.Vote(vctx)
				cancel()
				if err == nil {
					t.Fatalf("vote returned before the slow store (%v) it carries", slowStore)
				}
				abortWithin(t, txn, 5*time.Second, func() {})
				commitsNow(t, st, 4)
				w.check(t)
			})
			for _, lose := range []bool{false, true} {
				name := "random cancellations"
				if lose {
					name += " whose cancels are lost"
				}
				t.Run(name, func(t *testing.T) {
					w, st, srv := serveSerialServer(t, m.mode, lose)
					randomTxns(t, st, 6, 40)
					commitsNow(t, st, 1)
					w.check(t)
					tablesEmpty(t, srv)
				})
			}
		})
	}
}

// randomTxns runs workers goroutines of n transactions each over a few
// shared oids, whose calls are canceled after random short delays, then
// finished or aborted; the whole run is bounded by a minute.
func randomTxns(t *testing.T, st storage.Storage, workers, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var committed atomic.Int64
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; i < n && ctx.Err() == nil; i++ {
				if randomTxn(ctx, st, r) {
					committed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		t.Fatalf("%d x %d transactions did not end within a minute", workers, n)
	}
	t.Logf("%d of %d transactions committed", committed.Load(), workers*n)
}

// randomTxn runs one transaction with random cancellations; it reports
// whether it committed. Errors are expected (conflicts, timeouts, calls
// canceled) and the transaction is always aborted at the end.
func randomTxn(ctx context.Context, st storage.Storage, r *rand.Rand) bool {
	txn, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		return false
	}
	defer txn.Abort(context.WithoutCancel(ctx))
	// within is a context that ends after a random delay up to 3 ms, or
	// (one time in four) only with ctx.
	within := func() (context.Context, context.CancelFunc) {
		if r.IntN(4) == 0 {
			return context.WithCancel(ctx)
		}
		return context.WithTimeout(ctx, time.Duration(r.IntN(3000))*time.Microsecond)
	}
	for range 1 + r.IntN(3) {
		oid := storage.Oid(1 + r.IntN(8))
		serial := storage.ZeroTid
		if rec, err := st.Load(ctx, oid); err == nil {
			serial = rec.Serial
		}
		data := []byte("x")
		if r.IntN(20) == 0 {
			data = []byte("slow")
		}
		if err := txn.Store(ctx, storage.Record{Oid: oid, Serial: serial, Data: data}); err != nil {
			return false
		}
	}
	cctx, cancel := within()
	defer cancel()
	if r.IntN(2) == 0 {
		_, err := txn.(storage.OnePhaseTxn).Commit(cctx)
		return err == nil
	}
	if err := txn.Vote(cctx); err != nil {
		return false
	}
	fctx, fcancel := within()
	defer fcancel()
	_, err = txn.Finish(fctx)
	return err == nil
}

// TestTxnTurnOrder: the calls of one transaction get its turn in the
// order they took their places; one whose context ends while it waits
// gives its place up, and the turn goes on to the next.
func TestTxnTurnOrder(t *testing.T) {
	txn := &openTxn{}
	first := txn.reserve()
	if first.ch != nil {
		t.Fatal("the turn of an idle transaction is not free")
	}
	const n = 6
	tickets := make([]ticket, n)
	for i := range tickets {
		tickets[i] = txn.reserve()
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i, tk := range tickets {
		ctx := context.Background()
		if i == 2 {
			ctx = gone // its caller gave up: it never gets the turn
		}
		wg.Go(func() {
			if err := txn.await(ctx, tk); err != nil {
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			txn.release()
		})
	}
	// Wait until the one with the ended context has left the queue.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		txn.mu.Lock()
		left := len(txn.waiters)
		txn.mu.Unlock()
		if left == n-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters after 5 s, want %d", left, n-1)
		}
	}
	txn.release()
	wg.Wait()
	want := []int{0, 1, 3, 4, 5}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("turns went in order %v, want %v", order, want)
	}
	txn.mu.Lock()
	defer txn.mu.Unlock()
	if txn.busy || len(txn.waiters) > 0 {
		t.Fatalf("after every call: busy %v, %d waiters", txn.busy, len(txn.waiters))
	}
}

// TestTxnTurnHandedAsWaiterGivesUp: a waiter whose context ends just as
// the turn is handed to it either takes the turn or passes it on; it is
// never lost, so the calls queued after it still get it. Both outcomes
// of await's select are drawn over the rounds.
func TestTxnTurnHandedAsWaiterGivesUp(t *testing.T) {
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	var took, passed int
	for range 200 {
		txn := &openTxn{}
		txn.reserve() // the holder
		w := txn.reserve()
		next := txn.reserve()
		txn.release() // handed to w before w looks
		if txn.await(gone, w) == nil {
			took++
			txn.release()
		} else {
			passed++
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := txn.await(ctx, next)
		cancel()
		if err != nil {
			t.Fatalf("the next call never got the turn: %v", err)
		}
		txn.release()
		if txn.busy || len(txn.waiters) > 0 {
			t.Fatalf("after every call: busy %v, %d waiters", txn.busy, len(txn.waiters))
		}
	}
	t.Logf("the waiter took the turn %d times, passed it on %d times", took, passed)
	if passed == 0 {
		t.Error("the pass-on path never ran")
	}
}
