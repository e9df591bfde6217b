package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/app"
	"github.com/zhostdb/zhost/host/balancer"
	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/session"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

type cluster struct {
	srv        *server.Server
	serverAddr string
	nodes      []*node
	front      *balancer.Balancer
	frontURL   string
}

type node struct {
	name   string
	client *client.Client
	srv    *http.Server
	url    string
	done   chan struct{}
}

// stop kills the node's HTTP server at once (connections dropped), as a
// crashed process would.
func (n *node) stop() {
	_ = n.srv.Close()
	<-n.done
}

func startCluster(t testing.TB, nodes int) *cluster {
	t.Helper()
	ctx := context.Background()
	parts := map[string]server.Partition{}
	for _, name := range []string{"main", "sessiondata"} {
		st := memstorage.New(memstorage.Options{})
		t.Cleanup(func() { _ = st.Close() })
		parts[name] = server.Partition{Storage: st}
	}
	srv, err := server.New(server.Options{Name: "zeo", Partitions: parts})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	c := &cluster{serverAddr: l.Addr().String(), srv: srv}

	// The balancer's address must be known before the nodes start, so
	// bind it first.
	fl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.frontURL = "http://" + fl.Addr().String()

	var backends []balancer.Backend
	for i := range nodes {
		n := c.startNode(t, ctx, fmt.Sprintf("app%d", i+1))
		c.nodes = append(c.nodes, n)
		backends = append(backends, balancer.Backend{Name: n.name, URL: n.url})
	}
	c.front, err = balancer.New(balancer.Options{
		Name: "front", PublicURL: c.frontURL, Backends: backends,
		HealthCheck: balancer.HealthCheck{Interval: 50 * time.Millisecond, Rise: 1, Fall: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.front.Serve(fl) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.front.Shutdown(ctx)
	})
	return c
}

func (c *cluster) startNode(t testing.TB, ctx context.Context, name string) *node {
	t.Helper()
	cl, err := client.Open(ctx, client.Options{Addr: c.serverAddr, Partition: "main", Name: name})
	if err != nil {
		t.Fatalf("client %s: %v", name, err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	d, err := db.Open(ctx, cl, db.Options{
		Meta: storage.TxMeta{Extension: map[string]string{"node": name}},
		Mounts: []db.Mount{{Name: "session_data", Path: "/session_data",
			Resolve: func(context.Context) (db.Target, error) {
				return db.Target{Partition: "sessiondata", Folder: "session_data"}, nil
			}}},
		OpenPartition: func(ctx context.Context, partition, _ string) (storage.Storage, error) {
			return client.Open(ctx, client.Options{Addr: c.serverAddr, Partition: partition, Name: name})
		},
	})
	if err != nil {
		t.Fatalf("db %s: %v", name, err)
	}
	t.Cleanup(func() { _ = d.Close() })
	trusted := []string{"127.0.0.1"}
	sm, err := session.New(ctx, d, session.Options{
		Container: "/session_data/sessions", SweepInterval: -1, Node: name,
		PublicURL: c.frontURL, TrustedProxies: trusted,
	})
	if err != nil {
		t.Fatalf("sessions %s: %v", name, err)
	}
	t.Cleanup(func() { _ = sm.Close(context.Background()) })
	a, err := app.New(app.Options{
		Node: name, DB: d, PublicURL: c.frontURL, TrustedProxies: trusted, Sessions: sm,
		WaitForTid: cl.WaitForTid, Status: app.ClientStatus(cl),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, client: cl, srv: &http.Server{Handler: a}, url: "http://" + l.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(n.done)
		_ = n.srv.Serve(l)
	}()
	t.Cleanup(n.stop)
	return n
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
}

func call(t *testing.T, cl *http.Client, method, url, body string, hdr ...string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer r.Body.Close()
	raw, _ := io.ReadAll(r.Body)
	out := resp{status: r.StatusCode, header: r.Header}
	if len(raw) > 0 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
	}
	return out
}

func newBrowser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Jar: jar, Transport: tr, Timeout: 10 * time.Second}
}

func TestClusterThroughBalancer(t *testing.T) {
	c := startCluster(t, 2)
	br := newBrowser(t)

	// A write through the balancer: absolute URLs point at the balancer.
	r := call(t, br, "PUT", c.frontURL+"/site/pages/home", `{"title":"Home"}`)
	if r.status != 201 || r.header.Get("Location") != c.frontURL+"/site/pages/home" || r.body["url"] != c.frontURL+"/site/pages/home" {
		t.Fatalf("PUT via balancer: %d %v %v", r.status, r.header, r.body)
	}
	tid := r.header.Get(app.HeaderTid)
	if tid == "" {
		t.Fatal("no tid on a write")
	}
	// Read back through each node directly, carrying the tid: every node
	// answers with the write (its cache was invalidated).
	direct := newBrowser(t)
	for _, n := range c.nodes {
		r := call(t, direct, "GET", n.url+"/site/pages/home", "", app.HeaderTid, tid)
		data, _ := r.body["data"].(map[string]any)
		if r.status != 200 || data["title"] != "Home" || r.header.Get(app.HeaderNode) != n.name {
			t.Fatalf("GET on %s: %d %v", n.name, r.status, r.body)
		}
		// Direct to a node without forwarding headers: URLs still name
		// the public URL, never the node.
		if r.body["url"] != c.frontURL+"/site/pages/home" {
			t.Fatalf("url from %s: %v", n.name, r.body["url"])
		}
	}
	// Change it, then read through the balancer many times: with the tid
	// cookie every answer, from either node, has the new data.
	for i := range 10 {
		r := call(t, br, "PUT", c.frontURL+"/site/pages/home", fmt.Sprintf(`{"title":"v%d"}`, i))
		if r.status != 200 {
			t.Fatalf("PUT %d: %d", i, r.status)
		}
		g := call(t, br, "GET", c.frontURL+"/site/pages/home", "")
		data, _ := g.body["data"].(map[string]any)
		if data["title"] != fmt.Sprintf("v%d", i) {
			t.Fatalf("read-your-writes: after v%d read %v from %s", i, data["title"], g.header.Get(app.HeaderNode))
		}
	}

	// One session across nodes.
	if r := call(t, br, "PUT", c.frontURL+"/_session", `{"user":"ann"}`); r.status != 200 {
		t.Fatalf("PUT /_session: %d %v", r.status, r.body)
	}
	seen := map[string]bool{}
	for range 6 {
		r := call(t, br, "GET", c.frontURL+"/_session", "")
		data, _ := r.body["data"].(map[string]any)
		if r.status != 200 || data["user"] != "ann" {
			t.Fatalf("session on %s: %d %v", r.header.Get(app.HeaderNode), r.status, r.body)
		}
		seen[r.header.Get(app.HeaderNode)] = true
	}
	if len(seen) != 2 {
		t.Fatalf("session reads served by %v, want both nodes", seen)
	}

	// /_status reports the client connection and cache.
	st := call(t, br, "GET", c.nodes[0].url+"/_status", "")
	srv, _ := st.body["server"].(map[string]any)
	cache, _ := st.body["cache"].(map[string]any)
	if srv["connected"] != true || srv["address"] != c.serverAddr || cache == nil {
		t.Fatalf("status %v", st.body)
	}
}

func TestClusterNodeDiesMidTraffic(t *testing.T) {
	c := startCluster(t, 2)
	br := newBrowser(t)
	if r := call(t, br, "PUT", c.frontURL+"/obj", `{"v":1}`); r.status != 201 {
		t.Fatalf("PUT: %d", r.status)
	}
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newBrowser(t)
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", c.frontURL+"/obj", nil)
				r, err := cl.Do(req)
				if err != nil {
					if failed.Add(1) <= 5 {
						t.Logf("GET while a node died: %v", err)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, r.Body)
				r.Body.Close()
				if r.StatusCode == 200 {
					ok.Add(1)
				} else if failed.Add(1) <= 5 {
					t.Logf("GET while a node died: status %d from %s", r.StatusCode, r.Header.Get("X-Zhost-Node"))
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	c.nodes[0].stop()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d GETs failed, %d succeeded while a node died", failed.Load(), ok.Load())
	}
	var down bool
	for _, b := range c.front.Status().Backends {
		if b.Name == c.nodes[0].name && !b.Up {
			down = true
		}
	}
	if !down {
		t.Fatalf("the balancer did not mark the dead node down: %+v", c.front.Status().Backends)
	}
}

// TestRegressionHealthzWithoutServer: a node cut off from its storage
// server answers its health check with 503, so the balancer's active
// check can take it down; /healthz used to ask the client's LastTid,
// which answers from memory and kept saying 200.
func TestRegressionHealthzWithoutServer(t *testing.T) {
	c := startCluster(t, 1)
	n := c.nodes[0]
	hc := &http.Client{Timeout: 5 * time.Second}
	if r := call(t, hc, "GET", n.url+"/healthz", ""); r.status != http.StatusOK {
		t.Fatalf("healthz with the server up: %d %v", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var r resp
	for time.Now().Before(deadline) {
		if r = call(t, hc, "GET", n.url+"/healthz", ""); r.status == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.status != http.StatusServiceUnavailable || r.body["status"] != "server unreachable" {
		t.Fatalf("healthz with the server gone: %d %v, want 503 server unreachable", r.status, r.body)
	}
}
