// Package memstorage is an in-memory storage.Storage for tests, part of
// layer 2 of zhost (host/storage). It keeps full history, supports undo,
// pack (with garbage collection from the root following each record's
// references) and iteration, and takes the commit lock at Vote with
// ctx-bounded waiting, exactly as the contract says. Nothing is written to
// disk: closing it loses everything, so it never stands in for a real
// backend outside tests.
//
// It passes the conformance suite in host/storage/storagetest, which makes
// it a faithful stand-in when testing the server, the client and the object
// layer:
//
//	st := memstorage.New(memstorage.Options{
//		OnCommit: func(info storage.TxInfo) { invalidate(info.Oids) },
//	})
//	defer st.Close()
//	txn, _ := st.Begin(ctx, storage.TxMeta{User: "test"})
//	_ = txn.Store(ctx, storage.Record{Oid: storage.RootOid, Data: []byte("root")})
//	_ = txn.Vote(ctx)
//	tid, _ := txn.Finish(ctx)
//
// Options.OnCommit is a commit hook: it is called once per committed
// transaction (Finish and Undo), in tid order, while the commit lock is
// held. Options.Now replaces the clock tids are derived from.
package memstorage
