package balancer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/internal/forwarded"
)

// ErrClosed is returned by Start and Serve after Shutdown.
var ErrClosed = errors.New("balancer shut down")

// Balancer is the HTTP front end: it forwards every request to one healthy
// app node. Create it with New, run it with Start or Serve, stop it with
// Shutdown. It is also an http.Handler, so it can sit behind any server.
type Balancer struct {
	opts      Options
	log       hclog.Logger
	access    hclog.Logger
	trust     *forwarded.Trust
	pool      *pool
	transport *http.Transport
	proxy     *httputil.ReverseProxy
	srv       *http.Server

	mu        sync.Mutex
	addrs     []net.Addr
	started   bool
	closed    bool
	hcCancel  context.CancelFunc
	hcDone    sync.WaitGroup
	draining  atomic.Bool
	inflight  atomic.Int64
	serveDone sync.WaitGroup

	requests, retries, unavailable, badGateway atomic.Uint64
}

// New validates opts, fills defaults and builds a Balancer. It has no side
// effects: no listener, no goroutine, no connection.
func New(opts Options) (*Balancer, error) {
	urls, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	trust, err := forwarded.ParseTrust(opts.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("balancer %q: %w: %w", opts.Name, ErrInvalidOptions, err)
	}
	bl := &Balancer{opts: opts, log: opts.Logger, access: opts.AccessLogger, trust: trust}
	bes := make([]*backend, len(urls))
	for i, u := range urls {
		h := *u
		h.Path = strings.TrimSuffix(u.Path, "/") + opts.HealthCheck.Path
		h.RawPath = ""
		bes[i] = &backend{name: opts.Backends[i].Name, url: u, healthURL: h.String()}
	}
	var cooldown time.Duration
	if opts.HealthCheck.Disabled {
		cooldown = opts.HealthCheck.Interval
	}
	bl.pool = newPool(bl.log, opts.Policy, opts.MaxConnsPerBackend, opts.MaxQueue,
		opts.HealthCheck.Rise, opts.HealthCheck.Fall, cooldown, bes)

	perHost := 256
	if opts.MaxConnsPerBackend > perHost {
		perHost = opts.MaxConnsPerBackend
	}
	dialer := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
	bl.transport = &http.Transport{
		Proxy:                  nil, // never send node traffic through an environment proxy
		DialContext:            dialer.DialContext,
		MaxIdleConns:           perHost * len(bes),
		MaxIdleConnsPerHost:    perHost,
		IdleConnTimeout:        90 * time.Second,
		ResponseHeaderTimeout:  opts.ResponseTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		WriteBufferSize:        32 << 10,
		ReadBufferSize:         32 << 10,
	}
	bl.proxy = &httputil.ReverseProxy{
		Rewrite:        bl.rewrite,
		Transport:      bl.transport,
		ModifyResponse: bl.modifyResponse,
		ErrorHandler:   bl.proxyError,
		BufferPool:     bufferPool{},
		ErrorLog:       bl.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	bl.srv = &http.Server{
		Handler:           bl,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          bl.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return bl, nil
}

// Start binds opts.Listen and serves on it in the background; it returns
// once the listener is bound (ctx bounds only that). Errors: ErrClosed
// after Shutdown, or the bind error.
func (bl *Balancer) Start(ctx context.Context) error {
	if bl.opts.Listen == "" {
		return fmt.Errorf("balancer %q: %w: no listen address", bl.opts.Name, ErrInvalidOptions)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", bl.opts.Listen)
	if err != nil {
		return fmt.Errorf("balancer %q: listen %s: %w", bl.opts.Name, bl.opts.Listen, err)
	}
	if err := bl.begin(l); err != nil {
		_ = l.Close()
		return err
	}
	go func() {
		defer bl.serveDone.Done()
		if err := bl.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			bl.log.Error("serve failed", "addr", l.Addr().String(), "error", err)
		}
	}()
	return nil
}

// Serve serves on l until Shutdown and then returns nil (or ErrClosed if
// Shutdown came first). It starts the health checks on first use. Safe to
// call for several listeners.
func (bl *Balancer) Serve(l net.Listener) error {
	if err := bl.begin(l); err != nil {
		return err
	}
	defer bl.serveDone.Done()
	err := bl.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("balancer %q: serve %s: %w", bl.opts.Name, l.Addr(), err)
	}
	return nil
}

// begin records l and starts the health checks once.
func (bl *Balancer) begin(l net.Listener) error {
	bl.mu.Lock()
	defer bl.mu.Unlock()
	if bl.closed {
		return fmt.Errorf("balancer %q: %w", bl.opts.Name, ErrClosed)
	}
	bl.addrs = append(bl.addrs, l.Addr())
	bl.serveDone.Add(1)
	if !bl.started {
		bl.started = true
		bl.log.Info("balancer listening", "addr", l.Addr().String(), "public_url", bl.opts.PublicURL,
			"policy", string(bl.opts.Policy), "backends", len(bl.pool.backends))
		if !bl.opts.HealthCheck.Disabled {
			ctx, cancel := context.WithCancel(context.Background())
			bl.hcCancel = cancel
			for _, b := range bl.pool.backends {
				bl.hcDone.Add(1)
				go func() {
					defer bl.hcDone.Done()
					bl.runHealthChecks(ctx, b)
				}()
			}
		}
	}
	return nil
}

// Addr returns the address of the first listener, or nil before Start or
// Serve. Useful when Listen had port 0.
func (bl *Balancer) Addr() net.Addr {
	bl.mu.Lock()
	defer bl.mu.Unlock()
	if len(bl.addrs) == 0 {
		return nil
	}
	return bl.addrs[0]
}

// Shutdown drains the balancer. In order: it stops accepting connections
// and closes idle ones, waits for every request in flight (including
// queued ones) to finish, stops the health checks and closes idle backend
// connections. If ctx ends first, it closes every connection at once and
// returns ctx's error. Calling it twice is harmless.
func (bl *Balancer) Shutdown(ctx context.Context) error {
	bl.mu.Lock()
	bl.closed = true
	bl.mu.Unlock()
	bl.draining.Store(true)
	bl.log.Info("balancer draining", "in_flight", bl.inflight.Load())
	err := bl.srv.Shutdown(ctx)
	if err != nil {
		_ = bl.srv.Close()
		err = fmt.Errorf("balancer %q: drain: %w", bl.opts.Name, err)
	}
	bl.mu.Lock()
	cancel := bl.hcCancel
	bl.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	bl.hcDone.Wait()
	bl.serveDone.Wait()
	bl.transport.CloseIdleConnections()
	bl.log.Info("balancer stopped")
	return err
}

// Status is a snapshot of the balancer for tests, metrics and /_status.
type Status struct {
	Name      string
	PublicURL string
	// Addr is the first listen address, "" before Start or Serve.
	Addr     string
	Policy   Policy
	Draining bool
	// InFlight counts requests being handled; Queued those waiting for a
	// backend slot.
	InFlight int64
	Queued   int
	// Requests counts requests received; Retries the attempts repeated
	// on another backend; Unavailable the 503 answers (no backend up,
	// queue full or timed out); BadGateway the 502 answers (every
	// attempt failed).
	Requests, Retries, Unavailable, BadGateway uint64
	Backends                                   []BackendStatus
}

// BackendStatus is one backend in Status.
type BackendStatus struct {
	Name string
	URL  string
	Up   bool
	// Active is the number of requests in flight to this backend.
	Active int
	// Requests counts requests this backend answered; Failures the
	// connection errors that took it down passively.
	Requests  uint64
	Failures  uint64
	LastCheck time.Time
	LastError string
}

// Status returns a snapshot. Safe for concurrent use.
func (bl *Balancer) Status() Status {
	bes, queued := bl.pool.snapshot()
	st := Status{
		Name: bl.opts.Name, PublicURL: bl.opts.PublicURL, Policy: bl.opts.Policy,
		Draining: bl.draining.Load(), InFlight: bl.inflight.Load(), Queued: queued, Backends: bes,
		Requests: bl.requests.Load(), Retries: bl.retries.Load(),
		Unavailable: bl.unavailable.Load(), BadGateway: bl.badGateway.Load(),
	}
	if a := bl.Addr(); a != nil {
		st.Addr = a.String()
	}
	return st
}

// ctxKey carries the per-attempt state from ServeHTTP to the proxy hooks.
type ctxKey struct{}

// attempt is one try of one request on one backend.
type attempt struct {
	backend *backend
	fwd     *fwdHeaders
	// err is the transport error the proxy reported; answered is true once
	// the backend's response headers arrived.
	err      error
	answered bool
	// wrote is set once the request (headers and body) was written to
	// the node in full: from then on the node may have acted on it.
	wrote atomic.Bool
}

// fwdHeaders are the forwarding headers computed once per request.
type fwdHeaders struct {
	trusted                  bool
	forwarded, xff, xfh, xfp string
}

// ServeHTTP forwards r to a backend chosen by the policy, retrying on
// another backend as the package documentation describes. Safe for
// concurrent use.
func (bl *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	bl.requests.Add(1)
	bl.inflight.Add(1)
	defer bl.inflight.Add(-1)
	rec := &recorder{ResponseWriter: w}
	fw := bl.forwardHeaders(r)
	var (
		tried []*backend
		last  *backend
	)
	defer func() {
		if bl.access.IsInfo() {
			name := ""
			if last != nil {
				name = last.name
			}
			status := rec.status
			if status == 0 {
				status = 499 // the client went away before an answer
			}
			bl.access.Info("request", "method", r.Method, "uri", r.RequestURI, "host", r.Host,
				"status", status, "bytes", rec.bytes, "duration", time.Since(start),
				"backend", name, "attempts", len(tried), "client", r.RemoteAddr)
		}
	}()

	body, replayable, err := bl.readBody(r)
	if err != nil {
		http.Error(rec, "400 bad request: cannot read body", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	var lastErr error
	for len(tried) < bl.opts.MaxAttempts {
		be, err := bl.pool.acquire(ctx, tried, bl.opts.QueueTimeout)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrNoBackend) && lastErr != nil {
				break // every backend left was tried: answer 502 below
			}
			bl.log.Warn("no backend for request", "uri", r.RequestURI, "error", err)
			bl.unavailable.Add(1)
			rec.Header().Set("Retry-After", "1")
			http.Error(rec, "503 service unavailable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		tried = append(tried, be)
		last = be
		at := &attempt{backend: be, fwd: fw}
		actx := context.WithValue(ctx, ctxKey{}, at)
		actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
			WroteRequest: func(i httptrace.WroteRequestInfo) {
				if i.Err == nil {
					at.wrote.Store(true)
				}
			},
		})
		out := r.WithContext(actx)
		if replayable {
			out.Body, out.GetBody = http.NoBody, nil
			if len(body) > 0 {
				out.Body = io.NopCloser(bytes.NewReader(body))
				// GetBody lets the transport itself resend the body on a
				// kept-alive connection the node closed meanwhile. The
				// transport also resends a written request whose method
				// is not idempotent when it carries an Idempotency-Key
				// (net/http's isReplayable): refuse that, since no node
				// deduplicates by the key.
				idem := idempotent(r.Method)
				out.GetBody = func() (io.ReadCloser, error) {
					if !idem && at.wrote.Load() {
						return nil, errNoResend
					}
					return io.NopCloser(bytes.NewReader(body)), nil
				}
			}
			out.ContentLength = int64(len(body))
			out.TransferEncoding = nil
		}
		bl.forward(rec, out, be)
		if at.err == nil {
			be.requests.Add(1)
			return
		}
		lastErr = at.err
		if ctx.Err() != nil {
			return // the client left; not the backend's fault
		}
		var bre *bodyReadError
		if errors.As(at.err, &bre) {
			if !rec.wrote {
				http.Error(rec, "400 bad request: cannot read body", http.StatusBadRequest)
			}
			return
		}
		bl.pool.passiveFailure(be, at.err)
		if rec.wrote || at.answered || !retryable(r, at, replayable) {
			break
		}
		bl.retries.Add(1)
		bl.log.Warn("retrying request on another backend", "uri", r.RequestURI, "failed_backend", be.name, "error", at.err)
	}
	if !rec.wrote {
		bl.badGateway.Add(1)
		bl.log.Error("request failed", "uri", r.RequestURI, "attempts", len(tried), "error", lastErr)
		http.Error(rec, "502 bad gateway: no app node answered", http.StatusBadGateway)
	}
}

// forward runs one attempt through the reverse proxy, releasing the slot
// even when the proxy aborts the response with a panic.
func (bl *Balancer) forward(w http.ResponseWriter, r *http.Request, be *backend) {
	defer bl.pool.release(be)
	bl.proxy.ServeHTTP(w, r)
}

// readBody buffers a small body so the request can be replayed. It
// returns replayable=false (and leaves r.Body streaming, wrapped so that
// read errors are blamed on the client) for a body over MaxRetryBody.
func (bl *Balancer) readBody(r *http.Request) ([]byte, bool, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return nil, true, nil
	}
	limit := bl.opts.MaxRetryBody
	if limit < 0 || r.ContentLength > limit {
		r.Body = &bodyReader{rc: r.Body}
		return nil, false, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("read request body: %w", err)
	}
	if int64(len(buf)) <= limit {
		_ = r.Body.Close()
		return buf, true, nil
	}
	// Larger than announced (chunked): stream what was read and the rest.
	r.Body = &bodyReader{rc: struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}}
	r.ContentLength = -1
	return nil, false, nil
}

