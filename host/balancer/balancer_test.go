package balancer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/internal/forwarded"
)

// testBackend is a real HTTP server on 127.0.0.1 that names itself in
// every answer and can be made unhealthy.
type testBackend struct {
	name    string
	srv     *httptest.Server
	healthy atomic.Bool
	hits    atomic.Int64
	handler http.HandlerFunc // optional override for everything but the health path
}

func newTestBackend(t *testing.T, name string, h http.HandlerFunc) *testBackend {
	t.Helper()
	tb := &testBackend{name: name, handler: h}
	tb.healthy.Store(true)
	tb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		if r.URL.Path == DefaultHealthPath {
			if !tb.healthy.Load() {
				http.Error(w, "sick", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok")
			return
		}
		tb.hits.Add(1)
		if tb.handler != nil {
			tb.handler(w, r)
			return
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(tb.srv.Close)
	return tb
}

func (tb *testBackend) backend() Backend { return Backend{Name: tb.name, URL: tb.srv.URL} }

// startBalancer builds and serves a balancer on a free port and registers
// its shutdown.
func startBalancer(t testing.TB, opts Options) (*Balancer, string) {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "front"
	}
	opts.Listen = "127.0.0.1:0"
	bl, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := bl.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := bl.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return bl, "http://" + bl.Addr().String()
}

func newClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get does one request and returns status, the answering backend and body.
func do(t testing.TB, c *http.Client, method, url string, body io.Reader, hdr map[string]string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, resp.Header.Get("X-Backend"), string(b)
}

// waitFor polls cond every 10 ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func backendUp(bl *Balancer, name string) bool {
	for _, b := range bl.Status().Backends {
		if b.Name == name {
			return b.Up
		}
	}
	return false
}

func TestRoundRobin(t *testing.T) {
	a, b, c := newTestBackend(t, "a", nil), newTestBackend(t, "b", nil), newTestBackend(t, "c", nil)
	_, url := startBalancer(t, Options{Backends: []Backend{a.backend(), b.backend(), c.backend()}})
	cl := newClient(t)
	var order []string
	counts := map[string]int{}
	for range 30 {
		st, be, body := do(t, cl, "GET", url+"/x", nil, nil)
		if st != 200 || body != be {
			t.Fatalf("status %d backend %q body %q", st, be, body)
		}
		order = append(order, be)
		counts[be]++
	}
	for _, n := range []string{"a", "b", "c"} {
		if counts[n] != 10 {
			t.Fatalf("counts %v, want 10 each", counts)
		}
	}
	for i := 3; i < len(order); i++ {
		if order[i] != order[i-3] {
			t.Fatalf("order %v is not a cycle", order)
		}
	}
}

func TestLeastConn(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}
	a, b := newTestBackend(t, "a", slow), newTestBackend(t, "b", slow)
	bl, url := startBalancer(t, Options{Policy: PolicyLeastConn, Backends: []Backend{a.backend(), b.backend()}})
	cl := newClient(t)

	slowDone := make(chan string, 1)
	go func() {
		resp, err := cl.Get(url + "/slow")
		if err != nil {
			slowDone <- "error: " + err.Error()
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		slowDone <- resp.Header.Get("X-Backend")
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("slow request never reached a backend")
	}
	var busy string
	for _, s := range bl.Status().Backends {
		if s.Active == 1 {
			busy = s.Name
		}
	}
	if busy == "" {
		t.Fatalf("no backend has the slow request in flight: %+v", bl.Status().Backends)
	}
	for range 10 {
		st, be, _ := do(t, cl, "GET", url+"/fast", nil, nil)
		if st != 200 || be == busy {
			t.Fatalf("least_conn sent a request to busy backend %q (status %d)", be, st)
		}
	}
	close(release)
	if got := <-slowDone; got != busy {
		t.Fatalf("slow request answered by %q, want %q", got, busy)
	}
}

func TestHealthRiseFall(t *testing.T) {
	a, b := newTestBackend(t, "a", nil), newTestBackend(t, "b", nil)
	bl, url := startBalancer(t, Options{
		Backends:    []Backend{a.backend(), b.backend()},
		HealthCheck: HealthCheck{Interval: 20 * time.Millisecond, Timeout: time.Second, Rise: 3, Fall: 2},
	})
	cl := newClient(t)

	a.healthy.Store(false)
	waitFor(t, 5*time.Second, "a down", func() bool { return !backendUp(bl, "a") })
	if !backendUp(bl, "b") {
		t.Fatal("b went down with a")
	}
	for range 6 {
		if st, be, _ := do(t, cl, "GET", url+"/", nil, nil); st != 200 || be != "b" {
			t.Fatalf("with a down: status %d from %q", st, be)
		}
	}
	var lastErr string
	for _, s := range bl.Status().Backends {
		if s.Name == "a" {
			lastErr = s.LastError
		}
	}
	if !strings.Contains(lastErr, "503") {
		t.Fatalf("a's last error %q does not name the failed check", lastErr)
	}

	a.healthy.Store(true)
	waitFor(t, 5*time.Second, "a up", func() bool { return backendUp(bl, "a") })
	seen := map[string]bool{}
	for range 4 {
		_, be, _ := do(t, cl, "GET", url+"/", nil, nil)
		seen[be] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("after a rose, traffic went to %v", seen)
	}
}

func TestAllDown503(t *testing.T) {
	a := newTestBackend(t, "a", nil)
	bl, url := startBalancer(t, Options{
		Backends:    []Backend{a.backend()},
		HealthCheck: HealthCheck{Interval: 20 * time.Millisecond, Fall: 1},
	})
	a.healthy.Store(false)
	waitFor(t, 5*time.Second, "a down", func() bool { return !backendUp(bl, "a") })
	cl := newClient(t)
	req, _ := http.NewRequest("GET", url+"/", nil)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if st := bl.Status(); st.Unavailable != 1 || st.Requests != 1 {
		t.Fatalf("counters %+v", st)
	}
	if a.hits.Load() != 0 {
		t.Fatal("a down backend received the request")
	}
}

func TestPassiveFailureAndRetryOnDialError(t *testing.T) {
	a, b := newTestBackend(t, "a", nil), newTestBackend(t, "b", nil)
	// Active checks far apart so that only the passive check can notice.
	bl, url := startBalancer(t, Options{
		Backends:    []Backend{a.backend(), b.backend()},
		HealthCheck: HealthCheck{Interval: time.Hour},
	})
	cl := newClient(t)
	a.srv.Close() // a dies: connections are refused
	// POST is not idempotent, but a refused connection never reached the
	// node, so it is retried.
	for i := range 6 {
		st, be, _ := do(t, cl, "POST", url+"/p", strings.NewReader("x"), nil)
		if st != 200 || be != "b" {
			t.Fatalf("request %d: status %d from %q", i, st, be)
		}
	}
	var sa BackendStatus
	for _, s := range bl.Status().Backends {
		if s.Name == "a" {
			sa = s
		}
	}
	if sa.Up || sa.Failures != 1 || sa.LastError == "" {
		t.Fatalf("a after one refused connection: %+v (want down, 1 failure)", sa)
	}
}

func TestPassiveCooldownWithoutActiveChecks(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	var a *testBackend
	a = newTestBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			hijackClose(w)
			return
		}
		_, _ = io.WriteString(w, "a")
	})
	b := newTestBackend(t, "b", nil)
	bl, url := startBalancer(t, Options{
		Backends:    []Backend{a.backend(), b.backend()},
		HealthCheck: HealthCheck{Disabled: true, Interval: 50 * time.Millisecond},
	})
	cl := newClient(t)
	if st, be, _ := do(t, cl, "GET", url+"/", nil, nil); st != 200 || be != "b" {
		t.Fatalf("status %d from %q", st, be)
	}
	if backendUp(bl, "a") {
		t.Fatal("a still up after a connection error")
	}
	fail.Store(false)
	waitFor(t, 5*time.Second, "a back after cooldown", func() bool {
		_, be, _ := do(t, cl, "GET", url+"/", nil, nil)
		return be == "a"
	})
}

