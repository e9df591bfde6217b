// Package server is the zhost storage server, layer 4 of zhost: one
// listen address serves every partition (a storage.Storage under a name)
// to many clients (host/client) over the protocol of host/wire
// (docs/protocol.md).
//
// What it does for each partition:
//
//   - Commits are serialized by a commit lock taken at Vote and held until
//     the client's Finish arrives; it is then released before the
//     backend's Finish (whose own commit lock, held since its Vote, keeps
//     the order), so the next transaction votes while this one writes and
//     fsyncs. A ticket taken under the lock publishes transactions in tid
//     order, so every client sees them in that order. The committed oids go to every other
//     client of the partition as an Invalidate push on the same ordered
//     stream as the replies; the committer gets its Finish reply there
//     instead. Oids the backend collected in the commit (a
//     storage.CollectingTxn, packless) leave the cache and are
//     invalidated with the stored ones; the committer's reply is then
//     Committed, naming them, instead of Tid.
//   - A client that disconnects, or exceeds TransactionTimeout, while
//     holding the commit lock is aborted and the lock released (logged).
//   - An invalidation log, tid-indexed and bounded (InvalidationLogSize
//     transactions), kept in DataDir across restarts, lets a reconnecting
//     client catch up from its last tid; past the log's horizon the
//     client is told to drop its cache (logged).
//   - Because the server is the only writer of its backends it caches
//     current records (CacheSize bytes per partition), so the backend
//     (often a plugin subprocess) is asked only on misses and commits.
//   - Read-only partitions refuse every write with storage.ErrReadOnly.
//
// Memory per connection is bounded: at most 128 requests run at once,
// and the request frames larger than 64 KiB being handled hold at most
// MaxInFlightBytes (default twice MaxMessageSize); past that the server
// stops reading from the connection until replies free room, so a client
// that pipelines many large requests slows itself down instead of
// growing the server's heap. Replies queued for a client are bounded by
// MaxQueuedBytes.
//
// Bad input never disturbs other clients: a malformed body or unknown
// partition gets an Error reply; an oversized or unparseable frame, a bad
// Hello or random bytes get an Error and a closed connection; a client
// that stalls in the middle of a frame is disconnected after FrameTimeout.
//
// Usage:
//
//	srv, err := server.New(server.Options{
//		Listen:     "127.0.0.1:9100",
//		Partitions: map[string]server.Partition{"main": {Storage: st}},
//		DataDir:    "var/server",
//		Logger:     logger,
//	})
//	if err != nil { ... }
//	if err := srv.Start(ctx); err != nil { ... }
//	defer srv.Shutdown(ctx) // stop accepting, drain commits, close
//
// The pid file and the event log of the server block are the host's
// (package host); the server only logs through Options.Logger.
package server
