// Package client is the client side of the zhost storage protocol, layer 5
// of zhost: a Client is one partition of a server (host/server) seen as a
// storage.Storage, with a RAM cache bounded in bytes that the server's
// invalidations keep coherent. Application nodes use it under host/db.
//
// Opening one partition on its own connection:
//
//	c, err := client.Open(ctx, client.Options{
//		Addr: "127.0.0.1:9100", Partition: "main", Name: "app1",
//		CacheSize: 256 << 20,
//	})
//	if err != nil { ... }
//	defer c.Close()
//	snap, _ := c.LastTid(ctx)
//	rec, end, err := c.LoadBefore(ctx, storage.RootOid, snap+1)
//
// Several partitions over one connection:
//
//	conn, err := client.Dial(ctx, client.ConnOptions{Addr: addr, Name: "app1"})
//	main, err := conn.Open(ctx, "main", client.PartitionOptions{})
//	sessions, err := conn.Open(ctx, "sessiondata", client.PartitionOptions{})
//
// Consistency. The server pushes the oids of every committed transaction
// on the same ordered stream as its replies; the client applies them in
// that order, one frame at a time, before it hands over any later reply.
// (Which goroutine reads does not matter: a caller waiting for its own
// reply reads the connection itself when no one else is, see reader.go.)
// LastTid is the last tid whose invalidations were applied, so a
// transaction that reads with LoadBefore(oid, LastTid()+1) sees a
// consistent snapshot, and the cache keeps each revision with its validity
// range so such reads are served locally. A load whose reply may predate an
// invalidation that overtook it is cached as ending at that invalidation,
// never as current (the load/invalidation race of ZEO's history). On a
// partition without history the cache keeps current revisions only, so it
// never answers a LoadBefore the backend would refuse.
//
// Commits. Begin and Store are local; Vote sends the whole transaction in
// one message, Finish a second: two round trips per commit. Finish's reply
// doubles as the invalidation of the client's own transaction.
//
// Watch subscribes to invalidations (for an object cache above);
// WaitForTid gives read-your-writes across nodes; Stats and State feed
// status pages.
//
// Disconnection. When the connection breaks the client reconnects with
// capped, jittered backoff and reopens its partitions, telling the server
// its LastTid: the server answers with what changed since (from its
// invalidation log) or, past the log's horizon, with "drop your cache"
// (logged, and Watch callbacks get oids == nil). Until connected, calls
// that need the server fail with ErrDisconnected after WaitTimeout; reads
// the cache can answer still succeed. A transaction cut off by a
// disconnect fails; if that happened during Finish its outcome is unknown
// and the error says so. A call whose context has no deadline is bounded
// by CallTimeout, so a server that stops answering without closing the
// connection cannot hang it either.
package client
