package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zhostdb/zhost/internal/testbin"
)

// cluster is one `zhost run` of examples/cluster.hcl in a temp dir.
type cluster struct {
	t       *testing.T
	dir     string
	cmd     *exec.Cmd
	front   string // balancer base URL
	nodes   map[string]string
	stdout  *lockedBuf
	stderr  *lockedBuf
	exited  chan struct{} // closed when zhost run has exited
	waitErr error
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// writeConfig writes examples/cluster.hcl, with free ports and quick
// health checks, to a temp dir; it returns the dir, the file and the
// port that replaced each of the example's ports.
func writeConfig(t *testing.T) (string, string, map[string]string) {
	t.Helper()
	root, err := testbin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "examples", "cluster.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{}
	text := string(src)
	for _, p := range []string{"9100", "8080", "8081", "8082"} {
		ports[p] = strconv.Itoa(testbin.FreePort(t))
		text = strings.ReplaceAll(text, "127.0.0.1:"+p, "127.0.0.1:"+ports[p])
	}
	// Quick health checks so a killed node is noticed within the test's
	// patience; the rest is the example as shipped.
	text = strings.Replace(text, `clients    = [client.app1, client.app2]`, `clients    = [client.app1, client.app2]
  health_check {
    path     = "/healthz"
    interval = "300ms"
    timeout  = "250ms"
    rise     = 1
    fall     = 1
  }`, 1)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cluster.hcl")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, cfg, ports
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	exe := testbin.Zhost(t)
	dir, cfg, ports := writeConfig(t)
	c := &cluster{
		t: t, dir: dir,
		front:  "http://127.0.0.1:" + ports["8080"],
		nodes:  map[string]string{"app1": "http://127.0.0.1:" + ports["8081"], "app2": "http://127.0.0.1:" + ports["8082"]},
		stdout: &lockedBuf{}, stderr: &lockedBuf{},
	}
	c.cmd = exec.Command(exe, "run", cfg)
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.exited = make(chan struct{})
	go func() { c.waitErr = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
		if t.Failed() {
			t.Logf("zhost run stderr:\n%s", tail(c.stderr.String(), 200))
		}
	})
	c.waitFor(60*time.Second, "the balancer URL to be printed", func() bool {
		select {
		case <-c.exited:
			t.Fatalf("zhost run exited early: %v", c.waitErr)
		default:
		}
		return strings.Contains(c.stdout.String(), "point a browser at")
	})
	return c
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func (c *cluster) waitFor(limit time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) pid(node string) int {
	b, err := os.ReadFile(filepath.Join(c.dir, "var", node+".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

var httpc = &http.Client{Timeout: 10 * time.Second}

func do(t *testing.T, cl *http.Client, method, url string, body any, hdr map[string]string) (int, http.Header, map[string]any, error) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, resp.Header, out, nil
}

// put writes /e2e/NAME through the balancer and returns the tid.
func (c *cluster) put(name string, v int) (string, error) {
	st, h, _, err := do(c.t, httpc, "PUT", c.front+"/e2e/"+name, map[string]any{"v": v}, nil)
	if err != nil {
		return "", err
	}
	if st != 200 && st != 201 {
		return "", fmt.Errorf("PUT %s: status %d", name, st)
	}
	return h.Get("X-Zhost-Tid"), nil
}

func TestClusterEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end cluster test skipped in -short mode")
	}
	c := startCluster(t)

	// Writes through the balancer are read back through each node
	// directly: the other node's cache was invalidated.
	acked := map[string]int{}
	var lastTid string
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("doc%d", i)
		tid, err := c.put(name, i)
		if err != nil {
			t.Fatal(err)
		}
		acked[name], lastTid = i, tid
	}
	for node, base := range c.nodes {
		for name, v := range acked {
			st, h, out, err := do(t, httpc, "GET", base+"/e2e/"+name, nil, map[string]string{"Cookie": "_zhost_tid=" + lastTid})
			if err != nil || st != 200 {
				t.Fatalf("GET %s from %s: %d %v", name, node, st, err)
			}
			if h.Get("X-Zhost-Node") != node {
				t.Fatalf("answered by %q, want %q", h.Get("X-Zhost-Node"), node)
			}
			data, _ := out["data"].(map[string]any)
			if data["v"] != float64(v) {
				t.Fatalf("%s on %s: data %v, want v=%d", name, node, out["data"], v)
			}
			if u, _ := out["url"].(string); !strings.HasPrefix(u, c.front+"/") {
				t.Fatalf("url %q does not start with the balancer's public URL %s", u, c.front)
			}
		}
	}

	// One session across requests served by different nodes.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	if st, _, _, err := do(t, browser, "PUT", c.front+"/_session", map[string]any{"cart": "3 apples"}, nil); err != nil || st != 200 {
		t.Fatalf("PUT /_session: %d %v", st, err)
	}
	served := map[string]bool{}
	for i := 0; i < 6; i++ {
		st, h, out, err := do(t, browser, "GET", c.front+"/_session", nil, nil)
		if err != nil || st != 200 {
			t.Fatalf("GET /_session: %d %v", st, err)
		}
		data, _ := out["data"].(map[string]any)
		if data["cart"] != "3 apples" {
			t.Fatalf("session on %s lost its data: %v", h.Get("X-Zhost-Node"), out)
		}
		served[h.Get("X-Zhost-Node")] = true
	}
	if len(served) < 2 {
		t.Fatalf("session requests all served by %v; want both nodes", served)
	}

	// kill -9 one app node mid-traffic: no idempotent request fails.
	var failures, total atomic.Int64
	trafficCtx, stopTraffic := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for trafficCtx.Err() == nil {
				st, _, _, err := do(t, httpc, "GET", c.front+"/e2e/doc1", nil, nil)
				total.Add(1)
				if err != nil || st != 200 {
					failures.Add(1)
					t.Logf("GET during app kill: %d %v", st, err)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	app1 := c.pid("app1")
	if app1 == 0 {
		t.Fatal("no pid file for app1")
	}
	if err := syscall.Kill(app1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.waitFor(20*time.Second, "app1 to be restarted", func() bool {
		p := c.pid("app1")
		return p != 0 && p != app1 && testbin.Alive(p)
	})
	time.Sleep(500 * time.Millisecond)
	stopTraffic()
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d idempotent requests failed while app1 was killed", failures.Load(), total.Load())
	}
	t.Logf("%d GETs through the balancer while app1 was killed and restarted, none failed", total.Load())

	// kill -9 the server, then a storage plugin process, while writing:
	// every acknowledged write is there afterwards.
	writeDuring := func(what string, kill func()) {
		var mu sync.Mutex
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ctx.Err() == nil; i++ {
				name := fmt.Sprintf("%s%d", what, i)
				if _, err := c.put(name, i); err == nil {
					mu.Lock()
					acked[name] = i
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		time.Sleep(300 * time.Millisecond)
		kill()
		// Keep writing until writes succeed again after the kill.
		mu.Lock()
		before := len(acked)
		mu.Unlock()
		c.waitFor(30*time.Second, "writes to succeed again after killing the "+what, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) > before+5
		})
		stop()
		<-done
	}
	writeDuring("server", func() {
		pid := c.pid("server")
		if pid == 0 {
			t.Fatal("no server pid file")
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		c.waitFor(20*time.Second, "the server to be restarted", func() bool {
			p := c.pid("server")
			return p != 0 && p != pid && testbin.Alive(p)
		})
	})
	writeDuring("plugin", func() {
		var plugins []int
		c.waitFor(10*time.Second, "the server's plugin processes", func() bool {
			plugins = testbin.Children(c.pid("server"))
			return len(plugins) > 0
		})
		for _, p := range plugins {
			if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		c.waitFor(20*time.Second, "the storage plugin to be restarted", func() bool {
			now := testbin.Children(c.pid("server"))
			return len(now) > 0 && now[0] != plugins[0]
		})
	})
	var lastAck string
	for name, v := range acked {
		var st int
		var out map[string]any
		var err error
		c.waitFor(20*time.Second, "GET /e2e/"+name, func() bool {
			st, _, out, err = do(t, httpc, "GET", c.front+"/e2e/"+name, nil, nil)
			return err == nil && st != 503 && st != 502
		})
		if st != 200 {
			t.Fatalf("acknowledged write %s lost: status %d %v", name, st, out)
		}
		data, _ := out["data"].(map[string]any)
		if data["v"] != float64(v) {
			t.Fatalf("acknowledged write %s: data %v, want v=%d", name, out["data"], v)
		}
		lastAck = name
	}
	t.Logf("%d acknowledged writes all present (last checked %s)", len(acked), lastAck)

	// An operator packs the main partition while the cluster runs; the
	// session partition is packless and says it needs no packing.
	out, err := exec.Command(testbin.Zhost(t), "pack", "-config", filepath.Join(c.dir, "cluster.hcl")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `packed partition "main"`) {
		t.Fatalf("zhost pack: %v\n%s", err, out)
	}
	out, err = exec.Command(testbin.Zhost(t), "pack", "-config", filepath.Join(c.dir, "cluster.hcl"), "-partition", "sessiondata").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "needs no packing") {
		t.Fatalf("zhost pack of the packless partition: %v\n%s", err, out)
	}
	for name := range acked {
		if st, _, _, err := do(t, httpc, "GET", c.front+"/e2e/"+name, nil, nil); err != nil || st != 200 {
			t.Fatalf("GET %s after pack: %d %v", name, st, err)
		}
	}

	// SIGTERM: everything stops, exit 0, nothing left running.
	pids := []int{c.pid("server"), c.pid("app1"), c.pid("app2"), c.pid("front")}
	for _, p := range pids[:3] {
		pids = append(pids, testbin.Children(p)...)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.exited:
		if c.waitErr != nil {
			t.Fatalf("zhost run exited with %v after SIGTERM", c.waitErr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("zhost run did not stop within 60s of SIGTERM")
	}
	for _, p := range pids {
		if testbin.Alive(p) {
			t.Errorf("process %d still running after zhost run stopped", p)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(c.stderr.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "panic") {
			t.Errorf("panic in the log: %s", sc.Text())
		}
	}
}
