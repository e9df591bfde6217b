package sdk

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	pb "github.com/zhostdb/zhost/plugins/proto"
)

// TestCallsStreamTxnOrder: calls of one transaction sent back to back on
// the Calls stream, the first held up in the backend, reach the backend
// in stream order, one at a time; an Abort that follows them cancels
// the running one and makes the queued ones fail with ErrClosed without
// reaching the backend.
func TestCallsStreamTxnOrder(t *testing.T) {
	for _, abort := range []bool{false, true} {
		name := "store store vote finish"
		if abort {
			name = "store store vote abort"
		}
		t.Run(name, func(t *testing.T) {
			b := newGateBackend()
			c, _ := serveInProcess(t, &Plugin{Name: "gate", Version: "0", Backends: map[string]Backend{"gate": b}})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			o, err := c.backend.Open(ctx, &pb.OpenRequest{Type: "gate", Name: "g"})
			if err != nil {
				t.Fatal(err)
			}
			bg, err := c.backend.Begin(ctx, &pb.BeginRequest{Handle: o.GetHandle()})
			if err != nil {
				t.Fatal(err)
			}
			id := bg.GetTxn()
			stream, err := c.backend.Calls(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil { // hello
				t.Fatal(err)
			}
			store := func(data string) *pb.Call {
				return &pb.Call{Op: &pb.Call_Store{Store: &pb.StoreRequest{Txn: id, Records: []*pb.Record{{Oid: 1, Data: []byte(data)}}}}}
			}
			calls := []*pb.Call{
				store("gate"),
				store("a"),
				{Op: &pb.Call_Vote{Vote: &pb.StoreRequest{Txn: id}}},
				{Op: &pb.Call_Finish{Finish: &pb.TxnRequest{Txn: id}}},
			}
			if abort {
				calls[3] = &pb.Call{Op: &pb.Call_Abort{Abort: &pb.TxnRequest{Txn: id}}}
			}
			send := func(calls ...*pb.Call) {
				for _, call := range calls {
					if err := stream.Send(call); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i, call := range calls {
				call.Id = uint64(i + 1)
			}
			last := len(calls)
			if abort {
				// Else the abort may overtake the gated store before
				// it started, which then never reaches the backend.
				last--
			}
			send(calls[:last]...)
			select {
			case <-b.entered:
			case <-ctx.Done():
				t.Fatal("the gated store did not start")
			}
			send(calls[last:]...)
			// Let the calls after it run, if anything lets them.
			time.Sleep(50 * time.Millisecond)
			close(b.gate)
			replies := map[uint64]*pb.Reply{}
			for len(replies) < len(calls) {
				r, err := stream.Recv()
				if err != nil {
					t.Fatalf("after %d replies: %v", len(replies), err)
				}
				replies[r.GetId()] = r
			}
			_ = stream.CloseSend()
			b.mu.Lock()
			ops := slices.Clone(b.ops)
			b.mu.Unlock()
			want := []string{"store gate", "store a", "vote", "finish"}
			if abort {
				want = []string{"store gate", "abort"}
			}
			if fmt.Sprint(ops) != fmt.Sprint(want) {
				t.Errorf("the backend saw %q, want %q", ops, want)
			}
			for i := range calls {
				e := replies[uint64(i+1)].GetError()
				switch {
				case !abort || i == len(calls)-1:
					if e != nil {
						t.Errorf("call %d: %v", i+1, e.GetMessage())
					}
				case i == 0:
					// The store it canceled: its outcome does not matter.
				case e == nil || !slices.Contains(e.GetDetail().GetKinds(), pb.ErrorDetail_CLOSED):
					t.Errorf("call %d, queued before the abort: %v, want ErrClosed", i+1, e)
				}
			}
			b.w.check(t)
		})
	}
}
