package loadbench

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zhostdb/zhost/internal/testbin"
)

var (
	conns = flag.Int("loadbench.conns", 16, "concurrent keep-alive connections (one browser each) of the load generator")
	docs  = flag.Int("loadbench.docs", 16, "cached documents the get-cached requests spread over")
	// The example has no access_log, so the balancer logs each request
	// to its stderr, which `zhost run` parses and logs again; "file"
	// measures the balancer with access_log set instead.
	accessLog = flag.String("loadbench.access-log", "stderr", `where the balancer's access log goes: "stderr" (examples/cluster.hcl as shipped) or "file" (access_log = "var/access.log")`)
)

const (
	// startLimit bounds the wait for `zhost run` to bring the cluster up.
	startLimit = 90 * time.Second
	// runLimit bounds one sub-benchmark invocation; a run that needs
	// longer fails rather than hang the benchmark.
	runLimit = 3 * time.Minute
	// docBytes is the size of each seeded document's body field.
	docBytes = 400
)

// cluster is one `zhost run` of examples/cluster.hcl with free ports.
type cluster struct {
	pid     int // zhost run's (the supervisor's) process id
	dir     string
	front   string            // balancer base URL
	nodes   map[string]string // app node name -> base URL
	stdout  string            // file holding zhost run's stdout
	stderr  string            // file holding zhost run's stderr
	exited  chan struct{}
	waitErr error
}

// startCluster runs the real binary on examples/cluster.hcl as shipped,
// with only its ports replaced by free ones, and waits until the balancer,
// both app nodes and the session mount answer. The cluster is stopped
// (SIGTERM, then SIGKILL of its process group) by tb.Cleanup.
func startCluster(tb testing.TB) *cluster {
	tb.Helper()
	exe := testbin.Zhost(tb)
	root, err := testbin.ModuleRoot()
	if err != nil {
		tb.Fatalf("module root: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(root, "examples", "cluster.hcl"))
	if err != nil {
		tb.Fatalf("read example: %v", err)
	}
	text := string(src)
	ports := map[string]string{}
	for _, p := range []string{"9100", "8080", "8081", "8082"} {
		ports[p] = strconv.Itoa(testbin.FreePort(tb))
		text = strings.ReplaceAll(text, "127.0.0.1:"+p, "127.0.0.1:"+ports[p])
	}
	switch *accessLog {
	case "stderr":
	case "file":
		const anchor = "clients    = [client.app1, client.app2]"
		if !strings.Contains(text, anchor) {
			tb.Fatalf("examples/cluster.hcl no longer has %q to add access_log after", anchor)
		}
		text = strings.Replace(text, anchor, anchor+"\n  access_log = \"var/access.log\"", 1)
	default:
		tb.Fatalf("-loadbench.access-log %q: want stderr or file", *accessLog)
	}
	dir := tb.TempDir()
	cfg := filepath.Join(dir, "cluster.hcl")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		tb.Fatalf("write config: %v", err)
	}
	c := &cluster{
		dir:    dir,
		front:  "http://127.0.0.1:" + ports["8080"],
		nodes:  map[string]string{"app1": "http://127.0.0.1:" + ports["8081"], "app2": "http://127.0.0.1:" + ports["8082"]},
		stdout: filepath.Join(dir, "zhost.stdout"),
		stderr: filepath.Join(dir, "zhost.stderr"),
		exited: make(chan struct{}),
	}
	// Files, not memory: a long run's logs must not grow the benchmark's
	// heap or share its locks.
	outF, err := os.Create(c.stdout)
	if err != nil {
		tb.Fatalf("create stdout file: %v", err)
	}
	errF, err := os.Create(c.stderr)
	if err != nil {
		outF.Close()
		tb.Fatalf("create stderr file: %v", err)
	}
	cmd := exec.Command(exe, "run", cfg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = outF, errF
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		outF.Close()
		errF.Close()
		tb.Fatalf("start zhost run: %v", err)
	}
	c.pid = cmd.Process.Pid
	go func() {
		c.waitErr = cmd.Wait()
		outF.Close()
		errF.Close()
		close(c.exited)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			tb.Logf("zhost run did not stop within 30s of SIGTERM; killing it")
		}
		// Whatever is left of the group (never more than the cluster's
		// own processes: it has its own process group).
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
		if tb.Failed() {
			tb.Logf("zhost run stderr (tail):\n%s", c.tail(c.stderr, 60))
		}
	})

	cl := &http.Client{Timeout: 5 * time.Second}
	defer cl.CloseIdleConnections()
	c.waitFor(tb, "the balancer URL to be printed", func() error {
		b, _ := os.ReadFile(c.stdout)
		if !bytes.Contains(b, []byte("point a browser at")) {
			return errors.New("not printed yet")
		}
		return nil
	})
	for name, base := range c.nodes {
		c.waitFor(tb, name+" to be healthy", func() error { return expect(cl, "GET", base+"/healthz", "", 200) })
	}
	c.waitFor(tb, "the balancer to answer", func() error { return expect(cl, "GET", c.front+"/healthz", "", 200) })
	// The session mount becomes ready after the nodes answer health
	// checks; a session read through each node says when it is.
	for name, base := range c.nodes {
		c.waitFor(tb, name+"'s session mount", func() error { return expect(cl, "GET", base+"/_session", "", 200) })
	}
	return c
}

