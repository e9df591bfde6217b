// Package storage is the contract every zhost storage backend implements,
// layer 2 of zhost (see docs/architecture.md): the built-in filestorage and
// packless backends, external backends written against plugins/sdk, and the
// network client in host/client all satisfy Storage, and all pass the
// conformance suite in host/storage/storagetest.
//
// The vocabulary is the project's: a record is the bytes of one object
// revision plus the oids it references; an oid names an object; a tid names
// a transaction and is derived from the wall clock; a serial is the tid that
// wrote the revision a reader holds.
//
// A write is a two-phase commit:
//
//	txn, err := st.Begin(ctx, storage.TxMeta{User: "admin", Description: "add page"})
//	if err != nil { ... }
//	defer txn.Abort(ctx) // no-op after Finish
//	oids, _ := st.NewOids(ctx, 1)
//	_ = txn.Store(ctx, storage.Record{Oid: oids[0], Data: data})
//	if err := txn.Vote(ctx); err != nil { ... } // *ConflictError lists every oid
//	tid, err := txn.Finish(ctx)
//
// Errors are the sentinels of this package (ErrNotFound, ErrConflict, ...),
// wrapped with context; test them with errors.Is.
package storage
