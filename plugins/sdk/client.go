package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/walltrace"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// Client is the host side of one connection to one plugin process. It is
// what go-plugin dispenses (see ClientPluginSets); host/pluginhost wraps it
// with supervision. All methods are safe for concurrent use.
//
// The hot storage calls travel on one persistent Calls stream, opened on
// first use and multiplexed by call id; a plugin that does not serve it
// gets the unary RPCs instead (see calls_client.go).
//
// Every error names the plugin. When the process exits, calls in flight
// and later calls fail at once with an error matching ErrPluginUnavailable;
// a Client never reconnects: the host starts a new process and gets a new
// Client.
type Client struct {
	name    string
	done    context.Context // canceled by go-plugin when the process exits
	conn    *grpc.ClientConn
	plugin  pb.PluginClient
	backend pb.BackendClient
	mount   pb.MountClient
	// noCommit: the plugin was built before the Commit RPC (it answered
	// Unimplemented); one-phase commits then run as Vote and Finish.
	noCommit atomic.Bool

	// The Calls stream carrying the hot calls (calls_client.go): mode is
	// fixed at NewClient; noStream says the plugin answered Unimplemented
	// (it predates Calls), so every call goes unary; streamSem (one
	// token) serializes opening the stream, and a caller whose context
	// ends while it waits gives up.
	mode      callsMode
	noStream  atomic.Bool
	streamSem chan struct{}
	stream    atomic.Pointer[callStream]

	// The hang watch (hang.go), set before use: calls with no deadline
	// of their own and no answer within hangAfter are reported to hung.
	hangAfter time.Duration
	hung      HangFunc
	gaveUp    atomic.Bool // a watched call went unanswered: the process is being killed
}

// NewClient returns a Client over conn, for the plugin called name. done
// must be canceled when the plugin process exits (go-plugin's GRPCClient
// context is). Tests and in-process transports may pass
// context.Background().
func NewClient(name string, done context.Context, conn *grpc.ClientConn) *Client {
	return &Client{
		name:    name,
		done:    done,
		conn:    conn,
		plugin:  pb.NewPluginClient(conn),
		backend: pb.NewBackendClient(conn),
		mount:   pb.NewMountClient(conn),
		mode:    callsModeFromEnv(),

		streamSem: make(chan struct{}, 1),
	}
}

// Name returns the plugin's name as the host knows it.
func (c *Client) Name() string { return c.name }

// Done is closed when the plugin process has exited.
func (c *Client) Done() <-chan struct{} { return c.done.Done() }

// Alive reports whether the plugin process is still running.
func (c *Client) Alive() bool { return c.done.Err() == nil }

func (c *Client) check(op string) error {
	if !c.Alive() {
		return fmt.Errorf("plugin %q: %s: plugin process exited: %w", c.name, op, ErrPluginUnavailable)
	}
	return nil
}

func (c *Client) wrap(ctx context.Context, op string, err error) error {
	return fromStatus(ctx, c.name, op, err, c.Alive())
}

// Describe asks the plugin what it exports.
func (c *Client) Describe(ctx context.Context) (Description, error) {
	if err := c.check("describe"); err != nil {
		return Description{}, err
	}
	d, err := c.plugin.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return Description{}, c.wrap(ctx, "describe", err)
	}
	return descriptionFromPB(d), nil
}

// Configure passes the plugin block's settings to the plugin.
func (c *Client) Configure(ctx context.Context, cfg hcl.Values) error {
	if err := c.check("configure"); err != nil {
		return err
	}
	vals, err := valuesToPB(cfg)
	if err != nil {
		return fmt.Errorf("plugin %q: configure: %w: %w", c.name, err, storage.ErrInvalid)
	}
	if _, err := c.plugin.Configure(ctx, &pb.ConfigureRequest{Config: vals}); err != nil {
		return c.wrap(ctx, "configure", err)
	}
	return nil
}

