package app

import (
	"context"
	"net/http"
	"time"

	"github.com/zhostdb/zhost/host/db"
)

// NodeStatus is what the host reports about the node's connection to the
// storage server and its client cache (Options.Status).
type NodeStatus struct {
	Server ServerStatus `json:"server"`
	// Cache is the client's record cache; nil when there is none (a
	// storage opened in-process).
	Cache *CacheStatus `json:"cache,omitempty"`
}

// ServerStatus describes the connection to the storage server.
type ServerStatus struct {
	// Address is the server's address ("" for an in-process storage).
	Address string `json:"address,omitempty"`
	// State is "connected", "connecting", "disconnected" or "local".
	State     string `json:"state"`
	Connected bool   `json:"connected"`
	// Error is the last connection error, if any.
	Error string `json:"error,omitempty"`
}

// CacheStatus describes a cache: its size and how well it hits.
type CacheStatus struct {
	Bytes   int64   `json:"bytes"`
	Limit   int64   `json:"limit,omitempty"`
	Entries int     `json:"entries,omitempty"`
	Hits    uint64  `json:"hits"`
	Misses  uint64  `json:"misses"`
	HitRate float64 `json:"hit_rate"`
}

// StatusJSON is the answer of GET /_status.
type StatusJSON struct {
	Node     string       `json:"node"`
	Uptime   string       `json:"uptime"`
	Draining bool         `json:"draining"`
	LastTid  string       `json:"last_tid,omitempty"`
	Server   ServerStatus `json:"server"`
	Cache    *CacheStatus `json:"cache,omitempty"`
	Objects  CacheStatus  `json:"object_cache"`
	DB       db.Stats     `json:"db"`
	Mounts   []MountJSON  `json:"mounts"`
}

// MountJSON is one mount in /_status.
type MountJSON struct {
	Name      string `json:"name"`
	Path      string `json:"path"`
	State     string `json:"state"`
	Partition string `json:"partition,omitempty"`
	Folder    string `json:"folder,omitempty"`
	Error     string `json:"error,omitempty"`
	Attempts  int    `json:"attempts"`
	Since     string `json:"since"`
	NextRetry string `json:"next_retry,omitempty"`
}

// HitRate returns hits / (hits + misses), 0 when there were none.
func HitRate(hits, misses uint64) float64 {
	if hits+misses == 0 {
		return 0
	}
	return float64(hits) / float64(hits+misses)
}

func (a *App) serveStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, a, "GET, HEAD")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	out := StatusJSON{
		Node:     a.opts.Node,
		Uptime:   time.Since(a.started).Round(time.Second).String(),
		Draining: a.drain.Load(),
		DB:       a.db.Stats(),
		Mounts:   []MountJSON{},
	}
	last, lastErr := a.db.Storage().LastTid(ctx)
	if lastErr == nil {
		out.LastTid = last.String()
	}
	if a.opts.Status != nil {
		ns := a.opts.Status(ctx)
		out.Server, out.Cache = ns.Server, ns.Cache
	} else {
		out.Server = ServerStatus{State: "local", Connected: lastErr == nil}
		if lastErr != nil {
			out.Server.Error = lastErr.Error()
		}
	}
	st := out.DB
	misses := st.Loads - min(st.CacheHits, st.Loads)
	out.Objects = CacheStatus{Bytes: st.CacheBytes, Hits: st.CacheHits, Misses: misses, HitRate: HitRate(st.CacheHits, misses)}
	for _, m := range a.db.Mounts() {
		mj := MountJSON{
			Name: m.Name, Path: m.Path, State: string(m.State),
			Partition: m.Target.Partition, Folder: m.Target.Folder,
			Error: m.Err, Attempts: m.Attempts, Since: m.Since.UTC().Format(time.RFC3339),
		}
		if !m.NextRetry.IsZero() {
			mj.NextRetry = m.NextRetry.UTC().Format(time.RFC3339)
		}
		out.Mounts = append(out.Mounts, mj)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// serveHealth answers 200 while the node can reach its storage (for a
// network client: is connected to its server) and is not draining, else
// 503: what the balancer's active check asks.
func (a *App) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if a.drain.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining", "node": a.opts.Node})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if a.opts.Status != nil {
		// A network client answers LastTid from what it last heard, so
		// ask for the connection itself: a node cut off from its
		// server cannot serve, whatever it remembers.
		if ns := a.opts.Status(ctx); !ns.Server.Connected {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "server unreachable", "node": a.opts.Node, "error": ns.Server.Error})
			return
		}
	}
	if _, err := a.db.Storage().LastTid(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "storage unreachable", "node": a.opts.Node, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": a.opts.Node})
}
