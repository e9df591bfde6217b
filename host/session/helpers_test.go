package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

// countingStorage wraps a real storage and counts the calls that reach
// it, so tests and benchmarks can prove that a read-only request writes
// nothing and an untouched session costs nothing. Close is a no-op: the
// test owns the wrapped storage.
type countingStorage struct {
	storage.Storage
	loads, lastTids, begins, stores atomic.Int64
}

func (c *countingStorage) Load(ctx context.Context, oid storage.Oid) (storage.Record, error) {
	c.loads.Add(1)
	return c.Storage.Load(ctx, oid)
}

func (c *countingStorage) LoadBefore(ctx context.Context, oid storage.Oid, tid storage.Tid) (storage.Record, storage.Tid, error) {
	c.loads.Add(1)
	return c.Storage.LoadBefore(ctx, oid, tid)
}

func (c *countingStorage) LastTid(ctx context.Context) (storage.Tid, error) {
	c.lastTids.Add(1)
	return c.Storage.LastTid(ctx)
}

func (c *countingStorage) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	c.begins.Add(1)
	txn, err := c.Storage.Begin(ctx, meta)
	if err != nil {
		return nil, err
	}
	return &countingTxn{Txn: txn, c: c}, nil
}

func (c *countingStorage) Close() error { return nil }

// calls is every counted call, for "nothing happened" checks.
func (c *countingStorage) calls() int64 {
	return c.loads.Load() + c.lastTids.Load() + c.begins.Load() + c.stores.Load()
}

type countingTxn struct {
	storage.Txn
	c *countingStorage
}

func (t *countingTxn) Store(ctx context.Context, rec storage.Record) error {
	t.c.stores.Add(1)
	return t.Txn.Store(ctx, rec)
}

// clock is a settable clock shared by every node of a test cluster.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// cluster is a test deployment: one main storage and one sessions storage
// (both real in-memory storages), and app nodes, each with its own
// host/db DB (own object cache) and Manager, serving a small test app
// over real HTTP on 127.0.0.1. The sessions partition is mounted at
// /session_data as in the canonical cluster.hcl.
type cluster struct {
	main, sess *countingStorage
	clock      *clock
	nodes      []*node
	// open opens node name's DB; nil means openDB (both partitions
	// in-process).
	open func(t testing.TB, name string) *db.DB
}

type node struct {
	db  *db.DB
	m   *Manager
	srv *httptest.Server
}

// newCluster starts n nodes. o is the sessions options for every node
// (Now is replaced by the cluster clock unless realTime).
func newCluster(t testing.TB, n int, o Options) *cluster {
	t.Helper()
	sessSt := memstorage.New(memstorage.Options{})
	t.Cleanup(func() { _ = sessSt.Close() })
	return newClusterOn(t, n, o, sessSt)
}

// newClusterOn is newCluster with the sessions partition on sessSt (a
// packless store, say), which the caller closes.
func newClusterOn(t testing.TB, n int, o Options, sessSt storage.Storage) *cluster {
	t.Helper()
	mainSt := memstorage.New(memstorage.Options{})
	t.Cleanup(func() { _ = mainSt.Close() })
	c := &cluster{
		main:  &countingStorage{Storage: mainSt},
		sess:  &countingStorage{Storage: sessSt},
		clock: newClock(),
	}
	for i := 0; i < n; i++ {
		c.addNode(t, fmt.Sprintf("app%d", i+1), o)
	}
	return c
}

func (c *cluster) openDB(t testing.TB) *db.DB {
	t.Helper()
	return openMountedDB(t, c.main, func(context.Context) (storage.Storage, error) { return c.sess, nil })
}

