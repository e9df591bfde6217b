package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/wire"
	"github.com/zhostdb/zhost/internal/walltrace"
)

// maxInFlight bounds the requests one connection may have running at
// once; past it the server stops reading from that connection.
const maxInFlight = 128

// maxLoadMany bounds the oids of one LoadMany.
const maxLoadMany = 65536

// session is one client connection.
type session struct {
	srv    *Server
	conn   net.Conn
	logger hclog.Logger
	fr     wire.FrameReader
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	budget *budget // bytes of the request frames in flight
	reqWG  sync.WaitGroup

	// Outbound frames are appended to obuf in the order they are sent;
	// the writer goroutine writes obuf out whenever it is signaled.
	omu        sync.Mutex
	obuf       []byte
	spare      []byte
	oclosed    bool
	writing    bool // a goroutine is writing obuf out
	flushClose bool
	signal     chan struct{}
	writerDone chan struct{}

	mu         sync.Mutex
	hello      bool
	handles    map[uint32]*partition
	nextHandle uint32
	txns       map[uint64]*openTxn
	// aborted remembers Aborts that found no transaction: the Vote they
	// name may still be on its way to registering (requests run
	// concurrently), and must then fail instead of taking the lock.
	aborted   map[uint64]struct{}
	closeOnce sync.Once
}

// maxAbortedTxns bounds session.aborted.
const maxAbortedTxns = 1024

// openTxn is a transaction of the session, from Vote until Finish or
// Abort.
type openTxn struct {
	p       *partition
	handle  uint32
	records []storage.Record

	mu             sync.Mutex
	state          txnState
	abortRequested bool
	txn            storage.Txn
	timer          *time.Timer
	votedAt        time.Time
}

type txnState int

const (
	txnVoting txnState = iota
	txnVoted
	txnDone
)

func txnKey(handle, txn uint32) uint64 { return uint64(handle)<<32 | uint64(txn) }

func newSession(srv *Server, c net.Conn, id uint64) *session {
	ctx, cancel := context.WithCancel(srv.ctx)
	s := &session{
		srv:        srv,
		conn:       c,
		logger:     srv.logger.With("session", id, "remote", c.RemoteAddr().String()),
		fr:         wire.FrameReader{R: bufio.NewReaderSize(c, 64<<10), Max: srv.opts.MaxMessageSize},
		ctx:        ctx,
		cancel:     cancel,
		sem:        make(chan struct{}, maxInFlight),
		budget:     newBudget(int64(srv.opts.MaxInFlightBytes)),
		signal:     make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		handles:    make(map[uint32]*partition),
		txns:       make(map[uint64]*openTxn),
		aborted:    make(map[uint64]struct{}),
	}
	return s
}

func (s *session) enqueue(id uint32, m wire.Message, inline bool) {
	s.omu.Lock()
	if s.oclosed {
		s.omu.Unlock()
		return
	}
	start := len(s.obuf)
	s.obuf = wire.AppendFrame(s.obuf, id, m)
	if len(s.obuf)-start-4 > s.srv.opts.MaxMessageSize {
		s.obuf = wire.AppendFrame(s.obuf[:start], id, &wire.Error{Code: wire.CodeTooLarge,
			Message: fmt.Sprintf("%s reply of %d bytes exceeds the message size limit of %d", m.Kind(), len(s.obuf)-start, s.srv.opts.MaxMessageSize)})
	}
	over := len(s.obuf) > s.srv.opts.MaxQueuedBytes
	if over {
		s.oclosed = true
	}
	if over {
		s.omu.Unlock()
		s.logger.Warn("client does not read its replies: disconnecting", "queued_bytes", s.srv.opts.MaxQueuedBytes)
		s.conn.Close()
		return
	}
	if !inline || s.writing {
		s.omu.Unlock()
		select {
		case s.signal <- struct{}{}:
		default:
		}
		return
	}
	// Write from this goroutine: it saves waking the writer goroutine,
	// which is most of a round trip's cost on an idle server. Whatever
	// others queue meanwhile goes out in the same loop.
	s.writing = true
	for len(s.obuf) > 0 && !s.oclosed {
		buf := s.obuf
		s.obuf = s.spare[:0]
		s.spare = nil
		s.omu.Unlock()
		err := s.write(buf)
		s.omu.Lock()
		if cap(buf) <= 1<<20 {
			s.spare = buf[:0]
		}
		if err != nil {
			s.oclosed = true
		}
	}
	s.writing = false
	closing := s.flushClose
	s.omu.Unlock()
	if closing {
		select {
		case s.signal <- struct{}{}:
		default:
		}
	}
}

