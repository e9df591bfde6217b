package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/walltrace"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// Server is the plugin side of the protocol: it serves a Plugin's backends
// and mount functions over gRPC. Storages and transactions are named by
// handles the host holds. All methods are safe for concurrent use. The
// calls of one transaction reach its backend Txn one at a time, in the
// order they arrived, as the storage contract promises the backend: an
// Abort that arrives while a call of its transaction still runs (the
// host gave up waiting for it) cancels that call's context and waits for
// it to return (see txnturn.go).
type Server struct {
	pb.UnimplementedPluginServer
	pb.UnimplementedBackendServer
	pb.UnimplementedMountServer

	plugin *Plugin
	logger hclog.Logger

	mu       sync.Mutex
	next     uint64
	storages map[uint64]*openStorage
	txns     map[uint64]*openTxn
	// keys maps the host's key of a transaction to its id; aborted holds
	// keys the host aborted before their transaction began here (an Abort
	// can overtake the request it names). Both are per storage handle.
	keys    map[txnKey]uint64
	aborted *earlyAborts
	closed  bool
}

// txnKey is how the host names a transaction whose id it never learned.
type txnKey struct{ handle, key uint64 }

// maxAbortedKeys bounds the remembered early aborts (an Abort by key whose
// request never reached the plugin, or had ended, leaves one behind); the
// oldest are forgotten first.
const maxAbortedKeys = 4096

type openStorage struct {
	name string
	typ  string
	st   storage.Storage
}

func newServer(p *Plugin, logger hclog.Logger) *Server {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Server{
		plugin:   p,
		logger:   logger,
		storages: map[uint64]*openStorage{},
		txns:     map[uint64]*openTxn{},
		keys:     map[txnKey]uint64{},
		aborted:  newEarlyAborts(maxAbortedKeys),
	}
}

// closeWait bounds how long closing a storage waits for the calls of its
// transactions to return once interrupted (a backend honouring ctx
// returns in far less). It is well under the 2 s go-plugin gives a plugin
// to exit before killing it, so storages are closed first.
const closeWait = time.Second

// closeAll closes every open storage (aborting its transactions). Serve
// calls it when the host goes away, so backends flush and unlock their
// files. Later calls fail with ErrClosed. The calls of open transactions
// are interrupted, and the storages closed once they returned (up to
// closeWait), so a backend's Close never aborts a transaction beside a
// call of it.
func (s *Server) closeAll() {
	s.mu.Lock()
	sts := s.storages
	ts := make([]*openTxn, 0, len(s.txns))
	for _, t := range s.txns {
		t.interrupt(fmt.Errorf("plugin is shutting down: %w", storage.ErrClosed))
		ts = append(ts, t)
	}
	s.storages = map[uint64]*openStorage{}
	s.txns = map[uint64]*openTxn{}
	s.keys = map[txnKey]uint64{}
	s.aborted = newEarlyAborts(maxAbortedKeys)
	s.closed = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	release := holdTurns(ctx, ts)
	if ctx.Err() != nil {
		s.logger.Warn("closing storages with transaction calls still running", "waited", closeWait.String())
	}
	cancel()
	defer release()
	for _, o := range sts {
		if err := o.st.Close(); err != nil {
			s.logger.Error("close storage", "storage", o.name, "type", o.typ, "error", err)
		} else {
			s.logger.Debug("closed storage", "storage", o.name, "type", o.typ)
		}
	}
}

func (s *Server) storage(h uint64) (storage.Storage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.storages[h]
	if !ok {
		return nil, toStatus(fmt.Errorf("storage handle %d is not open: %w", h, storage.ErrClosed))
	}
	return o.st, nil
}

// reserve takes a place in the queue of transaction id for a call that
// just arrived; a ticket without a transaction if it is over.
func (s *Server) reserve(id uint64) ticket {
	s.mu.Lock()
	t, ok := s.txns[id]
	s.mu.Unlock()
	if !ok {
		return ticket{taken: true}
	}
	return t.reserve()
}

