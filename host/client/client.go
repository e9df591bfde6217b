package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/wire"
)

// Options configure a client of one partition, on its own connection.
type Options struct {
	// Addr is the server's address.
	Addr string
	// Partition is the partition to open ("main").
	Partition string
	// Name identifies this client in the server's log.
	Name string
	// TLS, when set, dials with TLS.
	TLS *tls.Config
	// CacheSize bounds the RAM cache in bytes. Default 64 MiB; negative
	// disables the cache.
	CacheSize int64
	// ConnectTimeout bounds the first connection (and each reconnect
	// attempt). Default 5s.
	ConnectTimeout time.Duration
	// WaitTimeout bounds how long a call waits while disconnected.
	// Default 10s.
	WaitTimeout time.Duration
	// MaxBackoff caps the delay between reconnect attempts. Default 2s.
	MaxBackoff time.Duration
	// CallTimeout bounds calls whose context has no deadline. Default 2m.
	CallTimeout time.Duration
	// BusyPoll: see ConnOptions.BusyPoll. 0: off.
	BusyPoll time.Duration
	// Logger receives the client's log. Default hclog.NewNullLogger().
	Logger hclog.Logger
}

// PartitionOptions configure one partition opened on a Conn.
type PartitionOptions struct {
	// CacheSize bounds the partition's RAM cache in bytes. Default
	// 64 MiB; negative disables the cache.
	CacheSize int64
}

// Stats are a client's cache counters.
type Stats struct {
	Hits, Misses, Evictions int64
	// Bytes and Objects are what the cache holds now; MaxBytes its bound.
	Bytes, MaxBytes int64
	Objects         int
	LastTid         storage.Tid
	Connected       bool
}

// Client is one partition of a server, seen as a storage.Storage, with a
// RAM cache kept coherent by the server's invalidations. All methods are
// safe for concurrent use.
type Client struct {
	conn      *Conn
	ownsConn  bool
	partition string
	logger    hclog.Logger
	cache     *cache
	caps      storage.Capabilities
	nextTxn   atomic.Uint32
	closed    atomic.Bool

	mu       sync.Mutex // guards the fields below and orders cache updates
	handle   uint32
	link     *link
	lastTid  storage.Tid
	tidCh    chan struct{} // closed and replaced whenever lastTid changes
	inflight map[storage.Oid]*flight
	watchers map[int]func(storage.Tid, []storage.Oid)
	nextW    int
	voted    map[*txn]struct{}
}

// flight tracks loads of one oid in flight, and the invalidations of
// that oid applied meanwhile: a reply that names the revision as current
// may predate them, so it is cached as ending at the first one after its
// serial.
type flight struct {
	n      int
	invals []storage.Tid
}

