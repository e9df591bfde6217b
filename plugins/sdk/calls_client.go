package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zhostdb/zhost/internal/walltrace"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// The host's end of the Calls stream (see the .proto and calls_server.go).
//
// A unary gRPC call opens an HTTP/2 stream and hands its request and its
// reply through several goroutines on each side; on a VM whose idle CPUs
// halt, each hand-off can cost a wake-up. On one persistent stream a call
// is one message each way: the caller sends its Call itself (under a
// mutex: gRPC allows one sender per stream) and one reader goroutine
// hands each Reply to the caller waiting for its id.

// EnvPluginCalls selects how the host carries the hot plugin calls, for
// benchmarks that compare the transports in one run: "unary" (one gRPC
// call each, as before the Calls stream), "stream" (the Calls stream,
// records as one protobuf message each) or "packed" (the default: the
// Calls stream with packed records). It is read when a Client is made;
// it is not an operator setting.
const EnvPluginCalls = "ZHOST_PLUGIN_CALLS"

// callsMode is how a Client carries the hot calls.
type callsMode int

const (
	callsPacked callsMode = iota // the stream, packed records
	callsStream                  // the stream, one message per record
	callsUnary                   // unary RPCs only
)

func callsModeFromEnv() callsMode {
	switch os.Getenv(EnvPluginCalls) {
	case "unary":
		return callsUnary
	case "stream":
		return callsStream
	}
	return callsPacked
}

// sendGrace is how often a stream's watchdog looks at the send in
// progress. A send it finds blocked at two looks in a row (so for at
// least sendGrace: the plugin is not reading its stream) whose caller's
// context has ended breaks the stream: a message half sent cannot be
// taken back, so the caller waits for its send, but not forever, and
// returns at most about 2*sendGrace after its context ended. A slow but
// healthy plugin drains a batch well within it; breaking the stream
// fails every call in flight on it, so it is not done lightly.
const sendGrace = time.Second

// helloTimeout bounds the wait for the plugin's first message on a new
// Calls stream; the call then goes unary, and the next call tries again.
const helloTimeout = 10 * time.Second

// callStream is one open Calls stream. Calls on it are safe for
// concurrent use.
type callStream struct {
	c      *Client
	stream pb.Backend_CallsClient
	cancel context.CancelFunc

	// sendSem holds one token while a SendMsg is in progress (gRPC
	// allows one sender per stream); a channel rather than a mutex, so a
	// caller whose context ends while it waits gives up. done is closed
	// when the stream ends.
	sendSem chan struct{}
	done    <-chan struct{}
	// sendSeq counts the starts and ends of sends (odd: one is in
	// progress); sendDone holds the Done channel of the sending call's
	// context. The watchdog reads them.
	sendSeq  atomic.Uint64
	sendDone atomic.Value // <-chan struct{}

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan callResult
	err     error // set once the stream broke; every call fails with it
}

type callResult struct {
	r   *pb.Reply
	err error
}

// calls returns the Calls stream to use, opening it on first use, or nil
// when this call should go unary: the plugin does not serve Calls (asked
// once per connection), the Client is set to unary, or the stream could
// not be opened now (the unary call then reports why).
func (c *Client) calls(ctx context.Context) *callStream {
	if c.mode == callsUnary || c.noStream.Load() {
		return nil
	}
	if cs := c.stream.Load(); cs != nil && !cs.broken() {
		return cs
	}
	select {
	case c.streamSem <- struct{}{}:
	case <-ctx.Done():
		// Another call is opening the stream (waiting up to helloTimeout
		// for the plugin); the unary call reports the context's end.
		return nil
	}
	defer func() { <-c.streamSem }()
	if c.noStream.Load() {
		return nil
	}
	if cs := c.stream.Load(); cs != nil && !cs.broken() {
		return cs
	}
	cs, err := c.openCalls(ctx)
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			c.noStream.Store(true)
		}
		return nil
	}
	c.stream.Store(cs)
	return cs
}

