package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/internal/testbin"
)

// loadTestConfig writes src to dir/cluster.hcl and loads it as `zhost
// run` does.
func loadTestConfig(t *testing.T, dir, src string) *hcl.Config {
	t.Helper()
	file := filepath.Join(dir, "cluster.hcl")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := LoadConfig(context.Background(), file, nil)
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	return cfg
}

// TestRunNodeStopsWhileWaitingForServer: a client node asked to stop
// before its server ever answered stops cleanly (nil error, so `zhost run
// --node` exits 0 on SIGINT) and removes its pid file (regression: it
// failed with "connect to ...", which made the node exit with ExitCrash).
func TestRunNodeStopsWhileWaitingForServer(t *testing.T) {
	dir := t.TempDir()
	cfg := loadTestConfig(t, dir, fmt.Sprintf(`
client "app1" {
  listen          = "127.0.0.1:%d"
  server          = "127.0.0.1:%d"
  connect_timeout = "100ms"
}
`, testbin.FreePort(t), testbin.FreePort(t)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunNode(ctx, cfg, "app1", NodeOptions{}) }()
	pid := filepath.Join(dir, "var", "app1.pid")
	waitFor(t, 5*time.Second, func() bool { _, err := os.Stat(pid); return err == nil })
	time.Sleep(300 * time.Millisecond) // at least one failed dial and a backoff
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunNode after stop while waiting for the server: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunNode did not return after its context ended")
	}
	if _, err := os.Stat(pid); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file left behind: %v", err)
	}
}

func TestRunNodeUnknownName(t *testing.T) {
	cfg := loadTestConfig(t, t.TempDir(), `client "app1" {
  listen = "127.0.0.1:1"
  server = "127.0.0.1:2"
}
`)
	err := RunNode(context.Background(), cfg, "nope", NodeOptions{})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("RunNode(nope) = %v", err)
	}
}

// TestRunNodeWholeCluster runs the three kinds of node in this process
// (the storage in_process, so no plugin binary is needed) and checks what
// the config asks of each: pid files, the balancer's access_log and
// public_url, node names on answers, and a clean stop.
func TestRunNodeWholeCluster(t *testing.T) {
	dir := t.TempDir()
	srvPort, appPort, frontPort := testbin.FreePort(t), testbin.FreePort(t), testbin.FreePort(t)
	cfg := loadTestConfig(t, dir, fmt.Sprintf(`
server "zeo" { listen = "127.0.0.1:%d" }
storage "main" {
  type       = "filestorage"
  path       = "var/Data.fs"
  in_process = true
}
partition "main" { storage = storage.main }
client "app1" {
  listen     = "127.0.0.1:%d"
  cache_size = "1MiB"
}
balancer "front" {
  listen        = "127.0.0.1:%d"
  public_url    = "http://front.example:8080"
  clients       = [client.app1]
  access_log    = "var/access.log"
  drain_timeout = "2s"
  health_check {
    interval = "100ms"
    timeout  = "100ms"
    rise     = 1
  }
}
`, srvPort, appPort, frontPort))
	logs := &syncBuf{}
	stop := runNodes(t, cfg, logs, "zeo", "app1", "front")

	front := "http://127.0.0.1:" + strconv.Itoa(frontPort)
	cl := &http.Client{Timeout: 5 * time.Second}
	var resp *http.Response
	waitFor(t, 15*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodPut, front+"/docs/a", strings.NewReader(`{"x":1}`))
		r, err := cl.Do(req)
		if err != nil {
			return false
		}
		if r.StatusCode != http.StatusCreated {
			r.Body.Close()
			return false
		}
		resp = r
		return true
	})
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The balancer forwards the Host the browser used; the app trusts
	// the balancer's address, so the URL names the front end, never the
	// node.
	if got := resp.Header.Get("Location"); got != front+"/docs/a" {
		t.Errorf("Location %q, want %s/docs/a; body %s", got, front, body)
	}
	// Straight to the node (not a trusted proxy, no forwarded headers):
	// URLs start with the balancer's public_url.
	r, err := cl.Get("http://127.0.0.1:" + strconv.Itoa(appPort) + "/docs/a")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(body), `"url":"http://front.example:8080/docs/a"`) {
		t.Errorf("direct GET: %s, want the url under public_url", body)
	}
	if got := resp.Header.Get("X-Zhost-Node"); got != "app1" {
		t.Errorf("X-Zhost-Node %q", got)
	}
	for _, n := range []string{"zeo", "app1", "front"} {
		if _, err := os.Stat(filepath.Join(dir, "var", n+".pid")); err != nil {
			t.Errorf("pid file of %s: %v", n, err)
		}
	}
	waitFor(t, 5*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "var", "access.log"))
		return strings.Contains(string(b), "/docs/a")
	})

	stop()
	for _, n := range []string{"zeo", "app1", "front"} {
		if _, err := os.Stat(filepath.Join(dir, "var", n+".pid")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pid file of %s after stop: %v", n, err)
		}
	}
	if !strings.Contains(logs.String(), "app node serving") {
		t.Errorf("node logs lack the app's start line:\n%s", logs.String())
	}
}