// turn waits for the turn of transaction id, with the place tk the call
// took as it arrived or, if it took none, one taken now. The caller
// releases the turn.
func (s *Server) turn(ctx context.Context, id uint64, tk ticket) (*openTxn, error) {
	if !tk.taken {
		tk = s.reserve(id)
	}
	if tk.t == nil {
		return nil, toStatus(fmt.Errorf("transaction %d is over: %w", id, storage.ErrClosed))
	}
	if err := tk.t.await(ctx, tk); err != nil {
		return nil, toStatus(fmt.Errorf("transaction %d: wait for its previous call: %w", id, err))
	}
	return tk.t, nil
}

func (s *Server) dropTxn(id uint64) {
	s.mu.Lock()
	s.dropTxnLocked(id)
	s.mu.Unlock()
}

func (s *Server) dropTxnLocked(id uint64) {
	if t, ok := s.txns[id]; ok && t.key != 0 {
		delete(s.keys, txnKey{t.handle, t.key})
	}
	delete(s.txns, id)
}

// ---- Plugin ----

func (s *Server) Describe(context.Context, *pb.DescribeRequest) (*pb.Description, error) {
	d, err := descriptionToPB(s.plugin.Describe())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "describe plugin %q: %v", s.plugin.Name, err)
	}
	return d, nil
}

func (s *Server) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	if s.plugin.Configure == nil {
		if len(req.GetConfig()) > 0 {
			return nil, toStatus(fmt.Errorf("plugin %q takes no settings: %w", s.plugin.Name, storage.ErrInvalid))
		}
		return &pb.ConfigureResponse{}, nil
	}
	if err := s.plugin.Configure(ctx, valuesFromPB(req.GetConfig())); err != nil {
		return nil, toStatus(fmt.Errorf("configure plugin %q: %w", s.plugin.Name, err))
	}
	return &pb.ConfigureResponse{}, nil
}

// ---- Backend ----

func (s *Server) Open(ctx context.Context, req *pb.OpenRequest) (*pb.OpenResponse, error) {
	b, ok := s.plugin.Backends[req.GetType()]
	if !ok {
		return nil, toStatus(fmt.Errorf("open storage %q: %w %q (plugin %q exports %v): %w",
			req.GetName(), ErrUnknownBackend, req.GetType(), s.plugin.Name, sortedKeys(s.plugin.Backends), storage.ErrInvalid))
	}
	st, err := b.Open(ctx, req.GetName(), valuesFromPB(req.GetConfig()))
	if err != nil {
		return nil, toStatus(fmt.Errorf("open storage %q (type %s): %w", req.GetName(), req.GetType(), err))
	}
	if st == nil {
		return nil, toStatus(fmt.Errorf("open storage %q (type %s): backend returned no storage", req.GetName(), req.GetType()))
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = st.Close()
		return nil, toStatus(fmt.Errorf("open storage %q: plugin is shutting down: %w", req.GetName(), storage.ErrClosed))
	}
	s.next++
	h := s.next
	s.storages[h] = &openStorage{name: req.GetName(), typ: req.GetType(), st: st}
	s.mu.Unlock()
	s.logger.Debug("opened storage", "storage", req.GetName(), "type", req.GetType(), "handle", h)
	return &pb.OpenResponse{Handle: h, Capabilities: capsToPB(st.Capabilities())}, nil
}

// Close closes a storage. The calls of its open transactions are
// interrupted, and the backend's Close (which aborts them) runs once they
// returned, or after closeWait.
func (s *Server) Close(ctx context.Context, req *pb.HandleRequest) (*pb.Empty, error) {
	s.mu.Lock()
	o, ok := s.storages[req.GetHandle()]
	delete(s.storages, req.GetHandle())
	var ts []*openTxn
	for id, t := range s.txns {
		if t.handle == req.GetHandle() {
			t.interrupt(fmt.Errorf("transaction %d: its storage was closed: %w", id, storage.ErrClosed))
			s.dropTxnLocked(id)
			ts = append(ts, t)
		}
	}
	s.aborted.dropHandle(req.GetHandle())
	s.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, closeWait)
	release := holdTurns(wctx, ts)
	cancel()
	defer release()
	if !ok {
		return &pb.Empty{}, nil
	}
	if err := o.st.Close(); err != nil {
		return nil, toStatus(fmt.Errorf("close storage %q: %w", o.name, err))
	}
	return &pb.Empty{}, nil
}