// Resolve runs the mount function req.Function in the plugin.
func (c *Client) Resolve(ctx context.Context, req MountRequest) (MountTarget, error) {
	op := "mount function " + req.Function
	if err := c.check(op); err != nil {
		return MountTarget{}, err
	}
	args, err := argsToPB(req.Args)
	if err != nil {
		return MountTarget{}, fmt.Errorf("plugin %q: %s: %w: %w", c.name, op, err, storage.ErrInvalid)
	}
	t, err := c.mount.Resolve(ctx, &pb.ResolveRequest{Function: req.Function, Path: req.Path, Args: args})
	if err != nil {
		return MountTarget{}, c.wrap(ctx, op, err)
	}
	return MountTarget{Partition: t.GetPartition(), Folder: t.GetFolder(), Server: t.GetServer()}, nil
}

// Open opens a storage of backend type typ in the plugin. name is the
// storage block's label; cfg is the block decoded with the type's schema.
func (c *Client) Open(ctx context.Context, typ, name string, cfg hcl.Values) (*RemoteStorage, error) {
	op := fmt.Sprintf("open storage %q", name)
	if err := c.check(op); err != nil {
		return nil, err
	}
	vals, err := valuesToPB(cfg)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %s: %w: %w", c.name, op, err, storage.ErrInvalid)
	}
	resp, err := c.backend.Open(ctx, &pb.OpenRequest{Type: typ, Name: name, Config: vals})
	if err != nil {
		return nil, c.wrap(ctx, op, err)
	}
	return &RemoteStorage{c: c, handle: resp.GetHandle(), typ: typ, name: name, caps: capsFromPB(resp.GetCapabilities())}, nil
}

// RemoteStorage is a storage opened in a plugin process: storage.Storage
// over gRPC. Sentinel errors keep their identity (errors.Is works, a
// conflict is a *storage.ConflictError with every oid). Safe for concurrent
// use as the contract says.
//
// Txn.Store calls are batched: records are sent with the next Store once
// 1 MiB has gathered, or with Vote. An error a backend would report from
// Store is therefore reported by a later Store or by Vote.
type RemoteStorage struct {
	c      *Client
	handle uint64
	typ    string
	name   string
	caps   storage.Capabilities
	closed atomic.Bool
	keys   atomic.Uint64 // the last transaction key handed out
}

// Type returns the backend type the storage was opened with.
func (s *RemoteStorage) Type() string { return s.typ }

// Client returns the connection the storage lives on.
func (s *RemoteStorage) Client() *Client { return s.c }

func (s *RemoteStorage) check(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("plugin %q: storage %q: %s: %w", s.c.name, s.name, op, storage.ErrClosed)
	}
	return s.c.check(op)
}

func (s *RemoteStorage) wrap(ctx context.Context, op string, err error) error {
	return s.c.wrap(ctx, op, err)
}

// Capabilities reports what the backend supports; it was fetched at Open.
func (s *RemoteStorage) Capabilities() storage.Capabilities { return s.caps }

// Load returns the current revision of oid.
func (s *RemoteStorage) Load(ctx context.Context, oid storage.Oid) (storage.Record, error) {
	if err := s.check("load"); err != nil {
		return storage.Record{}, err
	}
	req := &pb.LoadRequest{Handle: s.handle, Oid: uint64(oid)}
	r, err := hotCall(ctx, s.c.calls(ctx), req, func(r *pb.LoadRequest) *pb.Call { return &pb.Call{Op: &pb.Call_Load{Load: r}} },
		(*pb.Reply).GetLoad, s.c.backend.Load)
	if err != nil {
		return storage.Record{}, s.wrap(ctx, "load "+oid.String(), err)
	}
	return recordFromPB(r), nil
}

