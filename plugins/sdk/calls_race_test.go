package sdk

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/zhostdb/zhost/host/storage"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// replyThenCancel is a real Calls stream whose Send, once a call has
// gone out, waits until the reader has taken the call's reply and then
// ends the caller's context (set with arm): the reply and the context's
// end are both there when the caller looks.
type replyThenCancel struct {
	pb.Backend_CallsClient
	c      *Client
	mu     sync.Mutex
	cancel context.CancelFunc
}

func (s *replyThenCancel) arm(cancel context.CancelFunc) {
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
}

func (s *replyThenCancel) Send(call *pb.Call) error {
	if err := s.Backend_CallsClient.Send(call); err != nil {
		return err
	}
	s.mu.Lock()
	cancel := s.cancel
	s.cancel = nil
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cs := s.c.stream.Load()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		cs.mu.Lock()
		_, waiting := cs.pending[call.GetId()]
		cs.mu.Unlock()
		if !waiting {
			break
		}
	}
	cancel()
	return nil
}

// orderedBackend hands out replyThenCancel streams.
type orderedBackend struct {
	pb.BackendClient
	stream *replyThenCancel
}

func (b orderedBackend) Calls(ctx context.Context, opts ...grpc.CallOption) (pb.Backend_CallsClient, error) {
	s, err := b.BackendClient.Calls(ctx, opts...)
	if err != nil {
		return nil, err
	}
	b.stream.Backend_CallsClient = s
	return b.stream, nil
}

// TestCallsReplyWinsOverCancel: a reply that arrived is the call's
// outcome even if the caller's context ends at the same moment; a commit
// that the plugin made must not be reported as failed.
func TestCallsReplyWinsOverCancel(t *testing.T) {
	c, _ := serveInProcess(t, testPlugin())
	ordered := &replyThenCancel{c: c}
	c.backend = orderedBackend{BackendClient: c.backend, stream: ordered}
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.LastTid(ctx); err != nil {
		t.Fatal(err)
	}
	usesStream(t, c)
	for i := range 40 {
		cctx, cancel := context.WithCancel(ctx)
		txn, err := st.Begin(cctx, storage.TxMeta{})
		if err != nil {
			t.Fatal(err)
		}
		oid := storage.Oid(100 + i)
		if err := txn.Store(cctx, storage.Record{Oid: oid, Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		ordered.arm(cancel)
		_, cerr := txn.(storage.OnePhaseTxn).Commit(cctx)
		cancel()
		_ = txn.Abort(ctx)
		_, lerr := st.Load(ctx, oid)
		if cerr != nil && lerr == nil {
			t.Fatalf("commit %d reported %v, but the plugin committed it", i, cerr)
		}
		if cerr == nil && lerr != nil {
			t.Fatalf("commit %d succeeded, but its record does not load: %v", i, lerr)
		}
	}
}
