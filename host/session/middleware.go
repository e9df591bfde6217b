package session

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

// commitTimeout bounds the end-of-request commit. It does not use the
// request's context: a browser that hangs up after its request was
// handled must not lose the change the handler made.
const commitTimeout = 30 * time.Second

type handleKey struct{}

// FromContext returns the session handle the middleware put into a
// request's context. Without the middleware it returns nil, whose
// methods all fail with ErrNoManager.
func FromContext(ctx context.Context) *Handle {
	h, _ := ctx.Value(handleKey{}).(*Handle)
	return h
}

// FromRequest is FromContext(r.Context()).
func FromRequest(r *http.Request) *Handle { return FromContext(r.Context()) }

// Middleware wraps next so every request carries a lazy session Handle
// (FromRequest). Nothing is read before the handler asks.
//
// The response is held back (up to MaxBuffered bytes) until next returns
// and the session's changes are committed in the request's transaction;
// only then is it sent, with the version cookie that gives the browser
// read-your-writes on every node. So a browser never sees an answer
// whose session change is not stored: if the commit fails, the held
// response is replaced by WriteError's. A handler that streams (Flush,
// Hijack, or more than MaxBuffered bytes) sends its response early; a
// commit failure after that is logged and counted
// (Stats.CommitFailures). A panic in next aborts the transaction and
// propagates.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &responseWriter{w: w}
		h := &Handle{m: m, rw: rw}
		r = r.WithContext(context.WithValue(r.Context(), handleKey{}, h))
		h.r = r
		completed := false
		defer func() {
			if !completed {
				// Nothing held back is sent: net/http sees the panic
				// and drops the connection, as without the middleware.
				h.abort()
			}
		}()
		next.ServeHTTP(rw, r)
		completed = true
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), commitTimeout)
		defer cancel()
		h.mu.Lock()
		err := h.finish(ctx)
		h.mu.Unlock()
		if err != nil {
			m.log.Error("session commit failed", "path", r.URL.Path, "error", err)
			if rw.discard(m.ids.name) {
				WriteError(rw, err)
			}
		}
		rw.sendComplete(r.Method)
	})
}

// MaxBuffered is how much of a response the middleware holds back until
// the session is committed. Past it the response streams.
const MaxBuffered = 256 << 10

// WriteError answers a request whose session could not be used: 503
// Service Unavailable with Retry-After for ErrFull (the limit was reached;
// retrying later may work), 409 Conflict for a conflict that could not be
// resolved, 503 for an unavailable mount, 500 otherwise. It writes a
// short plain-text body and never reveals the error's details.
func WriteError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	msg := "session unavailable"
	switch {
	case errors.Is(err, ErrFull):
		code, msg = http.StatusServiceUnavailable, "too many sessions; try again later"
		w.Header().Set("Retry-After", "60")
	case errors.Is(err, storage.ErrConflict):
		code, msg = http.StatusConflict, "concurrent change; try again"
	case errors.Is(err, context.DeadlineExceeded), isMountUnavailable(err):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

func isMountUnavailable(err error) bool { return errors.Is(err, db.ErrMountUnavailable) }

// responseWriter holds the handler's status and body until the session
// is committed (see Middleware). Header() is the real header map: nothing
// is sent until send, so cookies can be added late. It forwards Flush,
// Hijack and Unwrap (for http.ResponseController).
type responseWriter struct {
	w      http.ResponseWriter
	mu     sync.Mutex
	status int
	buf    bytes.Buffer
	sent   bool
}

func (w *responseWriter) Header() http.Header { return w.w.Header() }

// headersWritten reports whether the headers went out (Set-Cookie can no
// longer be added).
func (w *responseWriter) headersWritten() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent
}

func (w *responseWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.sent:
		w.w.WriteHeader(code) // net/http reports a superfluous call
	case code >= 100 && code < 200:
		w.w.WriteHeader(code) // informational: goes out at once
	case w.status == 0:
		w.status = code
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return w.w.Write(b)
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.buf.Len()+len(b) > MaxBuffered {
		if err := w.sendLocked(); err != nil {
			return 0, err
		}
		return w.w.Write(b)
	}
	return w.buf.Write(b)
}