// LoadBefore returns the revision of oid current just before tid.
func (s *RemoteStorage) LoadBefore(ctx context.Context, oid storage.Oid, tid storage.Tid) (storage.Record, storage.Tid, error) {
	if err := s.check("load before"); err != nil {
		return storage.Record{}, 0, err
	}
	req := &pb.LoadBeforeRequest{Handle: s.handle, Oid: uint64(oid), Tid: uint64(tid)}
	r, err := hotCall(ctx, s.c.calls(ctx), req, func(r *pb.LoadBeforeRequest) *pb.Call { return &pb.Call{Op: &pb.Call_LoadBefore{LoadBefore: r}} },
		(*pb.Reply).GetLoadBefore, s.c.backend.LoadBefore)
	if err != nil {
		return storage.Record{}, 0, s.wrap(ctx, "load "+oid.String()+" before "+tid.String(), err)
	}
	return recordFromPB(r.GetRecord()), storage.Tid(r.GetEnd()), nil
}

// NewOids allocates n fresh oids.
func (s *RemoteStorage) NewOids(ctx context.Context, n int) ([]storage.Oid, error) {
	if err := s.check("new oids"); err != nil {
		return nil, err
	}
	if n < 1 || n > 65536 {
		return nil, fmt.Errorf("plugin %q: new oids: n = %d out of 1..65536: %w", s.c.name, n, storage.ErrInvalid)
	}
	req := &pb.NewOidsRequest{Handle: s.handle, N: int32(n)}
	r, err := hotCall(ctx, s.c.calls(ctx), req, func(r *pb.NewOidsRequest) *pb.Call { return &pb.Call{Op: &pb.Call_NewOids{NewOids: r}} },
		(*pb.Reply).GetNewOids, s.c.backend.NewOids)
	if err != nil {
		return nil, s.wrap(ctx, "new oids", err)
	}
	return oidsFromPB(r.GetOids()), nil
}

// LastTid returns the tid of the newest committed transaction.
func (s *RemoteStorage) LastTid(ctx context.Context) (storage.Tid, error) {
	if err := s.check("last tid"); err != nil {
		return 0, err
	}
	req := &pb.HandleRequest{Handle: s.handle}
	cctx, g := s.c.watch(ctx, "last tid")
	r, err := hotCall(cctx, s.c.calls(cctx), req, func(r *pb.HandleRequest) *pb.Call { return &pb.Call{Op: &pb.Call_LastTid{LastTid: r}} },
		(*pb.Reply).GetLastTid, s.c.backend.LastTid)
	if herr := g.end(s.c, "last tid", err); herr != nil {
		return 0, herr
	}
	if err != nil {
		return 0, s.wrap(ctx, "last tid", err)
	}
	return storage.Tid(r.GetTid()), nil
}

// Begin starts a transaction. No message is sent yet: the plugin begins
// the transaction with the first batch of stores or with Vote, which saves
// a round trip per commit. ErrReadOnly and ErrClosed are reported here.
func (s *RemoteStorage) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	if err := s.check("begin"); err != nil {
		return nil, err
	}
	if s.caps.ReadOnly {
		return nil, fmt.Errorf("plugin %q: storage %q: begin: %w", s.c.name, s.name, storage.ErrReadOnly)
	}
	if err := checkMetaUTF8(meta); err != nil {
		return nil, fmt.Errorf("plugin %q: storage %q: begin: %w", s.c.name, s.name, err)
	}
	pack := s.c.mode == callsPacked && !s.c.noStream.Load()
	return &remoteTxn{s: s, meta: metaToPB(meta), key: s.keys.Add(1), pack: pack}, nil
}

// checkMetaUTF8 reports transaction metadata that cannot cross to a
// plugin: its fields are protobuf strings, which must be UTF-8 (a request
// that does not marshal fails, and on the Calls stream ends the stream
// for every call on it).
func checkMetaUTF8(m storage.TxMeta) error {
	bad := func(what, s string) error {
		return fmt.Errorf("transaction %s %q is not valid UTF-8: %w", what, s, storage.ErrInvalid)
	}
	if !utf8.ValidString(m.User) {
		return bad("user", m.User)
	}
	if !utf8.ValidString(m.Description) {
		return bad("description", m.Description)
	}
	for k, v := range m.Extension {
		if !utf8.ValidString(k) {
			return bad("extension key", k)
		}
		if !utf8.ValidString(v) {
			return bad("extension value of "+k, v)
		}
	}
	return nil
}

