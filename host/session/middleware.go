package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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
// (FromRequest). Nothing is read before the handler asks; when next
// returns, the session's changes are committed in the request's
// transaction (see Handle). If that commit fails and next has not
// written a response yet, the middleware answers with WriteError;
// otherwise the failure is logged and counted (Stats.CommitFailures). A
// panic in next aborts the transaction and propagates.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &responseWriter{ResponseWriter: w}
		h := &Handle{m: m, rw: rw}
		r = r.WithContext(context.WithValue(r.Context(), handleKey{}, h))
		h.r = r
		completed := false
		defer func() {
			if !completed {
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
			if !rw.headersWritten() {
				WriteError(rw, err)
			}
		}
	})
}

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

// responseWriter records whether the handler wrote the response's
// headers, so a new session's Set-Cookie is refused (ErrHeadersWritten)
// instead of silently lost. It forwards Flush, Hijack and Unwrap (for
// http.ResponseController).
type responseWriter struct {
	http.ResponseWriter
	mu    sync.Mutex
	wrote bool
}

func (w *responseWriter) headersWritten() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wrote
}

func (w *responseWriter) markWritten() {
	w.mu.Lock()
	w.wrote = true
	w.mu.Unlock()
}

func (w *responseWriter) WriteHeader(code int) {
	// 1xx answers are informational; the real headers come later.
	if code >= 200 {
		w.markWritten()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.markWritten()
	return w.ResponseWriter.Write(b)
}

func (w *responseWriter) Flush() {
	w.markWritten()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.markWritten()
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("hijack: %T is not a http.Hijacker: %w", w.ResponseWriter, http.ErrNotSupported)
	}
	return hj.Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// setCookie sets the browser id cookie, replacing one set earlier in this
// response (a renewal right after creation sends only the newest id).
func (w *responseWriter) setCookie(b *BrowserIDs, r *http.Request, id string) {
	dropSetCookie(w.Header(), b.name)
	b.SetCookie(w, r, id)
}

func (w *responseWriter) expireCookie(b *BrowserIDs, r *http.Request) {
	dropSetCookie(w.Header(), b.name)
	b.ExpireCookie(w, r)
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
