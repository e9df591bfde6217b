package app

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/zhostdb/zhost/host/session"
)

// SessionJSON is the answer of GET and PUT /_session.
type SessionJSON struct {
	// Exists is false when the browser has no live session (GET without
	// a valid cookie); nothing is created by reading.
	Exists bool `json:"exists"`
	// New is true when this request created the session.
	New bool `json:"new,omitempty"`
	// Key is the session's non-secret key (never the browser id).
	Key        string         `json:"key,omitempty"`
	Created    string         `json:"created,omitempty"`
	LastAccess string         `json:"last_access,omitempty"`
	ExpiresAt  string         `json:"expires_at,omitempty"`
	Data       map[string]any `json:"data"`
}

func (a *App) serveSession(w http.ResponseWriter, r *http.Request) {
	if a.opts.Sessions == nil {
		a.writeError(w, r, http.StatusNotImplemented, "", errors.New("sessions are not configured on this node"))
		return
	}
	h := session.FromRequest(r)
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		out, err := sessionJSON(r, h)
		if err != nil {
			a.writeSessionError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	case http.MethodPut:
		patch, err := a.readJSONObject(w, r)
		if err != nil {
			a.writeError(w, r, statusOfBody(err), "", err)
			return
		}
		// Check every key before changing anything: the middleware commits
		// what was set, so a bad key found halfway would store half the
		// patch behind a 400.
		for k := range patch {
			if k == "" || len(k) > session.MaxKeyLen {
				a.writeError(w, r, http.StatusBadRequest, "", fmt.Errorf("session key %q: want 1 to %d bytes: %w", k, session.MaxKeyLen, session.ErrValue))
				return
			}
		}
		// Keys set to null are removed; the others are set. Setting a key
		// creates the session if the browser has none.
		for k, v := range patch {
			if v == nil {
				err = h.Delete(ctx, k)
			} else {
				err = h.Set(ctx, k, v)
			}
			if err != nil {
				a.writeSessionError(w, r, err)
				return
			}
		}
		out, err := sessionJSON(r, h)
		if err != nil {
			a.writeSessionError(w, r, err)
			return
		}
		// Commit before answering, so a failed save is reported rather
		// than acknowledged.
		if err := h.Commit(ctx); err != nil {
			a.writeSessionError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	case http.MethodDelete:
		if err := h.Invalidate(ctx); err != nil {
			a.writeSessionError(w, r, err)
			return
		}
		if err := h.Commit(ctx); err != nil {
			a.writeSessionError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w, r, a, "GET, HEAD, PUT, DELETE")
	}
}

// sessionJSON renders the request's session as its handle sees it.
func sessionJSON(r *http.Request, h *session.Handle) (SessionJSON, error) {
	ctx := r.Context()
	out := SessionJSON{Data: map[string]any{}}
	info, ok, err := h.Info(ctx)
	if err != nil || !ok {
		return out, err
	}
	out.Exists, out.New, out.Key = true, info.New, info.Key
	out.Created = info.Created.UTC().Format(time.RFC3339Nano)
	out.LastAccess = info.LastAccess.UTC().Format(time.RFC3339Nano)
	if !info.ExpiresAt.IsZero() {
		out.ExpiresAt = info.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	keys, err := h.Keys(ctx)
	if err != nil {
		return out, err
	}
	for _, k := range keys {
		v, found, err := h.Get(ctx, k)
		if err != nil {
			return out, fmt.Errorf("session key %q: %w", k, err)
		}
		if found {
			out.Data[k] = v
		}
	}
	return out, nil
}

func (a *App) writeSessionError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	switch {
	case errors.Is(err, session.ErrFull):
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "60")
	case errors.Is(err, session.ErrValue):
		status = http.StatusBadRequest
	}
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "5")
	}
	a.writeError(w, r, status, "", err)
}
