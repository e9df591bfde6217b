// Package filestorage is the zhost storage backend that keeps every
// revision in one append-only file, the original recipe's Data.fs. It sits
// in layer 3 of zhost (plugins/): it implements the storage.Storage
// contract of host/storage with history, undo and pack, and passes the
// whole host/storage/storagetest conformance suite. The host runs it as
// the built-in "filestorage" storage type; its cluster.hcl block is
// described by Schema and opened by FromConfig:
//
//	storage "main" {
//	  type     = "filestorage"
//	  path     = "var/Data.fs"
//	  sync     = "group"   # "group" (default), "always" or "none"
//	  keep_old = true      # keep Data.fs.old after pack
//	}
//
// In Go:
//
//	st, err := filestorage.Open("var/Data.fs", filestorage.Options{Logger: log})
//	if err != nil { ... }          // errors.Is(err, filestorage.ErrLocked): open elsewhere
//	defer st.Close()
//	txn, _ := st.Begin(ctx, storage.TxMeta{User: "admin"})
//	_ = txn.Store(ctx, storage.Record{Oid: storage.RootOid, Data: b})
//	if err := txn.Vote(ctx); err != nil { ... }
//	tid, err := txn.Finish(ctx)    // durable and visible when it returns
//
// # Files
//
// Beside Data.fs live Data.fs.index (the saved index), Data.fs.lock (the
// flock that keeps a second writer out; read-only opens share it),
// Data.fs.trN (torn tails cut off at open, kept for inspection),
// Data.fs.pack (a pack in progress) and Data.fs.old (the file before the
// last pack, with keep_old).
//
// # Format
//
// All integers are big-endian. The file starts with a 24-byte header:
// "ZHFS", format version (u32, 1), and a random 16-byte file id that a
// pack renews (an index names the file id it describes). Transactions
// follow, each:
//
//	tid u64 | length u64 | status u8 | 3 reserved | nrec u32 |
//	ulen u32 | dlen u32 | elen u32 | user | description | extension |
//	nrec data records | crc32c u32 | length u64
//
// length counts the whole transaction, header to trailer. The trailing
// copy of it lets readers walk the file backwards (undo log, iteration
// from a recent tid) and, with the CRC-32C over everything but the status
// byte and the trailer, detects a torn tail. status is 'c' while a
// transaction is voted but not finished, ' ' once finished (flipped in
// place at Finish, before the fsync) and 'p' for transactions older than
// the last pack time, which stay for history but can no longer be undone.
// The data ends at the end of the file or at the first transaction
// position whose header is all zero bytes (or where fewer than a header's
// bytes remain and they are all zero), whichever comes first: no
// transaction has tid 0. With sync "always" or "group" the writer keeps
// the file longer than its data, the space after the newest transaction
// allocated and reading as zeros (fallocate, or written zeros where the
// file system cannot), so a commit overwrites allocated space instead of
// growing the file and its fdatasync has no new file size to journal
// (measured on ext4: a third of a small commit's fsync). The space is
// extended by 1-16 MiB (an eighth of the file) by the commit that would
// run past it, so that one commit pays for the new size; Close cuts the
// zeros off, so a cleanly closed file holds exactly its data, as do
// Data.fs.old and every file this package wrote before it preallocated.
// Everything after the end of the data is zeros while a writer runs.
//
// The extension map is count u32, then per key klen u32, key, vlen u32,
// value (the caller's keys in sorted order). Every transaction written
// since the format gained it starts its map with the durable end: key
// "\x00zhost.durable", an 8-byte u64 value, the position up to which
// the file was known to be on stable storage when the transaction was
// written (the end of the data covered by the last completed fsync, or
// found by the open or made by the pack before it). It is format, not
// metadata: readers take it out of the map callers see, and Begin
// refuses the key. Durable ends never decrease along a file, and a
// durable end beyond a position proves that position was durable
// before the transaction was written. Transactions written earlier
// carry no durable end. Each data record is:
//
//	oid u64 | tid u64 | prev u64 | txnpos u64 | back u64 |
//	nrefs u32 | dlen u32 | kind u8 | nrefs x oid u64 | dlen bytes
//
// prev is the offset of the object's previous revision (0: none), which is
// how History and LoadBefore walk back in time; txnpos is the offset of the
// record's transaction, for its metadata. kind 0 carries refs and data;
// kind 1 (written by Undo) carries nothing and takes refs and data from
// the record at back, so undo restores an old revision without copying
// it; kind 2 says the object does not exist (Undo of its creation).
//
// # Opening and recovery
//
// Open takes the lock, then loads Data.fs.index (oid -> offset and serial
// of the current revision, the oid counter, the file position and tid it
// covers). The index is trusted only if the file id matches and the
// transaction ending at the covered position verifies completely and
// carries the covered tid; then only the transactions after that position
// are read. Otherwise the whole file is scanned and the index rebuilt. The
// scan stops at the end of the data. If only zeros follow, they are
// preallocated space left by a crash: kept, nothing is lost. A
// transaction that does not verify, or one still marked 'c', ends the
// good part of the file: the rest (up to its last non-zero byte, or as
// far as the torn transaction's length says) is copied to Data.fs.trN,
// the file is truncated there, and both are logged; so is a zero header
// followed by non-zero bytes.
//
// If, after damage at position X, the data still ends with a transaction
// that verifies and committed, it is one of two things. A torn group
// commit: a power loss while transactions waited for a shared fsync
// ("group"; or with "none", which never fsyncs) left a later one whole
// on disk and an earlier one torn or missing (the operating system
// writes pages back in any order, and the space after the data is
// preallocated zeros). Or damage in the middle (bit rot, a bad sector)
// of data that may have been acknowledged. A torn write at X means no
// fsync covering X completed, so nothing after X was acknowledged either
// (Finish returns only after an fsync covering its transaction and all
// before it). The last transaction's durable end tells the two apart: if
// it is beyond X, X was durable before that transaction was written, the
// damage cannot be a torn write, and open refuses to cut (restore
// Data.fs or repair it); so it does if the last transaction records no
// durable end (written before the record existed). Otherwise every
// transaction after X was written before X was known durable, a power
// loss explains the damage, and open cuts at X as for a torn tail,
// saving everything from X to the last transaction as Data.fs.trN and
// logging a torn group commit. A transaction still marked 'c' at X
// (the status byte is outside the checksum) is judged the same way:
// only finished transactions become durable, so if the last durable
// end is beyond X it is damage and refused; otherwise its finishing
// write was lost with the power, and it is cut. With "always" every
// transaction is durable before the next is written, so any such
// damage is refused.
// A writable open fsyncs what it found before its first commit records
// it as durable; a pack records each copied transaction's own position,
// as the packed file replaces Data.fs only once it is fsynced whole.
// A durable end only ever counts finished transactions, never one that
// Abort later zeroes or cuts.
//
// A read-only open changes nothing: it reads up to the end of the data
// and ignores what follows (it refuses damage in the middle like a
// writable open). The index is saved on Close, after pack, and in the
// background every Options.IndexInterval bytes, and only ever covers
// durable data (with "none" the save fsyncs the data file first), so a
// power loss cannot leave it trusted over a torn transaction.
//
// # Commit
//
// Vote takes the commit lock (waiting until its context ends), checks
// every stored serial against the newest written one, and writes the
// whole transaction with status 'c' in one write, recording the durable
// end as the last completed fsync left it (34 bytes, no fsync of its
// own; the fsync leader raises it once its fsync returns). Finish flips
// the status, then per Options.Sync: "always" fsyncs and publishes under
// the commit lock; "group" (the default) releases the lock first and joins a
// shared fsync (one leader syncs for every transaction written meanwhile
// and publishes them in commit order), so concurrent committers share
// fsyncs and each Finish still returns only once its transaction is
// durable and visible. A lone committer's leader syncs at once; with
// others between Vote and Finish it waits for them up to half an fsync.
// "none" publishes without fsync. Abort after Vote overwrites the
// transaction with zeros (truncates it away if over 1 MiB or if nothing
// is preallocated).
//
// # Pack
//
// Pack(tid) keeps, for every object reachable from the root at tid or
// from anything written since, the revision current at tid, and every
// revision written at or after tid. It scans and copies to Data.fs.pack
// without any lock, takes the commit lock only to copy what was committed
// meanwhile and rename the new file over Data.fs, so loads never stop and
// commits stop only for that last step. The packed file is preallocated
// like the one it replaces (in the same fsync); Data.fs.old is cut to its
// data. If the directory fsync after the rename fails, the rename may not
// survive a power loss, and commits to the packed file with it: the
// storage then refuses commits until it is reopened (a writable open
// fsyncs the directory).
//
// # Caveats
//
// The index lives in memory (an oid, an offset and a serial per object,
// some 50 bytes with Go's map overhead). Recovery cannot tell damage
// from a torn write where both are possible: bit rot in transactions
// that became durable after the last one on disk was written, or damage
// in the middle together with a torn last transaction, is cut like a
// torn tail (and saved in Data.fs.trN). A file written before
// transactions recorded their durable end, if a power loss tore a group
// commit in it, is refused as damage in the middle until its tail is
// moved aside by hand (none of it was acknowledged). One process writes
// a file at a time; read-only opens see the file as of their open.
package filestorage
