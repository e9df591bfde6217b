package sdk

import (
	"context"
	"errors"
	"testing"

	"github.com/zhostdb/zhost/host/storage"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// TestRegressionEarlyAbortsEvictOldest: the plugin remembers an Abort by
// key that overtook the request beginning its transaction, so that the
// request, when it arrives, fails instead of beginning a transaction the
// host already gave up (a vote would then hold the commit lock). Aborts
// of keys whose request had already ended here leave entries behind
// too; when the memory is full, the oldest must go, not a random one:
// random eviction dropped genuine, recent entries. Here 4096 stale
// entries fill it, then each of 20 genuine early aborts is followed by
// 300 more stale ones before its request arrives.
func TestRegressionEarlyAbortsEvictOldest(t *testing.T) {
	ctx := context.Background()
	s := newServer(testPlugin(), nil)
	defer s.closeAll()
	op, err := s.Open(ctx, &pb.OpenRequest{Type: "memory", Name: "early"})
	if err != nil {
		t.Fatal(err)
	}
	h := op.GetHandle()
	abort := func(key uint64) {
		t.Helper()
		if _, err := s.Abort(ctx, &pb.TxnRequest{Handle: h, Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	stale := uint64(1 << 32)
	for range maxAbortedKeys {
		stale++
		abort(stale)
	}
	oid := storage.Oid(1)
	for key := uint64(1); key <= 20; key++ {
		abort(key)
		for range 300 {
			stale++
			abort(stale)
		}
		_, err := s.Store(ctx, &pb.StoreRequest{Handle: h, Key: key, Meta: &pb.TxMeta{User: "t"},
			Records: recordsToPB([]storage.Record{{Oid: oid, Data: []byte("x")}})})
		if !errors.Is(fromStatus(ctx, "test", "store", err, true), storage.ErrClosed) {
			t.Fatalf("key %d: the request after its early abort got %v, want ErrClosed (the early abort was forgotten)", key, err)
		}
	}
	s.mu.Lock()
	n := s.aborted.len()
	s.mu.Unlock()
	if n > maxAbortedKeys {
		t.Fatalf("%d early aborts remembered, bound %d", n, maxAbortedKeys)
	}
}

// TestEarlyAbortsBounded: the memory keeps at most max keys, the newest;
// taken and dropped keys are forgotten; its bookkeeping stays bounded
// however many keys pass through.
func TestEarlyAbortsBounded(t *testing.T) {
	e := newEarlyAborts(8)
	for i := uint64(1); i <= 10000; i++ {
		e.add(txnKey{handle: i % 2, key: i})
		if i%3 == 0 && !e.take(txnKey{handle: i % 2, key: i}) {
			t.Fatalf("key %d not remembered right after it was added", i)
		}
		if e.len() > 8 || len(e.order) > 2*8+1 {
			t.Fatalf("after %d keys: %d remembered, %d in order; bound 8", i, e.len(), len(e.order))
		}
	}
	for i := uint64(9993); i <= 10000; i++ {
		if i%3 != 0 && !e.take(txnKey{handle: i % 2, key: i}) {
			t.Errorf("recent key %d was forgotten", i)
		}
	}
	if e.take(txnKey{handle: 1, key: 1}) {
		t.Error("the oldest key was kept")
	}
	e.add(txnKey{handle: 5, key: 1})
	e.add(txnKey{handle: 6, key: 1})
	e.dropHandle(5)
	if e.take(txnKey{handle: 5, key: 1}) || !e.take(txnKey{handle: 6, key: 1}) {
		t.Error("dropHandle forgot the wrong keys")
	}
}