// sendComplete sends the held response of a handler that returned: the
// whole body is known, so it goes with a Content-Length (no chunking)
// unless the handler said otherwise.
func (w *responseWriter) sendComplete(method string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return
	}
	h := w.w.Header()
	if n := w.buf.Len(); n > 0 && method != http.MethodHead && h.Get("Content-Length") == "" &&
		h.Get("Transfer-Encoding") == "" && w.status >= 200 && w.status != http.StatusNoContent && w.status != http.StatusNotModified {
		h.Set("Content-Length", strconv.Itoa(n))
	}
	_ = w.sendLocked()
}

func (w *responseWriter) sendLocked() error {
	if w.sent {
		return nil
	}
	w.sent = true
	if w.status == 0 {
		if w.buf.Len() == 0 {
			return nil // the handler wrote nothing; net/http sends 200
		}
		w.status = http.StatusOK
	}
	w.w.WriteHeader(w.status)
	if w.buf.Len() == 0 {
		return nil
	}
	_, err := w.w.Write(w.buf.Bytes())
	w.buf = bytes.Buffer{}
	return err
}

// discard drops the held response (status, body, the headers that
// describe the body, and the id cookie of a session that was not stored)
// so an error can be sent instead. It reports false when the response
// already went out.
func (w *responseWriter) discard(cookieName string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return false
	}
	w.status = 0
	w.buf.Reset()
	h := w.w.Header()
	for _, k := range []string{"Content-Length", "Content-Encoding", "Content-Type", "ETag", "Last-Modified", "Content-Disposition"} {
		h.Del(k)
	}
	dropSetCookie(h, cookieName)
	return true
}

func (w *responseWriter) Flush() {
	w.mu.Lock()
	_ = w.sendLocked()
	w.mu.Unlock()
	if f, ok := w.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.w.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("hijack: %T is not a http.Hijacker: %w", w.w, http.ErrNotSupported)
	}
	w.mu.Lock()
	w.sent = true // the handler owns the connection now
	w.mu.Unlock()
	return hj.Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.w }

// setCookie sets the browser id cookie, replacing one set earlier in this
// response (a renewal right after creation sends only the newest id).
func (w *responseWriter) setCookie(b *BrowserIDs, r *http.Request, id string) {
	h := w.w.Header()
	dropSetCookie(h, b.name)
	dropSetCookie(h, b.VersionCookieName())
	b.SetCookie(w, r, id)
}

// expireCookie tells the browser to forget its id and version, if the
// headers have not gone out yet.
func (w *responseWriter) expireCookie(b *BrowserIDs, r *http.Request) {
	if w.headersWritten() {
		return
	}
	h := w.w.Header()
	dropSetCookie(h, b.name)
	dropSetCookie(h, b.VersionCookieName())
	b.ExpireCookie(w, r)
	http.SetCookie(w, b.versionCookie(r, 0))
}

// expireVersion drops the version cookie (it names a version of a
// session that no longer exists), if the headers have not gone out yet.
func (w *responseWriter) expireVersion(b *BrowserIDs, r *http.Request) {
	if w.headersWritten() {
		return
	}
	dropSetCookie(w.w.Header(), b.VersionCookieName())
	http.SetCookie(w, b.versionCookie(r, 0))
}

// setVersion sets the version cookie after a commit, if the headers have
// not gone out yet (a streamed response goes without it).
func (w *responseWriter) setVersion(b *BrowserIDs, r *http.Request, v uint64) {
	if w.headersWritten() {
		return
	}
	h := w.w.Header()
	dropSetCookie(h, b.VersionCookieName())
	http.SetCookie(w, b.versionCookie(r, v))
	noCache(h)
}

func dropSetCookie(h http.Header, name string) {
	vs := h.Values("Set-Cookie")
	if len(vs) == 0 {
		return
	}
	keep := vs[:0:0]
	for _, v := range vs {
		if !strings.HasPrefix(v, name+"=") {
			keep = append(keep, v)
		}
	}
	h.Del("Set-Cookie")
	for _, v := range keep {
		h.Add("Set-Cookie", v)
	}
}