// waitFor polls cond until it returns nil, for at most startLimit.
func (c *cluster) waitFor(tb testing.TB, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(startLimit)
	for {
		select {
		case <-c.exited:
			tb.Fatalf("zhost run exited while waiting for %s: %v", what, c.waitErr)
		default:
		}
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s: %v", startLimit, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) tail(file string, lines int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", file, err)
	}
	parts := strings.Split(string(b), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// expect sends one request and checks its status; the body is drained so
// the connection is reused.
func expect(cl *http.Client, method, url, body string, status int) error {
	_, err := send(cl, method, url, body, status)
	return err
}

// send sends one request, checks its status and returns the body.
func send(cl *http.Client, method, url, body string, status int) ([]byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	if resp.StatusCode != status {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, status, bytes.TrimSpace(b))
	}
	return b, nil
}

// browser is one simulated browser: its own keep-alive connections (like
// one wrk connection per host) and its own cookie jar, holding its session
// id and the session's read-your-writes version cookie (<cookie>_v).
// Cookies ignore the port, so the jar filled through the balancer is valid
// on every node: sessions are shared.
type browser struct {
	id int
	cl *http.Client
}

func newBrowsers(tb testing.TB, n int) []*browser {
	tb.Helper()
	out := make([]*browser, n)
	for i := range out {
		jar, err := cookiejar.New(nil)
		if err != nil {
			tb.Fatalf("cookie jar: %v", err)
		}
		tr := &http.Transport{
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     5 * time.Minute,
			DisableCompression:  true,
		}
		tb.Cleanup(tr.CloseIdleConnections)
		out[i] = &browser{id: i, cl: &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second}}
	}
	return out
}

// kind is one kind of request the load generator sends.
type kind struct {
	name string
	// do sends request number i of browser br to base and checks the answer.
	do func(br *browser, base string, i int) error
}

func kinds(ndocs int) []kind {
	return []kind{
		{"get-cached", func(br *browser, base string, i int) error {
			path := fmt.Sprintf("/bench/doc%d", (br.id+i)%ndocs)
			b, err := send(br.cl, "GET", base+path, "", 200)
			if err != nil {
				return err
			}
			if !bytes.Contains(b, []byte(`"path":"`+path+`"`)) {
				return fmt.Errorf("GET %s: answer names another object: %.200s", path, b)
			}
			return nil
		}},
		{"session-read", func(br *browser, base string, _ int) error {
			b, err := send(br.cl, "GET", base+"/_session", "", 200)
			if err != nil {
				return err
			}
			if !bytes.Contains(b, []byte(`"exists":true`)) || !bytes.Contains(b, []byte(fmt.Sprintf(`"user":"b%d"`, br.id))) {
				return fmt.Errorf("GET /_session: not this browser's session: %.200s", b)
			}
			return nil
		}},
		{"session-write", func(br *browser, base string, i int) error {
			b, err := send(br.cl, "PUT", base+"/_session", fmt.Sprintf(`{"n":%d}`, i), 200)
			if err != nil {
				return err
			}
			if !bytes.Contains(b, []byte(fmt.Sprintf(`"n":%d`, i))) {
				return fmt.Errorf("PUT /_session: answer lacks the write: %.200s", b)
			}
			return nil
		}},
	}
}

