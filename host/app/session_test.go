package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/session"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

// withSessions adds a real session manager over the node's DB.
func withSessions(t testing.TB) func(*Options) {
	return func(o *Options) {
		m, err := session.New(context.Background(), o.DB, session.Options{
			Container: "/session_data/sessions", SweepInterval: -1, Node: o.Node,
		})
		if err != nil {
			t.Fatalf("session.New: %v", err)
		}
		t.Cleanup(func() { _ = m.Close(context.Background()) })
		o.Sessions = m
	}
}

// browser is an HTTP client with a cookie jar shared across nodes, as a
// browser behind the balancer would be.
type browser struct {
	t   *testing.T
	jar http.CookieJar
	cl  *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, jar: jar, cl: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// do sends the request to node n but keeps the cookies under one origin,
// as if every node sat behind one balancer.
func (b *browser) do(n *testNode, method, path, body string) (int, SessionJSON) {
	b.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, n.srv.URL+path, rd)
	origin, _ := url.Parse("http://front.example/")
	for _, c := range b.jar.Cookies(origin) {
		req.AddCookie(c)
	}
	resp, err := b.cl.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b.jar.SetCookies(origin, resp.Cookies())
	var s SessionJSON
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 && resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, &s); err != nil {
			b.t.Fatalf("decode %s: %v", raw, err)
		}
	}
	if resp.Header.Get(HeaderNode) == "" {
		b.t.Fatal("no X-Zhost-Node")
	}
	return resp.StatusCode, s
}

func TestSessionAcrossNodes(t *testing.T) {
	main := memstorage.New(memstorage.Options{})
	sessions := memstorage.New(memstorage.Options{})
	t.Cleanup(func() { _ = main.Close(); _ = sessions.Close() })
	a := newTestNodeOn(t, main, sessions, withSessions(t))
	b := newTestNodeOn(t, main, sessions, func(o *Options) { o.Node = "app2"; withSessions(t)(o) })
	br := newBrowser(t)

	if st, s := br.do(a, "GET", "/_session", ""); st != 200 || s.Exists {
		t.Fatalf("fresh browser: %d %+v", st, s)
	}
	st, s := br.do(a, "PUT", "/_session", `{"cart":["apple"],"n":3}`)
	if st != 200 || !s.Exists || !s.New || s.Data["n"] != float64(3) {
		t.Fatalf("PUT on a: %d %+v", st, s)
	}
	key := s.Key
	st, s = br.do(b, "GET", "/_session", "")
	if st != 200 || !s.Exists || s.Key != key || s.New || s.Data["n"] != float64(3) {
		t.Fatalf("GET on b: %d %+v", st, s)
	}
	if st, s = br.do(b, "PUT", "/_session", `{"n":null,"user":"ann"}`); st != 200 || s.Data["user"] != "ann" || s.Data["n"] != nil {
		t.Fatalf("merge on b: %d %+v", st, s)
	}
	if _, s = br.do(a, "GET", "/_session", ""); s.Data["user"] != "ann" || s.Data["cart"] == nil || s.Data["n"] != nil {
		t.Fatalf("after merge, on a: %+v", s)
	}
	if st, _ = br.do(a, "DELETE", "/_session", ""); st != 204 {
		t.Fatalf("DELETE: %d", st)
	}
	if _, s = br.do(b, "GET", "/_session", ""); s.Exists {
		t.Fatalf("after DELETE, on b: %+v", s)
	}
	if st, _ = br.do(a, "PUT", "/_session", `[1]`); st != 400 {
		t.Fatalf("PUT of an array: %d", st)
	}
	if st, _ = br.do(a, "POST", "/_session", `{}`); st != 405 {
		t.Fatalf("POST: %d", st)
	}
}

func TestSessionConcurrentKeys(t *testing.T) {
	main := memstorage.New(memstorage.Options{})
	sessions := memstorage.New(memstorage.Options{})
	t.Cleanup(func() { _ = main.Close(); _ = sessions.Close() })
	nodes := []*testNode{
		newTestNodeOn(t, main, sessions, withSessions(t)),
		newTestNodeOn(t, main, sessions, func(o *Options) { o.Node = "app2"; withSessions(t)(o) }),
	}
	br := newBrowser(t)
	if st, _ := br.do(nodes[0], "PUT", "/_session", `{"start":true}`); st != 200 {
		t.Fatalf("start: %d", st)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _ := br.do(nodes[i%2], "PUT", "/_session", `{"k`+string(rune('a'+i))+`":1}`)
			if st != 200 {
				errs <- st
			}
		}()
	}
	wg.Wait()
	close(errs)
	for st := range errs {
		t.Errorf("concurrent PUT: %d", st)
	}
	_, s := br.do(nodes[1], "GET", "/_session", "")
	if len(s.Data) != n+1 {
		t.Fatalf("after %d concurrent PUTs of different keys the session has %d keys: %v", n, len(s.Data), s.Data)
	}
}

