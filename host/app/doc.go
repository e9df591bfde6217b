// Package app is the object publisher an app node (a client block of
// cluster.hcl) serves over HTTP, layer 8 of zhost beside host/balancer. It
// publishes the object tree of host/db as JSON: GET, PUT and DELETE of
// objects by path, atomic multi-object transactions at POST /_tx, the
// browser's session (host/session) at /_session, and the node's state at
// /_status and /healthz. docs/http-api.md is the reference of the HTTP API.
//
// Usage (the host builds the DB over its host/client connection):
//
//	a, err := app.New(app.Options{
//		Node:           "app1",
//		DB:             d,                          // *db.DB
//		PublicURL:      "http://127.0.0.1:8080",    // the balancer's public_url
//		TrustedProxies: []string{"127.0.0.1"},      // the balancer's address
//		Sessions:       sessions,                   // *session.Manager, or nil
//		WaitForTid:     cl.WaitForTid,              // read-your-writes
//		Status:         app.ClientStatus(cl),       // server and cache in /_status
//		Logger:         log,
//	})
//	if err != nil { ... }                          // New only validates
//	srv := &http.Server{Addr: "127.0.0.1:8081", Handler: a}
//
// Design points:
//
//   - Every response carries X-Zhost-Node with the node's name.
//   - Absolute URLs (the url fields, Location) start with what trusted
//     Forwarded / X-Forwarded-* headers say the browser used, else with
//     PublicURL; a node never hands out its own address.
//   - Read-your-writes: a write's response carries its tid in the
//     X-Zhost-Tid header and the _zhost_tid cookie; a request carrying
//     either is served only once this node has applied that tid (the wait
//     is bounded by TidWait, then 503). Only writes to the main partition
//     produce a tid: other partitions (sessions) have tids of their own.
//   - Documents have an ETag from their serial; If-Match on PUT, DELETE
//     and in /_tx ops is checked inside the transaction, which Update
//     retries on conflicts, so a stale precondition is always 412.
//   - Reads run in db.View (one consistent snapshot); writes in
//     db.Update, which retries conflicts and merges counters.
//
// An App is safe for concurrent use.
package app