// Open connects to opts.Addr and opens opts.Partition. The Client owns
// the connection: closing it closes the connection.
func Open(ctx context.Context, opts Options) (*Client, error) {
	conn, err := Dial(ctx, ConnOptions{
		Addr: opts.Addr, Name: opts.Name, TLS: opts.TLS, ConnectTimeout: opts.ConnectTimeout,
		WaitTimeout: opts.WaitTimeout, MaxBackoff: opts.MaxBackoff, CallTimeout: opts.CallTimeout, BusyPoll: opts.BusyPoll, Logger: opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	c, err := conn.Open(ctx, opts.Partition, PartitionOptions{CacheSize: opts.CacheSize})
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.ownsConn = true
	return c, nil
}

// Open opens a partition on the connection. Each Client it returns is an
// independent storage.Storage with its own cache.
func (cn *Conn) Open(ctx context.Context, partition string, opts PartitionOptions) (*Client, error) {
	size := opts.CacheSize
	if size == 0 {
		size = 64 << 20
	}
	c := &Client{
		conn:      cn,
		partition: partition,
		logger:    cn.logger.With("partition", partition),
		cache:     newCache(size),
		tidCh:     make(chan struct{}),
		inflight:  make(map[storage.Oid]*flight),
		watchers:  make(map[int]func(storage.Tid, []storage.Oid)),
		voted:     make(map[*txn]struct{}),
	}
	l, err := cn.link(ctx)
	if err != nil {
		return nil, fmt.Errorf("open partition %q: %w", partition, err)
	}
	if err := c.open(ctx, l); err != nil {
		return nil, fmt.Errorf("open partition %q: %w", partition, err)
	}
	cn.mu.Lock()
	if cn.closed {
		cn.mu.Unlock()
		return nil, storage.ErrClosed
	}
	cn.parts[c] = struct{}{}
	cn.mu.Unlock()
	return c, nil
}

// open binds the partition on link l and applies the catch-up as its
// reply is read, so that it precedes the partition's first push.
func (c *Client) open(ctx context.Context, l *link) error {
	c.mu.Lock()
	last := c.lastTid
	if last == storage.ZeroTid && c.link != nil {
		// Reopening without having applied any transaction: the server
		// cannot tell us what changed (0 means "no cache"), yet a load
		// may have cached a revision of a transaction we never applied.
		c.cache.clear()
	}
	c.mu.Unlock()
	_, err := l.call(ctx, &wire.Open{Partition: c.partition, LastTid: last}, func(m wire.Message, err error) {
		if err != nil {
			return
		}
		o, ok := m.(*wire.Opened)
		if !ok {
			return
		}
		l.bind(o.Handle, c)
		c.mu.Lock()
		if c.link == nil {
			// First open, before the Client is shared: capabilities
			// never change during its life.
			c.caps = wire.BitsToCaps(o.Caps)
			c.cache.mu.Lock()
			c.cache.keepClosed = c.caps.History
			c.cache.mu.Unlock()
		}
		c.handle = o.Handle
		c.link = l
		c.mu.Unlock()
		switch {
		case o.Resync:
			c.applyReset(o.LastTid, "this client was away longer than the server's invalidation log reaches")
		default:
			for _, inv := range o.Catchup {
				c.applyInvalidation(inv.Tid, inv.Oids)
			}
			c.mu.Lock()
			if c.lastTid != o.LastTid {
				c.setLastTid(o.LastTid)
			}
			c.mu.Unlock()
		}
	})
	return err
}

// setLastTid records a newly applied tid. Called with mu held.
func (c *Client) setLastTid(t storage.Tid) {
	c.lastTid = t
	close(c.tidCh)
	c.tidCh = make(chan struct{})
}

func (c *Client) notify(tid storage.Tid, oids []storage.Oid) {
	c.mu.Lock()
	ws := make([]func(storage.Tid, []storage.Oid), 0, len(c.watchers))
	for _, w := range c.watchers {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		w(tid, oids)
	}
}

// applyInvalidation applies one committed transaction: runs on the
// goroutine reading the link, in commit order.
func (c *Client) applyInvalidation(tid storage.Tid, oids []storage.Oid) {
	if oids == nil {
		// An empty transaction: nil is reserved for "everything".
		oids = []storage.Oid{}
	}
	c.mu.Lock()
	if tid <= c.lastTid {
		c.mu.Unlock()
		return
	}
	c.cache.invalidate(tid, oids)
	for _, o := range oids {
		if f := c.inflight[o]; f != nil {
			f.invals = append(f.invals, tid)
		}
	}
	c.setLastTid(tid)
	c.mu.Unlock()
	c.notify(tid, oids)
}

// applyCommit applies this client's own transaction: the new revisions
// become the current ones in the cache, and the oids the commit collected
// (the server's Committed reply) are invalidated, even if also stored.
func (c *Client) applyCommit(tid storage.Tid, recs []storage.Record, collected []storage.Oid) {
	oids := make([]storage.Oid, 0, len(recs)+len(collected))
	for _, r := range recs {
		oids = append(oids, r.Oid)
	}
	if len(collected) > 0 {
		gone := make(map[storage.Oid]bool, len(collected))
		for _, o := range collected {
			gone[o] = true
		}
		kept := make([]storage.Record, 0, len(recs))
		for _, r := range recs {
			if gone[r.Oid] {
				delete(gone, r.Oid) // already in oids
				continue
			}
			kept = append(kept, r)
		}
		recs = kept
		for _, o := range collected {
			if gone[o] {
				oids = append(oids, o)
				delete(gone, o)
			}
		}
	}
	c.mu.Lock()
	if tid <= c.lastTid {
		c.mu.Unlock()
		return
	}
	c.cache.commit(tid, recs)
	c.cache.invalidate(tid, collected)
	if len(c.inflight) > 0 {
		for _, o := range oids {
			if f := c.inflight[o]; f != nil {
				f.invals = append(f.invals, tid)
			}
		}
	}
	c.setLastTid(tid)
	c.mu.Unlock()
	c.notify(tid, oids)
}

// applyReset drops the cache.
func (c *Client) applyReset(last storage.Tid, why string) {
	c.mu.Lock()
	c.cache.clear()
	for _, f := range c.inflight {
		// Anything in flight may predate what we cannot see any more.
		f.invals = append(f.invals, 0)
	}
	c.setLastTid(last)
	c.mu.Unlock()
	c.logger.Info("cache dropped", "reason", why, "last_tid", last)
	c.notify(last, nil)
}

// startFlight registers loads of oids in flight. Called before sending.
func (c *Client) startFlight(oids ...storage.Oid) {
	c.mu.Lock()
	for _, o := range oids {
		f := c.inflight[o]
		if f == nil {
			f = &flight{}
			c.inflight[o] = f
		}
		f.n++
	}
	c.mu.Unlock()
}

// landLocked ends one flight of rec's oid and caches rec: with its end
// if the server gave one, else as current unless an invalidation after
// its serial arrived meanwhile. Called with mu held.
func (c *Client) landLocked(oid storage.Oid, rec *storage.Record, end storage.Tid) {
	f := c.inflight[oid]
	if f != nil {
		f.n--
		if f.n == 0 {
			delete(c.inflight, oid)
		}
	}
	if rec == nil {
		return
	}
	if end == storage.ZeroTid && f != nil {
		for _, t := range f.invals {
			if t == 0 {
				return // the cache was reset meanwhile
			}
			if t > rec.Serial {
				end = t
				break
			}
		}
	}
	c.cache.put(*rec, end)
}

// do runs a read-only request, retrying on the next connection when the
// current one breaks (within WaitTimeout).
func (c *Client) do(ctx context.Context, build func(handle uint32) wire.Message, apply func(wire.Message, error)) (wire.Message, error) {
	if c.closed.Load() {
		return nil, storage.ErrClosed
	}
	deadline := time.Now().Add(c.conn.opts.WaitTimeout)
	for {
		l, handle, err := c.current(ctx)
		if err != nil {
			return nil, err
		}
		m, err := l.call(ctx, build(handle), apply)
		if err == nil || !errors.Is(err, ErrDisconnected) || ctx.Err() != nil || time.Now().After(deadline) || c.closed.Load() {
			return m, err
		}
	}
}

// current returns the live link and this partition's handle on it.
func (c *Client) current(ctx context.Context) (*link, uint32, error) {
	for range 100 {
		l, err := c.conn.link(ctx)
		if err != nil {
			return nil, 0, err
		}
		c.mu.Lock()
		pl, h := c.link, c.handle
		c.mu.Unlock()
		if pl == l {
			return l, h, nil
		}
		// The connection was replaced but this partition is not bound
		// on it yet (it is being reopened): wait for the next one.
		select {
		case <-l.dead:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil, 0, fmt.Errorf("partition %q not bound on the connection: %w", c.partition, ErrDisconnected)
}

func copyRecord(r storage.Record) storage.Record {
	if r.Data != nil {
		r.Data = slices.Clone(r.Data)
	}
	if r.Refs != nil {
		r.Refs = slices.Clone(r.Refs)
	}
	return r
}

// Load returns the current revision of oid: from the cache when it holds
// it (current as of LastTid), else from the server.
func (c *Client) Load(ctx context.Context, oid storage.Oid) (storage.Record, error) {
	if c.closed.Load() {
		return storage.Record{}, storage.ErrClosed
	}
	if r, ok := c.cache.current(oid); ok {
		return copyRecord(r), nil
	}
	m, err := c.loadRemote(ctx, oid, true, storage.ZeroTid)
	if err != nil {
		return storage.Record{}, fmt.Errorf("load %s: %w", oid, err)
	}
	return m.Record, nil
}

func (c *Client) loadRemote(ctx context.Context, oid storage.Oid, current bool, before storage.Tid) (*wire.RecordReply, error) {
	m, err := c.do(ctx, func(h uint32) wire.Message {
		// Every attempt is a flight of its own, from before its send
		// until its reply (or failure) is applied by the link's reader.
		c.startFlight(oid)
		if current {
			return &wire.Load{Handle: h, Oid: oid}
		}
		return &wire.LoadBefore{Handle: h, Oid: oid, Tid: before}
	}, func(m wire.Message, err error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if r, ok := m.(*wire.RecordReply); ok && err == nil {
			rec := copyRecord(r.Record)
			c.landLocked(oid, &rec, r.End)
			return
		}
		c.landLocked(oid, nil, 0)
	})
	if err != nil {
		return nil, err
	}
	r, ok := m.(*wire.RecordReply)
	if !ok {
		return nil, fmt.Errorf("server answered %s: %w", m.Kind(), wire.ErrProtocol)
	}
	return r, nil
}

// LoadBefore returns the revision of oid current just before tid; from
// the cache when it holds a revision valid there.
func (c *Client) LoadBefore(ctx context.Context, oid storage.Oid, tid storage.Tid) (storage.Record, storage.Tid, error) {
	if c.closed.Load() {
		return storage.Record{}, 0, storage.ErrClosed
	}
	c.mu.Lock()
	known := c.lastTid
	c.mu.Unlock()
	if r, end, ok := c.cache.before(oid, tid, known); ok {
		return copyRecord(r), end, nil
	}
	m, err := c.loadRemote(ctx, oid, false, tid)
	if err != nil {
		return storage.Record{}, 0, fmt.Errorf("load %s before %s: %w", oid, tid, err)
	}
	return m.Record, m.End, nil
}

// Prefetch loads the current revisions of the oids the cache lacks, in
// batches of one round trip each, so later Loads hit the cache. Oids
// that do not exist are skipped.
func (c *Client) Prefetch(ctx context.Context, oids []storage.Oid) error {
	var missing []storage.Oid
	for _, o := range oids {
		if _, ok := c.cache.current(o); !ok {
			missing = append(missing, o)
		}
	}
	const batch = 4096
	for len(missing) > 0 {
		n := min(len(missing), batch)
		if err := c.loadMany(ctx, missing[:n]); err != nil {
			return err
		}
		missing = missing[n:]
	}
	return nil
}

func (c *Client) loadMany(ctx context.Context, oids []storage.Oid) error {
	_, err := c.do(ctx, func(h uint32) wire.Message {
		c.startFlight(oids...)
		return &wire.LoadMany{Handle: h, Oids: oids}
	}, func(m wire.Message, err error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		rs, ok := m.(*wire.Records)
		if err != nil || !ok || len(rs.Items) != len(oids) {
			for _, o := range oids {
				c.landLocked(o, nil, 0)
			}
			return
		}
		for i, it := range rs.Items {
			if it.Code == wire.CodeOK && it.Record.Oid == oids[i] {
				rec := copyRecord(it.Record)
				c.landLocked(oids[i], &rec, it.End)
			} else {
				c.landLocked(oids[i], nil, 0)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("prefetch %d oids: %w", len(oids), err)
	}
	return nil
}

// NewOids allocates n oids on the server.
func (c *Client) NewOids(ctx context.Context, n int) ([]storage.Oid, error) {
	if c.caps.ReadOnly {
		return nil, fmt.Errorf("new oids: %w", storage.ErrReadOnly)
	}
	if n < 1 || n > 65536 {
		return nil, fmt.Errorf("new oids: n=%d not in 1..65536: %w", n, storage.ErrInvalid)
	}
	m, err := c.do(ctx, func(h uint32) wire.Message { return &wire.NewOids{Handle: h, N: uint32(n)} }, nil)
	if err != nil {
		return nil, fmt.Errorf("new oids: %w", err)
	}
	o, ok := m.(*wire.Oids)
	if !ok {
		return nil, fmt.Errorf("new oids: server answered %s: %w", m.Kind(), wire.ErrProtocol)
	}
	return o.Oids, nil
}

// LastTid returns the last tid whose invalidations this client has
// applied: the snapshot a new transaction should read at. It does not
// ask the server.
func (c *Client) LastTid(ctx context.Context) (storage.Tid, error) {
	if c.closed.Load() {
		return 0, storage.ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastTid, nil
}

// WaitForTid waits until this client has applied the invalidations of
// tid (a tid another node's commit returned), so a read after it sees
// that commit. It waits until ctx ends, or WaitTimeout if ctx has no
// deadline.
func (c *Client) WaitForTid(ctx context.Context, tid storage.Tid) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.conn.opts.WaitTimeout)
		defer cancel()
	}
	for {
		if c.closed.Load() {
			return storage.ErrClosed
		}
		c.mu.Lock()
		last, ch, l := c.lastTid, c.tidCh, c.link
		c.mu.Unlock()
		if last >= tid {
			return nil
		}
		if l != nil {
			// Pushes may be waiting for a reader (reader.go).
			l.nudge()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for tid %s (applied %s): %w", tid, last, ctx.Err())
		}
	}
}

// Watch registers fn to be called after each transaction's invalidations
// are applied, in commit order, this client's own commits included:
// fn(tid, oids). After a cache reset (a reconnect past the invalidation
// log's horizon, or a pack) fn gets oids == nil: every object may have
// changed. fn runs on the goroutine that reads the connection (a caller
// waiting for its reply, or a background reader): it must be quick and
// must not call the Client. cancel stops the calls.
func (c *Client) Watch(fn func(tid storage.Tid, oids []storage.Oid)) (cancel func()) {
	c.mu.Lock()
	id := c.nextW
	c.nextW++
	c.watchers[id] = fn
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.watchers, id)
		c.mu.Unlock()
	}
}

// Stats returns the cache counters.
func (c *Client) Stats() Stats {
	size, n := c.cache.stats()
	c.mu.Lock()
	last := c.lastTid
	c.mu.Unlock()
	return Stats{
		Hits: c.cache.hits.Load(), Misses: c.cache.misses.Load(), Evictions: c.cache.evicted.Load(),
		Bytes: size, MaxBytes: c.cache.max, Objects: n, LastTid: last, Connected: c.conn.State().Connected,
	}
}

// State returns the state of the connection the client uses.
func (c *Client) State() ConnState { return c.conn.State() }

// Conn returns the connection the client uses.
func (c *Client) Conn() *Conn { return c.conn }

// Capabilities reports the partition's capabilities (ReadOnly set for a
// read-only partition).
func (c *Client) Capabilities() storage.Capabilities { return c.caps }

// History returns up to max revisions of oid, newest first.
func (c *Client) History(ctx context.Context, oid storage.Oid, max int) ([]storage.Revision, error) {
	if max < 0 {
		max = 0
	}
	m, err := c.do(ctx, func(h uint32) wire.Message { return &wire.History{Handle: h, Oid: oid, Max: uint32(min(max, 1<<31))} }, nil)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", oid, err)
	}
	r, ok := m.(*wire.Revisions)
	if !ok {
		return nil, fmt.Errorf("history: server answered %s: %w", m.Kind(), wire.ErrProtocol)
	}
	return r.Revisions, nil
}

// Iterate yields transactions with start <= tid < stop, fetching them a
// page (one round trip) at a time.
func (c *Client) Iterate(ctx context.Context, start, stop storage.Tid) iter.Seq2[storage.TxRecords, error] {
	return func(yield func(storage.TxRecords, error) bool) {
		next := start
		for {
			m, err := c.do(ctx, func(h uint32) wire.Message {
				return &wire.Iterate{Handle: h, Start: next, Stop: stop, MaxTxns: 1000, MaxBytes: 8 << 20}
			}, nil)
			if err != nil {
				yield(storage.TxRecords{}, fmt.Errorf("iterate: %w", err))
				return
			}
			page, ok := m.(*wire.TxnPage)
			if !ok {
				yield(storage.TxRecords{}, fmt.Errorf("iterate: server answered %s: %w", m.Kind(), wire.ErrProtocol))
				return
			}
			for _, tx := range page.Txns {
				if !yield(tx, nil) {
					return
				}
			}
			if !page.More || page.Next <= next {
				return
			}
			next = page.Next
		}
	}
}

// UndoLog returns up to max undoable transactions, newest first.
func (c *Client) UndoLog(ctx context.Context, max int) ([]storage.TxInfo, error) {
	if max < 0 {
		max = 0
	}
	m, err := c.do(ctx, func(h uint32) wire.Message { return &wire.UndoLog{Handle: h, Max: uint32(min(max, 1<<31))} }, nil)
	if err != nil {
		return nil, fmt.Errorf("undo log: %w", err)
	}
	r, ok := m.(*wire.TxInfos)
	if !ok {
		return nil, fmt.Errorf("undo log: server answered %s: %w", m.Kind(), wire.ErrProtocol)
	}
	return r.Txns, nil
}

// Undo undoes transaction tid; the cache learns of it before Undo
// returns.
func (c *Client) Undo(ctx context.Context, tid storage.Tid, meta storage.TxMeta) (storage.Tid, []storage.Oid, error) {
	if c.caps.ReadOnly {
		return 0, nil, fmt.Errorf("undo: %w", storage.ErrReadOnly)
	}
	l, h, err := c.current(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("undo %s: %w", tid, err)
	}
	m, err := l.call(ctx, &wire.Undo{Handle: h, Tid: tid, Meta: meta}, func(m wire.Message, err error) {
		if u, ok := m.(*wire.Undone); ok && err == nil {
			c.applyInvalidation(u.Tid, u.Oids)
		}
	})
	if err != nil {
		return 0, nil, fmt.Errorf("undo %s: %w", tid, err)
	}
	u, ok := m.(*wire.Undone)
	if !ok {
		return 0, nil, fmt.Errorf("undo: server answered %s: %w", m.Kind(), wire.ErrProtocol)
	}
	return u.Tid, u.Oids, nil
}

// Pack packs the partition on the server. Progress, if set, is called
// once, when the pack is done (the protocol carries no progress).
func (c *Client) Pack(ctx context.Context, tid storage.Tid, progress func(done, total int64)) error {
	if c.caps.ReadOnly {
		return fmt.Errorf("pack: %w", storage.ErrReadOnly)
	}
	l, h, err := c.current(ctx)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if _, err := l.call(ctx, &wire.Pack{Handle: h, Tid: tid}, nil); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if progress != nil {
		progress(1, 1)
	}
	return nil
}

func (c *Client) markClosed() {
	c.closed.Store(true)
	c.mu.Lock()
	close(c.tidCh)
	c.tidCh = make(chan struct{})
	c.mu.Unlock()
}

// Close aborts the client's voted transactions, closes the partition
// and, for a Client made by Open, the connection. Calls after Close
// return storage.ErrClosed; Close twice returns nil.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.mu.Lock()
	voted := make([]*txn, 0, len(c.voted))
	for t := range c.voted {
		voted = append(voted, t)
	}
	l, h := c.link, c.handle
	close(c.tidCh)
	c.tidCh = make(chan struct{})
	c.mu.Unlock()
	if c.ownsConn {
		return c.conn.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.conn.opts.WaitTimeout)
	defer cancel()
	for _, t := range voted {
		t.abortRemote(ctx)
	}
	c.conn.mu.Lock()
	delete(c.conn.parts, c)
	c.conn.mu.Unlock()
	if l != nil {
		l.call(ctx, &wire.Close{Handle: h}, nil)
		l.pmu.Lock()
		delete(l.handles, h)
		l.pmu.Unlock()
	}
	return nil
}

var _ storage.Storage = (*Client)(nil)
