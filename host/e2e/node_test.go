package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zhostdb/zhost/internal/testbin"
)

// nodeProc is one `zhost run --node NAME` process.
type nodeProc struct {
	name    string
	cmd     *exec.Cmd
	stdout  *lockedBuf
	stderr  *lockedBuf
	exited  chan struct{}
	waitErr error
}

func startNode(t *testing.T, exe, dir, cfg, name string) *nodeProc {
	t.Helper()
	n := &nodeProc{name: name, stdout: &lockedBuf{}, stderr: &lockedBuf{}, exited: make(chan struct{})}
	n.cmd = exec.Command(exe, "run", "--node", name, cfg)
	n.cmd.Dir = dir
	n.cmd.Stdout, n.cmd.Stderr = n.stdout, n.stderr
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.waitErr = n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.exited
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", name, tail(n.stderr.String(), 60))
		}
	})
	return n
}

// interrupt sends SIGINT and expects a clean exit (status 0) in time.
func (n *nodeProc) interrupt(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("SIGINT to %s: %v", n.name, err)
	}
	select {
	case <-n.exited:
		if n.waitErr != nil {
			t.Fatalf("node %s exited with %v after SIGINT", n.name, n.waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("node %s did not stop within 30s of SIGINT", n.name)
	}
}

// TestNodeModeAndInterrupt runs examples/cluster.hcl the multi-machine
// way, one `zhost run --node NAME` per node (all on 127.0.0.1), and
// checks issue 8's promises for that mode: each node writes its pid file
// and logs under its name, the balancer says where to point a browser,
// and SIGINT stops a node gracefully with exit 0: a request in flight at
// the balancer when the signal arrives is still answered.
func TestNodeModeAndInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end node test skipped in -short mode")
	}
	exe := testbin.Zhost(t)
	dir, cfg, ports := writeConfig(t)
	c := &cluster{t: t, dir: dir}
	nodes := map[string]*nodeProc{}
	for _, name := range []string{"zeo", "app1", "app2", "front"} {
		nodes[name] = startNode(t, exe, dir, cfg, name)
	}
	front := "http://127.0.0.1:" + ports["8080"]
	c.waitFor(60*time.Second, "the balancer to say where to point a browser", func() bool {
		for name, n := range nodes {
			select {
			case <-n.exited:
				t.Fatalf("node %s exited early: %v", name, n.waitErr)
			default:
			}
		}
		return strings.Contains(nodes["front"].stdout.String(), "point a browser at "+front)
	})

	// Pid files: the server block's pid_file, var/NAME.pid for the rest.
	// The balancer says where to point a browser as soon as it listens,
	// which may be before an app node's process has got as far as its
	// pid file, so each is waited for (a wrong pid fails at once).
	for name, file := range map[string]string{"zeo": "server", "app1": "app1", "app2": "app2", "front": "front"} {
		want := nodes[name].cmd.Process.Pid
		c.waitFor(30*time.Second, fmt.Sprintf("pid file var/%s.pid of %s", file, name), func() bool {
			got := c.pid(file)
			if got != 0 && got != want {
				t.Fatalf("pid file var/%s.pid of %s holds %d, want %d", file, name, got, want)
			}
			return got == want
		})
	}

	// A write through the balancer is read back from the other machine's
	// node directly once it has applied the write's tid. Both app nodes
	// must be serving first: the balancer takes a write as soon as one is.
	for _, p := range []string{ports["8081"], ports["8082"]} {
		c.waitFor(30*time.Second, "app node 127.0.0.1:"+p+" to be healthy", func() bool {
			st, _, _, err := do(t, httpc, "GET", "http://127.0.0.1:"+p+"/healthz", nil, nil)
			return err == nil && st == http.StatusOK
		})
	}
	var tid string
	c.waitFor(30*time.Second, "a write through the balancer", func() bool {
		st, h, _, err := do(t, httpc, "PUT", front+"/e2e/nodes", map[string]any{"v": 1}, nil)
		tid = h.Get("X-Zhost-Tid")
		return err == nil && st == http.StatusCreated
	})
	for _, p := range []string{ports["8081"], ports["8082"]} {
		st, _, out, err := do(t, httpc, "GET", "http://127.0.0.1:"+p+"/e2e/nodes", nil, map[string]string{"X-Zhost-Tid": tid})
		if data, _ := out["data"].(map[string]any); err != nil || st != 200 || data["v"] != float64(1) {
			t.Fatalf("GET from 127.0.0.1:%s: %d %v %v", p, st, out, err)
		}
	}

	// Logs name their node: hclog's text lines carry the logger name.
	for _, name := range []string{"zeo", "app1", "front"} {
		if !strings.Contains(nodes[name].stderr.String(), " "+name+": ") {
			t.Errorf("log of %s does not name it:\n%s", name, tail(nodes[name].stderr.String(), 10))
		}
	}

	// A PUT whose body is still arriving when the balancer gets SIGINT:
	// the balancer drains, so the request is forwarded and answered.
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+ports["8080"], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	body := `{"v":"in flight"}`
	head := fmt.Sprintf("PUT /e2e/inflight HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", ports["8080"], len(body))
	if _, err := conn.Write([]byte(head + body[:5])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the balancer is now reading the body
	if err := nodes["front"].cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	c.waitFor(10*time.Second, "the balancer to stop accepting", func() bool {
		nc, err := net.DialTimeout("tcp", "127.0.0.1:"+ports["8080"], time.Second)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	if _, err := conn.Write([]byte(body[5:])); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request lost at SIGINT: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Zhost-Node") == "" {
		t.Fatalf("in-flight request: %s (node %q), want 201 from an app node", resp.Status, resp.Header.Get("X-Zhost-Node"))
	}
	select {
	case <-nodes["front"].exited:
		if nodes["front"].waitErr != nil {
			t.Fatalf("balancer exited with %v after SIGINT", nodes["front"].waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("balancer did not stop after draining")
	}

	// The rest stop on SIGINT too, app nodes before the server, each with
	// exit 0 and without its pid file.
	for _, name := range []string{"app1", "app2", "zeo"} {
		nodes[name].interrupt(t)
	}
	for _, file := range []string{"server", "app1", "app2", "front"} {
		if _, err := os.Stat(filepath.Join(dir, "var", file+".pid")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("var/%s.pid after stop: %v", file, err)
		}
	}
}
