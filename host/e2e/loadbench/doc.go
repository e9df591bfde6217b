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
// Each sub-benchmark (get-cached, session-read and session-write, each
// /direct then /balancer) reports req/s, p50-ns and p99-ns; the /balancer
// one also reports x-direct, its time per request divided by that of the
// /direct run just before it. ns/op is wall time per request with all
// connections busy, not the latency of one request.
package loadbench