func TestBrowserURLs(t *testing.T) {
	cfg := loadTestConfig(t, t.TempDir(), `
client "app1" {
  listen = "0.0.0.0:8081"
  server = "127.0.0.1:9100"
}
client "app2" {
  listen = "127.0.0.1:8082"
  server = "127.0.0.1:9100"
}
balancer "front" {
  listen     = "127.0.0.1:8080"
  public_url = "https://shop.example"
  clients    = [client.app1, client.app2]
}
`)
	for _, tc := range []struct{ node, want string }{
		{"front", "https://shop.example"},
		{"app1", "http://127.0.0.1:8081/"}, // the wildcard listen is advertised on 127.0.0.1
		{"app2", "http://127.0.0.1:8082/"},
		{"nope", "https://shop.example"},
	} {
		if got := NodeBrowserURL(cfg, tc.node); got != tc.want {
			t.Errorf("NodeBrowserURL(%s) = %q, want %q", tc.node, got, tc.want)
		}
	}
	if got := BrowserURL(cfg); got != "https://shop.example" {
		t.Errorf("BrowserURL = %q", got)
	}
}

// TestRunNodeBusyPoll: busy_poll in the server and client blocks reaches
// the nodes (each says so as it starts), and a cluster running with it
// serves writes and reads.
func TestRunNodeBusyPoll(t *testing.T) {
	dir := t.TempDir()
	srvPort, appPort := testbin.FreePort(t), testbin.FreePort(t)
	cfg := loadTestConfig(t, dir, fmt.Sprintf(`
server "zeo" {
  listen    = "127.0.0.1:%d"
  busy_poll = "50us"
}
storage "main" {
  type       = "filestorage"
  path       = "var/Data.fs"
  in_process = true
}
partition "main" { storage = storage.main }
client "app1" {
  listen    = "127.0.0.1:%d"
  busy_poll = "20us"
}
`, srvPort, appPort))
	logs := &syncBuf{}
	runNodes(t, cfg, logs, "zeo", "app1")
	app := "http://127.0.0.1:" + strconv.Itoa(appPort)
	cl := &http.Client{Timeout: 5 * time.Second}
	waitFor(t, 15*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodPut, app+"/docs/polled", strings.NewReader(`{"x":1}`))
		r, err := cl.Do(req)
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusCreated
	})
	for i := range 20 {
		r, err := cl.Get(app + "/docs/polled")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusOK || !strings.Contains(string(body), `"x":1`) {
			t.Fatalf("GET %d: %d %s", i, r.StatusCode, body)
		}
	}
	for _, want := range []string{"storage server listening", `busy_poll="50µs"`, "app node serving", `busy_poll="20µs"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("node logs lack %q:\n%s", want, logs.String())
		}
	}
}

// runNodes runs the named nodes of cfg in this process, logging to logs,
// and returns a stop that cancels them and checks that each returned
// nil within 20 s; it also runs at cleanup (a second call does nothing).
func runNodes(t *testing.T, cfg *hcl.Config, logs *syncBuf, names ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		name string
		err  error
	}
	done := make(chan result, len(names))
	for _, name := range names {
		log := hclog.New(&hclog.LoggerOptions{Name: name, Output: logs, Level: hclog.Info})
		go func() {
			done <- result{name, RunNode(ctx, cfg, name, NodeOptions{Logger: log, ShutdownTimeout: 5 * time.Second})}
		}()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			for range names {
				select {
				case r := <-done:
					if r.err != nil {
						t.Errorf("node %s: %v", r.name, r.err)
					}
				case <-time.After(20 * time.Second):
					t.Error("a node did not stop")
					return
				}
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