// retryable reports whether a failed attempt may be tried on another
// backend: always when the request never reached the node (dial error),
// and for idempotent methods with a replayable body when the node failed
// before answering. An Idempotency-Key header does not make a POST
// retryable: no zhost node deduplicates by it, so a node that committed
// and then died before answering would see the effect applied twice.
//
// A dial error counts as "never reached" only if the attempt never wrote
// the request: the transport may have written it on a kept-alive
// connection, lost the connection, and failed to dial the node again to
// resend it.
func retryable(r *http.Request, at *attempt, replayable bool) bool {
	if !replayable {
		return false
	}
	var op *net.OpError
	if errors.As(at.err, &op) && op.Op == "dial" && !at.wrote.Load() {
		return true
	}
	return idempotent(r.Method)
}

// idempotent reports whether a request of this method may run twice: the
// methods the balancer retries after a node failed before answering.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// errNoResend refuses the transport's resend of a non-idempotent request
// that reached its node.
var errNoResend = errors.New("request reached the node and its method is not idempotent: not sent again")

// forwardHeaders computes the Forwarded and X-Forwarded-* values for r:
// appended to a trusted client's own, replacing an untrusted client's.
func (bl *Balancer) forwardHeaders(r *http.Request) *fwdHeaders {
	peer := forwarded.RemoteAddr(r.RemoteAddr)
	fw := &fwdHeaders{trusted: bl.trust.Contains(peer)}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	host := r.Host
	if !forwarded.ValidHost(host) {
		host = ""
	}
	elem := forwarded.Element{For: forwarded.Node(peer), Host: host, Proto: proto}.String()
	fw.forwarded, fw.xff, fw.xfh, fw.xfp = elem, peer.String(), host, proto
	if !peer.IsValid() {
		fw.xff = ""
	}
	if !fw.trusted {
		return fw
	}
	if in := r.Header.Values(forwarded.HeaderForwarded); len(in) > 0 {
		if _, err := forwarded.Parse(in); err == nil {
			fw.forwarded = strings.Join(in, ", ") + ", " + elem
		}
	}
	if in := r.Header.Values(forwarded.HeaderXForwardedFor); len(in) > 0 && fw.xff != "" {
		fw.xff = strings.Join(in, ", ") + ", " + fw.xff
	}
	if in := r.Header.Get(forwarded.HeaderXForwardedHost); in != "" {
		fw.xfh = in
	}
	if in := r.Header.Get(forwarded.HeaderXForwardedProto); in != "" {
		fw.xfp = in
	}
	return fw
}