// hijackClose drops the connection without answering: a node that died
// after reading the request.
func hijackClose(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func TestRetryIdempotentWhenNodeDiesMidway(t *testing.T) {
	var aBodies sync.Map
	a := newTestBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		aBodies.Store(r.Method, string(body))
		hijackClose(w) // read the request, then die before answering
	})
	var bBody atomic.Value
	b := newTestBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		bBody.Store(string(body))
		_, _ = io.WriteString(w, "b")
	})
	for _, tc := range []struct {
		method string
		body   string
		want   int
		hdr    map[string]string
	}{
		{"GET", "", 200, nil},
		{"PUT", `{"title":"retried"}`, 200, nil},
		{"DELETE", "", 200, nil},
		{"POST", `{"op":"not idempotent"}`, 502, nil},
		// No node deduplicates by Idempotency-Key: a node that acted and
		// died must not see the POST applied again elsewhere.
		{"POST", `{"op":"incr"}`, 502, map[string]string{"Idempotency-Key": "k1"}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			a.hits.Store(0)
			b.hits.Store(0)
			bBody.Store("")
			// MaxAttempts 0: each backend once. The policy starts at a.
			bl, url := startBalancer(t, Options{
				Backends:    []Backend{a.backend(), b.backend()},
				HealthCheck: HealthCheck{Interval: time.Hour},
			})
			cl := newClient(t)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			st, be, _ := do(t, cl, tc.method, url+"/doc", body, tc.hdr)
			if st != tc.want {
				t.Fatalf("status %d, want %d", st, tc.want)
			}
			// Go's transport may itself resend a body-less idempotent
			// request once on a fresh connection to the same node; what
			// matters is that a saw it and b answered.
			if a.hits.Load() < 1 {
				t.Fatalf("a saw no request")
			}
			if tc.want == 200 {
				if be != "b" || b.hits.Load() != 1 {
					t.Fatalf("answered by %q, b saw %d", be, b.hits.Load())
				}
				if got := bBody.Load().(string); got != tc.body {
					t.Fatalf("b got body %q, want %q (the buffered body must be replayed)", got, tc.body)
				}
			} else if b.hits.Load() != 0 {
				t.Fatalf("non-idempotent request was retried on b")
			}
			cs := bl.Status()
			if tc.want == 200 && (cs.Retries != 1 || cs.BadGateway != 0) || tc.want == 502 && (cs.Retries != 0 || cs.BadGateway != 1) {
				t.Fatalf("counters %+v", cs)
			}
			if got, _ := aBodies.Load(tc.method); got != tc.body {
				t.Fatalf("a got body %q, want %q", got, tc.body)
			}
		})
	}
}

