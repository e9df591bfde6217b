package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/forwarded"
)

// App is the object publisher one client node serves. It is an
// http.Handler; all its methods are safe for concurrent use.
type App struct {
	opts    Options
	log     hclog.Logger
	db      *db.DB
	public  *url.URL
	trust   *forwarded.Trust
	handler http.Handler
	// reserved are clean paths of subtrees the API refuses (403).
	reserved []string
	started  time.Time
	drain    atomic.Bool
}

// New validates opts and builds the app. It has no side effects.
func New(opts Options) (*App, error) {
	pub, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	trust, err := forwarded.ParseTrust(opts.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w: %w", opts.Node, ErrInvalidOptions, err)
	}
	a := &App{opts: opts, log: opts.Logger, db: opts.DB, public: pub, trust: trust, started: time.Now()}
	reserved := opts.ReservedPaths
	if opts.Sessions != nil {
		reserved = append(slices.Clone(reserved), opts.Sessions.Options().Container)
	}
	for _, p := range reserved {
		c, err := cleanPath(p)
		if err != nil || c == "/" {
			return nil, fmt.Errorf("app %q: %w: reserved path %q", opts.Node, ErrInvalidOptions, p)
		}
		a.reserved = append(a.reserved, c)
	}
	if a.opts.WaitForTid == nil {
		a.opts.WaitForTid = a.pollTid
	}
	var h http.Handler = http.HandlerFunc(a.route)
	if opts.Sessions != nil {
		h = opts.Sessions.Middleware(h)
	}
	a.handler = h
	return a, nil
}

// Drain makes /healthz answer 503 so that the balancer stops sending new
// requests while the node finishes the ones it has. Requests are still
// served.
func (a *App) Drain() { a.drain.Store(true) }

// ServeHTTP sets X-Zhost-Node, applies read-your-writes and dispatches.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderNode, a.opts.Node)
	if r.URL.Path != "/healthz" && r.URL.Path != HealthPath {
		if tid, ok := a.requestTid(r); ok {
			if err := a.waitTid(r.Context(), tid); err != nil {
				w.Header().Set("Retry-After", "1")
				a.writeError(w, r, http.StatusServiceUnavailable, "", err)
				return
			}
		}
	}
	a.handler.ServeHTTP(w, r)
}

// route dispatches to the endpoints; everything not reserved is an
// object path.
func (a *App) route(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz", HealthPath:
		a.serveHealth(w, r)
	case "/_status":
		a.serveStatus(w, r)
	case "/_tx":
		a.serveTx(w, r)
	case "/_session":
		a.serveSession(w, r)
	default:
		a.serveObject(w, r)
	}
}

// errReserved answers a path in a reserved subtree.
var errReserved = errors.New("this path is reserved for the node's own use")

// checkReserved refuses a path inside a reserved subtree and, for a
// write, a path above one (deleting /a would delete /a/sessions).
func (a *App) checkReserved(path string, write bool) error {
	for _, p := range a.reserved {
		if path == p || strings.HasPrefix(path, p+"/") || (write && strings.HasPrefix(p, strings.TrimSuffix(path, "/")+"/")) {
			return fmt.Errorf("%s: %w", path, errReserved)
		}
	}
	return nil
}

// requestTid returns the tid a request asks to see: the X-Zhost-Tid
// header, else the cookie. A tid that is malformed or lies more than a
// minute in the future (it cannot come from this cluster's clock) is
// ignored rather than waited for.
func (a *App) requestTid(r *http.Request) (storage.Tid, bool) {
	v := r.Header.Get(HeaderTid)
	if v == "" {
		c, err := r.Cookie(a.opts.TidCookie)
		if err != nil {
			return 0, false
		}
		v = c.Value
	}
	tid, err := parseTid(v)
	if err != nil || tid == storage.ZeroTid || tid > storage.TidAt(time.Now().Add(time.Minute)) {
		return 0, false
	}
	return tid, true
}

// waitTid waits up to TidWait for the node to apply tid.
func (a *App) waitTid(ctx context.Context, tid storage.Tid) error {
	ctx, cancel := context.WithTimeout(ctx, a.opts.TidWait)
	defer cancel()
	if err := a.opts.WaitForTid(ctx, tid); err != nil {
		return fmt.Errorf("node %q has not applied transaction %s yet: %w", a.opts.Node, tid, err)
	}
	return nil
}

