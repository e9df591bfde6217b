package balancer

import (
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// BenchmarkProxy measures GET latency through the balancer against the same
// GETs sent straight to the backend in the same run, with 8 concurrent
// clients, and reports the ratio (balancer / direct). Each iteration is a
// batch of 400 requests per side, so -benchtime 1x still measures
// something.
func BenchmarkProxy(b *testing.B) {
	body := make([]byte, 512)
	be := newBenchBackend(b, body)
	_, url := startBalancer(b, Options{Backends: []Backend{{Name: "a", URL: be}}})
	cl := newClient(b)
	const workers, perWorker = 8, 50
	run := func(target string) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perWorker {
					resp, err := cl.Get(target)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	run(be + "/warm")
	run(url + "/warm")
	b.ResetTimer()
	var direct, proxied time.Duration
	for range b.N {
		direct += run(be + "/obj")
		proxied += run(url + "/obj")
	}
	n := float64(b.N * workers * perWorker)
	b.ReportMetric(float64(direct.Nanoseconds())/n, "direct-ns/req")
	b.ReportMetric(float64(proxied.Nanoseconds())/n, "balancer-ns/req")
	b.ReportMetric(float64(proxied)/float64(direct), "ratio")
}

func newBenchBackend(b *testing.B, body []byte) string {
	b.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})}
	tb := newTestBackendServer(b, srv)
	return tb
}

// newTestBackendServer serves srv on a free 127.0.0.1 port until cleanup.
func newTestBackendServer(tb testing.TB, srv *http.Server) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	tb.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "http://" + l.Addr().String()
}