func TestLargeBodyStreamsWithoutRetry(t *testing.T) {
	a := newTestBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hijackClose(w)
	})
	var got atomic.Int64
	okHandler := func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(n)
		_, _ = io.WriteString(w, "ok")
	}
	b := newTestBackend(t, "b", okHandler)
	_, url := startBalancer(t, Options{
		Backends:     []Backend{a.backend(), b.backend()},
		HealthCheck:  HealthCheck{Interval: time.Hour},
		MaxRetryBody: 1024,
	})
	cl := newClient(t)
	big := bytes.Repeat([]byte("z"), 4096)
	if st, _, _ := do(t, cl, "PUT", url+"/big", bytes.NewReader(big), nil); st != 502 {
		t.Fatalf("big PUT to a dying node: status %d, want 502 (not replayable)", st)
	}
	// a is now down: the next big body streams to b in full.
	if st, be, _ := do(t, cl, "PUT", url+"/big", bytes.NewReader(big), nil); st != 200 || be != "b" || got.Load() != 4096 {
		t.Fatalf("big PUT: status %d from %q, b read %d bytes", st, be, got.Load())
	}
}

func TestQueue(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	a := newTestBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		if r.URL.Path == "/block" {
			<-release
		}
		_, _ = io.WriteString(w, "a")
	})
	bl, url := startBalancer(t, Options{
		Backends:           []Backend{a.backend()},
		MaxConnsPerBackend: 1,
		MaxQueue:           1,
		QueueTimeout:       5 * time.Second,
		HealthCheck:        HealthCheck{Interval: time.Hour},
	})
	cl := newClient(t)
	type result struct {
		status int
		err    error
	}
	get := func(path string, out chan<- result) {
		resp, err := cl.Get(url + path)
		if err != nil {
			out <- result{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out <- result{status: resp.StatusCode}
	}
	first, queued := make(chan result, 1), make(chan result, 1)
	go get("/block", first)
	<-entered
	go get("/queued", queued)
	waitFor(t, 5*time.Second, "a queued request", func() bool { return bl.Status().Queued == 1 })
	// The queue (1) is full: the next request is refused at once.
	st, _, body := do(t, cl, "GET", url+"/refused", nil, nil)
	if st != 503 || !strings.Contains(body, ErrQueueFull.Error()) {
		t.Fatalf("with a full queue: status %d body %q", st, body)
	}
	close(release)
	for _, ch := range []chan result{first, queued} {
		if r := <-ch; r.err != nil || r.status != 200 {
			t.Fatalf("status %d err %v, want 200", r.status, r.err)
		}
	}
}

func TestQueueTimeout503(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	a := newTestBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "a")
	})
	_, url := startBalancer(t, Options{
		Backends:           []Backend{a.backend()},
		MaxConnsPerBackend: 1,
		QueueTimeout:       100 * time.Millisecond,
		HealthCheck:        HealthCheck{Interval: time.Hour},
	})
	cl := newClient(t)
	done := make(chan error, 1)
	go func() {
		resp, err := cl.Get(url + "/block")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-entered
	start := time.Now()
	st, _, body := do(t, cl, "GET", url+"/x", nil, nil)
	if st != 503 || !strings.Contains(body, ErrQueueTimeout.Error()) {
		t.Fatalf("status %d body %q, want 503 queue timeout", st, body)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("answered after %v, before the queue timeout", waited)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func echoHeaders(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"headers": r.Header, "host": r.Host}
	trust, _ := forwarded.ParseTrust([]string{"127.0.0.1"})
	out["origin"] = trust.Resolve(r).BaseURL()
	_ = json.NewEncoder(w).Encode(out)
}

func TestForwardedHeaders(t *testing.T) {
	a := newTestBackend(t, "a", echoHeaders)
	spoof := map[string]string{
		"Forwarded":         `for=198.51.100.7;host=public.example;proto=https`,
		"X-Forwarded-For":   "198.51.100.7",
		"X-Forwarded-Host":  "public.example",
		"X-Forwarded-Proto": "https",
		"X-Real-Ip":         "198.51.100.7",
	}
	type echo struct {
		Headers http.Header
		Host    string
		Origin  string
	}
	call := func(t *testing.T, trusted []string) (echo, string) {
		_, url := startBalancer(t, Options{Backends: []Backend{a.backend()}, TrustedProxies: trusted})
		_, _, body := do(t, newClient(t), "GET", url+"/h", nil, spoof)
		var e echo
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatalf("decode %q: %v", body, err)
		}
		return e, strings.TrimPrefix(url, "http://")
	}
	t.Run("untrusted", func(t *testing.T) {
		e, hostport := call(t, nil)
		if got, want := e.Headers.Get("Forwarded"), `for=127.0.0.1;host="`+hostport+`";proto=http`; got != want {
			t.Errorf("Forwarded %q, want %q", got, want)
		}
		if got := e.Headers.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For %q", got)
		}
		if got := e.Headers.Get("X-Forwarded-Host"); got != hostport {
			t.Errorf("X-Forwarded-Host %q, want %q", got, hostport)
		}
		if got := e.Headers.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("X-Forwarded-Proto %q", got)
		}
		if got := e.Headers.Get("X-Real-Ip"); got != "" {
			t.Errorf("X-Real-Ip %q was not stripped", got)
		}
		if e.Host != hostport {
			t.Errorf("Host %q, want the client's %q", e.Host, hostport)
		}
		if e.Origin != "http://"+hostport {
			t.Errorf("app origin %q, want the balancer's address", e.Origin)
		}
	})
	t.Run("trusted", func(t *testing.T) {
		e, hostport := call(t, []string{"127.0.0.0/8"})
		want := spoof["Forwarded"] + `, for=127.0.0.1;host="` + hostport + `";proto=http`
		if got := e.Headers.Get("Forwarded"); got != want {
			t.Errorf("Forwarded %q, want %q", got, want)
		}
		if got := e.Headers.Get("X-Forwarded-For"); got != "198.51.100.7, 127.0.0.1" {
			t.Errorf("X-Forwarded-For %q", got)
		}
		if got := e.Headers.Get("X-Forwarded-Host"); got != "public.example" {
			t.Errorf("X-Forwarded-Host %q", got)
		}
		if got := e.Headers.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("X-Forwarded-Proto %q", got)
		}
		if got := e.Headers.Get("X-Real-Ip"); got != "198.51.100.7" {
			t.Errorf("X-Real-Ip %q from a trusted proxy was dropped", got)
		}
		if e.Origin != "https://public.example" {
			t.Errorf("app origin %q, want https://public.example", e.Origin)
		}
	})
}