// send queues a frame for the writer goroutine. Frames reach the client
// in the order send and reply are called. It never blocks on the
// network, so it may be called with a partition's lock held.
func (s *session) send(id uint32, m wire.Message) { s.enqueue(id, m, false) }

// reply sends a frame, writing it from the calling goroutine when no
// write is in progress. It may block on the network for up to
// WriteTimeout, so it must not be called with a lock held.
func (s *session) reply(id uint32, m wire.Message) { s.enqueue(id, m, true) }

func (s *session) write(buf []byte) error {
	if walltrace.On {
		walltrace.Mark("s.write")
		defer walltrace.Mark("s.written")
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout))
	if _, err := s.conn.Write(buf); err != nil {
		s.logger.Debug("write failed", "error", err)
		s.conn.Close()
		return err
	}
	return nil
}

// fatal sends a last error frame and closes the connection once it is
// written.
func (s *session) fatal(id uint32, code wire.Code, msg string) {
	s.logger.Warn("closing connection", "reason", msg)
	s.send(id, &wire.Error{Code: code, Message: msg})
	s.omu.Lock()
	s.flushClose = true
	s.omu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *session) writer() {
	defer close(s.writerDone)
	for {
		select {
		case <-s.signal:
		case <-s.ctx.Done():
			return
		}
		s.omu.Lock()
		if s.writing {
			// An inline writer is at work; it drains the queue.
			s.omu.Unlock()
			continue
		}
		buf := s.obuf
		s.obuf = s.spare[:0]
		s.spare = nil
		closeNow := s.flushClose
		if closeNow {
			s.oclosed = true
		}
		s.writing = len(buf) > 0
		s.omu.Unlock()
		if len(buf) > 0 {
			err := s.write(buf)
			s.omu.Lock()
			s.writing = false
			if cap(buf) <= 1<<20 {
				s.spare = buf[:0]
			}
			more := len(s.obuf) > 0
			s.omu.Unlock()
			if err != nil {
				return
			}
			if more {
				select {
				case s.signal <- struct{}{}:
				default:
				}
			}
		}
		if closeNow {
			// Half-close so the error frame reaches the client before
			// the reader sees the connection go away.
			if tc, ok := s.conn.(interface{ CloseWrite() error }); ok {
				tc.CloseWrite()
			}
			time.AfterFunc(time.Second, func() { s.conn.Close() })
			return
		}
	}
}

// close closes the connection; run's cleanup does the rest.
func (s *session) close(why string) {
	s.closeOnce.Do(func() {
		s.logger.Debug("closing", "reason", why)
		s.conn.Close()
	})
}

// drain waits until the session holds no voted transaction or ctx ends.
func (s *session) drain(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := len(s.txns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *session) run() {
	go s.writer()
	defer s.cleanup()
	opts := &s.srv.opts
	deadlineSet := true
	s.conn.SetReadDeadline(time.Now().Add(opts.FrameTimeout))
	for {
		if !s.fr.Buffered() {
			if s.hello {
				// Idle between frames is fine; a frame once started
				// must arrive within FrameTimeout.
				if deadlineSet {
					s.conn.SetReadDeadline(time.Time{})
					deadlineSet = false
				}
				if _, err := s.fr.R.Peek(1); err != nil {
					s.readFailed(err)
					return
				}
				if !s.fr.Buffered() {
					s.conn.SetReadDeadline(time.Now().Add(opts.FrameTimeout))
					deadlineSet = true
				}
			}
		}
		// Backpressure: a large frame is read only once the bytes of
		// the requests in flight leave room for it. Until then the
		// connection is not read and the client's sends block.
		size, err := s.fr.PeekLength()
		if walltrace.On {
			walltrace.Mark("s.peek")
		}
		if err != nil {
			s.readFailed(err)
			return
		}
		cost := s.budget.cost(size)
		waited, err := s.budget.acquire(s.ctx, cost)
		if err != nil {
			return
		}
		if waited && !s.fr.Buffered() {
			// The wait was the server's, not a stalled client's.
			s.conn.SetReadDeadline(time.Now().Add(opts.FrameTimeout))
			deadlineSet = true
		}
		f, err := s.fr.ReadFrame()
		if walltrace.On {
			walltrace.Mark("s.read " + f.Kind.String())
		}
		if err != nil {
			s.budget.release(cost)
			s.readFailed(err)
			return
		}
		if !s.hello {
			s.budget.release(cost)
			if !s.handleHello(f) {
				return
			}
			continue
		}
		if s.fast(f) {
			s.budget.release(cost)
			continue
		}
		select {
		case s.sem <- struct{}{}:
		case <-s.ctx.Done():
			s.budget.release(cost)
			return
		}
		s.reqWG.Add(1)
		go func() {
			defer func() {
				s.budget.release(cost)
				<-s.sem
				s.reqWG.Done()
			}()
			s.handle(f)
		}()
	}
}

func (s *session) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.logger.Debug("client disconnected")
	case errors.Is(err, wire.ErrTooLarge):
		s.fatal(0, wire.CodeTooLarge, err.Error())
		s.awaitFlush()
	case errors.Is(err, wire.ErrMalformed):
		s.fatal(0, wire.CodeMalformed, err.Error())
		s.awaitFlush()
	case errors.As(err, &ne) && ne.Timeout():
		s.logger.Warn("client stalled in the middle of a frame (or before its hello): disconnecting", "timeout", s.srv.opts.FrameTimeout)
	default:
		s.logger.Debug("read failed", "error", err)
	}
}