func (s *Server) Load(ctx context.Context, req *pb.LoadRequest) (*pb.Record, error) {
	st, err := s.storage(req.GetHandle())
	if err != nil {
		return nil, err
	}
	rec, err := st.Load(ctx, storage.Oid(req.GetOid()))
	if err != nil {
		return nil, toStatus(err)
	}
	return recordToPB(rec), nil
}

func (s *Server) LoadBefore(ctx context.Context, req *pb.LoadBeforeRequest) (*pb.LoadBeforeResponse, error) {
	st, err := s.storage(req.GetHandle())
	if err != nil {
		return nil, err
	}
	rec, end, err := st.LoadBefore(ctx, storage.Oid(req.GetOid()), storage.Tid(req.GetTid()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.LoadBeforeResponse{Record: recordToPB(rec), End: uint64(end)}, nil
}

func (s *Server) NewOids(ctx context.Context, req *pb.NewOidsRequest) (*pb.OidList, error) {
	st, err := s.storage(req.GetHandle())
	if err != nil {
		return nil, err
	}
	oids, err := st.NewOids(ctx, int(req.GetN()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.OidList{Oids: oidsToPB(oids)}, nil
}

func (s *Server) LastTid(ctx context.Context, req *pb.HandleRequest) (*pb.TidValue, error) {
	st, err := s.storage(req.GetHandle())
	if err != nil {
		return nil, err
	}
	tid, err := st.LastTid(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.TidValue{Tid: uint64(tid)}, nil
}

func (s *Server) Begin(ctx context.Context, req *pb.BeginRequest) (*pb.BeginResponse, error) {
	id, t, err := s.begin(ctx, req.GetHandle(), req.GetMeta(), 0)
	if err != nil {
		return nil, err
	}
	t.release()
	return &pb.BeginResponse{Txn: id}, nil
}

// begin begins a transaction in storage handle and enters it in the
// table, its turn held by the caller (so an Abort by key that finds it
// waits for the caller's call), who releases it.
func (s *Server) begin(ctx context.Context, handle uint64, meta *pb.TxMeta, key uint64) (uint64, *openTxn, error) {
	st, err := s.storage(handle)
	if err != nil {
		return 0, nil, err
	}
	txn, err := st.Begin(ctx, metaFromPB(meta))
	if err != nil {
		return 0, nil, toStatus(err)
	}
	s.mu.Lock()
	if _, still := s.storages[handle]; !still {
		s.mu.Unlock()
		_ = txn.Abort(ctx)
		return 0, nil, toStatus(fmt.Errorf("begin: storage handle %d was closed: %w", handle, storage.ErrClosed))
	}
	if key != 0 {
		k := txnKey{handle, key}
		if s.aborted.take(k) {
			s.mu.Unlock()
			_ = txn.Abort(ctx)
			return 0, nil, toStatus(fmt.Errorf("begin: the host aborted transaction key %d already: %w", key, storage.ErrClosed))
		}
	}
	s.next++
	id := s.next
	t := &openTxn{handle: handle, key: key, txn: txn, busy: true}
	s.txns[id] = t
	if key != 0 {
		s.keys[txnKey{handle, key}] = id
	}
	s.mu.Unlock()
	return id, t, nil
}

// storeAndMaybeVote runs a Store or Vote request, beginning the
// transaction first when the request says so; tk is the place the call
// took in its transaction's queue as it arrived, if it did.
func (s *Server) storeAndMaybeVote(ctx context.Context, req *pb.StoreRequest, vote bool, tk ticket) (*pb.StoreResponse, error) {
	id := req.GetTxn()
	var t *openTxn
	if id != 0 {
		var err error
		if t, err = s.turn(ctx, id, tk); err != nil {
			return nil, err
		}
		defer t.release()
	}
	recs, err := requestRecords(req)
	if err != nil {
		return nil, err
	}
	began := false
	if t == nil {
		if id, t, err = s.begin(ctx, req.GetHandle(), req.GetMeta(), req.GetKey()); err != nil {
			return nil, err
		}
		defer t.release()
		began = true
	}
	fail := func(err error) (*pb.StoreResponse, error) {
		if began {
			// The host never learns this id: abort, leaving no trace.
			s.dropTxn(id)
			_ = t.abort(context.WithoutCancel(ctx))
		}
		return nil, err
	}
	cctx, cancel, err := t.start(ctx, true, tk.cancel)
	if err != nil {
		// The host aborted it (by key: its call had ended) before this
		// call's turn; that Abort aborts the backend transaction.
		return nil, toStatus(err)
	}
	defer cancel()
	for _, r := range recs {
		if err := t.txn.Store(cctx, r); err != nil {
			return fail(toStatus(err))
		}
	}
	if vote {
		if err := t.txn.Vote(cctx); err != nil {
			// A failed vote can only be aborted; if this request began
			// the transaction the host never learns its id, so fail
			// aborts it here.
			return fail(toStatus(err))
		}
	}
	if err := t.overErr(); err != nil {
		// The host aborted it meanwhile (its call had ended); the Abort,
		// waiting for this turn, aborts the backend transaction.
		return nil, toStatus(err)
	}
	return &pb.StoreResponse{Txn: id}, nil
}

// requestRecords returns the records of a Store, Vote or Commit request:
// those of its records field, then its packed ones.
func requestRecords(req *pb.StoreRequest) ([]storage.Record, error) {
	packed, err := unpackRecords(req.GetPackedRecords())
	if err != nil {
		return nil, toStatus(err)
	}
	if len(req.GetRecords()) == 0 {
		return packed, nil
	}
	recs := make([]storage.Record, 0, len(req.GetRecords())+len(packed))
	for _, r := range req.GetRecords() {
		recs = append(recs, recordFromPB(r))
	}
	return append(recs, packed...), nil
}

func (s *Server) Store(ctx context.Context, req *pb.StoreRequest) (*pb.StoreResponse, error) {
	return s.storeAndMaybeVote(ctx, req, false, ticket{})
}

func (s *Server) Vote(ctx context.Context, req *pb.StoreRequest) (*pb.StoreResponse, error) {
	return s.storeAndMaybeVote(ctx, req, true, ticket{})
}

func (s *Server) Finish(ctx context.Context, req *pb.TxnRequest) (*pb.FinishResponse, error) {
	return s.finish(ctx, req, ticket{})
}

// finish runs a Finish request. An Abort does not cancel it: after a
// successful vote, finishing is what releases the commit lock, and a
// finish cut short would leave the outcome unknown.
func (s *Server) finish(ctx context.Context, req *pb.TxnRequest, tk ticket) (*pb.FinishResponse, error) {
	t, err := s.turn(ctx, req.GetTxn(), tk)
	if err != nil {
		return nil, err
	}
	defer t.release()
	if _, _, err := t.start(ctx, false, nil); err != nil {
		return nil, toStatus(err)
	}
	tid, err := t.txn.Finish(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	t.ended = true
	s.dropTxn(req.GetTxn())
	resp := &pb.FinishResponse{Tid: uint64(tid)}
	if ct, ok := t.txn.(storage.CollectingTxn); ok {
		resp.Collected = oidsToPB(ct.Collected())
	}
	return resp, nil
}

// Commit stores the request's records, votes and finishes in one call
// (one-phase commit). The transaction stays in the table while it runs:
// an Abort (by id or key; the host's call had ended) cancels it, which
// ends a vote still waiting for the commit lock, and waits for it. Any
// error aborts the backend transaction (a no-op after a successful vote
// whose finish failed only releases the lock); an Abort after a commit
// does not undo it.
func (s *Server) Commit(ctx context.Context, req *pb.StoreRequest) (*pb.FinishResponse, error) {
	return s.commit(ctx, req, ticket{})
}

func (s *Server) commit(ctx context.Context, req *pb.StoreRequest, tk ticket) (*pb.FinishResponse, error) {
	if walltrace.On {
		walltrace.Mark("p.decode")
	}
	id := req.GetTxn()
	var t *openTxn
	if id != 0 {
		var err error
		if t, err = s.turn(ctx, id, tk); err != nil {
			return nil, err
		}
		defer t.release()
	}
	recs, err := requestRecords(req)
	if err != nil {
		return nil, err
	}
	if t == nil {
		if id, t, err = s.begin(ctx, req.GetHandle(), req.GetMeta(), req.GetKey()); err != nil {
			return nil, err
		}
		defer t.release()
	}
	cctx, cancel, err := t.start(ctx, true, tk.cancel)
	if err != nil {
		return nil, toStatus(err) // the Abort that ended it aborts the backend
	}
	defer cancel()
	fail := func(err error) (*pb.FinishResponse, error) {
		s.dropTxn(id)
		_ = t.abort(context.WithoutCancel(ctx))
		return nil, toStatus(err)
	}
	for _, r := range recs {
		if err := t.txn.Store(cctx, r); err != nil {
			return fail(err)
		}
	}
	if err := t.overErr(); err != nil {
		// The host aborted it during the stores: do not let a vote that
		// finds the commit lock free commit it anyway.
		return fail(err)
	}
	if walltrace.On {
		walltrace.Mark("p.backend")
	}
	tid, err := storage.CommitOnePhase(cctx, t.txn)
	if walltrace.On {
		walltrace.Mark("p.backendret")
	}
	if err != nil {
		return fail(err)
	}
	t.ended = true
	s.dropTxn(id)
	resp := &pb.FinishResponse{Tid: uint64(tid)}
	if ct, ok := t.txn.(storage.CollectingTxn); ok {
		resp.Collected = oidsToPB(ct.Collected())
	}
	return resp, nil
}

// Abort aborts a transaction. A call of it still running (the host gave
// up waiting for it) is canceled first, and the backend's Abort runs once
// it returned, never beside it.
func (s *Server) Abort(ctx context.Context, req *pb.TxnRequest) (*pb.Empty, error) {
	s.mu.Lock()
	id := req.GetTxn()
	if id == 0 && req.GetKey() != 0 {
		k := txnKey{req.GetHandle(), req.GetKey()}
		var found bool
		if id, found = s.keys[k]; !found {
			// Its request has not begun it yet: make that request fail.
			s.aborted.add(k)
			s.mu.Unlock()
			return &pb.Empty{}, nil
		}
	}
	// It stays in the table until the backend aborted it, so closing its
	// storage waits for that too.
	t, ok := s.txns[id]
	s.mu.Unlock()
	if !ok {
		return &pb.Empty{}, nil
	}
	t.interrupt(fmt.Errorf("transaction %d was aborted by the host: %w", id, storage.ErrClosed))
	// Not bounded by ctx (Background never ends, so await cannot fail):
	// the backend transaction must be aborted, and only after the call
	// it interrupted returned, promptly as its context was canceled;
	// calls queued before this Abort get the turn first and return
	// without reaching the backend.
	_ = t.await(context.Background(), t.reserve())
	defer t.release()
	// Nor is the backend's Abort: ctx may have ended during the wait
	// (the host's stream broke), and a transaction left voted would hold
	// the commit lock with nothing left to abort it.
	err := t.abort(context.WithoutCancel(ctx))
	s.dropTxn(id)
	if err != nil {
		return nil, toStatus(fmt.Errorf("abort transaction %d: %w", id, err))
	}
	return &pb.Empty{}, nil
}

func (s *Server) History(ctx context.Context, req *pb.HistoryRequest) (*pb.HistoryResponse, error) {
	st, err := s.storage(req.GetHandle())
	if err != nil {
		return nil, err
	}
	revs, err := st.History(ctx, storage.Oid(req.GetOid()), int(req.GetMax()))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.HistoryResponse{Revisions: make([]*pb.Revision, len(revs))}
	for i, r := range revs {
		out.Revisions[i] = &pb.Revision{Serial: uint64(r.Serial), Size: int64(r.Size), Meta: metaToPB(r.TxMeta)}
	}
	return out, nil
}

func (s *Server) Iterate(req *pb.IterateRequest, stream pb.Backend_IterateServer) error {
	st, err := s.storage(req.GetHandle())
	if err != nil {
		return err
	}
	for tx, err := range st.Iterate(stream.Context(), storage.Tid(req.GetStart()), storage.Tid(req.GetStop())) {
		if err != nil {
			return toStatus(err)
		}
		if err := stream.Send(&pb.TxRecords{Info: infoToPB(tx.TxInfo), Records: recordsToPB(tx.Records)}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) UndoLog(ctx context.Context, req *pb.UndoLogRequest) (*pb.UndoLogResponse, error) {
	st, err := s.storage(req.GetHandle())
	if err != nil {
		return nil, err
	}
	infos, err := st.UndoLog(ctx, int(req.GetMax()))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.UndoLogResponse{Transactions: make([]*pb.TxInfo, len(infos))}
	for i, in := range infos {
		out.Transactions[i] = infoToPB(in)
	}
	return out, nil
}

func (s *Server) Undo(ctx context.Context, req *pb.UndoRequest) (*pb.UndoResponse, error) {
	st, err := s.storage(req.GetHandle())
	if err != nil {
		return nil, err
	}
	tid, oids, err := st.Undo(ctx, storage.Tid(req.GetTid()), metaFromPB(req.GetMeta()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.UndoResponse{Tid: uint64(tid), Oids: oidsToPB(oids)}, nil
}

func (s *Server) Pack(req *pb.PackRequest, stream pb.Backend_PackServer) error {
	st, err := s.storage(req.GetHandle())
	if err != nil {
		return err
	}
	var progress func(done, total int64)
	var mu sync.Mutex
	finished := false
	if req.GetProgress() {
		// Pack may report from its own goroutines; a stream allows one
		// sender at a time and none after the handler returned.
		progress = func(done, total int64) {
			mu.Lock()
			defer mu.Unlock()
			if finished {
				return
			}
			_ = stream.Send(&pb.PackProgress{Done: done, Total: total})
		}
	}
	err = st.Pack(stream.Context(), storage.Tid(req.GetTid()), progress)
	mu.Lock()
	finished = true
	mu.Unlock()
	return toStatus(err)
}

// ---- Mount ----

func (s *Server) Resolve(ctx context.Context, req *pb.ResolveRequest) (*pb.MountTarget, error) {
	f, ok := s.plugin.Functions[req.GetFunction()]
	if !ok {
		return nil, toStatus(fmt.Errorf("%w %q (plugin %q exports %v): %w",
			ErrUnknownFunction, req.GetFunction(), s.plugin.Name, sortedKeys(s.plugin.Functions), storage.ErrInvalid))
	}
	args := req.GetArgs().AsMap()
	if err := CheckArgs(f.ArgsSchema(), args); err != nil {
		return nil, toStatus(fmt.Errorf("mount function %q: %w", req.GetFunction(), err))
	}
	t, err := f.Resolve(ctx, MountRequest{Function: req.GetFunction(), Path: req.GetPath(), Args: args})
	if err != nil {
		return nil, toStatus(fmt.Errorf("mount function %q: %w", req.GetFunction(), err))
	}
	if t.Partition == "" {
		return nil, toStatus(errors.New("mount function " + req.GetFunction() + " returned no partition"))
	}
	return &pb.MountTarget{Partition: t.Partition, Folder: t.Folder, Server: t.Server}, nil
}

var (
	_ pb.PluginServer  = (*Server)(nil)
	_ pb.BackendServer = (*Server)(nil)
	_ pb.MountServer   = (*Server)(nil)
)
