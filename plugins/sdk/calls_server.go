package sdk

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zhostdb/zhost/internal/walltrace"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// Calls serves the hot calls of the storage contract on one persistent
// stream (see the .proto). Every call runs on its own goroutine with its
// own context, exactly as the unary RPC would: a Vote waiting for the
// backend's commit lock does not hold up the Finish, arriving later on
// the same stream, that releases it. A call of a known transaction takes
// its place in that transaction's queue as it comes off the stream, so
// the calls of one transaction reach the backend one at a time in stream
// order. Replies go out as calls end, one sender at a time. When the
// host closes the stream (or the connection breaks) every call still
// running is canceled, and Calls returns once they have all ended.
func (s *Server) Calls(stream pb.Backend_CallsServer) error {
	var sendMu sync.Mutex
	send := func(r *pb.Reply) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(r)
	}
	if err := send(&pb.Reply{Op: &pb.Reply_Hello{Hello: &pb.Empty{}}}); err != nil {
		return err
	}

	var mu sync.Mutex
	running := map[uint64]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		mu.Lock()
		for _, cancel := range running {
			cancel()
		}
		mu.Unlock()
		wg.Wait()
	}()

	base := stream.Context()
	for {
		call, err := stream.Recv()
		if walltrace.On {
			walltrace.Mark("p.recv")
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		id := call.GetId()
		if _, ok := call.GetOp().(*pb.Call_Cancel); ok {
			mu.Lock()
			if cancel, ok := running[id]; ok {
				cancel()
			}
			mu.Unlock()
			continue
		}
		var ctx context.Context
		var cancel context.CancelFunc
		if d := call.GetTimeoutNs(); d > 0 {
			ctx, cancel = context.WithTimeout(base, time.Duration(d))
		} else {
			ctx, cancel = context.WithCancel(base)
		}
		// Registered before the next Recv, so a cancel that follows the
		// call on the stream always finds it.
		mu.Lock()
		running[id] = cancel
		mu.Unlock()
		tk := s.reserveCall(call)
		tk.cancel = cancel
		wg.Go(func() {
			if walltrace.On {
				walltrace.Mark("p.run")
			}
			r := s.serveCall(ctx, call, tk)
			mu.Lock()
			delete(running, id)
			mu.Unlock()
			cancel()
			r.Id = id
			if walltrace.On {
				walltrace.Mark("p.send")
			}
			if err := send(r); err != nil {
				s.logger.Debug("call stream: reply not sent", "call", id, "error", err)
			}
			if walltrace.On {
				walltrace.Mark("p.sent")
			}
		})
	}
}

// reserveCall takes, for a call of a transaction the plugin already
// knows (a Store, Vote, Commit or Finish naming its id), a place in that
// transaction's queue; the zero ticket for any other call. An Abort
// takes none: it cancels the call running and makes the queued ones
// return (see Server.Abort).
func (s *Server) reserveCall(call *pb.Call) ticket {
	var id uint64
	switch op := call.GetOp().(type) {
	case *pb.Call_Store:
		id = op.Store.GetTxn()
	case *pb.Call_Vote:
		id = op.Vote.GetTxn()
	case *pb.Call_Commit:
		id = op.Commit.GetTxn()
	case *pb.Call_Finish:
		id = op.Finish.GetTxn()
	}
	if id == 0 {
		return ticket{}
	}
	return s.reserve(id)
}

// serveCall runs one call of the Calls stream with the unary RPC's
// handler and wraps its result or error in a Reply; tk is the call's
// place in its transaction's queue (reserveCall).
func (s *Server) serveCall(ctx context.Context, call *pb.Call, tk ticket) *pb.Reply {
	var r pb.Reply
	var err error
	switch op := call.GetOp().(type) {
	case *pb.Call_Load:
		var x *pb.Record
		x, err = s.Load(ctx, op.Load)
		r.Op = &pb.Reply_Load{Load: x}
	case *pb.Call_LoadBefore:
		var x *pb.LoadBeforeResponse
		x, err = s.LoadBefore(ctx, op.LoadBefore)
		r.Op = &pb.Reply_LoadBefore{LoadBefore: x}
	case *pb.Call_NewOids:
		var x *pb.OidList
		x, err = s.NewOids(ctx, op.NewOids)
		r.Op = &pb.Reply_NewOids{NewOids: x}
	case *pb.Call_LastTid:
		var x *pb.TidValue
		x, err = s.LastTid(ctx, op.LastTid)
		r.Op = &pb.Reply_LastTid{LastTid: x}
	case *pb.Call_Store:
		var x *pb.StoreResponse
		x, err = s.storeAndMaybeVote(ctx, op.Store, false, tk)
		r.Op = &pb.Reply_Store{Store: x}
	case *pb.Call_Vote:
		var x *pb.StoreResponse
		x, err = s.storeAndMaybeVote(ctx, op.Vote, true, tk)
		r.Op = &pb.Reply_Vote{Vote: x}
	case *pb.Call_Commit:
		var x *pb.FinishResponse
		x, err = s.commit(ctx, op.Commit, tk)
		r.Op = &pb.Reply_Commit{Commit: x}
	case *pb.Call_Finish:
		var x *pb.FinishResponse
		x, err = s.finish(ctx, op.Finish, tk)
		r.Op = &pb.Reply_Finish{Finish: x}
	case *pb.Call_Abort:
		var x *pb.Empty
		x, err = s.Abort(ctx, op.Abort)
		r.Op = &pb.Reply_Abort{Abort: x}
	default:
		err = status.Errorf(codes.InvalidArgument, "call %d: unknown op %T", call.GetId(), op)
	}
	if err != nil {
		return &pb.Reply{Op: &pb.Reply_Error{Error: callError(err)}}
	}
	return &r
}

// callError turns a handler's status error into its Reply form.
func callError(err error) *pb.CallError {
	st := status.Convert(err)
	// A reply that does not marshal (a string that is not UTF-8) would
	// end the stream for every call on it.
	e := &pb.CallError{Code: int32(st.Code()), Message: strings.ToValidUTF8(st.Message(), "\uFFFD")}
	for _, d := range st.Details() {
		if x, ok := d.(*pb.ErrorDetail); ok {
			e.Detail = x
			break
		}
	}
	return e
}

// statusFromCallError is the host's reverse of callError: the status the
// unary RPC would have returned, for fromStatus.
func statusFromCallError(e *pb.CallError) error {
	st := status.New(codes.Code(e.GetCode()), e.GetMessage())
	if st.Code() == codes.OK {
		// A plugin must not report success as an error; keep it an error.
		st = status.New(codes.Unknown, e.GetMessage())
	}
	if e.GetDetail() != nil {
		if withDetail, err := st.WithDetails(e.GetDetail()); err == nil {
			st = withDetail
		}
	}
	return st.Err()
}