// awaitFlush gives the writer a moment to send a final error frame.
func (s *session) awaitFlush() {
	select {
	case <-s.writerDone:
	case <-time.After(time.Second):
	}
}

func (s *session) cleanup() {
	s.close("reader ended")
	s.cancel()
	s.reqWG.Wait()
	s.mu.Lock()
	txns := s.txns
	s.txns = map[uint64]*openTxn{}
	handles := s.handles
	s.mu.Unlock()
	for _, ot := range txns {
		s.abortTxn(ot, "client disconnected")
	}
	seen := map[*partition]bool{}
	for _, p := range handles {
		if !seen[p] {
			seen[p] = true
			p.unsubscribeAll(s)
		}
	}
	<-s.writerDone
	s.omu.Lock()
	s.oclosed = true
	s.obuf, s.spare = nil, nil
	s.omu.Unlock()
}

func (s *session) handleHello(f wire.Frame) bool {
	if f.Kind != wire.KindHello {
		s.fatal(f.ID, wire.CodeProtocol, fmt.Sprintf("expected Hello, got %s", f.Kind))
		s.awaitFlush()
		return false
	}
	m, err := wire.Decode(f)
	if err != nil {
		s.fatal(f.ID, wire.CodeMalformed, err.Error())
		s.awaitFlush()
		return false
	}
	h := m.(*wire.Hello)
	if h.Magic != wire.Magic {
		s.fatal(f.ID, wire.CodeProtocol, "bad magic: not a zhost client")
		s.awaitFlush()
		return false
	}
	if h.Version != wire.Version {
		s.fatal(f.ID, wire.CodeProtocol, fmt.Sprintf("protocol version %d not supported (server speaks %d)", h.Version, wire.Version))
		s.awaitFlush()
		return false
	}
	s.hello = true
	if h.Name != "" {
		s.logger = s.logger.With("client", h.Name)
	}
	s.logger.Debug("client connected")
	s.reply(f.ID, &wire.Welcome{Version: wire.Version, MaxMessageSize: uint32(s.srv.opts.MaxMessageSize), Server: s.srv.opts.Name})
	return true
}

// decodeWhole decodes f's body into m and reports whether it was well
// formed and complete; a malformed one is left to the slow path, which
// answers the error.
func decodeWhole(f wire.Frame, m interface{ Decode(*wire.Decoder) }) bool {
	d := wire.NewDecoder(f.Body)
	m.Decode(d)
	return d.Finish() == nil
}

// cached returns the server cache's current record of oid in the
// partition open under handle, if it holds one.
func (s *session) cached(handle uint32, oid storage.Oid) (storage.Record, bool) {
	p, err := s.partitionFor(handle)
	if err != nil {
		return storage.Record{}, false
	}
	return p.cache.get(oid)
}

func (s *session) partitionFor(handle uint32) (*partition, error) {
	s.mu.Lock()
	p := s.handles[handle]
	s.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("handle %d: %w", handle, wire.ErrUnknownHandle)
	}
	return p, nil
}

func (s *session) fail(id uint32, err error) {
	s.reply(id, wire.ErrorFrom(err))
}

