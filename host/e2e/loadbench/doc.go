// Package loadbench holds the load benchmark of a whole zhost cluster: it
// runs the real binary (`zhost run` on examples/cluster.hcl, free ports)
// and drives it over HTTP with a Go load generator, a fixed pool of
// keep-alive connections, once through the balancer and once straight to
// one app node, in the same run, so the balancer's cost is a ratio measured
// under the same machine load.
//
// It sits on top of every layer (it only talks to the cluster over HTTP,
// like a browser) and has no non-test code. Benchmarks run only with
// -bench, and not under -short:
//
//	go test -run '^$' -bench ClusterHTTP -benchtime 2000x ./host/e2e/loadbench
//	go test ./host/e2e/loadbench -run '^$' -bench ClusterHTTP -loadbench.conns=32 -loadbench.access-log=file
//
// (Flags of this package go after the package path, or go test takes
// their values for packages.)
//
// Each kind of request (get-cached: GET of documents both nodes have
// cached; session-read: GET /_session; session-write: PUT /_session, each
// browser its own session) runs three times in a row: /direct to app1,
// /balancer, and /plain-proxy (a bare httputil.ReverseProxy to app1 in the
// benchmark process, the floor for any Go proxy hop). Each reports req/s,
// p50-ns, p99-ns and the CPU time per request of each part of the cluster
// (front, apps, server, run = zhost run relaying logs, bench = this
// process); the last two report x-direct, p50-x-direct and cpu-x-direct,
// their figures over the /direct run's just before. ns/op is wall time per
// request with all connections busy, not the latency of one request. Any
// failed request fails the benchmark.
package loadbench
