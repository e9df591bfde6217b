package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/wire"
	"github.com/zhostdb/zhost/internal/busypoll"
	"github.com/zhostdb/zhost/internal/walltrace"
)

// ErrDisconnected: the client is not connected to the server and did not
// get connected within its wait (Options.WaitTimeout or the context), or
// the connection broke while the call was in flight. Calls that only
// read are retried on the next connection within the same wait; a
// Finish cut off this way has an unknown outcome (the reconnect's
// catch-up tells the cache what happened).
var ErrDisconnected = errors.New("not connected to the storage server")

// ConnOptions configure a Conn.
type ConnOptions struct {
	// Addr is the server's address, "127.0.0.1:9100".
	Addr string
	// Name identifies this client in the server's log ("app1").
	Name string
	// TLS, when set, dials with TLS (set Certificates for a client
	// certificate, RootCAs and ServerName to verify the server).
	TLS *tls.Config
	// ConnectTimeout bounds one dial plus handshake. Default 5s.
	ConnectTimeout time.Duration
	// WaitTimeout bounds how long a call waits for a connection while
	// the client is disconnected (and how long WaitForTid waits when its
	// context has no deadline). Default 10s.
	WaitTimeout time.Duration
	// MaxBackoff caps the delay between reconnection attempts, which
	// starts at 10ms and doubles. Default 2s.
	MaxBackoff time.Duration
	// CallTimeout bounds a call whose context has no deadline, so a
	// server that stops answering (but keeps the connection open) cannot
	// hang a caller. Default 2m: above the server's default commit-lock
	// wait, so it never cuts a legitimate wait short.
	CallTimeout time.Duration
	// BusyPoll is how long reads from the server keep polling the socket
	// after a message before they sleep in the poller (see
	// internal/busypoll): CPU for latency. 0: off.
	BusyPoll time.Duration
	// MaxMessageSize limits the frames this client accepts. Default
	// wire.DefaultMaxMessageSize.
	MaxMessageSize int
	// Logger receives the client's log. Default hclog.NewNullLogger().
	Logger hclog.Logger
}

func (o *ConnOptions) setDefaults() error {
	if o.Addr == "" {
		return fmt.Errorf("client: no server address: %w", storage.ErrInvalid)
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = 10 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 2 * time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 2 * time.Minute
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = wire.DefaultMaxMessageSize
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return nil
}

// ConnState describes a Conn for status pages.
type ConnState struct {
	Addr      string
	Connected bool
	// Server is the name the server gave in its Welcome.
	Server string
	// Since is when the current connection (or disconnection) began.
	Since time.Time
	// Reconnects counts connections made after the first.
	Reconnects int
	// LastError is why the last connection ended or the last dial
	// failed ("" if none).
	LastError string
}

// Conn is one logical connection to a server: a TCP (or TLS) connection
// that is re-established with backoff when it breaks, over which any
// number of partitions are open (see Conn.Open). All methods are safe for
// concurrent use.
type Conn struct {
	opts   ConnOptions
	logger hclog.Logger

	mu         sync.Mutex
	cur        *link         // nil while disconnected
	ready      chan struct{} // closed when cur is set; replaced on disconnect
	parts      map[*Client]struct{}
	closed     bool
	server     string
	since      time.Time
	reconnects int
	lastErr    error
	stop       chan struct{}
	wg         sync.WaitGroup
	maxMsg     int
}

// Dial connects to the server, waiting at most ConnectTimeout (or until
// ctx ends), and keeps the connection up from then on.
func Dial(ctx context.Context, opts ConnOptions) (*Conn, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	c := &Conn{
		opts:   opts,
		logger: opts.Logger,
		ready:  make(chan struct{}),
		parts:  make(map[*Client]struct{}),
		stop:   make(chan struct{}),
		maxMsg: opts.MaxMessageSize,
	}
	l, err := c.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", opts.Addr, err)
	}
	c.mu.Lock()
	c.since = time.Now()
	c.install(l)
	c.mu.Unlock()
	return c, nil
}

// install makes l the current link. Called with mu held.
func (c *Conn) install(l *link) {
	c.cur = l
	close(c.ready)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		<-l.dead
		c.lost(l)
	}()
}

// dial opens a link and exchanges Hello/Welcome.
func (c *Conn) dial(ctx context.Context) (*link, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.opts.Addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
		tc.SetKeepAlivePeriod(15 * time.Second)
	}
	nc = busypoll.Wrap(nc, c.opts.BusyPoll)
	if c.opts.TLS != nil {
		cfg := c.opts.TLS.Clone()
		if cfg.ServerName == "" {
			if host, _, err := net.SplitHostPort(c.opts.Addr); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		nc = tc
	}
	l := newLink(c, nc)
	go l.readLoop()
	reply, err := l.call(ctx, &wire.Hello{Magic: wire.Magic, Version: wire.Version, Name: c.opts.Name}, nil)
	if err != nil {
		l.fail(err)
		return nil, fmt.Errorf("hello: %w", err)
	}
	w, ok := reply.(*wire.Welcome)
	if !ok {
		l.fail(wire.ErrProtocol)
		return nil, fmt.Errorf("hello answered with %s: %w", reply.Kind(), wire.ErrProtocol)
	}
	c.mu.Lock()
	c.server = w.Server
	c.mu.Unlock()
	return l, nil
}