// fast answers cache hits and pings inline in the reader goroutine; it
// returns false for anything that must run in its own goroutine.
func (s *session) fast(f wire.Frame) bool {
	switch f.Kind {
	case wire.KindPing:
		s.reply(f.ID, &wire.OK{})
		return true
	case wire.KindLoad:
		var m wire.Load
		if !decodeWhole(f, &m) {
			return false
		}
		if r, ok := s.cached(m.Handle, m.Oid); ok {
			s.reply(f.ID, &wire.RecordReply{Record: r})
			return true
		}
	case wire.KindLoadBefore:
		var m wire.LoadBefore
		if !decodeWhole(f, &m) {
			return false
		}
		if r, ok := s.cached(m.Handle, m.Oid); ok && r.Serial < m.Tid {
			s.reply(f.ID, &wire.RecordReply{Record: r})
			return true
		}
	}
	return false
}

func (s *session) shutting() bool {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	return s.srv.shutting
}

func (s *session) handle(f wire.Frame) {
	if walltrace.On {
		walltrace.Mark("s.handle")
		defer walltrace.Mark("s.handled")
	}
	msg, err := wire.Decode(f)
	if err != nil {
		s.fail(f.ID, err)
		return
	}
	ctx := s.ctx
	switch m := msg.(type) {
	case *wire.Hello:
		s.fail(f.ID, fmt.Errorf("second Hello: %w", wire.ErrProtocol))
	case *wire.Open:
		s.open(f.ID, m)
	case *wire.Close:
		s.mu.Lock()
		p := s.handles[m.Handle]
		delete(s.handles, m.Handle)
		s.mu.Unlock()
		if p != nil {
			p.unsubscribe(s, m.Handle)
		}
		s.reply(f.ID, &wire.OK{})
	case *wire.Load:
		p, err := s.partitionFor(m.Handle)
		if err != nil {
			s.fail(f.ID, err)
			return
		}
		r, err := p.load(ctx, m.Oid)
		if err != nil {
			s.fail(f.ID, err)
			return
		}
		s.reply(f.ID, &wire.RecordReply{Record: r})
	case *wire.LoadBefore:
		p, err := s.partitionFor(m.Handle)
		if err != nil {
			s.fail(f.ID, err)
			return
		}
		r, end, err := p.loadBefore(ctx, m.Oid, m.Tid)
		if err != nil {
			s.fail(f.ID, err)
			return
		}
		s.reply(f.ID, &wire.RecordReply{Record: r, End: end})
	case *wire.LoadMany:
		s.loadMany(ctx, f.ID, m)
	case *wire.NewOids:
		p, err := s.partitionFor(m.Handle)
		if err != nil {
			s.fail(f.ID, err)
			return
		}
		if p.readOnly {
			s.fail(f.ID, fmt.Errorf("new oids on partition %q: %w", p.name, storage.ErrReadOnly))
			return
		}
		oids, err := p.st.NewOids(ctx, int(m.N))
		if err != nil {
			s.fail(f.ID, err)
			return
		}
		s.reply(f.ID, &wire.Oids{Oids: oids})
	case *wire.LastTid:
		p, err := s.partitionFor(m.Handle)
		if err != nil {
			s.fail(f.ID, err)
			return
		}
		s.reply(f.ID, &wire.TidReply{Tid: storage.Tid(p.lastTid.Load())})
	case *wire.Vote:
		s.vote(f.ID, m)
	case *wire.Finish:
		s.finish(f.ID, m)
	case *wire.Commit:
		s.commitOnePhase(f.ID, m)
	case *wire.Abort:
		key := txnKey(m.Handle, m.Txn)
		s.mu.Lock()
		ot := s.txns[key]
		delete(s.txns, key)
		if ot == nil {
			if len(s.aborted) >= maxAbortedTxns {
				clear(s.aborted)
			}
			s.aborted[key] = struct{}{}
		}
		s.mu.Unlock()
		if ot != nil {
			s.abortTxn(ot, "")
		}
		s.reply(f.ID, &wire.OK{})
	case *wire.History:
		p, err := s.partitionFor(m.Handle)
		if err != nil {
			s.fail(f.ID, err)
			return
		}
		revs, err := p.st.History(ctx, m.Oid, int(m.Max))
		if err != nil {
			s.fail(f.ID, err)
			return
		}
		s.reply(f.ID, &wire.Revisions{Revisions: revs})
	case *wire.Iterate:
		s.iterate(ctx, f.ID, m)
	case *wire.UndoLog:
		p, err := s.partitionFor(m.Handle)
		if err != nil {
			s.fail(f.ID, err)
			return
		}
		txns, err := p.st.UndoLog(ctx, int(m.Max))
		if err != nil {
			s.fail(f.ID, err)
			return
		}
		s.reply(f.ID, &wire.TxInfos{Txns: txns})
	case *wire.Undo:
		s.undo(f.ID, m)
	case *wire.Pack:
		p, err := s.partitionFor(m.Handle)
		if err != nil {
			s.fail(f.ID, err)
			return
		}
		if p.readOnly {
			s.fail(f.ID, fmt.Errorf("pack partition %q: %w", p.name, storage.ErrReadOnly))
			return
		}
		if err := p.st.Pack(ctx, m.Tid, nil); err != nil {
			s.fail(f.ID, err)
			return
		}
		p.resetAll("pack")
		s.reply(f.ID, &wire.OK{})
	case *wire.Ping:
		s.reply(f.ID, &wire.OK{})
	default:
		s.fail(f.ID, fmt.Errorf("%s is not a request: %w", f.Kind, wire.ErrProtocol))
	}
}

