package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/busypoll"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("server closed")

// Server serves partitions to clients over the wire protocol. Its
// methods are safe for concurrent use. Errors name what failed; Serve and
// Start return ErrServerClosed once Shutdown began.
type Server struct {
	opts       Options
	logger     hclog.Logger
	partitions map[string]*partition

	ctx    context.Context // canceled by Shutdown after draining
	cancel context.CancelFunc

	mu        sync.Mutex
	opened    bool
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	shutting  bool
	nextID    uint64
	wg        sync.WaitGroup // sessions and accept loops
	closeOnce sync.Once
}

// New checks the options and returns a server. It has no side effects:
// nothing is opened or listened on until Start or Serve.
func New(opts Options) (*Server, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("server options: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:       opts,
		logger:     opts.Logger,
		partitions: make(map[string]*partition, len(opts.Partitions)),
		ctx:        ctx,
		cancel:     cancel,
		listeners:  make(map[net.Listener]struct{}),
		sessions:   make(map[*session]struct{}),
	}
	for name, p := range opts.Partitions {
		s.partitions[name] = newPartition(name, p, &s.opts)
	}
	return s, nil
}

// open reads each partition's last tid and opens its invalidation log,
// once.
func (s *Server) open(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting {
		return ErrServerClosed
	}
	if s.opened {
		return nil
	}
	if s.opts.DataDir != "" {
		if err := os.MkdirAll(s.opts.DataDir, 0o755); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
	}
	names := make([]string, 0, len(s.partitions))
	for n := range s.partitions {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		if err := s.partitions[n].open(ctx, &s.opts); err != nil {
			for _, m := range names[:i] {
				s.partitions[m].close()
			}
			return err
		}
	}
	s.opened = true
	return nil
}

// Start opens the partitions' invalidation logs, listens on
// Options.Listen and serves in the background. It returns the listen
// error, if any; Addr reports the bound address.
func (s *Server) Start(ctx context.Context) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.opts.Listen, err)
	}
	if !s.track(l) {
		l.Close()
		return ErrServerClosed
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.acceptLoop(l)
	}()
	return nil
}

// Serve opens the partitions' invalidation logs and accepts connections
// on l until Shutdown; it returns ErrServerClosed then, or the accept
// error that stopped it. Serve takes ownership of l.
func (s *Server) Serve(l net.Listener) error {
	if err := s.open(context.Background()); err != nil {
		l.Close()
		return err
	}
	if !s.track(l) {
		l.Close()
		return ErrServerClosed
	}
	s.wg.Add(1)
	defer s.wg.Done()
	return s.acceptLoop(l)
}

func (s *Server) track(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting {
		return false
	}
	s.listeners[l] = struct{}{}
	return true
}

// Addr returns the address of a listener started by Start or Serve, or
// nil before one exists.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range s.listeners {
		return l.Addr()
	}
	return nil
}

func (s *Server) acceptLoop(l net.Listener) error {
	s.logger.Info("serving", "address", l.Addr().String(), "partitions", len(s.partitions), "tls", s.opts.TLS != nil)
	delay := 5 * time.Millisecond
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			shutting := s.shutting
			s.mu.Unlock()
			if shutting {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				s.logger.Error("accept failed", "error", err)
				return fmt.Errorf("accept: %w", err)
			}
			// Anything else (EMFILE, ENFILE, ENOBUFS, ECONNABORTED, a
			// timeout) is transient: back off and accept again, or one
			// burst of connections would stop the server for good.
			if delay == 5*time.Millisecond || delay == time.Second {
				s.logger.Warn("accept failed; retrying", "error", err, "backoff", delay)
			}
			time.Sleep(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		c = busypoll.Wrap(c, s.opts.BusyPoll)
		if s.opts.TLS != nil {
			c = tls.Server(c, s.opts.TLS)
		}
		s.mu.Lock()
		if s.shutting {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.nextID++
		sess := newSession(s, c, s.nextID)
		s.sessions[sess] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			sess.run()
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
		}()
	}
}

// Sessions returns how many client connections are open.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Shutdown stops the server, in this order: stop accepting connections;
// refuse new requests with wire.ErrShutdown; wait until no transaction
// holds a commit lock (or ctx ends, then abort the rest, logged); close
// every connection; wait for their goroutines; close the invalidation
// logs. The storages stay open: their owner closes them. Shutdown twice
// is harmless; it returns ctx's error if it had to cut the drain short.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutting = true
	for l := range s.listeners {
		l.Close()
	}
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()

	var drainErr error
	for _, sess := range sessions {
		if err := sess.drain(ctx); err != nil && drainErr == nil {
			drainErr = err
		}
	}
	for _, sess := range sessions {
		sess.close("server shutting down")
	}
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if drainErr == nil {
			drainErr = ctx.Err()
		}
		<-done // sessions end once their connections are closed
	}
	var err error
	s.closeOnce.Do(func() {
		for _, p := range s.partitions {
			if cerr := p.close(); cerr != nil && err == nil {
				err = cerr
			}
		}
		s.logger.Info("stopped")
	})
	if drainErr != nil {
		return fmt.Errorf("shutdown: %w", drainErr)
	}
	return err
}

// Capabilities returns what the partition serves (with ReadOnly set for
// a read-only partition), or false for an unknown name.
func (s *Server) Capabilities(partition string) (storage.Capabilities, bool) {
	p, ok := s.partitions[partition]
	if !ok {
		return storage.Capabilities{}, false
	}
	return p.caps, true
}

// PartitionStatus describes one partition for status pages.
type PartitionStatus struct {
	Name     string
	ReadOnly bool
	// LastTid is the newest transaction whose invalidations went out.
	LastTid storage.Tid
	// Clients counts the connections that have the partition open.
	Clients int
	// Cache figures of the server's cache of current records.
	CacheHits, CacheMisses int64
	CacheBytes             int64
	CacheObjects           int
	// LogHorizon is the oldest tid a reconnecting client may have and
	// still catch up from the invalidation log.
	LogHorizon storage.Tid
}

// Status reports every partition, sorted by name.
func (s *Server) Status() []PartitionStatus {
	names := make([]string, 0, len(s.partitions))
	for n := range s.partitions {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]PartitionStatus, 0, len(names))
	for _, n := range names {
		p := s.partitions[n]
		bytes, objects := p.cache.stats()
		st := PartitionStatus{
			Name: n, ReadOnly: p.readOnly, LastTid: storage.Tid(p.lastTid.Load()),
			CacheHits: p.cache.hits.Load(), CacheMisses: p.cache.misses.Load(),
			CacheBytes: bytes, CacheObjects: objects,
		}
		p.mu.Lock()
		st.Clients = len(p.subs)
		if p.log != nil {
			st.LogHorizon = p.log.since
		}
		p.mu.Unlock()
		out = append(out, st)
	}
	return out
}
