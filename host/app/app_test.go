package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

const publicURL = "http://front.example:8080"

type testNode struct {
	app *App
	db  *db.DB
	st  *memstorage.Storage
	srv *httptest.Server
	cl  *http.Client
}

// newTestNode runs an App over host/db on memstorage behind a real HTTP
// server on 127.0.0.1, with a "session_data" mount to a second in-memory
// partition.
func newTestNode(t testing.TB, mod func(*Options)) *testNode {
	t.Helper()
	st := memstorage.New(memstorage.Options{})
	sessions := memstorage.New(memstorage.Options{})
	t.Cleanup(func() {
		_ = st.Close()
		_ = sessions.Close()
	})
	return newTestNodeOn(t, st, sessions, mod)
}

// newTestNodeOn is newTestNode over given main and session partitions, so
// that several nodes share one database.
func newTestNodeOn(t testing.TB, st, sessions *memstorage.Storage, mod func(*Options)) *testNode {
	t.Helper()
	d, err := db.Open(context.Background(), st, db.Options{
		Mounts: []db.Mount{{
			Name: "session_data", Path: "/session_data",
			Resolve: func(context.Context) (db.Target, error) {
				return db.Target{Partition: "sessiondata", Folder: "session_data"}, nil
			},
		}},
		OpenPartition: func(_ context.Context, name, _ string) (storage.Storage, error) {
			if name != "sessiondata" {
				return nil, fmt.Errorf("no partition %q", name)
			}
			return noClose{sessions}, nil
		},
	})
	if err != nil {
		t.Fatalf("db.Open: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	opts := Options{Node: "app1", DB: d, PublicURL: publicURL}
	if mod != nil {
		mod(&opts)
	}
	a, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &testNode{app: a, db: d, st: st, srv: srv, cl: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// noClose shares a storage between DBs: each DB closes the partitions
// OpenPartition gave it.
type noClose struct{ storage.Storage }

func (noClose) Close() error { return nil }

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (n *testNode) do(t testing.TB, method, path string, body any, hdr ...string) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, n.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := n.cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get(HeaderNode); got != "app1" {
		t.Fatalf("%s %s: X-Zhost-Node %q", method, path, got)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestPutGetDelete(t *testing.T) {
	n := newTestNode(t, nil)
	r := n.do(t, "PUT", "/site/pages/home", map[string]any{"title": "Home", "n": 1 << 60, "f": 1.5, "tags": []string{"a"}})
	if r.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if got := r.header.Get("Location"); got != publicURL+"/site/pages/home" {
		t.Fatalf("Location %q", got)
	}
	var put ObjectJSON
	r.json(t, &put)
	tag := r.header.Get("ETag")
	if tag != `"`+put.Serial+`"` || put.Serial == storage.ZeroTid.String() {
		t.Fatalf("ETag %q serial %q", tag, put.Serial)
	}
	if r.header.Get(HeaderTid) != put.Serial {
		t.Fatalf("X-Zhost-Tid %q, want the write's tid %s", r.header.Get(HeaderTid), put.Serial)
	}

	r = n.do(t, "GET", "/site/pages/home", nil)
	var got ObjectJSON
	r.json(t, &got)
	if r.status != 200 || got.Type != "document" || got.URL != publicURL+"/site/pages/home" || got.Path != "/site/pages/home" ||
		got.Data["title"] != "Home" || got.Data["n"] != float64(1<<60) || got.Data["f"] != 1.5 || r.header.Get("ETag") != tag {
		t.Fatalf("GET: %d %s (ETag %s)", r.status, r.body, r.header.Get("ETag"))
	}
	// Exact int64: compare the text, not a float.
	if !bytes.Contains(r.body, []byte(`"n":1152921504606846976`)) {
		t.Fatalf("large integer not exact: %s", r.body)
	}
	if r := n.do(t, "GET", "/site/pages/home", nil, "If-None-Match", tag); r.status != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", r.status)
	}

	// The parent folders were created and list their children with URLs.
	r = n.do(t, "GET", "/site", nil)
	var folder ObjectJSON
	r.json(t, &folder)
	if folder.Type != "folder" || len(folder.Children) != 1 || folder.Children[0].URL != publicURL+"/site/pages" || folder.Children[0].Type != "folder" {
		t.Fatalf("GET /site: %s", r.body)
	}

	// Stale If-Match: 412 with the current ETag.
	r = n.do(t, "PUT", "/site/pages/home", map[string]any{"title": "x"}, "If-Match", `"0000000000000001"`)
	if r.status != http.StatusPreconditionFailed || r.header.Get("ETag") != tag {
		t.Fatalf("stale If-Match: %d %s", r.status, r.body)
	}
	var eb errorBody
	r.json(t, &eb)
	if eb.Path != "/site/pages/home" || eb.Serial != put.Serial {
		t.Fatalf("412 body %s", r.body)
	}
	r = n.do(t, "PUT", "/site/pages/home", map[string]any{"title": "Home 2"}, "If-Match", tag)
	if r.status != 200 || r.header.Get("Location") != "" {
		t.Fatalf("PUT with current If-Match: %d %s", r.status, r.body)
	}
	newTag := r.header.Get("ETag")
	if newTag == tag {
		t.Fatal("serial did not change")
	}
	if r := n.do(t, "PUT", "/site/pages/home", map[string]any{}, "If-None-Match", "*"); r.status != http.StatusPreconditionFailed {
		t.Fatalf("If-None-Match * on an existing document: %d", r.status)
	}
	if r := n.do(t, "PUT", "/site/pages/new", map[string]any{}, "If-Match", "*"); r.status != http.StatusPreconditionFailed {
		t.Fatalf("If-Match * on a missing document: %d", r.status)
	}

	if r := n.do(t, "DELETE", "/site/pages/home", nil, "If-Match", tag); r.status != http.StatusPreconditionFailed {
		t.Fatalf("DELETE with stale If-Match: %d", r.status)
	}
	if r := n.do(t, "DELETE", "/site/pages/home", nil, "If-Match", newTag); r.status != http.StatusNoContent || r.header.Get(HeaderTid) == "" {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if r := n.do(t, "GET", "/site/pages/home", nil); r.status != 404 {
		t.Fatalf("GET after DELETE: %d", r.status)
	}
	if r := n.do(t, "DELETE", "/site/pages/home", nil); r.status != 404 {
		t.Fatalf("DELETE of a missing object: %d", r.status)
	}
}

func TestErrors(t *testing.T) {
	n := newTestNode(t, func(o *Options) { o.MaxBodyBytes = 64 })
	n.do(t, "PUT", "/doc", map[string]any{"a": 1})
	deep := strings.Repeat(`{"a":`, MaxJSONDepth+1) + "1" + strings.Repeat("}", MaxJSONDepth+1)
	for _, tc := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/missing", nil, 404},
		{"GET", "/doc/child", nil, 404},
		{"PUT", "/doc/child", map[string]any{}, 409},
		{"PUT", "/session_data", map[string]any{}, 409},
		{"PUT", "/x", "[1,2]", 400},
		{"PUT", "/x", "{bad", 400},
		{"PUT", "/x", `{"a":1} {"b":2}`, 400},
		{"PUT", "/x", strings.Repeat(" ", 100) + "{}", 413},
		{"PUT", "/", map[string]any{}, 405},
		{"DELETE", "/", nil, 405},
		{"POST", "/doc", nil, 405},
		{"GET", "/doc?limit=0", nil, 400},
		{"GET", "/?limit=0", nil, 400},
		{"GET", "/a/../b", nil, 400},
		{"GET", "/_status", nil, 200},
		{"POST", "/_status", nil, 405},
		{"GET", "/_tx", nil, 405},
		{"GET", "/_session", nil, 501},
	} {
		r := n.do(t, tc.method, tc.path, tc.body)
		if r.status != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, r.status, r.body, tc.want)
			continue
		}
		if tc.want >= 400 {
			var eb errorBody
			if err := json.Unmarshal(r.body, &eb); err != nil || eb.Status != tc.want || eb.Error == "" {
				t.Errorf("%s %s: error body %s", tc.method, tc.path, r.body)
			}
		}
	}
	big := newTestNode(t, nil)
	if r := big.do(t, "PUT", "/deep", deep); r.status != 400 {
		t.Errorf("deep JSON: %d %s", r.status, r.body)
	}
	// The HTTP client cleans "..", so send one raw.
	req := httptest.NewRequest("GET", "/", nil)
	req.URL.Path = "/a/../../b"
	w := httptest.NewRecorder()
	n.app.ServeHTTP(w, req)
	if w.Code != 400 || w.Header().Get(HeaderNode) != "app1" {
		t.Errorf("raw '..': %d", w.Code)
	}
}

func TestFolderPaging(t *testing.T) {
	n := newTestNode(t, nil)
	for _, name := range []string{"e", "a", "c", "b", "d"} {
		if r := n.do(t, "PUT", "/f/"+name, map[string]any{"name": name}); r.status != 201 {
			t.Fatalf("PUT: %d", r.status)
		}
	}
	var names []string
	next := "/f?limit=2"
	for range 10 {
		r := n.do(t, "GET", next, nil)
		var f ObjectJSON
		r.json(t, &f)
		for _, c := range f.Children {
			names = append(names, c.Name)
			if c.Type != "document" || c.URL != publicURL+"/f/"+c.Name {
				t.Fatalf("child %+v", c)
			}
		}
		if f.Next == "" {
			break
		}
		if !strings.HasPrefix(f.Next, publicURL+"/f?") {
			t.Fatalf("next %q", f.Next)
		}
		next = strings.TrimPrefix(f.Next, publicURL)
	}
	if strings.Join(names, "") != "abcde" {
		t.Fatalf("paged names %v", names)
	}
}

func TestURLsFromForwardedHeaders(t *testing.T) {
	n := newTestNode(t, func(o *Options) { o.TrustedProxies = []string{"127.0.0.1"} })
	untrusted := newTestNode(t, func(o *Options) { o.TrustedProxies = []string{"10.0.0.0/8"} })
	fwd := []string{"Forwarded", `for=192.0.2.1;host="public.example";proto=https`}
	r := n.do(t, "PUT", "/a", map[string]any{}, fwd...)
	if got := r.header.Get("Location"); got != "https://public.example/a" {
		t.Fatalf("trusted Forwarded: Location %q", got)
	}
	if !strings.Contains(r.header.Get("Set-Cookie"), "Secure") {
		t.Fatalf("tid cookie over https not Secure: %q", r.header.Get("Set-Cookie"))
	}
	r = n.do(t, "GET", "/", nil, "X-Forwarded-Host", "other.example", "X-Forwarded-Proto", "https")
	var root ObjectJSON
	r.json(t, &root)
	if root.URL != "https://other.example/" || root.Children[0].URL != "https://other.example/a" {
		t.Fatalf("trusted X-Forwarded-*: %s", r.body)
	}
	// From an untrusted peer the headers are ignored: the public URL wins,
	// never the node's own address.
	r = untrusted.do(t, "PUT", "/a", map[string]any{}, fwd...)
	if got := r.header.Get("Location"); got != publicURL+"/a" {
		t.Fatalf("untrusted Forwarded: Location %q", got)
	}
	// A public URL with a path prefixes every URL.
	p := newTestNode(t, func(o *Options) { o.PublicURL = "https://example.org/zhost/" })
	if got := p.do(t, "PUT", "/b", map[string]any{}).header.Get("Location"); got != "https://example.org/zhost/b" {
		t.Fatalf("public URL with a path: Location %q", got)
	}
}

func TestTx(t *testing.T) {
	n := newTestNode(t, nil)
	r := n.do(t, "PUT", "/old", map[string]any{"v": 1})
	oldTag := r.header.Get("ETag")
	r = n.do(t, "POST", "/_tx", TxRequest{Ops: []TxOp{
		{Op: "put", Path: "/docs/a", Data: map[string]any{"x": 1}},
		{Op: "delete", Path: "/old", IfMatch: oldTag},
		{Op: "incr", Path: "/stats/hits", By: ptr(int64(5))},
		{Op: "incr", Path: "/stats/hits"},
	}})
	if r.status != 200 {
		t.Fatalf("tx: %d %s", r.status, r.body)
	}
	var res TxResponse
	r.json(t, &res)
	if res.Tid == "" || r.header.Get(HeaderTid) != res.Tid || len(res.Results) != 4 {
		t.Fatalf("tx response %s", r.body)
	}
	if res.Results[0].Serial != res.Tid || !res.Results[0].Created || res.Results[0].URL != publicURL+"/docs/a" {
		t.Fatalf("put result %+v", res.Results[0])
	}
	if v := res.Results[3].Value; v == nil || *v != 6 {
		t.Fatalf("incr results %+v", res.Results[2:])
	}
	if g := n.do(t, "GET", "/docs/a", nil); g.header.Get("ETag") != `"`+res.Tid+`"` {
		t.Fatalf("GET after tx: ETag %s, want the tx's tid", g.header.Get("ETag"))
	}
	var c ObjectJSON
	n.do(t, "GET", "/stats/hits", nil).json(t, &c)
	if c.Type != "counter" || c.Value == nil || *c.Value != 6 {
		t.Fatalf("counter %+v", c)
	}
	if g := n.do(t, "GET", "/old", nil); g.status != 404 {
		t.Fatalf("deleted in tx: %d", g.status)
	}

	// A stale if_match fails the whole transaction, naming the path.
	r = n.do(t, "POST", "/_tx", TxRequest{Ops: []TxOp{
		{Op: "put", Path: "/docs/b", Data: map[string]any{}},
		{Op: "put", Path: "/docs/a", Data: map[string]any{"x": 2}, IfMatch: oldTag},
	}})
	var eb errorBody
	r.json(t, &eb)
	if r.status != 412 || eb.Path != "/docs/a" || eb.Serial != res.Tid {
		t.Fatalf("stale if_match: %d %s", r.status, r.body)
	}
	if g := n.do(t, "GET", "/docs/b", nil); g.status != 404 {
		t.Fatal("an op of a failed transaction was applied")
	}
	// An unchanged put keeps its serial.
	r = n.do(t, "POST", "/_tx", TxRequest{Ops: []TxOp{
		{Op: "put", Path: "/docs/a", Data: map[string]any{"x": 1}},
		{Op: "incr", Path: "/stats/hits", By: ptr(int64(-1))},
	}})
	r.json(t, &res)
	if r.status != 200 || res.Results[0].Serial == res.Tid || res.Results[1].Serial != res.Tid {
		t.Fatalf("unchanged put: %s", r.body)
	}
	for _, bad := range []string{
		`{"ops":[]}`,
		`{"ops":[{"op":"rename","path":"/a"}]}`,
		`{"ops":[{"op":"put","path":"/a","if-match":"x"}]}`,
		`{"ops":[{"op":"delete","path":"/"}]}`,
	} {
		if r := n.do(t, "POST", "/_tx", bad); r.status != 400 {
			t.Errorf("%s: %d %s", bad, r.status, r.body)
		}
	}
	if r := n.do(t, "POST", "/_tx", `{"ops":[{"op":"incr","path":"/docs/a"}]}`); r.status != 409 {
		t.Errorf("incr of a document: %d %s", r.status, r.body)
	}
}

func ptr[T any](v T) *T { return &v }

func TestConcurrentIncrementsMerge(t *testing.T) {
	n := newTestNode(t, nil)
	n.do(t, "POST", "/_tx", `{"ops":[{"op":"incr","path":"/hits","by":0}]}`)
	const workers = 20
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", n.srv.URL+"/_tx", strings.NewReader(`{"ops":[{"op":"incr","path":"/hits"}]}`))
			resp, err := n.cl.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- resp.Status
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	var c ObjectJSON
	n.do(t, "GET", "/hits", nil).json(t, &c)
	if c.Value == nil || *c.Value != workers {
		t.Fatalf("counter %s after %d increments", n.do(t, "GET", "/hits", nil).body, workers)
	}
}

func TestReadYourWrites(t *testing.T) {
	n := newTestNode(t, func(o *Options) { o.TidWait = 2 * time.Second })
	r := n.do(t, "PUT", "/a", map[string]any{})
	tid := r.header.Get(HeaderTid)
	ck := r.header.Get("Set-Cookie")
	if tid == "" || !strings.Contains(ck, DefaultTidCookie+"="+tid) || !strings.Contains(ck, "HttpOnly") {
		t.Fatalf("write tid header %q cookie %q", tid, ck)
	}
	// A request carrying an applied tid is answered at once.
	if r := n.do(t, "GET", "/a", nil, "Cookie", DefaultTidCookie+"="+tid); r.status != 200 {
		t.Fatalf("applied tid: %d", r.status)
	}
	// A tid this node has not applied yet holds the request until it has:
	// commit a write 100 ms from now and ask for a tid just before it.
	want := storage.TidAt(time.Now().Add(50 * time.Millisecond))
	done := make(chan reply, 1)
	go func() { done <- n.do(t, "GET", "/b", nil, HeaderTid, want.String()) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("answered %d before the tid was applied", r.status)
	default:
	}
	if _, err := n.db.Update(context.Background(), func(tx *db.Tx) error {
		return tx.Put(context.Background(), "/b", db.NewDocument(map[string]any{"late": true}))
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		var o ObjectJSON
		r.json(t, &o)
		if r.status != 200 || o.Data["late"] != true {
			t.Fatalf("after the tid was applied: %d %s", r.status, r.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request still waiting after the tid was applied")
	}
	// Never applied within TidWait: 503.
	short := newTestNode(t, func(o *Options) { o.TidWait = 50 * time.Millisecond })
	future := storage.TidAt(time.Now().Add(30 * time.Second))
	if r := short.do(t, "GET", "/", nil, HeaderTid, future.String()); r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("unapplied tid: %d", r.status)
	}
	// Bogus tids (malformed, far future) are ignored, not waited for.
	for _, v := range []string{"zz", "ffffffffffffffff", "12345678901234567890"} {
		if r := short.do(t, "GET", "/", nil, HeaderTid, v); r.status != 200 {
			t.Fatalf("bogus tid %q: %d", v, r.status)
		}
	}
	// Writes under a mount (another partition) carry no main-partition tid.
	if r := n.do(t, "PUT", "/session_data/x", map[string]any{}); r.status != 201 || r.header.Get(HeaderTid) != "" {
		t.Fatalf("write under a mount: %d tid %q", r.status, r.header.Get(HeaderTid))
	}
}

func TestStatusAndHealth(t *testing.T) {
	n := newTestNode(t, func(o *Options) {
		o.Status = func(context.Context) NodeStatus {
			return NodeStatus{
				Server: ServerStatus{Address: "127.0.0.1:9100", State: "connected", Connected: true},
				Cache:  &CacheStatus{Bytes: 10, Hits: 3, Misses: 1, HitRate: HitRate(3, 1)},
			}
		}
	})
	n.do(t, "PUT", "/a", map[string]any{})
	n.do(t, "GET", "/a", nil)
	var st StatusJSON
	n.do(t, "GET", "/_status", nil).json(t, &st)
	if st.Node != "app1" || !st.Server.Connected || st.Server.Address != "127.0.0.1:9100" || st.Cache == nil || st.Cache.HitRate != 0.75 {
		t.Fatalf("status %+v", st)
	}
	if len(st.Mounts) != 1 || st.Mounts[0].Name != "session_data" || st.Mounts[0].State != "ready" || st.Mounts[0].Partition != "sessiondata" {
		t.Fatalf("mounts %+v", st.Mounts)
	}
	if st.LastTid == "" || st.DB.Commits == 0 {
		t.Fatalf("status db %+v last %q", st.DB, st.LastTid)
	}
	if r := n.do(t, "GET", "/healthz", nil); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	n.app.Drain()
	if r := n.do(t, "GET", "/healthz", nil); r.status != 503 {
		t.Fatalf("healthz while draining %d", r.status)
	}
	// A node whose storage is gone is unhealthy.
	m := newTestNode(t, nil)
	_ = m.st.Close()
	if r := m.do(t, "GET", "/healthz", nil); r.status != 503 {
		t.Fatalf("healthz with a closed storage: %d", r.status)
	}
	var st2 StatusJSON
	m.do(t, "GET", "/_status", nil).json(t, &st2)
	if st2.Server.Connected || st2.Server.Error == "" {
		t.Fatalf("status with a closed storage %+v", st2.Server)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("no DB: %v", err)
	}
	n := newTestNode(t, nil)
	for _, o := range []Options{
		{DB: n.db, PublicURL: "front:8080"},
		{DB: n.db, TrustedProxies: []string{"nope"}},
		{DB: n.db, TidWait: -1},
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

func TestUnencodableDocumentIs500(t *testing.T) {
	n := newTestNode(t, nil)
	// Go code may store what JSON cannot show: a map with integer keys.
	if _, err := n.db.Update(context.Background(), func(tx *db.Tx) error {
		return tx.Put(context.Background(), "/odd", db.NewDocument(map[string]any{"m": map[any]any{1: "x"}}))
	}); err != nil {
		t.Skipf("the object layer refuses such a document: %v", err)
	}
	r := n.do(t, "GET", "/odd", nil)
	var eb errorBody
	r.json(t, &eb)
	if r.status != 500 || eb.Status != 500 {
		t.Fatalf("GET of an unencodable document: %d %s", r.status, r.body)
	}
}

// TestPutIdenticalKeepsSerial: PUT of the data a document already holds
// writes nothing, so it answers the serial the document still has, not a
// tid that never touched it (POST /_tx always behaved so; PUT now shares
// its code).
func TestPutIdenticalKeepsSerial(t *testing.T) {
	n := newTestNode(t, nil)
	doc := map[string]any{"title": "Same", "n": 3}
	r := n.do(t, "PUT", "/same", doc)
	if r.status != http.StatusCreated {
		t.Fatalf("first PUT: %d %s", r.status, r.body)
	}
	tag := r.header.Get("ETag")
	r = n.do(t, "PUT", "/same", doc, "If-Match", tag)
	if r.status != http.StatusOK || r.header.Get("ETag") != tag {
		t.Fatalf("identical PUT: %d ETag %q, want 200 and %q; %s", r.status, r.header.Get("ETag"), tag, r.body)
	}
	if got := r.header.Get(HeaderTid); got != "" {
		t.Fatalf("identical PUT reported a write tid %q", got)
	}
	if g := n.do(t, "GET", "/same", nil); g.header.Get("ETag") != tag {
		t.Fatalf("GET after identical PUT: ETag %q, want %q", g.header.Get("ETag"), tag)
	}
	r = n.do(t, "PUT", "/same", map[string]any{"title": "Changed", "n": 3}, "If-Match", tag)
	if r.status != http.StatusOK || r.header.Get("ETag") == tag || r.header.Get(HeaderTid) == "" {
		t.Fatalf("changed PUT: %d ETag %q tid %q", r.status, r.header.Get("ETag"), r.header.Get(HeaderTid))
	}
}
