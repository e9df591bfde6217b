package session

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkMiddleware measures requests through the middleware (handler
// called in-process with a recorder, so HTTP parsing is not measured) on
// two nodes sharing one storage, alternating between them as a balancer
// would, and counts what reaches the storage backends per request with
// the counting wrapper. Two topologies: mem (both nodes on the same
// in-memory storages, no network) and net (a real host/server with
// memstorage main and packless sessions, each node on its own
// host/client connection; the counters sit on the server's backends).
// Cases:
//
//   - bare: the handler without the middleware (the baseline)
//   - untouched: the middleware, handler never looks at the session
//   - read-only: the handler reads one key of an existing session
//   - read-write: the handler changes one key every request
//
// Reported per request: req/s, stores/op (records written), loads/op.
// The goal for read-only is stores/op = 0.
func BenchmarkMiddleware(b *testing.B) {
	read := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _, err := FromRequest(r).Get(r.Context(), "user")
		if err != nil {
			WriteError(w, err)
			return
		}
		_, _ = fmt.Fprint(w, v)
	})
	var seq atomic.Int64
	write := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := FromRequest(r).Set(r.Context(), "n", seq.Add(1)); err != nil {
			WriteError(w, err)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	untouched := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})

	run := func(b *testing.B, name string, newC func(b *testing.B) *cluster, h func(m *Manager) http.Handler) {
		b.Run(name, func(b *testing.B) {
			c := newC(b)
			// One browser with a session, created through node 1.
			setup := httptest.NewRecorder()
			c.nodes[0].m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := FromRequest(r).Set(r.Context(), "user", "ann"); err != nil {
					b.Fatal(err)
				}
			})).ServeHTTP(setup, httptest.NewRequest("GET", "/", nil))
			cookie := setup.Result().Cookies()[0]
			handlers := []http.Handler{h(c.nodes[0].m), h(c.nodes[1].m)}
			stores, loads := c.main.stores.Load()+c.sess.stores.Load(), c.main.loads.Load()+c.sess.loads.Load()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				req := httptest.NewRequest("GET", "/", nil)
				req.AddCookie(cookie)
				w := httptest.NewRecorder()
				handlers[i%2].ServeHTTP(w, req) // alternate nodes, as a balancer would
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			el := time.Since(start)
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(n/el.Seconds(), "req/s")
			b.ReportMetric(float64(c.main.stores.Load()+c.sess.stores.Load()-stores)/n, "stores/op")
			b.ReportMetric(float64(c.main.loads.Load()+c.sess.loads.Load()-loads)/n, "loads/op")
		})
	}
	topologies := []struct {
		name string
		newC func(b *testing.B) *cluster
	}{
		{"mem", func(b *testing.B) *cluster { return newCluster(b, 2, Options{}) }},
		{"net", func(b *testing.B) *cluster { return newNetCluster(b, 2, Options{}) }},
	}
	for _, tp := range topologies {
		run(b, tp.name+"/bare", tp.newC, func(*Manager) http.Handler { return untouched })
		run(b, tp.name+"/untouched", tp.newC, func(m *Manager) http.Handler { return m.Middleware(untouched) })
		run(b, tp.name+"/read-only", tp.newC, func(m *Manager) http.Handler { return m.Middleware(read) })
		run(b, tp.name+"/read-write", tp.newC, func(m *Manager) http.Handler { return m.Middleware(write) })
	}
}

// BenchmarkNewSessions measures session creation (a cookie, a record, a
// folder entry and a count increment per request) on one node.
func BenchmarkNewSessions(b *testing.B) {
	c := newCluster(b, 1, Options{})
	h := c.nodes[0].m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := FromRequest(r).Set(r.Context(), "k", "v"); err != nil {
			WriteError(w, err)
		}
	}))
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	n, err := c.nodes[0].m.Count(context.Background())
	if err != nil || n < b.N {
		b.Fatalf("count %d after %d creations: %v", n, b.N, err)
	}
	b.ReportMetric(float64(c.sess.stores.Load())/float64(b.N), "stores/op")
}
