package clustertest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkCluster measures requests through the balancer against the same
// requests sent straight to one app node, in the same run, over a real
// server, clients, sessions and balancer on 127.0.0.1 (2 cores: the
// clients, the balancer, both nodes and the server share them). Each
// iteration runs a batch of 8 concurrent clients x 50 requests per kind
// and path, so -benchtime 1x still measures. Reported per kind: ns per
// request direct and through the balancer, and their ratio.
func BenchmarkCluster(b *testing.B) {
	c := startCluster(b, 2)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	// A cached object, and a session whose cookie every request carries.
	mustDo(b, cl, "PUT", c.frontURL+"/bench/doc", `{"title":"cached","body":"`+strings.Repeat("x", 400)+`"}`, "")
	resp := mustDo(b, cl, "PUT", c.frontURL+"/_session", `{"user":"bench"}`, "")
	var cookie string
	for _, ck := range resp.Cookies() {
		if ck.Name == "_zhost_id" {
			cookie = ck.Name + "=" + ck.Value
		}
	}
	if cookie == "" {
		b.Fatal("no session cookie")
	}
	kinds := []struct {
		name, method, path, body string
	}{
		{"get", "GET", "/bench/doc", ""},
		{"session_read", "GET", "/_session", ""},
		{"session_write", "PUT", "/_session", `{"n":%d}`},
	}
	const workers, perWorker = 8, 50
	run := func(base, method, path, body string) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					var rd io.Reader
					if body != "" {
						rd = strings.NewReader(fmt.Sprintf(body, w*perWorker+i))
					}
					req, _ := http.NewRequest(method, base+path, rd)
					req.Header.Set("Cookie", cookie)
					r, err := cl.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, r.Body)
					r.Body.Close()
					if r.StatusCode != 200 {
						b.Errorf("%s %s: %d", method, path, r.StatusCode)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	node := c.nodes[0].url
	for _, k := range kinds { // warm caches and connections
		run(node, k.method, k.path, k.body)
		run(c.frontURL, k.method, k.path, k.body)
	}
	b.ResetTimer()
	direct := make([]time.Duration, len(kinds))
	front := make([]time.Duration, len(kinds))
	for range b.N {
		for i, k := range kinds {
			direct[i] += run(node, k.method, k.path, k.body)
			front[i] += run(c.frontURL, k.method, k.path, k.body)
		}
	}
	n := float64(b.N * workers * perWorker)
	for i, k := range kinds {
		b.ReportMetric(float64(direct[i].Nanoseconds())/n, k.name+"-direct-ns/req")
		b.ReportMetric(float64(front[i].Nanoseconds())/n, k.name+"-balancer-ns/req")
		b.ReportMetric(float64(front[i])/float64(direct[i]), k.name+"-ratio")
	}
}

func mustDo(b *testing.B, cl *http.Client, method, url, body, cookie string) *http.Response {
	b.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	r, err := cl.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if r.StatusCode >= 300 {
		b.Fatalf("%s %s: %d", method, url, r.StatusCode)
	}
	return r
}