func TestDrain(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	a := newTestBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	bl, err := New(Options{Name: "front", Listen: "127.0.0.1:0", Backends: []Backend{a.backend()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bl.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := bl.Addr().String()
	cl := newClient(t)
	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := cl.Get("http://" + addr + "/slow")
		if err != nil {
			inflight <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	<-entered
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- bl.Shutdown(ctx)
	}()
	waitFor(t, 5*time.Second, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	if !bl.Status().Draining {
		t.Fatal("Status does not report draining")
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	r := <-inflight
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: status %d body %q err %v", r.status, r.body, r.err)
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := bl.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Shutdown: %v, want ErrClosed", err)
	}
}

func TestShutdownDeadline(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	entered := make(chan struct{}, 1)
	a := newTestBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	bl, err := New(Options{Listen: "127.0.0.1:0", Backends: []Backend{a.backend()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bl.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := cl.Get("http://" + bl.Addr().String() + "/hang"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := bl.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown past its deadline: %v, want DeadlineExceeded", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the hung request's connection was not closed")
	}
}

func TestAccessLog(t *testing.T) {
	a := newTestBackend(t, "a", nil)
	var buf syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info, JSONFormat: true})
	_, url := startBalancer(t, Options{Backends: []Backend{a.backend()}, Logger: log})
	if st, _, _ := do(t, newClient(t), "GET", url+"/logged?q=1", nil, nil); st != 200 {
		t.Fatalf("status %d", st)
	}
	var found bool
	for _, line := range strings.Split(buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["@message"] != "request" {
			continue
		}
		found = true
		if m["@module"] != "access" || m["uri"] != "/logged?q=1" || m["backend"] != "a" ||
			m["status"] != float64(200) || m["bytes"] != float64(1) || m["method"] != "GET" {
			t.Fatalf("access log line %s", line)
		}
	}
	if !found {
		t.Fatalf("no access log line in %q", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNewValidates(t *testing.T) {
	ok := Backend{Name: "a", URL: "http://127.0.0.1:1"}
	for name, o := range map[string]Options{
		"no backends":    {},
		"bad policy":     {Backends: []Backend{ok}, Policy: "random"},
		"bad url":        {Backends: []Backend{{Name: "a", URL: "127.0.0.1:8081"}}},
		"no name":        {Backends: []Backend{{URL: "http://127.0.0.1:1"}}},
		"duplicate":      {Backends: []Backend{ok, ok}},
		"bad cidr":       {Backends: []Backend{ok}, TrustedProxies: []string{"10.0.0.0/33"}},
		"bad health":     {Backends: []Backend{ok}, HealthCheck: HealthCheck{Path: "healthz"}},
		"bad public url": {Backends: []Backend{ok}, PublicURL: "example.org"},
		"negative":       {Backends: []Backend{ok}, MaxConnsPerBackend: -1},
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: err %v, want ErrInvalidOptions", name, err)
		}
	}
	bl, err := New(Options{Backends: []Backend{ok}})
	if err != nil {
		t.Fatal(err)
	}
	// No side effects: nothing listens and Shutdown of an unstarted
	// balancer is fine.
	if bl.Addr() != nil {
		t.Fatal("New bound an address")
	}
	if err := bl.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown of an unstarted balancer: %v", err)
	}
}

func TestClientGoneIsNotABackendFailure(t *testing.T) {
	entered := make(chan struct{}, 1)
	a := newTestBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
	})
	bl, url := startBalancer(t, Options{Backends: []Backend{a.backend()}, HealthCheck: HealthCheck{Interval: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/wait", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := newClient(t).Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	cancel()
	<-done
	waitFor(t, 5*time.Second, "request finished", func() bool { return bl.Status().InFlight == 0 })
	if !backendUp(bl, "a") {
		t.Fatal("a client that left took the backend down")
	}
}

func ExampleNew() {
	bl, err := New(Options{
		Name:      "front",
		Listen:    "127.0.0.1:0",
		PublicURL: "http://127.0.0.1:8080",
		Backends:  []Backend{{Name: "app1", URL: "http://127.0.0.1:8081"}},
		Policy:    PolicyLeastConn,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(bl.Status().Policy, len(bl.Status().Backends))
	// Output: least_conn 1
}

func TestStreamingResponsesAreFlushed(t *testing.T) {
	release := make(chan struct{})
	a := newTestBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: second\n\n")
	})
	_, url := startBalancer(t, Options{Backends: []Backend{a.backend()}, HealthCheck: HealthCheck{Interval: time.Hour}})
	resp, err := newClient(t).Get(url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len("data: first\n\n"))
	got := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(resp.Body, buf)
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil || string(buf) != "data: first\n\n" {
			t.Fatalf("first event %q: %v", buf, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event was not flushed through the balancer")
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "data: second\n\n" {
		t.Fatalf("rest %q: %v", rest, err)
	}
}

func TestChunkedSmallBodyIsReplayed(t *testing.T) {
	a := newTestBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hijackClose(w)
	})
	var got atomic.Value
	b := newTestBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got.Store(fmt.Sprintf("%d %q %v", r.ContentLength, body, r.TransferEncoding))
	})
	_, url := startBalancer(t, Options{Backends: []Backend{a.backend(), b.backend()}, HealthCheck: HealthCheck{Interval: time.Hour}})
	// An io.Reader of unknown length makes the client send it chunked.
	body := io.MultiReader(strings.NewReader(`{"chunked":`), strings.NewReader(`true}`))
	if st, be, _ := do(t, newClient(t), "PUT", url+"/c", body, nil); st != 200 || be != "b" {
		t.Fatalf("status %d from %q", st, be)
	}
	if g := got.Load(); g != `16 "{\"chunked\":true}" []` {
		t.Fatalf("b received %v", g)
	}
}

func TestResponseTimeoutRetriesIdempotent(t *testing.T) {
	a := newTestBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		select { // a hung node
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	b := newTestBackend(t, "b", nil)
	bl, url := startBalancer(t, Options{
		Backends:        []Backend{a.backend(), b.backend()},
		HealthCheck:     HealthCheck{Interval: time.Hour},
		ResponseTimeout: 100 * time.Millisecond,
	})
	if st, be, _ := do(t, newClient(t), "GET", url+"/slow", nil, nil); st != 200 || be != "b" {
		t.Fatalf("status %d from %q", st, be)
	}
	if backendUp(bl, "a") {
		t.Fatal("a hung node stayed up")
	}
	bl2, err := New(Options{Backends: []Backend{b.backend()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bl2.Start(context.Background()); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Start without a listen address: %v", err)
	}
}
