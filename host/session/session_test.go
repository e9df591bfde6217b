package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/db"
)

func TestSessionSetOnOneNodeReadOnTheOther(t *testing.T) {
	c := newCluster(t, 2, Options{})
	a, b := c.nodes[0].srv.URL, c.nodes[1].srv.URL
	br := newBrowser(t)

	if code, body := br.do("GET", a, "/has", nil); code != 200 || body != "false" {
		t.Fatalf("has before any session: %d %q", code, body)
	}
	br.set(a, "cart", "3 apples")
	id := br.cookie(a)
	if !ValidID(id) {
		t.Fatalf("cookie after set: %q", id)
	}
	if v, ok := br.get(b, "cart"); !ok || v != "3 apples" {
		t.Fatalf("read on node 2: %q %v", v, ok)
	}
	br.set(b, "user", "ann")
	if code, body := br.do("GET", a, "/all", nil); code != 200 || !strings.Contains(body, `"user":"ann"`) || !strings.Contains(body, `"cart":"3 apples"`) {
		t.Fatalf("all on node 1: %d %s", code, body)
	}
	if br.cookie(a) != id {
		t.Fatal("the id changed without a renewal")
	}
	if code, _ := br.do("POST", b, "/del", url.Values{"k": {"cart"}}); code != 200 {
		t.Fatal("del")
	}
	if _, ok := br.get(a, "cart"); ok {
		t.Fatal("deleted key still visible on node 1")
	}
	if n, err := c.nodes[0].m.Count(context.Background()); err != nil || n != 1 {
		t.Fatalf("count = %d, %v", n, err)
	}
	// Two browsers do not see each other's data.
	other := newBrowser(t)
	if _, ok := other.get(a, "user"); ok {
		t.Fatal("another browser sees the session")
	}
}