// History returns up to max revisions of oid, newest first.
func (s *RemoteStorage) History(ctx context.Context, oid storage.Oid, max int) ([]storage.Revision, error) {
	if err := s.check("history"); err != nil {
		return nil, err
	}
	r, err := s.c.backend.History(ctx, &pb.HistoryRequest{Handle: s.handle, Oid: uint64(oid), Max: clampInt32(max)})
	if err != nil {
		return nil, s.wrap(ctx, "history of "+oid.String(), err)
	}
	out := make([]storage.Revision, len(r.GetRevisions()))
	for i, rv := range r.GetRevisions() {
		out[i] = storage.Revision{Serial: storage.Tid(rv.GetSerial()), Size: int(rv.GetSize()), TxMeta: metaFromPB(rv.GetMeta())}
	}
	return out, nil
}

// Iterate streams committed transactions from the plugin, one message per
// transaction. Breaking out of the loop cancels the stream.
func (s *RemoteStorage) Iterate(ctx context.Context, start, stop storage.Tid) iter.Seq2[storage.TxRecords, error] {
	return func(yield func(storage.TxRecords, error) bool) {
		if err := s.check("iterate"); err != nil {
			yield(storage.TxRecords{}, err)
			return
		}
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := s.c.backend.Iterate(sctx, &pb.IterateRequest{Handle: s.handle, Start: uint64(start), Stop: uint64(stop)})
		if err != nil {
			yield(storage.TxRecords{}, s.wrap(ctx, "iterate", err))
			return
		}
		for {
			m, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(storage.TxRecords{}, s.wrap(ctx, "iterate", err))
				return
			}
			if !yield(storage.TxRecords{TxInfo: infoFromPB(m.GetInfo()), Records: recordsFromPB(m.GetRecords())}, nil) {
				return
			}
		}
	}
}

// UndoLog returns up to max undoable transactions, newest first.
func (s *RemoteStorage) UndoLog(ctx context.Context, max int) ([]storage.TxInfo, error) {
	if err := s.check("undo log"); err != nil {
		return nil, err
	}
	r, err := s.c.backend.UndoLog(ctx, &pb.UndoLogRequest{Handle: s.handle, Max: clampInt32(max)})
	if err != nil {
		return nil, s.wrap(ctx, "undo log", err)
	}
	out := make([]storage.TxInfo, len(r.GetTransactions()))
	for i, t := range r.GetTransactions() {
		out[i] = infoFromPB(t)
	}
	return out, nil
}

// Undo undoes transaction tid.
func (s *RemoteStorage) Undo(ctx context.Context, tid storage.Tid, meta storage.TxMeta) (storage.Tid, []storage.Oid, error) {
	if err := s.check("undo"); err != nil {
		return 0, nil, err
	}
	cctx, g := s.c.watch(ctx, "undo")
	r, err := s.c.backend.Undo(cctx, &pb.UndoRequest{Handle: s.handle, Tid: uint64(tid), Meta: metaToPB(meta)})
	if herr := g.end(s.c, "undo", err); herr != nil {
		return 0, nil, herr
	}
	if err != nil {
		return 0, nil, s.wrap(ctx, "undo "+tid.String(), err)
	}
	return storage.Tid(r.GetTid()), oidsFromPB(r.GetOids()), nil
}

