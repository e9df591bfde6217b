package sdk

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/zhostdb/zhost/plugins/proto"
)

// silentCalls is a plugin whose Calls stream never says hello (wedged
// before it); its unary calls work.
type silentCalls struct{ *Server }

func (silentCalls) Calls(s pb.Backend_CallsServer) error {
	<-s.Context().Done()
	return nil
}

// stuckCalls is a plugin that is alive but stops reading its Calls
// stream after the hello (a wedged or stopped process): the stream's
// flow-control window fills and the host's sends block.
type stuckCalls struct{ *Server }

func (stuckCalls) Calls(s pb.Backend_CallsServer) error {
	if err := s.Send(&pb.Reply{Op: &pb.Reply_Hello{Hello: &pb.Empty{}}}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func serveStuck(t *testing.T) *Client {
	t.Helper()
	return serveBackend(t, func(srv *Server) pb.BackendServer { return stuckCalls{srv} })
}

// serveBackend serves the test plugin with the Backend service backend
// makes around its Server.
func serveBackend(t *testing.T, backend func(*Server) pb.BackendServer) *Client {
	c, _ := serveWith(t, testPlugin(), "stuck", backend)
	return c
}

// TestCallsStuckPluginHonorsDeadline: a plugin that stops reading its
// stream must not hold a caller past its deadline, neither the caller
// whose message cannot go out nor the callers queued behind it.
func TestCallsStuckPluginHonorsDeadline(t *testing.T) {
	c := serveStuck(t)
	cs := c.calls(context.Background())
	if cs == nil {
		t.Fatal("no Calls stream")
	}
	big := make([]byte, 1<<20)
	const deadline = 100 * time.Millisecond
	// Enough 1 MiB calls to fill the stream's window several times.
	for i := range 3 * streamWindow / len(big) {
		res := make(chan error, 1)
		start := time.Now()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			_, err := cs.call(ctx, &pb.Call{Op: &pb.Call_Store{Store: &pb.StoreRequest{Txn: 1, PackedRecords: big}}})
			res <- err
		}()
		select {
		case err := <-res:
			if code := status.Code(err); code != codes.DeadlineExceeded && code != codes.Unavailable {
				t.Fatalf("call %d: %v, want its deadline or the stream's end", i, err)
			}
			if d := time.Since(start); d > deadline+2*sendGrace+time.Second {
				t.Fatalf("call %d returned after %v, its deadline was %v", i, d, deadline)
			}
		case <-time.After(deadline + 2*sendGrace + 5*time.Second):
			t.Fatalf("call %d still blocked %v after its %v deadline: a stuck plugin holds the caller", i, 5*time.Second, deadline)
		}
		if cs.broken() {
			// A fresh stream to the same stuck plugin.
			if cs = c.calls(context.Background()); cs == nil {
				t.Fatal("no new Calls stream")
			}
		}
	}
}

// TestCallsSilentPluginHonorsDeadline: while one call waits for the hello
// of a new stream (up to helloTimeout), a call with a short deadline
// must not queue behind it past its deadline.
func TestCallsSilentPluginHonorsDeadline(t *testing.T) {
	c := serveBackend(t, func(srv *Server) pb.BackendServer { return silentCalls{srv} })
	st, err := c.Open(context.Background(), "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		// No deadline: waits helloTimeout for the stream, then goes unary.
		_, err := st.LastTid(context.Background())
		first <- err
	}()
	time.Sleep(100 * time.Millisecond) // the first call is waiting for the hello
	const deadline = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	_, err = st.LastTid(ctx)
	if d := time.Since(start); d > deadline+time.Second {
		t.Fatalf("a call with a %v deadline returned after %v (err %v), queued behind the hello wait", deadline, d, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call past its deadline: %v, want context.DeadlineExceeded", err)
	}
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("the first call, unary after the hello timeout: %v", err)
		}
	case <-time.After(helloTimeout + 5*time.Second):
		t.Fatal("the first call did not go unary after the hello timeout")
	}
}