// openCalls opens the stream and waits for the plugin's hello. The
// stream lives as long as the plugin process (c.done), not as long as
// ctx; ctx only bounds the wait for the hello.
func (c *Client) openCalls(ctx context.Context) (*callStream, error) {
	sctx, cancel := context.WithCancel(c.done)
	stream, err := c.backend.Calls(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	// A plugin that neither answers nor fails must not keep the callers
	// queued behind this one (on streamSem) past helloTimeout.
	wait, waitCancel := context.WithTimeout(ctx, helloTimeout)
	defer waitCancel()
	stop := context.AfterFunc(wait, cancel)
	hello, err := stream.Recv()
	if !stop() {
		cancel()
		return nil, fmt.Errorf("open call stream: no hello from the plugin: %w", wait.Err())
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if hello.GetHello() == nil || hello.GetId() != 0 {
		cancel()
		return nil, status.Errorf(codes.Internal, "call stream: the plugin's first message is not a hello")
	}
	cs := &callStream{c: c, stream: stream, cancel: cancel, sendSem: make(chan struct{}, 1), done: sctx.Done(), pending: map[uint64]chan callResult{}}
	go cs.read()
	go cs.watch()
	return cs, nil
}

func (cs *callStream) broken() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.err != nil
}

// read hands each reply to its caller until the stream ends, then fails
// every call in flight.
func (cs *callStream) read() {
	for {
		r, err := cs.stream.Recv()
		if walltrace.On {
			walltrace.Mark("h.recv")
		}
		if err != nil {
			cs.fail(err)
			return
		}
		cs.mu.Lock()
		ch, ok := cs.pending[r.GetId()]
		delete(cs.pending, r.GetId())
		cs.mu.Unlock()
		if ok {
			ch <- callResult{r: r}
		}
	}
}

// fail ends the stream: every call in flight and every later call on it
// gets an Unavailable status (fromStatus names the plugin and turns it
// into ErrPluginUnavailable); the next call opens a new stream if the
// plugin is still there.
func (cs *callStream) fail(cause error) {
	cs.cancel()
	msg := "call stream ended"
	if cause != nil && !errors.Is(cause, io.EOF) {
		msg += ": " + status.Convert(cause).Message()
	}
	err := status.Error(codes.Unavailable, msg)
	cs.mu.Lock()
	if cs.err == nil {
		cs.err = err
	}
	pending := cs.pending
	cs.pending = nil
	cs.mu.Unlock()
	for _, ch := range pending {
		ch <- callResult{err: err}
	}
}

// call sends call and waits for its reply. The error is a gRPC status
// error, as a unary call's would be: the plugin's own (from a CallError),
// the caller's context ending (the plugin is told to cancel the call),
// or Unavailable when the stream broke.
func (cs *callStream) call(ctx context.Context, call *pb.Call) (*pb.Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	ch := make(chan callResult, 1)
	cs.mu.Lock()
	if cs.err != nil {
		err := cs.err
		cs.mu.Unlock()
		return nil, err
	}
	cs.next++
	id := cs.next
	cs.pending[id] = ch
	cs.mu.Unlock()

	call.Id = id
	if dl, ok := ctx.Deadline(); ok {
		call.TimeoutNs = max(int64(time.Until(dl)), 1)
	}
	if walltrace.On {
		walltrace.Mark("h.send")
	}
	select {
	case cs.sendSem <- struct{}{}: // the common case: nobody is sending
	default:
		if ended, r, err := cs.waitToSend(ctx, id, ch); ended {
			return r, err
		}
	}
	err := cs.sendWatched(ctx, call)
	<-cs.sendSem
	if walltrace.On {
		walltrace.Mark("h.sent")
	}
	if err != nil {
		// The stream is over; the reader fails the calls in flight with
		// the reason (this one too, if it is still pending).
		cs.fail(err)
		res := <-ch
		if res.err != nil {
			return nil, res.err
		}
		return res.r, replyError(res.r)
	}
	select {
	case res := <-ch:
		if walltrace.On {
			walltrace.Mark("h.woke")
		}
		if res.err != nil {
			return nil, res.err
		}
		return res.r, replyError(res.r)
	case <-ctx.Done():
		if cs.forget(id) {
			// Tell the plugin, without making the caller wait for the
			// stream (a large message may be going out).
			go cs.send(&pb.Call{Id: id, Op: &pb.Call_Cancel{Cancel: &pb.Empty{}}})
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		// The reply (or the stream's end) was handed over as the
		// context ended: it is the call's outcome (a commit the plugin
		// made must not be reported as failed).
		res := <-ch
		if res.err != nil {
			return nil, res.err
		}
		return res.r, replyError(res.r)
	}
}

// waitToSend waits for the send token of call id, whose reply goes to
// ch; ended is true when the call ends first, with its result.
func (cs *callStream) waitToSend(ctx context.Context, id uint64, ch chan callResult) (ended bool, _ *pb.Reply, _ error) {
	select {
	case cs.sendSem <- struct{}{}:
		return false, nil, nil
	case <-ctx.Done():
		// Nothing was sent: the plugin never heard of the call.
		cs.forget(id)
		return true, nil, status.FromContextError(ctx.Err()).Err()
	case <-cs.done:
		// The stream failed while the call waited; fail reports it.
		res := <-ch
		if res.err != nil {
			return true, nil, res.err
		}
		return true, res.r, replyError(res.r)
	}
}

// forget drops a pending call; false if its result was already handed
// over (or the stream failed it).
func (cs *callStream) forget(id uint64) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, ok := cs.pending[id]; !ok {
		return false
	}
	delete(cs.pending, id)
	return true
}

func (cs *callStream) send(call *pb.Call) {
	select {
	case cs.sendSem <- struct{}{}:
	case <-cs.done:
		return // the plugin's end of the stream ends every call
	}
	_ = cs.stream.Send(call) // a broken stream is the reader's to report
	<-cs.sendSem
}

// sendWatched sends call, holding the send token, where the watchdog
// sees it.
func (cs *callStream) sendWatched(ctx context.Context, call *pb.Call) error {
	cs.sendDone.Store(ctx.Done())
	cs.sendSeq.Add(1)
	err := cs.stream.Send(call)
	cs.sendSeq.Add(1)
	return err
}

// watch breaks the stream when a send has been blocked for sendGrace
// and its caller's context has ended (see sendGrace), until the stream
// ends.
func (cs *callStream) watch() {
	tick := time.NewTicker(sendGrace)
	defer tick.Stop()
	var last uint64
	for {
		select {
		case <-cs.done:
			return
		case <-tick.C:
		}
		seq := cs.sendSeq.Load()
		if seq%2 == 1 && seq == last {
			done, _ := cs.sendDone.Load().(<-chan struct{})
			if cs.sendSeq.Load() == seq && closed(done) {
				cs.fail(status.Errorf(codes.Unavailable, "the plugin has not read its call stream for %v and the sending call's context ended: stream stuck", sendGrace))
				return
			}
		}
		last = seq
	}
}

// closed reports whether ch is closed (never, for nil).
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// replyError is the error a reply carries, nil for a result.
func replyError(r *pb.Reply) error {
	if e := r.GetError(); e != nil {
		return statusFromCallError(e)
	}
	return nil
}

// hotCall runs a hot call on the Calls stream cs or, when cs is nil (a
// plugin without the stream, a large batch, unary mode), as its unary
// RPC. call wraps the request for the stream; get picks its result from
// the reply.
func hotCall[Req, Resp any](ctx context.Context, cs *callStream, req Req, call func(Req) *pb.Call,
	get func(*pb.Reply) *Resp, unary func(context.Context, Req, ...grpc.CallOption) (*Resp, error)) (*Resp, error) {
	if cs != nil {
		return callFor(ctx, cs, call(req), get)
	}
	return unary(ctx, req)
}

// callFor runs call on cs and returns the result get picks from the
// reply. A reply that carries another result than the call's is an
// error, so a confused plugin never causes a nil dereference.
func callFor[T any](ctx context.Context, cs *callStream, call *pb.Call, get func(*pb.Reply) *T) (*T, error) {
	r, err := cs.call(ctx, call)
	if err != nil {
		return nil, err
	}
	if x := get(r); x != nil {
		return x, nil
	}
	return nil, status.Errorf(codes.Internal, "call stream: reply %d carries %T, not the call's result", r.GetId(), r.GetOp())
}