// Pack packs the storage in the plugin; progress, if non-nil, is called on
// the caller's goroutine as the plugin reports.
func (s *RemoteStorage) Pack(ctx context.Context, tid storage.Tid, progress func(done, total int64)) error {
	if err := s.check("pack"); err != nil {
		return err
	}
	stream, err := s.c.backend.Pack(ctx, &pb.PackRequest{Handle: s.handle, Tid: uint64(tid), Progress: progress != nil})
	if err != nil {
		return s.wrap(ctx, "pack", err)
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return s.wrap(ctx, "pack", err)
		}
		if progress != nil {
			progress(m.GetDone(), m.GetTotal())
		}
	}
}

// closeTimeout bounds Close, which has no context.
const closeTimeout = 30 * time.Second

// Close closes the storage in the plugin. If the plugin process has
// already exited there is nothing left to release and Close returns nil.
// Close twice returns nil.
func (s *RemoteStorage) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if !s.c.Alive() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if _, err := s.c.backend.Close(ctx, &pb.HandleRequest{Handle: s.handle}); err != nil {
		err = s.wrap(ctx, fmt.Sprintf("close storage %q", s.name), err)
		if errors.Is(err, ErrPluginUnavailable) {
			return nil
		}
		return err
	}
	return nil
}

func clampInt32(n int) int32 {
	switch {
	case n > 1<<31-1:
		return 1<<31 - 1
	case n < -1<<31:
		return -1 << 31
	}
	return int32(n)
}

// storeBatchBytes is how much record data a Txn gathers before sending it.
const storeBatchBytes = 1 << 20

// remoteTxn is a transaction in a plugin. It is used by one goroutine at a
// time (the Txn contract); mu only guards against a concurrent Abort.
type remoteTxn struct {
	s    *RemoteStorage
	meta *pb.TxMeta

	// id is the plugin's transaction id, 0 until the first message
	// begins it there.
	id uint64
	// key names the transaction before its id is known; beginSent says a
	// request that begins it was sent, so Abort must reach the plugin
	// (by key) even if no answer came back.
	key       uint64
	beginSent bool

	mu     sync.Mutex
	voted  bool
	done   bool
	broken error // a batch that began the transaction failed
	// The records not sent yet: packed (when the Calls stream with packed
	// records is expected) or one message each; bufBytes counts either.
	pack     bool
	buf      []*pb.Record
	packed   packedBatch
	bufBytes int
	// collected is what the plugin's Finish reported it removed.
	collected []storage.Oid
}

// txBatch is a batch of records on its way to the plugin.
type txBatch struct {
	recs   []*pb.Record
	packed []byte // packed records, after recs
	// large: a record of storeBatchBytes or more; the batch goes as a
	// unary call, so it does not hold up the other calls on the stream.
	large bool
}

// pb returns every record of the batch as a message, for a unary call
// (packed data is not copied).
func (b txBatch) pb() ([]*pb.Record, error) {
	if len(b.packed) == 0 {
		return b.recs, nil
	}
	recs, err := unpackRecords(b.packed)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "unpack the batch for a unary call: %v", err)
	}
	out := slices.Grow(slices.Clip(b.recs), len(recs))
	for _, r := range recs {
		out = append(out, recordToPB(r))
	}
	return out, nil
}

// release hands the packed buffer back for reuse, once the call that
// carried the batch has returned: gRPC marshals a message (copying a
// bytes field) before Send or a unary call returns, so nothing refers
// to the buffer any more.
func (b txBatch) release() { putPackBuf(b.packed) }

// batch returns the buffered records without clearing them.
func (t *remoteTxn) batch() txBatch {
	return txBatch{recs: t.buf, packed: t.packed.bytes()}
}

// clear drops the buffered records.
func (t *remoteTxn) clear() {
	t.buf, t.packed, t.bufBytes = nil, packedBatch{}, 0
}

func (t *remoteTxn) closedErr(op string) error {
	return fmt.Errorf("plugin %q: %s: transaction is over: %w", t.s.c.name, op, storage.ErrClosed)
}