func (s *session) open(id uint32, m *wire.Open) {
	if s.shutting() {
		s.fail(id, wire.ErrShutdown)
		return
	}
	p := s.srv.partitions[m.Partition]
	if p == nil {
		s.fail(id, fmt.Errorf("partition %q: %w", m.Partition, wire.ErrUnknownPartition))
		return
	}
	s.mu.Lock()
	s.nextHandle++
	h := s.nextHandle
	s.handles[h] = p
	s.mu.Unlock()
	p.subscribe(s, h, id, m.LastTid)
}

func (s *session) loadMany(ctx context.Context, id uint32, m *wire.LoadMany) {
	p, err := s.partitionFor(m.Handle)
	if err != nil {
		s.fail(id, err)
		return
	}
	if len(m.Oids) > maxLoadMany {
		s.fail(id, fmt.Errorf("LoadMany of %d oids exceeds %d: %w", len(m.Oids), maxLoadMany, storage.ErrInvalid))
		return
	}
	items := make([]wire.Item, len(m.Oids))
	var misses []int
	for i, oid := range m.Oids {
		if r, ok := p.cache.get(oid); ok && (m.Before == storage.ZeroTid || r.Serial < m.Before) {
			items[i] = wire.Item{Record: r}
			continue
		}
		misses = append(misses, i)
	}
	// Misses go to the backend (a plugin round trip each), several at a
	// time: a cold cache after a restart must not cost one round trip
	// per object in sequence.
	var firstErr error
	var errMu sync.Mutex
	one := func(i int) {
		oid := m.Oids[i]
		var r storage.Record
		var end storage.Tid
		var err error
		if m.Before == storage.ZeroTid {
			r, err = p.load(ctx, oid)
		} else {
			r, end, err = p.loadBefore(ctx, oid, m.Before)
		}
		if err != nil {
			code := wire.CodeOf(err)
			if code == wire.CodeInternal || code == wire.CodeCanceled {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
			items[i] = wire.Item{Code: code, Record: storage.Record{Oid: oid}}
			return
		}
		items[i] = wire.Item{Record: r, End: end}
	}
	if len(misses) == 1 {
		one(misses[0])
	} else if len(misses) > 1 {
		const workers = 8
		next := make(chan int)
		var wg sync.WaitGroup
		for range min(workers, len(misses)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					one(i)
				}
			}()
		}
		for _, i := range misses {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	if firstErr != nil {
		s.fail(id, firstErr)
		return
	}
	s.reply(id, &wire.Records{Items: items})
}

func (s *session) iterate(ctx context.Context, id uint32, m *wire.Iterate) {
	p, err := s.partitionFor(m.Handle)
	if err != nil {
		s.fail(id, err)
		return
	}
	maxTxns := int(m.MaxTxns)
	if maxTxns <= 0 || maxTxns > 10000 {
		maxTxns = 10000
	}
	maxBytes := int(m.MaxBytes)
	if limit := s.srv.opts.MaxMessageSize / 2; maxBytes <= 0 || maxBytes > limit {
		maxBytes = limit
	}
	page := &wire.TxnPage{}
	size := 0
	for tx, err := range p.st.Iterate(ctx, m.Start, m.Stop) {
		if err != nil {
			s.fail(id, err)
			return
		}
		n := 64
		for _, r := range tx.Records {
			n += r.Size() + 16
		}
		if len(page.Txns) > 0 && (len(page.Txns) >= maxTxns || size+n > maxBytes) {
			page.More = true
			page.Next = tx.Tid
			break
		}
		size += n
		page.Txns = append(page.Txns, tx)
	}
	s.reply(id, page)
}

func (s *session) lockWait(millis uint32) time.Duration {
	wait := s.srv.opts.CommitTimeout
	if millis > 0 {
		if d := time.Duration(millis) * time.Millisecond; d < wait {
			wait = d
		}
	}
	return wait
}

// writablePartition returns the partition a Vote or Commit names, or the
// error to answer: unknown handle, read-only partition, shutting down.
func (s *session) writablePartition(handle uint32) (*partition, error) {
	p, err := s.partitionFor(handle)
	if err != nil {
		return nil, err
	}
	if p.readOnly {
		return nil, fmt.Errorf("commit to partition %q: %w", p.name, storage.ErrReadOnly)
	}
	if s.shutting() {
		return nil, wire.ErrShutdown
	}
	return p, nil
}

func (s *session) vote(id uint32, m *wire.Vote) {
	p, err := s.writablePartition(m.Handle)
	if err != nil {
		s.fail(id, err)
		return
	}
	key := txnKey(m.Handle, m.Txn)
	ot := &openTxn{p: p, handle: m.Handle, records: m.Records}
	s.mu.Lock()
	if _, gone := s.aborted[key]; gone {
		delete(s.aborted, key)
		s.mu.Unlock()
		s.fail(id, fmt.Errorf("transaction %d was aborted before its vote ran: %w", m.Txn, storage.ErrClosed))
		return
	}
	if s.txns[key] != nil {
		s.mu.Unlock()
		s.fail(id, fmt.Errorf("transaction %d is already open: %w", m.Txn, storage.ErrInvalid))
		return
	}
	s.txns[key] = ot
	s.mu.Unlock()
	drop := func() {
		s.mu.Lock()
		if s.txns[key] == ot {
			delete(s.txns, key)
		}
		s.mu.Unlock()
	}

	// Begin and the stores need no lock: only the vote is serialized, so
	// other transactions prepare while one holds the lock.
	lctx, cancel := context.WithTimeout(s.ctx, s.lockWait(m.LockWaitMillis))
	txn, err := s.prepareBackend(p, m)
	if err != nil {
		cancel()
		drop()
		s.fail(id, err)
		return
	}
	p.lockWaiters.Add(1)
	err = p.commit.Lock(lctx)
	p.lockWaiters.Add(-1)
	cancel()
	if err != nil {
		txn.Abort(context.Background())
		drop()
		s.fail(id, fmt.Errorf("partition %q: %w", p.name, err))
		return
	}
	if err := txn.Vote(s.ctx); err != nil {
		txn.Abort(context.Background())
		p.commit.Unlock()
		drop()
		s.fail(id, err)
		return
	}
	ot.mu.Lock()
	ot.txn = txn
	if ot.abortRequested || s.ctx.Err() != nil {
		ot.state = txnDone
		ot.mu.Unlock()
		txn.Abort(context.Background())
		p.commit.Unlock()
		drop()
		s.fail(id, fmt.Errorf("transaction aborted during its vote: %w", storage.ErrClosed))
		return
	}
	ot.state = txnVoted
	ot.votedAt = time.Now()
	ot.timer = time.AfterFunc(s.srv.opts.TransactionTimeout, func() { s.expire(key, ot) })
	ot.mu.Unlock()
	s.reply(id, &wire.OK{})
}

// prepareBackend runs Begin and Store* on the backend; on error the
// backend transaction is aborted.
func (s *session) prepareBackend(p *partition, m *wire.Vote) (storage.Txn, error) {
	ctx := s.ctx
	txn, err := p.st.Begin(ctx, m.Meta)
	if err != nil {
		return nil, err
	}
	for _, r := range m.Records {
		if err := txn.Store(ctx, r); err != nil {
			txn.Abort(context.Background())
			return nil, err
		}
	}
	return txn, nil
}

func (s *session) finish(id uint32, m *wire.Finish) {
	key := txnKey(m.Handle, m.Txn)
	s.mu.Lock()
	ot := s.txns[key]
	delete(s.txns, key)
	s.mu.Unlock()
	if ot == nil {
		s.fail(id, fmt.Errorf("finish transaction %d: not voted, or aborted by the server after the transaction timeout: %w", m.Txn, wire.ErrUnknownTxn))
		return
	}
	ot.mu.Lock()
	if ot.state != txnVoted {
		ot.mu.Unlock()
		s.fail(id, fmt.Errorf("finish transaction %d: aborted by the server after the transaction timeout: %w", m.Txn, wire.ErrUnknownTxn))
		return
	}
	ot.state = txnDone
	ot.timer.Stop()
	ot.mu.Unlock()
	p := ot.p
	// The backend's own commit lock, held since its Vote, orders this
	// transaction before the next one; the partition's lock is released
	// now so the next transaction votes (and its client round trip and
	// plugin hop run) while this one's Finish writes and fsyncs. Under a
	// group sync policy that lets one fsync cover several transactions.
	// The ticket, taken while still holding the lock, keeps publication
	// (cache, invalidation log, pushes, reply) in tid order.
	turn := p.ticket()
	p.commit.Unlock()
	// Finish must not be cut short by a disconnect: the backend may have
	// committed even if the call reports an error.
	tid, err := ot.txn.Finish(context.WithoutCancel(s.ctx))
	p.waitTurn(turn)
	defer p.endTurn()
	if err != nil {
		ot.txn.Abort(context.Background())
		s.logger.Error("finish failed", "partition", p.name, "error", err)
		// The backend may have committed anyway: every client drops its
		// cache, in turn so no later commit is published first.
		p.resetAll("a transaction's finish failed; its outcome is unknown")
		// Queued, not written inline: this goroutine holds the turn, and a
		// client that does not read must not stall the partition.
		s.send(id, wire.ErrorFrom(err))
		return
	}
	oids := make([]storage.Oid, len(ot.records))
	for i, r := range ot.records {
		oids[i] = r.Oid
	}
	// A backend that frees unreachable objects in the commit (packless)
	// names them: they changed (to gone) like the stored ones, so they
	// leave every cache and join the invalidation.
	var collected []storage.Oid
	if ct, ok := ot.txn.(storage.CollectingTxn); ok {
		collected = ct.Collected()
	}
	var reply wire.Message = &wire.TidReply{Tid: tid}
	if len(collected) > 0 {
		// The committer gets no Invalidate for its own commit: the
		// reply names what the commit collected.
		reply = &wire.Committed{Tid: tid, Collected: collected}
	}
	p.publish(tid, oids, ot.records, collected, s, m.Handle, id, reply)
}

// commitOnePhase handles Commit: Vote then Finish as one step. It takes
// the partition's commit path exactly as Vote then Finish do (commit
// lock, publication ticket, invalidation log, caches, pushes), with one
// backend call (storage.CommitOnePhase). The transaction is never
// registered in s.txns: there is no gap between vote and finish for an
// Abort or the transaction timeout to act in.
func (s *session) commitOnePhase(id uint32, m *wire.Commit) {
	p, err := s.writablePartition(m.Handle)
	if err != nil {
		s.fail(id, err)
		return
	}
	lctx, cancel := context.WithTimeout(s.ctx, s.lockWait(m.LockWaitMillis))
	if walltrace.On {
		walltrace.Mark("s.prepare")
	}
	txn, err := s.prepareBackend(p, (*wire.Vote)(m))
	if err != nil {
		cancel()
		s.fail(id, err)
		return
	}
	p.lockWaiters.Add(1)
	err = p.commit.Lock(lctx)
	p.lockWaiters.Add(-1)
	cancel()
	if err != nil {
		txn.Abort(context.Background())
		s.fail(id, fmt.Errorf("partition %q: %w", p.name, err))
		return
	}
	// Once the backend call started it is not cut short by a disconnect
	// (the backend may commit whatever the call reports), as in Finish.
	fctx := context.WithoutCancel(s.ctx)
	var tid storage.Tid
	var turn uint64
	if p.lockWaiters.Load() > 0 {
		// Others wait for the lock: vote and finish separately, releasing
		// the lock before the backend's Finish exactly as Vote then Finish
		// do, so the next transaction's vote overlaps this one's fsync.
		if err := txn.Vote(s.ctx); err != nil {
			txn.Abort(context.Background())
			p.commit.Unlock()
			s.fail(id, err)
			return
		}
		turn = p.ticket()
		p.commit.Unlock()
		tid, err = txn.Finish(fctx)
	} else {
		// Nobody waits: one backend call (one plugin hop instead of two).
		// The vote happens inside it, so the partition's lock is held
		// through it (a later transaction must not vote first) and the
		// ticket is taken under it.
		turn = p.ticket()
		if walltrace.On {
			walltrace.Mark("s.backend")
		}
		tid, err = storage.CommitOnePhase(fctx, txn)
		if walltrace.On {
			walltrace.Mark("s.backendret")
		}
		p.commit.Unlock()
	}
	p.waitTurn(turn)
	defer p.endTurn()
	if err != nil {
		txn.Abort(context.Background())
		if !storage.IsVoteFailure(err) {
			s.logger.Error("commit failed", "partition", p.name, "error", err)
			// The backend may have committed anyway: every client drops
			// its cache, in turn so no later commit is published first.
			p.resetAll("a transaction's commit failed; its outcome is unknown")
		}
		s.send(id, wire.ErrorFrom(err)) // queued: the turn is held
		return
	}
	oids := make([]storage.Oid, len(m.Records))
	for i, r := range m.Records {
		oids[i] = r.Oid
	}
	var collected []storage.Oid
	if ct, ok := txn.(storage.CollectingTxn); ok {
		collected = ct.Collected()
	}
	var reply wire.Message = &wire.TidReply{Tid: tid}
	if len(collected) > 0 {
		reply = &wire.Committed{Tid: tid, Collected: collected}
	}
	if walltrace.On {
		walltrace.Mark("s.publish")
	}
	p.publish(tid, oids, m.Records, collected, s, m.Handle, id, reply)
	if walltrace.On {
		walltrace.Mark("s.published")
	}
}

// abortTxn aborts a transaction the session holds. reason, if set, is
// logged when the transaction held the commit lock.
func (s *session) abortTxn(ot *openTxn, reason string) {
	ot.mu.Lock()
	switch ot.state {
	case txnVoting:
		ot.abortRequested = true
		ot.mu.Unlock()
		return
	case txnDone:
		ot.mu.Unlock()
		return
	}
	ot.state = txnDone
	ot.timer.Stop()
	held := time.Since(ot.votedAt)
	ot.mu.Unlock()
	ot.txn.Abort(context.Background())
	ot.p.commit.Unlock()
	if reason != "" {
		s.logger.Warn(reason+" while holding the commit lock: transaction aborted, lock released",
			"partition", ot.p.name, "held", held.Round(time.Millisecond))
	}
}

// expire aborts a voted transaction whose Finish did not come in time.
func (s *session) expire(key uint64, ot *openTxn) {
	s.mu.Lock()
	if s.txns[key] == ot {
		delete(s.txns, key)
	}
	s.mu.Unlock()
	s.abortTxn(ot, fmt.Sprintf("transaction timeout (%s) exceeded", s.srv.opts.TransactionTimeout))
}

func (s *session) undo(id uint32, m *wire.Undo) {
	p, err := s.partitionFor(m.Handle)
	if err != nil {
		s.fail(id, err)
		return
	}
	if p.readOnly {
		s.fail(id, fmt.Errorf("undo on partition %q: %w", p.name, storage.ErrReadOnly))
		return
	}
	lctx, cancel := context.WithTimeout(s.ctx, s.srv.opts.CommitTimeout)
	err = p.commit.Lock(lctx)
	cancel()
	if err != nil {
		s.fail(id, fmt.Errorf("partition %q: %w", p.name, err))
		return
	}
	defer p.commit.Unlock()
	// Commits finishing before this undo publish first.
	p.waitTurn(p.ticket())
	defer p.endTurn()
	tid, oids, err := p.st.Undo(context.WithoutCancel(s.ctx), m.Tid, m.Meta)
	if err != nil {
		if !undoRefused(err) {
			// The backend may have committed the undo anyway (a plugin
			// that died after writing it, an fsync that failed after
			// the write): every client drops its cache, as after a
			// Finish of unknown outcome.
			s.logger.Error("undo failed", "partition", p.name, "error", err)
			p.resetAll("an undo failed; its outcome is unknown")
		}
		s.send(id, wire.ErrorFrom(err)) // queued: the commit lock and the turn are held
		return
	}
	p.publish(tid, oids, nil, nil, s, m.Handle, id, &wire.Undone{Tid: tid, Oids: oids})
}

// undoRefused reports whether an Undo error says the backend committed
// nothing: the undo was refused before any write.
func undoRefused(err error) bool {
	return storage.IsVoteFailure(err) || errors.Is(err, storage.ErrUndoConflict) ||
		errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrNotSupported)
}