func TestReservedPaths(t *testing.T) {
	n := newTestNode(t, func(o *Options) {
		withSessions(t)(o)
		o.ReservedPaths = []string{"/a/private"}
	})
	br := newBrowser(t)
	if st, _ := br.do(n, "PUT", "/_session", `{"x":1}`); st != 200 {
		t.Fatalf("PUT /_session: %d", st)
	}
	n.do(t, "PUT", "/a/public", map[string]any{})
	for _, tc := range []struct{ method, path string }{
		{"GET", "/session_data/sessions"},
		{"GET", "/session_data/sessions/items"},
		{"DELETE", "/session_data/sessions"},
		{"PUT", "/session_data/sessions/items/x"},
		{"GET", "/a/private"},
		{"PUT", "/a/private/x"},
		{"DELETE", "/a"}, // would delete the reserved subtree
	} {
		var body any
		if tc.method == "PUT" {
			body = map[string]any{}
		}
		if r := n.do(t, tc.method, tc.path, body); r.status != 403 {
			t.Errorf("%s %s: %d %s, want 403", tc.method, tc.path, r.status, r.body)
		}
	}
	if r := n.do(t, "POST", "/_tx", `{"ops":[{"op":"delete","path":"/session_data/sessions/items"}]}`); r.status != 403 {
		t.Errorf("tx under the container: %d", r.status)
	}
	var sd ObjectJSON
	n.do(t, "GET", "/session_data", nil).json(t, &sd)
	for _, c := range sd.Children {
		if c.Name == "sessions" {
			t.Fatalf("the session container is listed: %+v", sd.Children)
		}
	}
	if r := n.do(t, "DELETE", "/a/public", nil); r.status != 204 {
		t.Fatalf("DELETE beside a reserved path: %d", r.status)
	}
}

func TestSessionErrors(t *testing.T) {
	n := newTestNode(t, func(o *Options) {
		m, err := session.New(context.Background(), o.DB, session.Options{
			Container: "/session_data/sessions", SweepInterval: -1, Limit: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close(context.Background()) })
		o.Sessions = m
	})
	first := newBrowser(t)
	if st, _ := first.do(n, "PUT", "/_session", `{"a":1}`); st != 200 {
		t.Fatalf("first session: %d", st)
	}
	if st, _ := first.do(n, "PUT", "/_session", `{"`+strings.Repeat("k", session.MaxKeyLen+1)+`":1}`); st != 400 {
		t.Fatalf("overlong key: %d", st)
	}
	second := newBrowser(t)
	req, _ := http.NewRequest("PUT", n.srv.URL+"/_session", strings.NewReader(`{"b":2}`))
	resp, err := second.cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("session over the limit: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestSessionPatchAllOrNothing: a PUT /_session with one bad key changes
// nothing (regression: keys before the bad one, in map order, were set
// and committed by the middleware behind the 400).
func TestSessionPatchAllOrNothing(t *testing.T) {
	n := newTestNode(t, withSessions(t))
	br := newBrowser(t)
	if st, _ := br.do(n, "PUT", "/_session", `{"keep":"me"}`); st != 200 {
		t.Fatalf("first PUT: %d", st)
	}
	for i := 0; i < 5; i++ {
		if st, _ := br.do(n, "PUT", "/_session", `{"a":1,"b":2,"c":3,"keep":null,"":4}`); st != 400 {
			t.Fatalf("PUT with an empty key: %d, want 400", st)
		}
	}
	st, s := br.do(n, "GET", "/_session", "")
	if st != 200 || len(s.Data) != 1 || s.Data["keep"] != "me" {
		t.Fatalf("session after rejected patches: %d %+v, want only keep=me", st, s.Data)
	}
	// A browser without a session gets none from a rejected patch.
	fresh := newBrowser(t)
	if st, _ := fresh.do(n, "PUT", "/_session", `{"x":1,"":2}`); st != 400 {
		t.Fatalf("fresh PUT with an empty key: %d", st)
	}
	if _, s := fresh.do(n, "GET", "/_session", ""); s.Exists {
		t.Fatalf("a rejected patch created a session: %+v", s)
	}
}