func TestCookieHeadersOnNewSession(t *testing.T) {
	c := newCluster(t, 1, Options{PublicURL: "https://shop.example", CookieDomain: ""})
	resp, err := http.Post(c.nodes[0].srv.URL+"/set?k=a&v=b", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{DefaultCookieName + "=", "HttpOnly", "Secure", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	if v := resp.Header.Values("Vary"); !strings.Contains(strings.Join(v, ","), "Cookie") {
		t.Errorf("Vary = %v", v)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("Cache-Control = %q", cc)
	}
	// A request that does not create a session sets no cookie and no
	// cache headers.
	resp, err = http.Get(c.nodes[0].srv.URL + "/has")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Cache-Control") != "" {
		t.Errorf("read without session set headers: %v", resp.Header)
	}
}

func TestMalformedAndUnknownIDsStartNewSession(t *testing.T) {
	c := newCluster(t, 1, Options{})
	a := c.nodes[0].srv.URL
	for _, bad := range []string{"garbage", strings.Repeat("A", IDLength), "%%%", strings.Repeat("x", 5000)} {
		br := newBrowser(t)
		br.setCookie(a, bad)
		if code, body := br.do("GET", a, "/has", nil); code != 200 || body != "false" {
			t.Fatalf("cookie %.20q: has = %d %q", bad, code, body)
		}
		if _, ok := br.get(a, "x"); ok {
			t.Fatal("value from nowhere")
		}
		br.set(a, "x", "1")
		if id := br.cookie(a); id == bad || !ValidID(id) {
			t.Fatalf("cookie %.20q: new id %q", bad, id)
		}
		if v, ok := br.get(a, "x"); !ok || v != "1" {
			t.Fatalf("new session lost its value: %q %v", v, ok)
		}
	}
}

func TestUntouchedSessionCostsNothingAndReadsDoNotWrite(t *testing.T) {
	c := newCluster(t, 1, Options{Refresh: 30 * time.Second})
	a := c.nodes[0].srv.URL
	br := newBrowser(t)
	br.set(a, "k", "v")

	before := c.main.calls() + c.sess.calls()
	for i := 0; i < 20; i++ {
		if code, _ := br.do("GET", a, "/noop", nil); code != 200 {
			t.Fatal("noop")
		}
	}
	if after := c.main.calls() + c.sess.calls(); after != before {
		t.Fatalf("requests that never touched the session made %d storage calls", after-before)
	}

	stores, begins := c.sess.stores.Load(), c.sess.begins.Load()
	for i := 0; i < 20; i++ {
		if v, ok := br.get(a, "k"); !ok || v != "v" {
			t.Fatal("get")
		}
		c.clock.Advance(time.Second) // 20 s in all: under Refresh
	}
	if s, b := c.sess.stores.Load()-stores, c.sess.begins.Load()-begins; s != 0 || b != 0 {
		t.Fatalf("20 read-only requests wrote: %d stores in %d transactions", s, b)
	}
	// Past the refresh granularity, one read writes the last access once:
	// the session record only, not the container.
	c.clock.Advance(15 * time.Second)
	br.get(a, "k")
	if s := c.sess.stores.Load() - stores; s != 1 {
		t.Fatalf("refresh wrote %d records, want 1", s)
	}
	br.get(a, "k")
	if s := c.sess.stores.Load() - stores; s != 1 {
		t.Fatalf("a read right after the refresh wrote again (%d stores)", s)
	}
}

func TestIdleTimeoutAndSweep(t *testing.T) {
	var evs eventLog
	c := newCluster(t, 2, Options{Timeout: time.Minute, Refresh: 10 * time.Second, OnEvent: evs.add})
	a, b := c.nodes[0].srv.URL, c.nodes[1].srv.URL
	br := newBrowser(t)
	br.set(a, "k", "v")
	oldKey := br.key(a)

	// Activity keeps it alive past the timeout.
	for i := 0; i < 4; i++ {
		c.clock.Advance(40 * time.Second)
		if _, ok := br.get(b, "k"); !ok {
			t.Fatalf("session expired while in use (step %d)", i)
		}
	}
	c.clock.Advance(61 * time.Second)
	if code, body := br.do("GET", b, "/has", nil); body != "false" {
		t.Fatalf("has after timeout: %d %q", code, body)
	}
	if _, ok := br.get(a, "k"); ok {
		t.Fatal("value readable after timeout")
	}
	// The expired record is still stored until swept; a new write starts
	// a new session with a new id.
	br.set(a, "k2", "fresh")
	if k := br.key(a); k == oldKey || k == "" {
		t.Fatalf("new session key %q, old %q", k, oldKey)
	}
	if n, _ := c.nodes[0].m.Count(context.Background()); n != 2 {
		t.Fatalf("count before sweep = %d, want 2", n)
	}
	// Nothing is removed before the grace period.
	if n, err := c.nodes[1].m.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep inside grace: %d %v", n, err)
	}
	c.clock.Advance(c.nodes[1].m.grace())
	n, err := c.nodes[1].m.Sweep(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("sweep removed %d, %v; want 1", n, err)
	}
	if n, _ := c.nodes[0].m.Count(context.Background()); n != 1 {
		t.Fatalf("count after sweep = %d, want 1", n)
	}
	if v, ok := br.get(b, "k2"); !ok || v != "fresh" {
		t.Fatal("live session swept")
	}
	// The record is gone from the container.
	err = c.nodes[0].db.View(context.Background(), func(tx *db.Tx) error {
		ok, err := tx.Exists(context.Background(), c.nodes[0].m.recordPath(oldKey))
		if err == nil && ok {
			return errors.New("expired record still in the container")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range evs.all() {
		kinds = append(kinds, string(ev.Type)+"/"+ev.Reason)
		if ev.Type == EventDelete && ev.Key != oldKey {
			t.Errorf("delete event for key %s, want %s", ev.Key, oldKey)
		}
	}
	if strings.Join(kinds, ",") != "add/new,add/new,delete/expired" {
		t.Fatalf("events %v", kinds)
	}
}

func TestAbsoluteLifetime(t *testing.T) {
	c := newCluster(t, 1, Options{Timeout: 2 * time.Minute, Lifetime: 5 * time.Minute, Refresh: 10 * time.Second})
	a := c.nodes[0].srv.URL
	br := newBrowser(t)
	br.set(a, "k", "v")
	for i := 0; i < 4; i++ {
		c.clock.Advance(time.Minute)
		if _, ok := br.get(a, "k"); !ok {
			t.Fatalf("expired early at minute %d", i+1)
		}
	}
	c.clock.Advance(time.Minute + time.Second)
	if _, ok := br.get(a, "k"); ok {
		t.Fatal("session outlived its lifetime")
	}
}

func TestRenewKeepsDataAndRetiresOldID(t *testing.T) {
	var evs eventLog
	c := newCluster(t, 2, Options{OnEvent: evs.add})
	a, b := c.nodes[0].srv.URL, c.nodes[1].srv.URL
	br := newBrowser(t)
	br.set(a, "cart", "pears")
	oldID, oldKey := br.cookie(a), br.key(a)

	if code, body := br.do("POST", b, "/renew", nil); code != 200 {
		t.Fatalf("renew: %d %s", code, body)
	}
	newID := br.cookie(a)
	if newID == oldID || !ValidID(newID) {
		t.Fatalf("renew kept id %q", newID)
	}
	if v, ok := br.get(a, "cart"); !ok || v != "pears" {
		t.Fatalf("data lost by renewal: %q %v", v, ok)
	}
	// The old id names no session any more.
	thief := newBrowser(t)
	thief.setCookie(a, oldID)
	if _, ok := thief.get(b, "cart"); ok {
		t.Fatal("old id still reads the session")
	}
	if n, _ := c.nodes[0].m.Count(context.Background()); n != 1 {
		t.Fatalf("count after renewal = %d", n)
	}
	var got []string
	for _, ev := range evs.all() {
		got = append(got, fmt.Sprintf("%s/%s", ev.Type, ev.Reason))
		if ev.Type == EventDelete && (ev.Key != oldKey || ev.ID != oldID) {
			t.Errorf("delete event names %s", ev.Key)
		}
	}
	if strings.Join(got, ",") != "add/new,delete/renewed,add/renewed" {
		t.Fatalf("events %v", got)
	}
	// Renew without a session is an error the handler sees.
	nobody := newBrowser(t)
	if code, _ := nobody.do("POST", a, "/renew", nil); code != http.StatusInternalServerError {
		t.Fatalf("renew without session: %d", code)
	}
}

func TestInvalidate(t *testing.T) {
	c := newCluster(t, 1, Options{})
	a := c.nodes[0].srv.URL
	br := newBrowser(t)
	br.set(a, "k", "v")
	id := br.cookie(a)
	if code, _ := br.do("POST", a, "/invalidate", nil); code != 200 {
		t.Fatal("invalidate")
	}
	if br.cookie(a) != "" {
		t.Fatal("cookie not expired")
	}
	replay := newBrowser(t)
	replay.setCookie(a, id)
	if _, ok := replay.get(a, "k"); ok {
		t.Fatal("invalidated session still readable")
	}
	if n, _ := c.nodes[0].m.Count(context.Background()); n != 0 {
		t.Fatalf("count = %d", n)
	}
}

func TestLimitRefusesNewSessionsWith503(t *testing.T) {
	c := newCluster(t, 2, Options{Limit: 3, Timeout: time.Minute, Refresh: 10 * time.Second})
	a, b := c.nodes[0].srv.URL, c.nodes[1].srv.URL
	var brs []*browser
	for i := 0; i < 3; i++ {
		br := newBrowser(t)
		br.set([]string{a, b}[i%2], "n", fmt.Sprint(i))
		brs = append(brs, br)
	}
	late := newBrowser(t)
	code, body, err := late.try("POST", b, "/set", url.Values{"k": {"n"}, "v": {"4"}})
	if err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("4th session: %d %q %v", code, body, err)
	}
	if late.cookie(b) != "" {
		t.Fatal("refused session still got a cookie")
	}
	// Existing sessions keep working, also for writes.
	brs[0].set(b, "more", "x")
	if v, ok := brs[0].get(a, "more"); !ok || v != "x" {
		t.Fatal("existing session broken at the limit")
	}
	if st := c.nodes[1].m.Stats(); st.Refused != 1 {
		t.Fatalf("refused = %d", st.Refused)
	}
	// Expired sessions make room once swept.
	c.clock.Advance(2 * time.Minute)
	if n, err := c.nodes[0].m.Sweep(context.Background()); err != nil || n != 3 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	late.set(b, "n", "4")
}

// TestLimitExactUnderConcurrentCreation: two browsers create the last
// free session at the same moment on two nodes; both pass the early
// check, but the count's merge refuses the second, so the container
// never holds more than Limit sessions and the loser gets 503.
func TestLimitExactUnderConcurrentCreation(t *testing.T) {
	c := newCluster(t, 2, Options{Limit: 2})
	newBrowser(t).set(c.nodes[0].srv.URL, "k", "v") // 1 of 2
	var ready sync.WaitGroup
	ready.Add(2)
	release := make(chan struct{})
	urls := make([]string, 2)
	for i, nd := range c.nodes {
		urls[i] = newServer(t, nd.m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			err := FromRequest(r).Set(r.Context(), "k", "v")
			ready.Done()
			if err != nil {
				WriteError(w, err)
				return
			}
			<-release
		})))
	}
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, err := newBrowser(t).try("POST", urls[i], "/", nil)
			if err != nil {
				t.Error(err)
			}
			codes[i] = code
		}()
	}
	ready.Wait()
	close(release)
	wg.Wait()
	if !(codes[0] == 200 && codes[1] == 503 || codes[0] == 503 && codes[1] == 200) {
		t.Fatalf("codes %v, want one 200 and one 503", codes)
	}
	for _, nd := range c.nodes {
		waitFor(t, func() bool { n, _ := nd.m.Count(context.Background()); return n == 2 })
	}
	err := c.nodes[0].db.View(context.Background(), func(tx *db.Tx) error {
		items, err := tx.Folder(context.Background(), c.nodes[0].m.itemsPath)
		if err != nil {
			return err
		}
		n, err := items.Len(context.Background())
		if err == nil && n != 2 {
			err = fmt.Errorf("%d records stored, limit 2", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentRequestsOfOneBrowserMergeKeys(t *testing.T) {
	c := newCluster(t, 2, Options{})
	urls := []string{c.nodes[0].srv.URL, c.nodes[1].srv.URL}
	br := newBrowser(t)
	br.set(urls[0], "start", "1")

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code, body, err := br.try("POST", urls[i%2], "/set", url.Values{"k": {fmt.Sprintf("k%02d", i)}, "v": {fmt.Sprint(i)}})
			if err == nil && code != 200 {
				err = fmt.Errorf("status %d %s", code, body)
			}
			if err != nil {
				errs <- fmt.Errorf("request %d: %w", i, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	code, body := br.do("GET", urls[1], "/all", nil)
	if code != 200 {
		t.Fatalf("all: %d %s", code, body)
	}
	var all map[string]any
	if err := json.Unmarshal([]byte(body), &all); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if v := all[fmt.Sprintf("k%02d", i)]; v != fmt.Sprint(i) {
			t.Errorf("key k%02d = %v, want %d", i, v, i)
		}
	}
	if all["start"] != "1" || len(all) != n+1 {
		t.Errorf("%d keys: %v", len(all), all)
	}
	if n, _ := c.nodes[0].m.Count(context.Background()); n != 1 {
		t.Fatalf("concurrent requests created %d sessions", n)
	}
	st0, st1 := c.nodes[0].db.Stats(), c.nodes[1].db.Stats()
	t.Logf("conflicts %d, merges %d, failures %d", st0.Conflicts+st1.Conflicts, st0.Merges+st1.Merges,
		c.nodes[0].m.Stats().CommitFailures+c.nodes[1].m.Stats().CommitFailures)
}

// TestSameKeyLastWriterWins runs two requests of one browser that both
// read the session, then change the same key: both succeed, and the value
// of the one that commits last stays.
func TestSameKeyLastWriterWins(t *testing.T) {
	c := newCluster(t, 1, Options{})
	m := c.nodes[0].m
	proceed := map[string]chan struct{}{"first": make(chan struct{}), "second": make(chan struct{})}
	loaded := make(chan string, 2)
	app := http.NewServeMux()
	app.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
		h := FromRequest(r)
		who := r.FormValue("who")
		if _, _, err := h.Get(r.Context(), "color"); err != nil {
			WriteError(w, err)
			return
		}
		if err := h.Set(r.Context(), "color", who); err != nil {
			WriteError(w, err)
			return
		}
		loaded <- who
		<-proceed[who]
	})
	app.Handle("/", testApp())
	srv := newServer(t, m.Middleware(app))
	br := newBrowser(t)
	br.set(srv, "color", "none")

	var wg sync.WaitGroup
	for _, who := range []string{"first", "second"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := br.try("POST", srv, "/slow", url.Values{"who": {who}})
			if err != nil || code != 200 {
				t.Errorf("%s: %d %s %v", who, code, body, err)
			}
		}()
	}
	<-loaded
	<-loaded // both read the same state and changed the same key
	close(proceed["first"])
	waitFor(t, func() bool { v, _ := br.get(srv, "color"); return v == "first" })
	close(proceed["second"])
	wg.Wait()
	if v, _ := br.get(srv, "color"); v != "second" {
		t.Fatalf("color = %q, want the last writer's", v)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSetAfterWriteAndAfterFlush(t *testing.T) {
	c := newCluster(t, 1, Options{})
	a := c.nodes[0].srv.URL
	br := newBrowser(t)
	// The body was written before the session was created: the response
	// was held back, so the cookie still goes out.
	if code, body := br.do("POST", a, "/late-set", nil); code != 200 || body != "written first\n" {
		t.Fatalf("late set: %d %q", code, body)
	}
	if v, ok := br.get(a, "k"); !ok || v != "v" {
		t.Fatal("session created after a write was not kept")
	}
	// After a flush the headers are gone: creating a session fails
	// cleanly and nothing is stored.
	other := newBrowser(t)
	code, body := other.do("POST", a, "/flushed-set", nil)
	if code != 200 || !strings.HasSuffix(body, "true") {
		t.Fatalf("flushed set: %d %q", code, body)
	}
	if n, _ := c.nodes[0].m.Count(context.Background()); n != 1 {
		t.Fatalf("count = %d, want 1 (no session without a cookie)", n)
	}
}

// TestFailedCommitReplacesHeldResponse: a handler that changed its own
// object through the request's transaction, concurrently with another
// writer, cannot be redone; the browser gets 409 instead of the handler's
// 200, and nothing of the request is stored.
func TestFailedCommitReplacesHeldResponse(t *testing.T) {
	c := newCluster(t, 1, Options{})
	ctx := context.Background()
	d := c.nodes[0].db
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, "/page", db.NewDocument(map[string]any{"title": "a"}))
	}); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, c.nodes[0].m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := FromRequest(r)
		tx, err := h.Tx(r.Context())
		if err != nil {
			WriteError(w, err)
			return
		}
		doc, err := tx.Document(r.Context(), "/page")
		if err != nil {
			WriteError(w, err)
			return
		}
		// Someone else changes the page meanwhile.
		if _, err := d.Update(r.Context(), func(tx2 *db.Tx) error {
			d2, err := tx2.Document(r.Context(), "/page")
			if err == nil {
				d2.Data["title"] = "theirs"
			}
			return err
		}); err != nil {
			WriteError(w, err)
			return
		}
		doc.Data["title"] = "mine"
		if err := h.Set(r.Context(), "edited", true); err != nil {
			WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"saved":true}`)
	})))
	br := newBrowser(t)
	code, body := br.do("POST", srv, "/", nil)
	if code != http.StatusConflict || strings.Contains(body, "saved") {
		t.Fatalf("got %d %q, want 409 instead of the held answer", code, body)
	}
	if br.cookie(srv) != "" {
		t.Fatal("cookie of a session that was not stored")
	}
	if n, _ := c.nodes[0].m.Count(ctx); n != 0 {
		t.Fatalf("count = %d", n)
	}
	if st := c.nodes[0].m.Stats(); st.CommitFailures != 1 {
		t.Fatalf("commit failures = %d", st.CommitFailures)
	}
}

func TestSweepLeaseOneNodeAtATime(t *testing.T) {
	c := newCluster(t, 2, Options{Timeout: time.Minute, Refresh: 10 * time.Second, SweepInterval: time.Hour})
	ctx := context.Background()
	m1, m2 := c.nodes[0].m, c.nodes[1].m
	br := newBrowser(t)
	br.set(c.nodes[0].srv.URL, "k", "v")
	c.clock.Advance(3 * time.Minute)

	if n, err := m2.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("node 2 sweep: %d %v", n, err)
	}
	if _, err := m1.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if m1.Stats().Sweeps != 0 || m2.Stats().Sweeps != 1 {
		t.Fatalf("node 1 swept while node 2 held the lease: %+v / %+v", m1.Stats(), m2.Stats())
	}
	// The holder renews; after the lease ran out another node takes over.
	if _, err := m2.Sweep(ctx); err != nil || m2.Stats().Sweeps != 2 {
		t.Fatal("holder could not renew")
	}
	c.clock.Advance(m2.leaseTTL() + time.Second)
	if _, err := m1.Sweep(ctx); err != nil || m1.Stats().Sweeps != 1 {
		t.Fatalf("node 1 did not take the expired lease: %v %+v", err, m1.Stats())
	}
}

func TestConcurrentSweepsFromAllNodesAreSafe(t *testing.T) {
	c := newCluster(t, 2, Options{Timeout: time.Minute, Refresh: 10 * time.Second})
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		newBrowser(t).set(c.nodes[i%2].srv.URL, "k", "v")
	}
	live := newBrowser(t)
	c.clock.Advance(2 * time.Minute)
	live.set(c.nodes[0].srv.URL, "k", "v")
	// Bypass the lease: delete from both nodes at once.
	var wg sync.WaitGroup
	removed := make([]int, 2)
	for i, nd := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			names := c.expiredNames(t, nd.m)
			n, err := nd.m.deleteExpired(ctx, names, nd.m.o.Now().Add(-nd.m.grace()))
			if err != nil {
				t.Errorf("node %d: %v", i, err)
			}
			removed[i] = n
		}()
	}
	wg.Wait()
	if removed[0]+removed[1] != 20 {
		t.Fatalf("removed %v, want 20 in all (each exactly once)", removed)
	}
	if n, _ := c.nodes[0].m.Count(ctx); n != 1 {
		t.Fatalf("count = %d, want 1", n)
	}
	if _, ok := live.get(c.nodes[1].srv.URL, "k"); !ok {
		t.Fatal("live session removed")
	}
}

// expiredNames lists the record names the sweeper would delete now.
func (c *cluster) expiredNames(t *testing.T, m *Manager) []string {
	var out []string
	err := m.db.View(context.Background(), func(tx *db.Tx) error {
		out = nil
		items, err := tx.Folder(context.Background(), m.itemsPath)
		if err != nil {
			return err
		}
		names, err := items.Names(context.Background())
		if err != nil {
			return err
		}
		for _, n := range names {
			rec, err := db.GetAs[*Record](context.Background(), tx, m.recordPath(n))
			if err != nil {
				return err
			}
			if rec.expired(m.o.Now().Add(-m.grace()), m.o.Timeout, m.o.Lifetime) {
				out = append(out, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBackgroundSweeper(t *testing.T) {
	c := newCluster(t, 1, Options{Timeout: time.Minute, Refresh: 10 * time.Second})
	br := newBrowser(t)
	br.set(c.nodes[0].srv.URL, "k", "v")
	c.clock.Advance(5 * time.Minute)
	// A second manager on the same db with a fast real-time sweeper.
	m, err := New(context.Background(), c.nodes[0].db, Options{
		Timeout: time.Minute, Refresh: 10 * time.Second, Now: c.clock.Now, SweepInterval: 20 * time.Millisecond, Node: "sweeper",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	waitFor(t, func() bool { n, _ := m.Count(context.Background()); return n == 0 })
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sweep(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("sweep after close: %v", err)
	}
}

func TestHandleWithoutMiddleware(t *testing.T) {
	var h *Handle
	ctx := context.Background()
	if _, err := h.Exists(ctx); !errors.Is(err, ErrNoManager) {
		t.Fatal(err)
	}
	if err := h.Set(ctx, "k", 1); !errors.Is(err, ErrNoManager) {
		t.Fatal(err)
	}
	if FromContext(ctx) != nil || h.Key() != "" {
		t.Fatal("handle from nowhere")
	}
}

func TestValueTypesRoundTrip(t *testing.T) {
	c := newCluster(t, 2, Options{})
	type cart struct {
		Items []string
		Total int
	}
	app := func(write bool) http.Handler {
		return c.nodes[0].m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := FromRequest(r)
			ctx := r.Context()
			if write {
				for k, v := range map[string]any{"int": 42, "str": "s", "map": map[string]any{"a": 1.5}, "cart": cart{Items: []string{"x"}, Total: 7}, "nil": nil} {
					if err := h.Set(ctx, k, v); err != nil {
						WriteError(w, err)
						return
					}
				}
				if err := h.Set(ctx, "bad", make(chan int)); !errors.Is(err, ErrValue) {
					http.Error(w, fmt.Sprint("chan accepted: ", err), 500)
				}
				if err := h.Set(ctx, "", 1); !errors.Is(err, ErrValue) {
					http.Error(w, "empty key accepted", 500)
				}
				return
			}
			var got cart
			ok, err := h.Decode(ctx, "cart", &got)
			if err != nil || !ok || got.Total != 7 || len(got.Items) != 1 {
				http.Error(w, fmt.Sprintf("cart %+v %v %v", got, ok, err), 500)
				return
			}
			v, ok, err := h.Get(ctx, "int")
			if err != nil || !ok || v != int64(42) {
				http.Error(w, fmt.Sprintf("int %#v", v), 500)
				return
			}
			v, ok, _ = h.Get(ctx, "nil")
			if !ok || v != nil {
				http.Error(w, "nil", 500)
			}
		}))
	}
	wsrv, rsrv := newServer(t, app(true)), newServer(t, app(false))
	br := newBrowser(t)
	if code, body := br.do("POST", wsrv, "/", nil); code != 200 {
		t.Fatalf("write: %d %s", code, body)
	}
	if code, body := br.do("GET", rsrv, "/", nil); code != 200 {
		t.Fatalf("read: %d %s", code, body)
	}
}

func TestExplicitCommitAndSharedTx(t *testing.T) {
	c := newCluster(t, 1, Options{})
	m := c.nodes[0].m
	srv := newServer(t, m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := FromRequest(r)
		ctx := r.Context()
		tx, err := h.Tx(ctx)
		if err != nil {
			WriteError(w, err)
			return
		}
		// The handler's own object commits with the session.
		if err := tx.Put(ctx, "/visits", db.NewCounter(1)); err != nil {
			WriteError(w, err)
			return
		}
		if err := h.Set(ctx, "seen", true); err != nil {
			WriteError(w, err)
			return
		}
		if err := h.Commit(ctx); err != nil {
			WriteError(w, err)
			return
		}
		// After Commit the handle starts over on a new transaction.
		v, ok, err := h.Get(ctx, "seen")
		if err != nil || !ok || v != true {
			http.Error(w, "not seen after commit", 500)
		}
	})))
	br := newBrowser(t)
	if code, body := br.do("GET", srv, "/", nil); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	err := c.nodes[0].db.View(context.Background(), func(tx *db.Tx) error {
		ctr, err := tx.Counter(context.Background(), "/visits")
		if err == nil && ctr.Value() != 1 {
			err = fmt.Errorf("visits = %d", ctr.Value())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPanicAbortsChanges(t *testing.T) {
	c := newCluster(t, 1, Options{})
	m := c.nodes[0].m
	srv := newServer(t, m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = FromRequest(r).Set(r.Context(), "k", "v")
		panic(http.ErrAbortHandler) // net/http recovers this one quietly
	})))
	br := newBrowser(t)
	_, _, _ = br.try("GET", srv, "/", nil)
	if n, _ := m.Count(context.Background()); n != 0 {
		t.Fatal("a panicking request stored a session")
	}
}

func newServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptestServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestVersionCookieGivesReadYourWrites(t *testing.T) {
	c := newCluster(t, 2, Options{StaleWait: 5 * time.Second})
	a, b := c.nodes[0].srv.URL, c.nodes[1].srv.URL
	br := newBrowser(t)
	vcookie := func(jar *browser) string {
		u, _ := url.Parse(a)
		for _, ck := range jar.c.Jar.Cookies(u) {
			if ck.Name == DefaultCookieName+"_v" {
				return ck.Value
			}
		}
		return ""
	}
	br.set(a, "k", "1")
	if v := vcookie(br); v != "1" {
		t.Fatalf("version cookie after creation = %q", v)
	}
	br.set(b, "k", "2")
	if v := vcookie(br); v != "2" {
		t.Fatalf("version cookie after a change = %q", v)
	}
	br.get(a, "k") // a read sets no version
	if v := vcookie(br); v != "2" {
		t.Fatalf("version cookie after a read = %q", v)
	}

	// A browser that wrote version 3 somewhere this node has not seen
	// yet waits for it: the read answers the value of version 3.
	ahead := newBrowser(t)
	ahead.setCookie(a, br.cookie(a))
	u, _ := url.Parse(a)
	ahead.c.Jar.SetCookies(u, []*http.Cookie{{Name: DefaultCookieName + "_v", Value: "3", Path: "/"}})
	got := make(chan string, 1)
	go func() {
		code, body, err := ahead.try("GET", b, "/get", url.Values{"k": {"k"}})
		if err != nil || code != 200 {
			body = fmt.Sprint(code, body, err)
		}
		got <- body
	}()
	br.set(a, "k", "3") // version 3 lands
	if body := <-got; strings.TrimSpace(body) != `"3"` {
		t.Fatalf("read while waiting for version 3: %s", body)
	}
}

func TestStaleVersionOfDeletedSessionStopsWaiting(t *testing.T) {
	c := newCluster(t, 1, Options{StaleWait: 50 * time.Millisecond})
	a := c.nodes[0].srv.URL
	br := newBrowser(t)
	br.setCookie(a, strings.Repeat("Q", IDLength)) // well-formed, unknown
	u, _ := url.Parse(a)
	br.c.Jar.SetCookies(u, []*http.Cookie{{Name: DefaultCookieName + "_v", Value: "7", Path: "/"}})
	if code, body := br.do("GET", a, "/has", nil); code != 200 || body != "false" {
		t.Fatalf("has: %d %s", code, body)
	}
	for _, ck := range br.c.Jar.Cookies(u) {
		if ck.Name == DefaultCookieName+"_v" {
			t.Fatal("version cookie of a vanished session kept")
		}
	}
}

func TestHeldAndStreamedResponses(t *testing.T) {
	c := newCluster(t, 1, Options{})
	m := c.nodes[0].m
	big := strings.Repeat("z", MaxBuffered+1000)
	srv := newServer(t, m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := FromRequest(r).Set(r.Context(), "k", r.URL.Path); err != nil {
			WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, big) // past MaxBuffered: streams
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "small")
	})))
	for _, tc := range []struct {
		path   string
		status int
		body   string
		length int64
	}{
		{"/small", http.StatusCreated, "small", 5},
		{"/big", http.StatusOK, big, -1},
	} {
		resp, err := http.Get(srv + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || string(body) != tc.body || resp.ContentLength != tc.length {
			t.Fatalf("%s: %d, %d bytes, length %d, %v", tc.path, resp.StatusCode, len(body), resp.ContentLength, err)
		}
		if len(resp.Cookies()) == 0 {
			t.Fatalf("%s: no session cookie", tc.path)
		}
	}
	if n, _ := m.Count(context.Background()); n != 2 {
		t.Fatalf("count = %d", n)
	}
}