func (t *remoteTxn) Store(ctx context.Context, rec storage.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	// The operation's name is for errors only: built when one is
	// returned, not for each of a batch's thousand records.
	op := func() string { return "store " + rec.Oid.String() }
	switch {
	case t.done:
		return t.closedErr(op())
	case t.s.closed.Load():
		return fmt.Errorf("plugin %q: %s: storage %q is closed: %w", t.s.c.name, op(), t.s.name, storage.ErrClosed)
	case t.voted:
		return fmt.Errorf("plugin %q: %s after vote: %w", t.s.c.name, op(), storage.ErrInvalid)
	case t.broken != nil:
		return fmt.Errorf("plugin %q: %s: an earlier store failed, abort the transaction: %w", t.s.c.name, op(), t.broken)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("plugin %q: %s: %w", t.s.c.name, op(), err)
	}
	if rec.Data == nil {
		return fmt.Errorf("plugin %q: %s: nil data: %w", t.s.c.name, op(), storage.ErrInvalid)
	}
	if !t.s.c.Alive() {
		return t.s.c.check(op())
	}
	if len(rec.Data) >= storeBatchBytes {
		// A large record goes at once, without a copy, after what
		// gathered before it so store order is kept.
		before, err := t.batch().pb()
		if err != nil {
			return t.s.wrap(ctx, op(), err)
		}
		t.clear()
		return t.send(ctx, op(), txBatch{recs: append(before, recordToPB(rec)), large: true})
	}
	// The caller may reuse its buffers after Store returns.
	if t.pack {
		t.packed.add(rec)
	} else {
		p := recordToPB(rec)
		p.Data = slices.Clone(rec.Data)
		p.Refs = slices.Clone(p.Refs)
		t.buf = append(t.buf, p)
	}
	t.bufBytes += len(rec.Data) + 8*len(rec.Refs) + 16
	if t.bufBytes >= storeBatchBytes {
		b := t.batch()
		t.clear()
		err := t.send(ctx, op(), b)
		b.release()
		return err
	}
	return nil
}

func (t *remoteTxn) request() *pb.StoreRequest {
	req := &pb.StoreRequest{Txn: t.id}
	if t.id == 0 {
		req.Handle, req.Meta, req.Key = t.s.handle, t.meta, t.key
		t.beginSent = true
	}
	return req
}

// calls returns the Calls stream for a batch, nil to call unary.
func (t *remoteTxn) calls(ctx context.Context, b txBatch) *callStream {
	if b.large {
		return nil
	}
	return t.s.c.calls(ctx)
}

// storeOrVote sends a Store or, with vote, a Vote request carrying b.
func (t *remoteTxn) storeOrVote(ctx context.Context, b txBatch, vote bool) (*pb.StoreResponse, error) {
	req := t.request()
	if cs := t.calls(ctx, b); cs != nil {
		req.Records, req.PackedRecords = b.recs, b.packed
		if vote {
			return callFor(ctx, cs, &pb.Call{Op: &pb.Call_Vote{Vote: req}}, (*pb.Reply).GetVote)
		}
		return callFor(ctx, cs, &pb.Call{Op: &pb.Call_Store{Store: req}}, (*pb.Reply).GetStore)
	}
	var err error
	if req.Records, err = b.pb(); err != nil {
		return nil, err
	}
	if vote {
		return t.s.c.backend.Vote(ctx, req)
	}
	return t.s.c.backend.Store(ctx, req)
}

func (t *remoteTxn) send(ctx context.Context, op string, b txBatch) error {
	resp, err := t.storeOrVote(ctx, b, false)
	if err != nil {
		t.noteAnswer(err)
		err = t.s.wrap(ctx, op, err)
		if t.id == 0 {
			// The plugin aborted the transaction this batch began; the
			// records of the batch are lost, so the transaction is.
			t.broken = err
		}
		return err
	}
	t.id = resp.GetTxn()
	return nil
}

// noteAnswer looks at the error of a request that began the transaction:
// an error the plugin answered means it aborted what the request began,
// so Abort need not name it; a canceled, timed out or broken call may
// have begun it there unanswered.
func (t *remoteTxn) noteAnswer(err error) {
	if t.id != 0 {
		return
	}
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded, codes.Unavailable, codes.Unknown, codes.Internal:
	default:
		t.beginSent = false
	}
}

func (t *remoteTxn) Vote(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.done:
		return t.closedErr("vote")
	case t.voted:
		return fmt.Errorf("plugin %q: vote twice: %w", t.s.c.name, storage.ErrInvalid)
	case t.broken != nil:
		return fmt.Errorf("plugin %q: vote: an earlier store failed, abort the transaction: %w", t.s.c.name, t.broken)
	case t.s.closed.Load():
		return fmt.Errorf("plugin %q: vote: storage %q is closed: %w", t.s.c.name, t.s.name, storage.ErrClosed)
	}
	t.voted = true
	b := t.batch()
	t.clear()
	if err := t.s.c.check("vote"); err != nil {
		return err
	}
	cctx, g := t.s.c.watch(ctx, "vote")
	resp, err := t.storeOrVote(cctx, b, true)
	b.release()
	herr := g.end(t.s.c, "vote", err)
	if err != nil {
		t.noteAnswer(err)
		if herr != nil {
			return herr
		}
		err = t.s.wrap(ctx, "vote", err)
		if cerr := contextEnded(ctx); cerr != nil && !errors.Is(err, storage.ErrCommitLockTimeout) && !errors.Is(err, ErrPluginUnavailable) {
			// The host's deadline fired before the plugin's answer
			// arrived: the vote was still waiting for the commit lock
			// (or writing), which the contract reports as a timeout.
			return fmt.Errorf("plugin %q: vote: %w", t.s.c.name, errors.Join(storage.ErrCommitLockTimeout, cerr))
		}
		return err
	}
	t.id = resp.GetTxn()
	return nil
}

func (t *remoteTxn) Finish(ctx context.Context) (storage.Tid, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return 0, t.closedErr("finish")
	}
	if t.id == 0 || !t.voted {
		return 0, fmt.Errorf("plugin %q: finish without a successful vote: %w", t.s.c.name, storage.ErrInvalid)
	}
	if err := t.s.c.check("finish"); err != nil {
		return 0, err
	}
	req := &pb.TxnRequest{Txn: t.id}
	cctx, g := t.s.c.watch(ctx, "finish")
	r, err := hotCall(cctx, t.s.c.calls(cctx), req, func(r *pb.TxnRequest) *pb.Call { return &pb.Call{Op: &pb.Call_Finish{Finish: r}} },
		(*pb.Reply).GetFinish, t.s.c.backend.Finish)
	if herr := g.end(t.s.c, "finish", err); herr != nil {
		return 0, herr
	}
	if err != nil {
		return 0, t.s.wrap(ctx, "finish", err)
	}
	t.done = true
	if c := r.GetCollected(); len(c) > 0 {
		t.collected = oidsFromPB(c)
	}
	return storage.Tid(r.GetTid()), nil
}

// Commit sends the buffered records with a Commit request: the plugin
// stores them, votes and finishes in one call (storage.OnePhaseTxn). An
// error the plugin answered is a vote failure or a failed finish, as the
// backend reported it; a call that got no answer (canceled, plugin gone)
// leaves the outcome unknown, and Abort then names the transaction so a
// commit that had not started yet is aborted.
func (t *remoteTxn) Commit(ctx context.Context) (storage.Tid, error) {
	if !t.s.c.noCommit.Load() {
		tid, unimplemented, err := t.commit(ctx)
		if !unimplemented {
			return tid, err
		}
		t.s.c.noCommit.Store(true)
	}
	// A plugin without the Commit RPC: two phases, same contract.
	if err := t.Vote(ctx); err != nil {
		_ = t.Abort(context.WithoutCancel(ctx))
		return 0, err
	}
	return t.Finish(context.WithoutCancel(ctx))
}

