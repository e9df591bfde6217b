// Package session keeps per-browser state in the object database so any
// app node can serve any request: layer 7 of zhost, above host/db (which
// it uses for storage, mounts and conflict resolution) and below host/app
// (the built-in app) and users' own Go programs, which use its net/http
// middleware.
//
// It is Zope's Products.Sessions and Products.Transience rebuilt without
// their known problems: browser ids are 192 random bits (not 27), reading
// a session is not a write, there are no shared bucket objects that every
// request rewrites, and the cookie is Secure behind a TLS balancer.
//
// # Using it
//
//	m, err := session.New(ctx, database, session.Options{
//		Container: "/session_data/sessions", // under the packless mount
//		Timeout:   20 * time.Minute,
//		PublicURL: "https://shop.example",   // https: Secure cookies
//		Logger:    log,
//	})
//	if err != nil { ... }
//	defer m.Close(ctx)
//	http.ListenAndServe(addr, m.Middleware(mux))
//
//	// in a handler:
//	s := session.FromRequest(r)
//	n, _, err := s.Get(r.Context(), "visits") // int64 or nil
//	...
//	if err := s.Set(r.Context(), "visits", count+1); err != nil {
//		session.WriteError(w, err) // 503 when the limit is reached
//		return
//	}
//
// # Pieces
//
// BrowserIDs is the cookie: NewID draws 24 bytes from crypto/rand
// (IDLength base64url characters); the cookie is HttpOnly, SameSite Lax by
// default, and Secure whenever the browser uses https: the PublicURL is
// https, the request came over TLS, or a trusted proxy (TrustedProxies)
// says so in Forwarded or X-Forwarded-Proto. Every response that sets it
// carries Vary: Cookie and Cache-Control: no-store. A malformed, unknown
// or expired id is never an error: the request simply has no session,
// and its first Set starts a new one with a new id.
//
// The transient container is a folder at Options.Container, created on
// first use (with its parents; under /session_data it lands in the
// packless partition through the mount). Inside it: "items", one Record
// object per session named by Key(id), a SHA-256 prefix of the id, so
// the stored tree holds no credential; "count", the number of sessions
// (a Count) for the limit; and "sweep_lease", the sweeper's lease
// document.
//
// Handle is the session data manager for one request (FromRequest). It is
// lazy: a request that never asks costs no storage access at all. The
// first call loads the session in the request's transaction; changes
// stay in the handle and are written when the request ends (or at
// Handle.Commit) in that transaction, only if something changed.
//
// The middleware holds the response back (up to MaxBuffered bytes) until
// that commit is done, so a browser never gets an answer whose session
// change was not stored: on failure the held answer is replaced by
// WriteError's (409 for a conflict, 503 for ErrFull). It also means a
// handler may create the session after it started writing its body. A
// handler that flushes or streams more than MaxBuffered sends early.
//
// Read-your-writes across nodes: after a commit that changed the data,
// the response carries a second cookie (BrowserIDs.VersionCookieName)
// with the session's new Version. A node that serves the browser's next
// request and does not see that version yet (its client has not applied
// the invalidation) waits for it, up to StaleWait, before answering.
//
// # Timeouts, refresh, limit
//
// A session expires Timeout after its last access, or Lifetime after its
// creation if Lifetime is set. The last access is written at most once
// per Refresh (default 30s), so a read-only request writes nothing; the
// idle timeout is exact to within Refresh. Expired sessions are invisible
// at once; the sweeper removes them Refresh (at least 5s) later.
//
// With Limit set, a request that would create session number Limit+1
// gets ErrFull (from Set, or from the commit when another node took the
// last place meanwhile) and the middleware answers 503 with Retry-After;
// existing sessions keep working, and new ones are accepted again as soon
// as expired ones are swept or sessions are invalidated. The limit is
// exact: the count object (Count) merges concurrent changes only while
// the result stays within the limit, so two nodes cannot both take the
// last place.
//
// # Concurrent requests of one browser
//
// Two tabs or parallel XHRs save the same Record concurrently. Record
// merges at key level (db.Merger): each request's changes (keys set,
// changed or deleted compared with what it read) are applied over what
// the other committed, so changes to different keys both survive, and for
// the same key the request that commits last wins. The last access is the
// later of the two. What merging cannot resolve (a folder bucket split
// during a creation, a read conflict) is redone from the handle's
// recorded changes in a fresh transaction, unless the handler used
// Handle.Tx for its own objects. A deletion (invalidation, renewal,
// sweep) writes the record too, so it conflicts with a concurrent save
// rather than merging past it: changes made by a request that ran
// concurrently with a renewal or invalidation, under the old id, are
// dropped.
//
// # Renewal, invalidation, events
//
// Handle.Renew moves the data to a new id (call it after login) and
// deletes the old record; Handle.Invalidate deletes the session and
// expires the cookie. Every add and delete is an Event, delivered to
// Options.OnEvent (a Go callback, with the id) and, as JSON without the
// id, POSTed to NotifyURL / NotifyAddURL / NotifyDeleteURL from a bounded
// queue by one goroutine with a few retries (best effort: a dead endpoint
// never slows requests; drops are counted in Stats).
//
// # Sweeping
//
// Every SweepInterval (with jitter) each node tries to take the sweep
// lease; the holder walks the container in batches and removes expired
// sessions, each batch in one transaction that re-checks every session.
// The lease makes one node do the work; correctness does not depend on
// it, since concurrent deletions of one session conflict and the loser
// re-checks. Removed records are unreachable, so the packless collector
// frees their space.
package session