// openMountedDB opens a DB over main with the sessions partition (opened
// by openSess) mounted at /session_data, as the canonical cluster.hcl
// does.
func openMountedDB(t testing.TB, main storage.Storage, openSess func(context.Context) (storage.Storage, error)) *db.DB {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, main, db.Options{
		Mounts: []db.Mount{{
			Name: "session_data",
			Path: "/session_data",
			Resolve: func(context.Context) (db.Target, error) {
				return db.Target{Partition: "sessiondata", Folder: "session_data"}, nil
			},
		}},
		OpenPartition: func(ctx context.Context, partition, server string) (storage.Storage, error) {
			if partition != "sessiondata" || server != "" {
				return nil, fmt.Errorf("unknown partition %q", partition)
			}
			return openSess(ctx)
		},
	})
	if err != nil {
		t.Fatalf("open db: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func (c *cluster) addNode(t testing.TB, name string, o Options) *node {
	t.Helper()
	var d *db.DB
	if c.open != nil {
		d = c.open(t, name)
	} else {
		d = c.openDB(t)
	}
	if o.Now == nil {
		o.Now = c.clock.Now
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = -1 // tests sweep explicitly
	}
	o.Node = name
	if o.Logger == nil {
		o.Logger = hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: testWriter{t}})
	}
	m, err := New(context.Background(), d, o)
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	srv := httptest.NewServer(m.Middleware(testApp()))
	t.Cleanup(srv.Close)
	nd := &node{db: d, m: m, srv: srv}
	c.nodes = append(c.nodes, nd)
	return nd
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// testApp is the kind of handler a user writes: it only uses the public
// API (FromRequest and the Handle's methods, WriteError).
func testApp() http.Handler {
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, err error) { WriteError(w, err) }
	mux.HandleFunc("GET /noop", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		v, ok, err := FromRequest(r).Get(r.Context(), r.FormValue("k"))
		if err != nil {
			fail(w, err)
			return
		}
		if !ok {
			http.Error(w, "missing", http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	})
	mux.HandleFunc("GET /all", func(w http.ResponseWriter, r *http.Request) {
		h := FromRequest(r)
		keys, err := h.Keys(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		out := map[string]any{}
		for _, k := range keys {
			v, _, err := h.Get(r.Context(), k)
			if err != nil {
				fail(w, err)
				return
			}
			out[k] = v
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("POST /set", func(w http.ResponseWriter, r *http.Request) {
		if err := FromRequest(r).Set(r.Context(), r.FormValue("k"), r.FormValue("v")); err != nil {
			fail(w, err)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /del", func(w http.ResponseWriter, r *http.Request) {
		if err := FromRequest(r).Delete(r.Context(), r.FormValue("k")); err != nil {
			fail(w, err)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /has", func(w http.ResponseWriter, r *http.Request) {
		ok, err := FromRequest(r).Exists(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		_, _ = fmt.Fprint(w, ok)
	})
	mux.HandleFunc("GET /key", func(w http.ResponseWriter, r *http.Request) {
		info, ok, err := FromRequest(r).Info(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		if !ok {
			http.Error(w, "no session", http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, info.Key)
	})
	mux.HandleFunc("POST /renew", func(w http.ResponseWriter, r *http.Request) {
		if err := FromRequest(r).Renew(r.Context()); err != nil {
			fail(w, err)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /invalidate", func(w http.ResponseWriter, r *http.Request) {
		if err := FromRequest(r).Invalidate(r.Context()); err != nil {
			fail(w, err)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /late-set", func(w http.ResponseWriter, r *http.Request) {
		// Writing is fine: the middleware holds the response back.
		_, _ = io.WriteString(w, "written first\n")
		if err := FromRequest(r).Set(r.Context(), "k", "v"); err != nil {
			_, _ = fmt.Fprint(w, "set failed: ", err)
		}
	})
	mux.HandleFunc("POST /flushed-set", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "streamed first\n")
		_ = http.NewResponseController(w).Flush() // the headers go out now
		err := FromRequest(r).Set(r.Context(), "k", "v")
		_, _ = fmt.Fprint(w, errors.Is(err, ErrHeadersWritten))
	})
	return mux
}

// browser is an HTTP client with its own cookie jar: one browser.
type browser struct {
	t testing.TB
	c *http.Client
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

// do sends a request and returns status and body.
func (b *browser) do(method, base, path string, form url.Values) (int, string) {
	b.t.Helper()
	code, body, err := b.try(method, base, path, form)
	if err != nil {
		b.t.Fatalf("%s %s%s: %v", method, base, path, err)
	}
	return code, body
}

func (b *browser) try(method, base, path string, form url.Values) (int, string, error) {
	var req *http.Request
	var err error
	if method == http.MethodPost {
		req, err = http.NewRequest(method, base+path, stringsReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		u := base + path
		if len(form) > 0 {
			u += "?" + form.Encode()
		}
		req, err = http.NewRequest(method, u, nil)
	}
	if err != nil {
		return 0, "", err
	}
	resp, err := b.c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func (b *browser) set(base, k, v string) {
	b.t.Helper()
	if code, body := b.do("POST", base, "/set", url.Values{"k": {k}, "v": {v}}); code != 200 {
		b.t.Fatalf("set %s=%s on %s: %d %s", k, v, base, code, body)
	}
}

// get returns the value of k (JSON-decoded string) or "" and false.
func (b *browser) get(base, k string) (string, bool) {
	b.t.Helper()
	code, body := b.do("GET", base, "/get", url.Values{"k": {k}})
	if code == http.StatusNotFound {
		return "", false
	}
	if code != 200 {
		b.t.Fatalf("get %s on %s: %d %s", k, base, code, body)
	}
	var s string
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		b.t.Fatalf("get %s: body %q: %v", k, body, err)
	}
	return s, true
}

func (b *browser) key(base string) string {
	b.t.Helper()
	code, body := b.do("GET", base, "/key", nil)
	if code == http.StatusNotFound {
		return ""
	}
	if code != 200 {
		b.t.Fatalf("key on %s: %d %s", base, code, body)
	}
	return body
}

// cookie returns the browser id cookie the jar holds for base.
func (b *browser) cookie(base string) string {
	u, _ := url.Parse(base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == DefaultCookieName {
			return c.Value
		}
	}
	return ""
}

// setCookie puts a cookie value into the jar by hand (a forged or stale id).
func (b *browser) setCookie(base, value string) {
	u, _ := url.Parse(base)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: DefaultCookieName, Value: value, Path: "/"}})
}

type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) add(ev Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.evs...)
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

func httptestServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }
