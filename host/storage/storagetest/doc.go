// Package storagetest is the conformance suite every zhost storage backend
// passes, part of layer 2 of zhost (host/storage). Built-in backends,
// external plugins (through the plugin client) and the network client run
// the same subtests, so "implements storage.Storage" means the same thing
// everywhere.
//
// A backend's test hands Run a Factory that opens the backend on a
// directory:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, storagetest.Factory{
//			Open: func(t testing.TB, dir string) (storage.Storage, error) {
//				return packless.Open(dir, packless.Options{})
//			},
//			Persistent: true,
//			// Damage the tail of the newest journal, as a kill -9 would.
//			Crash: func(dir string, mode storagetest.CrashMode) error { ... },
//			CollectsGarbage: true,
//		})
//	}
//
// A crash subtest commits transactions that each change the root, one
// shared object and one new object, closes the storage, calls Crash, and
// reopens: what it finds must be exactly a prefix of the committed
// transactions (no torn transaction, no gap), and the store must take and
// keep new commits.
//
// The subtests cover load and store, conflicts (every conflicting oid
// reported at once), LoadBefore and MVCC reads during concurrent commits,
// new oid uniqueness under concurrency and across restarts, abort leaving
// no trace, durability across close and reopen, history, undo and pack
// where Capabilities says so (and storage.ErrNotSupported where not),
// iteration, records of 16 MiB, many small transactions, concurrent readers
// and a committer during pack, crash recovery (through Factory.Crash), the
// commit lock's ctx-bounded wait, increasing tids across reopen, odd input,
// calls after Close, and continuous garbage collection for backends that
// declare it. Every subtest keeps the objects it stores reachable from the
// root unless it tests collection, so backends that collect garbage
// continuously run them unchanged.
//
// testing.Short() shrinks the heavy subtests. Commit is exported for other
// packages' tests that need a one-call commit.
package storagetest
