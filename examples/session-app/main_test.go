package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/session"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

// startApp runs the example's handlers over the storage cfg names and
// returns the URL of the running app.
func startApp(t *testing.T, cfg config) string {
	t.Helper()
	ctx := context.Background()
	d, closeDB, err := openDB(ctx, cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeDB)
	m, err := session.New(ctx, d, session.Options{Timeout: time.Minute, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	srv := httptest.NewServer(m.Middleware(newMux()))
	t.Cleanup(srv.Close)
	return srv.URL
}

type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (b *browser) page(method, u string, form url.Values) string {
	b.t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = b.c.PostForm(u, form)
	} else {
		resp, err = b.c.Get(u)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		b.t.Fatalf("%s %s: %d %s %v", method, u, resp.StatusCode, body, err)
	}
	return string(body)
}

func (b *browser) cookie(base string) string {
	u, _ := url.Parse(base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == session.DefaultCookieName {
			return c.Value
		}
	}
	return ""
}

func exercise(t *testing.T, app1, app2 string) {
	br := newBrowser(t)
	if p := br.page("GET", app1+"/", nil); !strings.Contains(p, "Visits in this session: 1.") {
		t.Fatalf("first visit: %s", p)
	}
	if p := br.page("GET", app2+"/", nil); !strings.Contains(p, "Visits in this session: 2.") {
		t.Fatalf("second visit, other node: %s", p)
	}
	if p := br.page("POST", app1+"/cart", url.Values{"item": {"apple"}}); !strings.Contains(p, "apple") {
		t.Fatalf("cart: %s", p)
	}
	before := br.cookie(app1)
	if p := br.page("POST", app2+"/login", url.Values{"user": {"ann"}}); !strings.Contains(p, "Hello, ann") || !strings.Contains(p, "apple") {
		t.Fatalf("login: %s", p)
	}
	if br.cookie(app1) == before {
		t.Fatal("login did not renew the id")
	}
	if p := br.page("POST", app1+"/logout", nil); !strings.Contains(p, "Visits in this session: 1.") || strings.Contains(p, "apple") {
		t.Fatalf("after logout: %s", p)
	}
}

func TestExampleInProcess(t *testing.T) {
	// Two "nodes" cannot share the in-process store, so both URLs are one app.
	u := startApp(t, config{sessions: filepath.Join(t.TempDir(), "sessions")})
	exercise(t, u, u)
}

func TestExampleTwoNodesAgainstAServer(t *testing.T) {
	mainSt, sessSt := memstorage.New(memstorage.Options{}), memstorage.New(memstorage.Options{})
	t.Cleanup(func() { _ = mainSt.Close(); _ = sessSt.Close() })
	srv, err := server.New(server.Options{
		Listen:     "127.0.0.1:0",
		Partitions: map[string]server.Partition{"main": {Storage: mainSt}, "sessiondata": {Storage: sessSt}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	cfg := config{server: srv.Addr().String()}
	exercise(t, startApp(t, cfg), startApp(t, cfg))
}

func TestParseFlags(t *testing.T) {
	c, err := parse([]string{"-listen", "127.0.0.1:0", "-limit", "3", "-timeout", "5m"}, io.Discard)
	if err != nil || c.limit != 3 || c.timeout != 5*time.Minute || c.listen != "127.0.0.1:0" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := parse([]string{"-nope"}, io.Discard); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