// lost runs when link l died: it fails l's calls (done by the link),
// marks the Conn disconnected and reconnects in the background.
func (c *Conn) lost(l *link) {
	c.mu.Lock()
	if c.cur != l {
		c.mu.Unlock()
		return
	}
	c.cur = nil
	c.ready = make(chan struct{})
	c.lastErr = l.err
	c.since = time.Now()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	c.logger.Warn("connection to server lost; reconnecting", "addr", c.opts.Addr, "error", l.err)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.reconnect()
	}()
}

func (c *Conn) reconnect() {
	delay := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		select {
		case <-c.stop:
			return
		default:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		l, err := c.dial(ctx)
		if err == nil {
			err = c.reopen(ctx, l)
			if err != nil {
				l.fail(err)
			}
		}
		cancel()
		if err == nil {
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				l.fail(storage.ErrClosed)
				return
			}
			c.reconnects++
			c.since = time.Now()
			c.lastErr = nil
			c.install(l)
			c.mu.Unlock()
			c.logger.Info("reconnected to server", "addr", c.opts.Addr, "attempts", attempt)
			return
		}
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		if attempt == 1 || attempt%20 == 0 {
			c.logger.Warn("reconnect failed", "addr", c.opts.Addr, "attempt", attempt, "error", err)
		}
		// Jittered exponential backoff, capped.
		sleep := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		select {
		case <-c.stop:
			return
		case <-time.After(sleep):
		}
		delay = min(2*delay, c.opts.MaxBackoff)
	}
}

// reopen opens every partition again on a new link, catching each up.
func (c *Conn) reopen(ctx context.Context, l *link) error {
	c.mu.Lock()
	parts := make([]*Client, 0, len(c.parts))
	for p := range c.parts {
		parts = append(parts, p)
	}
	c.mu.Unlock()
	for _, p := range parts {
		if err := p.open(ctx, l); err != nil {
			return fmt.Errorf("reopen partition %q: %w", p.partition, err)
		}
	}
	return nil
}

// link returns the current link, waiting for a connection up to
// WaitTimeout (or ctx).
func (c *Conn) link(ctx context.Context) (*link, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, storage.ErrClosed
	}
	if l := c.cur; l != nil {
		c.mu.Unlock()
		return l, nil
	}
	ready := c.ready
	c.mu.Unlock()
	t := time.NewTimer(c.opts.WaitTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return c.link(ctx)
	case <-t.C:
	case <-ctx.Done():
	case <-c.stop:
		return nil, storage.ErrClosed
	}
	c.mu.Lock()
	last := c.lastErr
	c.mu.Unlock()
	return nil, fmt.Errorf("%w: %s (waited %s; last error: %v)", ErrDisconnected, c.opts.Addr, c.opts.WaitTimeout, last)
}

// State reports the connection's state.
func (c *Conn) State() ConnState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := ConnState{Addr: c.opts.Addr, Connected: c.cur != nil, Server: c.server, Since: c.since, Reconnects: c.reconnects}
	if c.lastErr != nil {
		st.LastError = c.lastErr.Error()
	}
	return st
}

// Ping measures one round trip to the server.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	l, err := c.link(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := l.call(ctx, &wire.Ping{}, nil); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// Close closes the connection and every partition opened on it. Calls in
// flight fail; voted transactions are aborted by the server. Close twice
// returns nil.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.stop)
	l := c.cur
	parts := c.parts
	c.parts = map[*Client]struct{}{}
	c.mu.Unlock()
	for p := range parts {
		p.markClosed()
	}
	if l != nil {
		l.fail(storage.ErrClosed)
	}
	c.wg.Wait()
	return nil
}

// reply is what a call gets back.
type reply struct {
	msg wire.Message
	err error
}

// pendingCall is a request waiting for its reply. apply, if set, runs on
// the goroutine reading the link (reader.go) with the reply (or the
// link's error) before the caller sees it, so cache updates happen in
// stream order.
type pendingCall struct {
	ch    chan reply
	apply func(wire.Message, error)
}

// link is one network connection.
type link struct {
	c    *Conn
	conn net.Conn

	wmu     sync.Mutex
	wbuf    []byte
	wspare  []byte
	writing bool
	werr    error

	pmu     sync.Mutex
	pending map[uint32]*pendingCall
	nextID  uint32
	handles map[uint32]*Client

	dead     chan struct{}
	deadOnce sync.Once
	err      error

	// Reading (reader.go). fr is used by the holder of tok only.
	fr   wire.FrameReader
	tok  chan struct{} // the read token: holds a value when it is free
	wake chan struct{} // nudges the background reader
	led  atomic.Uint64 // calls that read their own reply

	dmu      sync.Mutex // guards the read deadline
	dset     time.Time  // the read deadline last set on conn
	midFrame bool       // a frame has begun: no kick may cut it short
	gen      uint64     // the current leader's generation
	kicked   bool       // the current leader's context ended
}