// commit sends the Commit request; unimplemented reports a plugin that
// does not know it (nothing happened there, and the transaction is as it
// was before the call).
func (t *remoteTxn) commit(ctx context.Context) (_ storage.Tid, unimplemented bool, _ error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.done:
		return 0, false, t.closedErr("commit")
	case t.voted:
		return 0, false, fmt.Errorf("plugin %q: commit after vote: %w", t.s.c.name, storage.ErrInvalid)
	case t.broken != nil:
		return 0, false, fmt.Errorf("plugin %q: commit: an earlier store failed, abort the transaction: %w", t.s.c.name, t.broken)
	case t.s.closed.Load():
		return 0, false, fmt.Errorf("plugin %q: commit: storage %q is closed: %w", t.s.c.name, t.s.name, storage.ErrClosed)
	}
	if err := t.s.c.check("commit"); err != nil {
		return 0, false, err
	}
	if walltrace.On {
		walltrace.Mark("h.commit")
	}
	b := t.batch()
	beginSent := t.beginSent
	req := t.request()
	var r *pb.FinishResponse
	var err error
	cctx, g := t.s.c.watch(ctx, "commit")
	if cs := t.calls(cctx, b); cs != nil {
		req.Records, req.PackedRecords = b.recs, b.packed
		r, err = callFor(cctx, cs, &pb.Call{Op: &pb.Call_Commit{Commit: req}}, (*pb.Reply).GetCommit)
	} else {
		if req.Records, err = b.pb(); err == nil {
			r, err = t.s.c.backend.Commit(cctx, req)
		}
	}
	herr := g.end(t.s.c, "commit", err)
	if status.Code(err) == codes.Unimplemented {
		// The batch stays buffered for the two-phase fallback.
		t.beginSent = beginSent
		return 0, true, nil
	}
	t.voted = true
	t.clear()
	b.release()
	if err != nil {
		t.noteAnswer(err)
		if herr != nil {
			return 0, false, herr
		}
		return 0, false, t.s.wrap(ctx, "commit", err)
	}
	t.done = true
	if c := r.GetCollected(); len(c) > 0 {
		t.collected = oidsFromPB(c)
	}
	return storage.Tid(r.GetTid()), false, nil
}

// Collected returns the oids the plugin's backend removed in the finished
// commit (storage.CollectingTxn): nil before a successful Finish, and
// always nil for a backend that collects nothing at commit.
func (t *remoteTxn) Collected() []storage.Oid {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.collected)
}

func (t *remoteTxn) Abort(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return nil
	}
	t.done = true
	t.clear()
	if t.id == 0 && !t.beginSent {
		return nil // never reached the plugin
	}
	if err := t.s.c.check("abort"); err != nil {
		return err
	}
	req := &pb.TxnRequest{Txn: t.id}
	if t.id == 0 {
		// A request that began it got no answer: the plugin may hold it
		// (voted, with the commit lock). Name it by key.
		req.Handle, req.Key = t.s.handle, t.key
	}
	cctx, g := t.s.c.watch(ctx, "abort")
	_, err := hotCall(cctx, t.s.c.calls(cctx), req, func(r *pb.TxnRequest) *pb.Call { return &pb.Call{Op: &pb.Call_Abort{Abort: r}} },
		(*pb.Reply).GetAbort, t.s.c.backend.Abort)
	if herr := g.end(t.s.c, "abort", err); herr != nil {
		return herr
	}
	if err != nil {
		return t.s.wrap(ctx, "abort", err)
	}
	return nil
}

var (
	_ storage.Storage       = (*RemoteStorage)(nil)
	_ storage.Txn           = (*remoteTxn)(nil)
	_ storage.CollectingTxn = (*remoteTxn)(nil)
	_ storage.OnePhaseTxn   = (*remoteTxn)(nil)
)
