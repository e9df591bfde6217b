package balancer

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A POST that reached a node (on a kept-alive connection, as every
// request after the first health check is) must never be sent again,
// Idempotency-Key or not: not by the balancer to another node, and not by
// its HTTP transport to the same node. The node here commits (counts the
// POST) and dies before answering; the transport's own retry then finds
// the node's port closed, and that dial error must not pass for "never
// reached its node".
func TestRegressionPostWithIdempotencyKeyNotResent(t *testing.T) {
	for _, die := range []bool{false, true} {
		name := "node-alive"
		if die {
			name = "node-dead"
		}
		t.Run(name, func(t *testing.T) {
			var posts atomic.Int64
			var a *testBackend
			a = newTestBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost {
					_, _ = io.WriteString(w, "a")
					return
				}
				_, _ = io.ReadAll(r.Body)
				posts.Add(1) // the node acted on it
				if die {
					_ = a.srv.Listener.Close() // the node is gone: dials are refused
				}
				hijackClose(w)
			})
			b := newTestBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					posts.Add(1)
				}
				_, _ = io.WriteString(w, "b")
			})
			bl, url := startBalancer(t, Options{
				Backends:    []Backend{a.backend(), b.backend()},
				HealthCheck: HealthCheck{Interval: time.Hour},
				Policy:      PolicyRoundRobin,
			})
			// The first health checks leave an idle connection to each node.
			waitFor(t, 5*time.Second, "first health checks", func() bool {
				for _, s := range bl.Status().Backends {
					if s.LastCheck.IsZero() {
						return false
					}
				}
				return true
			})
			time.Sleep(20 * time.Millisecond) // the connections back in the idle pool
			cl := newClient(t)
			st, _, _ := do(t, cl, "POST", url+"/_tx", strings.NewReader(`{"ops":[{"op":"incr","path":"/n"}]}`),
				map[string]string{"Idempotency-Key": "k1", "Content-Type": "application/json"})
			if n := posts.Load(); n != 1 {
				t.Fatalf("the POST was applied %d times (status %d), want once", n, st)
			}
			if st != http.StatusBadGateway {
				t.Fatalf("status %d, want 502", st)
			}
		})
	}
}