// rewrite is the ReverseProxy's Rewrite hook. ReverseProxy has already
// removed Forwarded and X-Forwarded-* from pr.Out.
func (bl *Balancer) rewrite(pr *httputil.ProxyRequest) {
	at, _ := pr.In.Context().Value(ctxKey{}).(*attempt)
	if at == nil {
		return // cannot happen: ServeHTTP always sets it
	}
	pr.SetURL(at.backend.url)
	pr.Out.Host = pr.In.Host
	h := pr.Out.Header
	if !at.fwd.trusted {
		for _, k := range forwarded.ProxyHeaders {
			h.Del(k)
		}
	}
	h.Set(forwarded.HeaderForwarded, at.fwd.forwarded)
	if at.fwd.xff != "" {
		h.Set(forwarded.HeaderXForwardedFor, at.fwd.xff)
	} else {
		h.Del(forwarded.HeaderXForwardedFor)
	}
	if at.fwd.xfh != "" {
		h.Set(forwarded.HeaderXForwardedHost, at.fwd.xfh)
	} else {
		h.Del(forwarded.HeaderXForwardedHost)
	}
	h.Set(forwarded.HeaderXForwardedProto, at.fwd.xfp)
}

// modifyResponse marks the attempt answered: from here on a failure is not
// retried, since the node may have acted on the request.
func (bl *Balancer) modifyResponse(resp *http.Response) error {
	if at, _ := resp.Request.Context().Value(ctxKey{}).(*attempt); at != nil {
		at.answered = true
	}
	return nil
}

// proxyError records the error for ServeHTTP, which decides between a
// retry and a 502. It writes nothing.
func (bl *Balancer) proxyError(_ http.ResponseWriter, r *http.Request, err error) {
	if at, _ := r.Context().Value(ctxKey{}).(*attempt); at != nil {
		at.err = err
		return
	}
	bl.log.Error("proxy error without attempt state", "error", err)
}

// bodyReader wraps a streamed request body and marks its read errors, so
// that a client that breaks off its upload does not take a node down.
type bodyReader struct {
	rc io.ReadCloser
}

type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read request body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyReadError{err: err}
	}
	return n, err
}

func (b *bodyReader) Close() error { return b.rc.Close() }

// recorder captures the status and size of the response for the access
// log and for the retry decision.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		r.ResponseWriter.WriteHeader(code) // informational: the final answer is still to come
		return
	}
	if !r.wrote {
		r.wrote, r.status = true, code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wrote {
		r.wrote, r.status = true, http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// bufferPool recycles the 32 KiB copy buffers of the reverse proxy.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(copyBuffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

var (
	_ http.Handler        = (*Balancer)(nil)
	_ httputil.BufferPool = bufferPool{}
	_ io.ReadCloser       = (*bodyReader)(nil)
)
