// Package packless is the packless storage backend, part of layer 3 of
// zhost (plugins/): the current revision of every object in a LevelDB store
// (goleveldb), overwritten in place, for data that churns and needs no
// history, such as sessions. It descends from the Berkeley "Packless"
// storage of the original recipe.
//
// What it keeps: one record per live object, a reference count per
// referenced object, an index by serial (so Iterate can copy the store),
// and the newest tid and the oid high-water mark (so tids never go back
// and oids are never reused across a restart, even if the clock does).
// Capabilities are {History: false, Undo: false, Pack: false}: History,
// UndoLog, Undo and Pack return storage.ErrNotSupported; LoadBefore works
// only while the current revision is older than the given tid.
//
// Garbage is collected continuously: each commit adjusts the reference
// counts of what its records start and stop referencing, and deletes, in
// the same atomic LevelDB batch, every object whose count drops to zero
// (and, transitively, what only it referenced). So unlinking a session
// frees its space as LevelDB compacts. Reference counting cannot see
// cycles; Collect runs a full mark-and-sweep from the root that frees them
// and rebuilds the counts and the index. Open runs it after a recovery.
// A transaction implements storage.CollectingTxn: after Finish,
// Collected names the oids its commit deleted, so whoever caches records
// (host/server, and through it every client) drops them with the stored
// ones. Collect itself reports nothing to caches: run it with no server
// serving the store (Open does), or accept that an unreachable cycle may
// stay cached until evicted (no path from the root reaches it).
//
// Commits: Vote takes the commit lock (storage.CommitLock, ctx-bounded),
// checks every serial, and prepares one leveldb.Batch; Finish writes it,
// fsynced unless Options.NoSync. A crash therefore loses whole
// transactions, never part of one.
//
// Opening: a store held by another process (or another open Storage)
// fails with ErrLocked. A torn journal tail is dropped by LevelDB and
// logged. A store LevelDB reports corrupt (a damaged MANIFEST, or a table
// found damaged by Options.Verify) is recovered with LevelDB's recovery
// (leveldb.Recover, what leveldb.RecoverFile runs), a copy of a damaged
// table kept as NAME.corrupt, every step logged through the hclog logger.
//
// Usage:
//
//	st, err := packless.Open("var/sessions", packless.Options{Logger: log})
//	if err != nil { ... }
//	defer st.Close()
//
// or, from a decoded `storage "sessions" { type = "packless" ... }` block,
// packless.FromConfig(values, log); Schema declares that block's
// attributes (path, sync, cache_size, bloom_bits, write_buffer,
// read_only).
//
// LevelDB settings are deliberate: a bloom filter (10 bits per key) so
// loads of absent oids rarely touch disk, an 8 MiB block cache, a 4 MiB
// write buffer, and level-0 compaction after every memtable flush (under
// churn a flushed memtable is mostly superseded versions). Disk use is
// about live data plus up to two write buffers (the journal and the
// newest flushed table): for a small session store (BenchmarkChurn: 3 MiB
// live) write_buffer = "1MiB" keeps it under 3x even at its peaks.
package packless