// seed writes the documents through the balancer, warms both nodes'
// caches with them (waiting for the last write's tid) and gives every
// browser a session.
func seed(tb testing.TB, c *cluster, brs []*browser, ndocs int) {
	tb.Helper()
	cl := &http.Client{Timeout: 10 * time.Second}
	defer cl.CloseIdleConnections()
	body := fmt.Sprintf(`{"title":"cached","body":%q}`, strings.Repeat("x", docBytes))
	var tid string
	for i := range ndocs {
		req, err := http.NewRequest("PUT", fmt.Sprintf("%s/bench/doc%d", c.front, i), strings.NewReader(body))
		if err != nil {
			tb.Fatalf("seed: %v", err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := cl.Do(req)
		if err != nil {
			tb.Fatalf("seed doc%d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != 201 {
			tb.Fatalf("seed doc%d: status %d", i, resp.StatusCode)
		}
		tid = resp.Header.Get("X-Zhost-Tid")
	}
	for name, base := range c.nodes {
		for i := range ndocs {
			req, err := http.NewRequest("GET", fmt.Sprintf("%s/bench/doc%d", base, i), nil)
			if err != nil {
				tb.Fatalf("warm: %v", err)
			}
			req.Header.Set("X-Zhost-Tid", tid)
			resp, err := cl.Do(req)
			if err != nil {
				tb.Fatalf("warm doc%d on %s: %v", i, name, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				tb.Fatalf("warm doc%d on %s: status %d", i, name, resp.StatusCode)
			}
		}
	}
	for _, br := range brs {
		if err := expect(br.cl, "PUT", c.front+"/_session", fmt.Sprintf(`{"user":"b%d","n":-1}`, br.id), 200); err != nil {
			tb.Fatalf("seed session of browser %d: %v", br.id, err)
		}
	}
}

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// which Linux fixes at 100 for user space on every architecture Go
// supports.
const clockTick = 10 * time.Millisecond

// procCPU returns the user+system CPU time pid has used, 0 if it is gone.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * clockTick
}

// cpuGroups are the parts of the cluster whose CPU time is reported per
// request: each node with its plugin processes, and zhost run itself
// (which relays every node's log lines).
var cpuGroups = []struct{ metric, nodes string }{
	{"front", "front"},
	{"apps", "app1 app2"},
	{"server", "server"},
	{"run", ""},
}

// cpu returns the CPU time used so far by each of cpuGroups.
func (c *cluster) cpu() []time.Duration {
	out := make([]time.Duration, len(cpuGroups))
	for g, grp := range cpuGroups {
		if grp.nodes == "" {
			out[g] = procCPU(c.pid)
			continue
		}
		for _, node := range strings.Fields(grp.nodes) {
			b, err := os.ReadFile(filepath.Join(c.dir, "var", node+".pid"))
			if err != nil {
				continue
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				continue
			}
			out[g] += procCPU(pid)
			for _, p := range testbin.Children(pid) {
				out[g] += procCPU(p)
			}
		}
	}
	return out
}

// selfCPU is the CPU time of this process: the load generator (and the
// plain proxy).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// result is what one measured run found.
type result struct {
	nsPerReq float64
	p50, p99 time.Duration
	allCPU   float64 // µs of CPU per request: the cluster's processes and this one
}

// load sends b.N requests of kind k to base from all browsers at once,
// each browser one request at a time, and reports req/s and latency
// percentiles. Any failed request fails the benchmark.
func load(b *testing.B, c *cluster, brs []*browser, base string, k kind) result {
	// Warm-up outside the timer: one request per browser opens its
	// connection to this host.
	for _, br := range brs {
		if err := k.do(br, base, 0); err != nil {
			b.Fatalf("%s warm-up: %v", k.name, err)
		}
	}
	var (
		next     atomic.Int64
		failures atomic.Int64
		timedOut atomic.Bool
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	lat := make([][]time.Duration, len(brs))
	n := int64(b.N)
	cpu0, self0 := c.cpu(), selfCPU()
	b.ResetTimer()
	start := time.Now()
	deadline := start.Add(runLimit)
	for w, br := range brs {
		lat[w] = make([]time.Duration, 0, n/int64(len(brs))+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				if time.Now().After(deadline) {
					timedOut.Store(true)
					return
				}
				t0 := time.Now()
				err := k.do(br, base, int(i))
				lat[w] = append(lat[w], time.Since(t0))
				if err != nil {
					failures.Add(1)
					errOnce.Do(func() { firstErr = err })
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu1, self1 := c.cpu(), selfCPU()
	if timedOut.Load() {
		b.Fatalf("%s: %d requests not done within %v", k.name, n, runLimit)
	}
	if f := failures.Load(); f > 0 {
		b.Fatalf("%s: %d of %d requests failed; first: %v", k.name, f, n, firstErr)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	r := result{
		nsPerReq: float64(elapsed.Nanoseconds()) / float64(n),
		p50:      all[len(all)*50/100],
		p99:      all[min(len(all)-1, len(all)*99/100)],
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(r.p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(r.p99.Nanoseconds()), "p99-ns")
	// CPU time per request is what the figures above cost, and unlike
	// them it hardly depends on what else runs on the machine.
	perReq := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	var total time.Duration
	for g, grp := range cpuGroups {
		d := cpu1[g] - cpu0[g]
		total += d
		b.ReportMetric(perReq(d), grp.metric+"-cpu-us/req")
	}
	b.ReportMetric(perReq(total), "cluster-cpu-us/req")
	b.ReportMetric(perReq(self1-self0), "bench-cpu-us/req")
	r.allCPU = perReq(total + self1 - self0)
	return r
}

// BenchmarkClusterHTTP runs the real cluster (`zhost run` on
// examples/cluster.hcl: server, two app nodes, balancer, each its own
// process) once, and for each kind of request measures, in this order, a
// run straight to app1 (direct), one through the balancer, and one through
// a bare httputil.ReverseProxy to app1 in this process (plain-proxy, the
// floor for any Go proxy hop). The last two report x-direct (time per
// request over the direct run's), p50-x-direct and cpu-x-direct (CPU per
// request of all processes, this one included, over the direct run's).
// All runs use the same browsers, so the same sessions and cookies (the
// session id and its <cookie>_v version cookie work on any node). b.N is
// the total number of requests of one sub-benchmark, spread over
// -loadbench.conns browsers.
//
// All processes share the machine's cores with the load generator, so
// req/s and latencies are for comparing (ratios, before/after), not
// absolutes; the *-cpu-us/req figures (CPU time of the balancer, the app
// nodes, the server, zhost run and this process, per request) depend far
// less on what else the machine runs.
func BenchmarkClusterHTTP(b *testing.B) {
	if testing.Short() {
		b.Skip("cluster load benchmark skipped in -short mode")
	}
	if *conns < 1 || *conns > 1024 {
		b.Fatalf("-loadbench.conns %d: want 1 to 1024", *conns)
	}
	if *docs < 1 || *docs > 10000 {
		b.Fatalf("-loadbench.docs %d: want 1 to 10000", *docs)
	}
	c := startCluster(b)
	brs := newBrowsers(b, *conns)
	seed(b, c, brs, *docs)
	direct := c.nodes["app1"]
	b.Logf("cluster up: balancer %s (access log to %s), direct node app1 %s, %d browsers, %d documents",
		c.front, *accessLog, direct, len(brs), *docs)

	plain := startPlainProxy(b, direct)

	for _, k := range kinds(*docs) {
		var base *result
		b.Run(k.name+"/direct", func(b *testing.B) {
			r := load(b, c, brs, direct, k)
			base = &r
		})
		compare := func(b *testing.B, front string) {
			r := load(b, c, brs, front, k)
			if base == nil {
				b.Logf("no %s/direct run to compare with (filtered out by -bench?)", k.name)
				return
			}
			b.ReportMetric(r.nsPerReq/base.nsPerReq, "x-direct")
			b.ReportMetric(float64(r.p50)/float64(base.p50), "p50-x-direct")
			if base.allCPU > 0 {
				b.ReportMetric(r.allCPU/base.allCPU, "cpu-x-direct")
			}
		}
		b.Run(k.name+"/balancer", func(b *testing.B) { compare(b, c.front) })
		b.Run(k.name+"/plain-proxy", func(b *testing.B) { compare(b, plain) })
	}
}

// startPlainProxy serves a bare httputil.ReverseProxy to target on a free
// port of 127.0.0.1, in this process, and returns its base URL. It is the
// floor any Go reverse proxy pays for the extra hop (no health checks,
// retries, forwarded headers or access log), against which the
// balancer's own x-direct can be read.
func startPlainProxy(tb testing.TB, target string) string {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatalf("plain proxy target %q: %v", target, err)
	}
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 5 * time.Minute}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: tr,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("plain proxy listen: %v", err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l) // returns http.ErrServerClosed on Close
	}()
	tb.Cleanup(func() {
		_ = srv.Close()
		<-done
		tr.CloseIdleConnections()
	})
	return "http://" + l.Addr().String()
}