func newLink(c *Conn, nc net.Conn) *link {
	return &link{
		c:       c,
		conn:    nc,
		pending: make(map[uint32]*pendingCall),
		handles: make(map[uint32]*Client),
		dead:    make(chan struct{}),
		fr:      wire.FrameReader{R: bufio.NewReaderSize(nc, 64<<10), Max: c.maxMsg},
		tok:     make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
	}
}

// fail kills the link: every pending call gets err.
func (l *link) fail(err error) {
	l.deadOnce.Do(func() {
		l.pmu.Lock()
		l.err = err
		pending := l.pending
		l.pending = nil
		l.pmu.Unlock()
		l.conn.Close()
		werr := fmt.Errorf("%w: %w", ErrDisconnected, err)
		for _, pc := range pending {
			if pc.apply != nil {
				pc.apply(nil, werr)
			}
			pc.ch <- reply{err: werr}
		}
		close(l.dead)
	})
}

// send registers a call and writes its frame.
func (l *link) send(m wire.Message, apply func(wire.Message, error)) (*pendingCall, error) {
	pc := &pendingCall{ch: make(chan reply, 1), apply: apply}
	l.pmu.Lock()
	if l.pending == nil {
		err := l.err
		l.pmu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrDisconnected, err)
	}
	l.nextID++
	if l.nextID == 0 {
		l.nextID = 1
	}
	id := l.nextID
	l.pending[id] = pc
	l.pmu.Unlock()

	if walltrace.On {
		walltrace.Mark("c.send " + m.Kind().String())
	}
	l.wmu.Lock()
	l.wbuf = wire.AppendFrame(l.wbuf, id, m)
	if walltrace.On {
		walltrace.Mark("c.encoded")
	}
	if l.writing {
		l.wmu.Unlock()
		return pc, nil
	}
	// This goroutine becomes the writer until the buffer is empty, so
	// requests sent meanwhile by others go out in the same write.
	l.writing = true
	for len(l.wbuf) > 0 && l.werr == nil {
		buf := l.wbuf
		l.wbuf = l.wspare[:0]
		l.wmu.Unlock()
		_, err := l.conn.Write(buf)
		if walltrace.On {
			walltrace.Mark("c.written")
		}
		l.wmu.Lock()
		if cap(buf) <= 1<<20 {
			l.wspare = buf[:0]
		}
		if err != nil {
			l.werr = err
		}
	}
	l.writing = false
	werr := l.werr
	l.wmu.Unlock()
	if werr != nil {
		l.fail(fmt.Errorf("write: %w", werr))
	}
	return pc, nil
}

// call sends m and waits for its reply (or ctx). An Error reply comes
// back as its Go error.
func (l *link) call(ctx context.Context, m wire.Message, apply func(wire.Message, error)) (wire.Message, error) {
	if err := ctx.Err(); err != nil {
		err = fmt.Errorf("%s: %w", m.Kind(), err)
		if apply != nil {
			apply(nil, err)
		}
		return nil, err
	}
	pc, err := l.send(m, apply)
	if err != nil {
		if apply != nil {
			apply(nil, err)
		}
		return nil, err
	}
	deadline, hasDeadline := ctx.Deadline()
	if !hasDeadline {
		deadline = time.Now().Add(l.c.opts.CallTimeout)
	}
	r, led, err := l.lead(ctx, pc, deadline)
	if led {
		switch {
		case err == nil:
			if walltrace.On {
				walltrace.Mark("c.woke")
			}
			return r.msg, r.err
		case err != errWait:
			return nil, fmt.Errorf("%s: %w", m.Kind(), err)
		case hasDeadline:
			// ctx's deadline: its timer fires at the same moment, so
			// callers that look at ctx.Err() see it ended.
			<-ctx.Done()
			return nil, fmt.Errorf("%s: %w", m.Kind(), ctx.Err())
		default:
			return nil, l.noAnswer(m)
		}
	}
	var timeout <-chan time.Time
	if !hasDeadline {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case r := <-pc.ch:
		if walltrace.On {
			walltrace.Mark("c.woke")
		}
		return r.msg, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", m.Kind(), ctx.Err())
	case <-timeout:
		return nil, l.noAnswer(m)
	}
}

func (l *link) noAnswer(m wire.Message) error {
	return fmt.Errorf("%s: no answer from %s within %s: %w", m.Kind(), l.c.opts.Addr, l.c.opts.CallTimeout, context.DeadlineExceeded)
}

func (l *link) push(m wire.Message) {
	switch m := m.(type) {
	case *wire.Invalidate:
		l.pmu.Lock()
		p := l.handles[m.Handle]
		l.pmu.Unlock()
		if p != nil {
			p.applyInvalidation(m.Tid, m.Oids)
		}
	case *wire.Reset:
		l.pmu.Lock()
		p := l.handles[m.Handle]
		l.pmu.Unlock()
		if p != nil {
			p.applyReset(m.LastTid, "the server asked (pack)")
		}
	}
}

func (l *link) bind(handle uint32, p *Client) {
	l.pmu.Lock()
	l.handles[handle] = p
	l.pmu.Unlock()
}