// pollTid is the default WaitForTid: it polls the main storage's LastTid
// with a backoff from 1 ms to 20 ms.
func (a *App) pollTid(ctx context.Context, tid storage.Tid) error {
	sleep := time.Millisecond
	for {
		last, err := a.db.Storage().LastTid(ctx)
		if err == nil && last >= tid {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		sleep = min(sleep*2, 20*time.Millisecond)
	}
}

// setWriteTid tells the client about a write: the header for scripts,
// the cookie for browsers, so the next request through any node sees it.
func (a *App) setWriteTid(w http.ResponseWriter, r *http.Request, tid storage.Tid) {
	if tid == storage.ZeroTid {
		return
	}
	w.Header().Set(HeaderTid, tid.String())
	path := "/"
	if a.public != nil && a.public.Path != "" {
		path = a.public.Path
	}
	http.SetCookie(w, &http.Cookie{
		Name:     a.opts.TidCookie,
		Value:    tid.String(),
		Path:     path,
		MaxAge:   int(a.opts.TidMaxAge / time.Second),
		HttpOnly: true,
		Secure:   a.baseURL(r).Scheme == "https",
		SameSite: http.SameSiteLaxMode,
	})
}

// baseURL is the prefix of every absolute URL emitted for r: scheme and
// host from trusted forwarding headers if there are any, else from
// PublicURL, else (no public URL configured) from the request itself;
// the path from PublicURL.
func (a *App) baseURL(r *http.Request) *url.URL {
	o := a.trust.Resolve(r)
	u := &url.URL{Scheme: o.Proto, Host: o.Host}
	if a.public != nil {
		u.Path = a.public.Path
		if !o.FromHeaders {
			u.Scheme, u.Host = a.public.Scheme, a.public.Host
		}
	}
	return u
}

// urlFor returns the absolute URL of an object path.
func (a *App) urlFor(r *http.Request, path string) string {
	u := a.baseURL(r)
	if path == "/" && u.Path != "" {
		u.Path += "/"
	} else {
		u.Path += path
	}
	return u.String()
}

// parseTid accepts 1 to 16 hex digits, optionally quoted (an ETag).
func parseTid(s string) (storage.Tid, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "W/")
	s = strings.Trim(s, `"`)
	if s == "" || len(s) > 16 {
		return 0, fmt.Errorf("tid %q: want 1 to 16 hex digits", s)
	}
	n, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("tid %q: want hex digits", s)
	}
	return storage.Tid(n), nil
}

func etag(serial storage.Tid) string { return `"` + serial.String() + `"` }

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
	Path   string `json:"path,omitempty"`
	// Serial is the current serial when a precondition failed.
	Serial string `json:"serial,omitempty"`
}

func (a *App) writeError(w http.ResponseWriter, r *http.Request, status int, path string, err error) {
	if status >= 500 {
		a.log.Error("request failed", "method", r.Method, "uri", r.RequestURI, "status", status, "error", err)
	}
	body := errorBody{Error: err.Error(), Status: status, Path: path}
	var oe *opError
	if errors.As(err, &oe) {
		body.Path = oe.op.Path
	}
	var pe *preconditionError
	if errors.As(err, &pe) {
		body.Path = pe.path
		if pe.current != storage.ZeroTid {
			body.Serial = pe.current.String()
		}
	}
	writeJSON(w, status, body)
}

// writeDBError maps an error of the object layer to a status.
func (a *App) writeDBError(w http.ResponseWriter, r *http.Request, path string, err error) {
	a.writeError(w, r, statusOf(err), path, err)
}

func statusOf(err error) int {
	var pe *preconditionError
	var be *badRequestError
	switch {
	case errors.As(err, &pe):
		return http.StatusPreconditionFailed
	case errors.As(err, &be):
		return http.StatusBadRequest
	case errors.Is(err, errReserved):
		return http.StatusForbidden
	case errors.Is(err, db.ErrInvalidPath):
		return http.StatusBadRequest
	case errors.Is(err, db.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, db.ErrNotFolder), errors.Is(err, db.ErrWrongType),
		errors.Is(err, db.ErrMountPoint), errors.Is(err, db.ErrExists):
		return http.StatusConflict
	case errors.Is(err, db.ErrMountUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, storage.ErrConflict):
		return http.StatusConflict // Update gave up after its attempts
	case errors.Is(err, storage.ErrReadOnly):
		return http.StatusForbidden
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// preconditionError is an If-Match that no longer holds.
type preconditionError struct {
	path    string
	current storage.Tid // ZeroTid when nothing is at path
}

func (e *preconditionError) Error() string {
	if e.current == storage.ZeroTid {
		return fmt.Sprintf("precondition failed: nothing at %s", e.path)
	}
	return fmt.Sprintf("precondition failed: %s is at serial %s", e.path, e.current)
}

// badRequestError is a malformed request found inside a transaction.
type badRequestError struct{ msg string }

func (e *badRequestError) Error() string { return e.msg }

// writeJSON encodes v fully before sending anything, so that a value JSON
// cannot represent (a document Go code filled with a map keyed by
// numbers) is a clean 500, not a 200 with half a body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = enc.Encode(errorBody{Error: "cannot encode the answer as JSON: " + err.Error(), Status: status})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // the client may have gone; nothing else to tell
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, a *App, allow string) {
	w.Header().Set("Allow", allow)
	a.writeError(w, r, http.StatusMethodNotAllowed, "", fmt.Errorf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
}

var _ http.Handler = (*App)(nil)
