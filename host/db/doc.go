// Package db is the object layer of zhost (layer 6, above host/client and
// host/storage, below host/session and host/app): application code opens a
// database, runs transactions, walks a tree of folders by path, reads and
// changes objects and commits; it never sees records. Mount points make
// folders of other partitions (the sessions partition at /session_data)
// appear in the main tree without the caller noticing.
//
// # Using it
//
//	d, err := db.Open(ctx, st, db.Options{Logger: log}) // st: a host/client connection, or any storage.Storage
//	if err != nil { ... }
//	defer d.Close()
//
//	// Update runs the function in a transaction and commits it, running it
//	// again (with backoff) when it conflicts with a concurrent commit.
//	tid, err := d.Update(ctx, func(tx *db.Tx) error {
//		pages, err := tx.MkdirAll(ctx, "/site/pages")
//		if err != nil {
//			return err
//		}
//		if err := pages.Put(ctx, "home", db.NewDocument(map[string]any{"title": "Home"})); err != nil {
//			return err
//		}
//		hits, err := tx.Counter(ctx, "/site/hits")
//		if errors.Is(err, db.ErrNotFound) {
//			return tx.Put(ctx, "/site/hits", db.NewCounter(1))
//		} else if err != nil {
//			return err
//		}
//		hits.Add(1) // concurrent increments merge
//		return nil
//	})
//
//	err = d.View(ctx, func(tx *db.Tx) error { // read-only, one snapshot
//		doc, err := tx.Document(ctx, "/site/pages/home")
//		if err != nil {
//			return err
//		}
//		fmt.Println(doc.Data["title"])
//		return nil
//	})
//
// # Transactions and snapshots
//
// A transaction reads the main partition as of LastTid when it began (each
// mounted partition as of its first use in the transaction), through
// LoadBefore, so it sees one consistent state however long it runs. Objects
// it returns are private copies: change them in place (Document.Data,
// Counter.Add, Folder.Put/Delete, fields of a registered type); at commit
// every loaded object is encoded again and written only if its bytes
// changed. A transaction that changed nothing writes nothing. A partition
// without history (packless) cannot serve an old snapshot once an object
// is overwritten; such a read fails with ErrReadConflict, which Update and
// View retry like a write conflict.
//
// Nodes see each other's commits when the invalidations reach them: a
// transaction begun on node B right after node A committed may not see
// A's commit yet. Where that matters (read-your-writes across nodes),
// call WaitForTid on B with the tid A's Update returned (the main
// partition's tid; when only a mounted partition changed, that
// partition's) before beginning.
//
// Decoded objects are cached per DB (Options.CacheBytes), keyed by
// partition, oid and serial, on top of the client's record cache; a
// storage that offers invalidations (Watch) frees stale entries early.
//
// # Object types and records
//
// Built in: *Folder (named children sorted by name), *Document (a
// JSON-like map), *Counter (an int64 whose increments merge). Other
// packages add types with RegisterType (host/session registers its
// session type this way); a type is a pointer to a struct embedding
// Persistent, encoded with CBOR:
//
//	type Session struct {
//		db.Persistent
//		ID       string         `cbor:"id"`
//		Data     map[string]any `cbor:"data"`
//		Created  int64          `cbor:"created"`
//		Accessed int64          `cbor:"accessed"`
//	}
//	func (*Session) TypeName() string { return "session" }
//	func init() { db.MustRegisterType("session", func() db.Object { return new(Session) }) }
//
// A record is a CBOR array [type name, body]: any node decodes any object
// as long as the type is registered there. Only folders reference other
// objects; their records list the child (or bucket) oids in Record.Refs,
// which pack and the packless collector follow from the root. Deleting a
// child only unlinks it; the collector reclaims it.
//
// Folders keep up to MaxInlineChildren children in their own record and
// then move them into bucket records of up to MaxBucketChildren children
// each (a one-level B-tree), so adding a child to a large folder rewrites
// one small bucket, and adds to different buckets do not even conflict.
// The folder record keeps one (first name, oid) pair per bucket, so a
// folder of a million children has a record of roughly 100 KiB that is
// rewritten only when a bucket splits; that is the practical limit on a
// folder's size.
//
// # Conflicts and merging
//
// Commit stores every changed object against the serial it was loaded at;
// a concurrent commit that changed one of them makes the vote fail. For
// each conflicting object whose type implements Merger the DB loads the
// committed state and merges (old, committed, mine), as ZODB's conflict
// resolution does, then votes again:
//
//   - Folder: children added, removed or replaced under different names
//     merge; the same name changed differently by both conflicts; a bucket
//     split or the switch to buckets conflicts with any concurrent change
//     of the same record.
//   - Counter: the result is committed + (mine - old): increments add up.
//   - Document: never merges (the later transaction runs again, so the
//     result is always that of one serial order). MergeMaps offers key-wise
//     merging to types that want it.
//   - Registered types: as their Merge method says; without one, conflict.
//
// Any remaining conflict aborts the transaction; Update runs the function
// again on a fresh snapshot, up to Options.MaxAttempts times.
//
// # Mounts
//
// Options.Mounts lists mount points; Options.OpenPartition connects to
// partitions. At Open (and, after a failure, in the background with
// capped backoff) the DB calls each mount's Resolve, connects to the
// target partition, creates its root and the target folder if missing,
// and from then on paths under the mount point walk that folder. The
// parent of a mounted folder is the main-tree folder above the mount point
// and listing that folder shows the mount point's name. A path under a
// mount that is not ready answers a *MountError (matching
// ErrMountUnavailable) naming the mount; the rest of the tree keeps
// working. Mounts reports each mount's state for status pages. A mount
// that was ready and whose partition later fails (a lost connection) stays
// ready; its errors are wrapped in a *MountError naming it, and the
// client reconnects underneath.
//
// A transaction may change objects in several partitions; Commit then runs
// two-phase commit across them: every partition votes (main first, then
// by server and name, so concurrent committers cannot deadlock), then
// every one finishes; if any vote fails all abort. Only a disk failure
// between one partition's finish and another's (after both voted) can
// leave one committed without the other; the error says so.
//
// # Concurrency
//
// A DB is safe for concurrent use; a Tx and the objects it returns belong
// to one goroutine at a time and die with the transaction.
package db
