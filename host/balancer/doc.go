// Package balancer is the HTTP front end of a zhost cluster, layer 8 beside
// host/app: the only public address. It forwards each request to one
// healthy app node with httputil.ReverseProxy (Rewrite), so that any node
// may serve any browser.
//
// Usage (the host maps the config's balancer block onto Options):
//
//	bl, err := balancer.New(balancer.Options{
//		Name:      "front",
//		Listen:    "127.0.0.1:8080",
//		PublicURL: "http://127.0.0.1:8080",
//		Backends: []balancer.Backend{
//			{Name: "app1", URL: "http://127.0.0.1:8081"},
//			{Name: "app2", URL: "http://127.0.0.1:8082"},
//		},
//		Policy:         balancer.PolicyLeastConn,
//		TrustedProxies: []string{"10.0.0.0/8"},
//		Logger:         logger,
//	})
//	if err != nil { ... }            // New only validates: no side effects
//	if err := bl.Start(ctx); err != nil { ... }
//	...
//	err = bl.Shutdown(drainCtx)      // stop accepting, finish in-flight
//
// Behaviour:
//
//   - Policies: round_robin cycles through the up backends; least_conn
//     picks the one with the fewest requests in flight.
//   - Active health checks GET HealthCheck.Path on every backend each
//     Interval; a 2xx answer within Timeout is a success. Fall
//     consecutive failures take a backend down, Rise consecutive
//     successes bring it back. Backends start up, and the first check
//     runs at once.
//   - Passive checks: a connection error (refused, reset, timeout before
//     the response headers) takes the backend down at once.
//   - Retries: a request that never reached its node (dial error) is tried
//     on another node whatever its method; a GET, HEAD, OPTIONS, TRACE, PUT
//     or DELETE whose node failed before answering is tried on another
//     node too (a POST never is, Idempotency-Key or not: no node
//     deduplicates by that key, so a POST /_tx "incr" would count twice). Each backend is
//     tried at most once per request. To make retries possible, request
//     bodies up to MaxRetryBody (64 KiB) are buffered before a node is
//     chosen; larger bodies stream and are never retried. Once a node has
//     sent its response headers nothing is retried: a failure in the body
//     aborts the client's connection. A retried PUT or DELETE may run twice
//     on the database, which their idempotent semantics allow (a retried
//     PUT with If-Match may then answer 412).
//   - Limits: MaxConnsPerBackend caps the requests in flight to one node;
//     further requests wait in a queue of at most MaxQueue for up to
//     QueueTimeout, then get 503 with Retry-After. With no backend up the
//     answer is 503 at once; when every attempt failed, 502.
//   - Forwarding headers: the balancer sets Forwarded (RFC 7239: for, host,
//     proto) and X-Forwarded-For, -Host and -Proto. From a client in
//     TrustedProxies it appends to the client's Forwarded and
//     X-Forwarded-For and keeps its X-Forwarded-Host and -Proto; from
//     anyone else it first strips every forwarding header
//     (forwarded.ProxyHeaders). The Host header is passed through.
//   - Access log: one Info line per request on AccessLogger (default the
//     "access" sub-logger): method, uri, host, status, bytes, duration,
//     backend, attempts, client; status 499 means the client left before
//     an answer.
//
// All methods of Balancer are safe for concurrent use.
package balancer
