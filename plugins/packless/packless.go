package packless

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/syndtr/goleveldb/leveldb"
	lerrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	lstorage "github.com/syndtr/goleveldb/leveldb/storage"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/zhostdb/zhost/host/storage"
)

// ErrLocked: another process (or another open Storage in this process)
// holds the store's lock.
var ErrLocked = errors.New("packless store is locked by another process")

// oidReserve is how many oids NewOids persists ahead in one write, so that
// allocating oids costs a LevelDB write only once in a while.
const oidReserve = 4096

// Storage is the packless backend: the current revision of every object
// in a LevelDB store, overwritten in place, with unreachable objects
// collected at each commit by reference counting. Create it with Open or
// FromConfig. All methods are safe for concurrent use.
type Storage struct {
	path     string
	log      hclog.Logger
	db       *leveldb.DB
	stor     lstorage.Storage // leveldb.Open does not close it; Close does
	wo       *opt.WriteOptions
	readOnly bool
	now      func() time.Time

	lock     *storage.CommitLock
	closeCtx context.Context
	closeNow context.CancelFunc

	// lastTid is the newest committed tid; written only with the commit
	// lock held, read by anyone.
	lastTid atomic.Uint64
	// gcTid is the newest tid whose commit collected an object. It is
	// raised before the commit is written, so a LoadBefore that finds an
	// object missing knows whether it may have existed at its tid.
	gcTid atomic.Uint64

	oidMu   sync.Mutex
	nextOid storage.Oid
	oidMark storage.Oid // persisted: no oid at or above it was handed out

	mu       sync.Mutex
	closed   bool
	openTxns map[*txn]struct{}
}

// Open opens (creating if needed) the packless store in the directory
// path. A store LevelDB reports corrupt is recovered with LevelDB's table
// recovery (a copy of a damaged table kept as NAME.corrupt), repaired with
// Collect, and every step logged. A store another process holds returns
// ErrLocked. Close releases it.
func Open(path string, opts Options) (*Storage, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	lopts := levelOptions(opts)
	db, stor, recovered, err := openDB(path, lopts, opts.Verify, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Storage{
		path:     path,
		log:      log,
		db:       db,
		stor:     stor,
		wo:       &opt.WriteOptions{Sync: !opts.NoSync},
		readOnly: opts.ReadOnly,
		now:      time.Now,
		lock:     storage.NewCommitLock(),
		closeCtx: ctx,
		closeNow: cancel,
		openTxns: map[*txn]struct{}{},
	}
	if err := s.loadMeta(); err != nil {
		cancel()
		_ = db.Close()
		_ = stor.Close()
		return nil, fmt.Errorf("packless: open %s: %w", path, err)
	}
	if recovered {
		// Lost records leave counts and the serial index wrong, and
		// objects only a lost record referenced unreachable: repair.
		if _, err := s.Collect(context.Background()); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("packless: open %s: repair after recovery: %w", path, err)
		}
	}
	log.Info("opened packless store", "path", path, "last_tid", storage.Tid(s.lastTid.Load()),
		"next_oid", s.nextOid, "sync", !opts.NoSync, "read_only", opts.ReadOnly)
	return s, nil
}

func levelOptions(opts Options) *opt.Options {
	o := &opt.Options{
		ReadOnly:           opts.ReadOnly,
		BlockCacheCapacity: int(opts.CacheSize),
		WriteBuffer:        int(opts.WriteBuffer),
		// Merge each flushed memtable into level 1 at once instead of
		// letting four pile up in level 0: under churn those hold
		// mostly superseded versions, and BenchmarkChurn's peak disk
		// use drops from about 4x to under 3x of the live data (1 MiB
		// write buffer) for a small rise in compaction work.
		CompactionL0Trigger: 1,
	}
	switch {
	case opts.CacheSize == 0:
		o.BlockCacheCapacity = DefaultCacheSize
	case opts.CacheSize < 0:
		o.BlockCacheCapacity = -1
		o.BlockCacher = opt.NoCacher
	}
	if opts.WriteBuffer <= 0 {
		o.WriteBuffer = DefaultWriteBuffer
	}
	bits := opts.BloomBits
	if bits == 0 {
		bits = DefaultBloomBits
	}
	if bits > 0 {
		o.Filter = filter.NewBloomFilter(bits)
	}
	return o
}

// logStorage sends LevelDB's log lines to hclog instead of the LOG file
// goleveldb keeps in the store: the lines land where the operator reads
// the rest of the node's log, the ones about corruption and recovery as
// warnings, and the store's disk use stays its data (LOG and LOG.old
// would add up to 2 MiB, more than a small session store's live data).
type logStorage struct {
	lstorage.Storage
	log hclog.Logger
}

func (l logStorage) Log(str string) {
	switch {
	case strings.Contains(str, "drop"), strings.Contains(str, "corrupt"),
		strings.Contains(str, "unrecoverable"), strings.Contains(str, "table@recovery"),
		strings.Contains(str, "rebuilding"), strings.Contains(str, "error"):
		l.log.Warn(str)
	default:
		l.log.Debug(str)
	}
}

// openDB opens the LevelDB store, recovering it if it is corrupt. The
// caller closes the returned file storage after the DB.
func openDB(path string, o *opt.Options, verify bool, log hclog.Logger) (db *leveldb.DB, stor lstorage.Storage, recovered bool, err error) {
	stor, err = lstorage.OpenFile(path, o.ReadOnly)
	if err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EAGAIN) {
			return nil, nil, false, fmt.Errorf("packless: open %s: %w (%v)", path, ErrLocked, err)
		}
		return nil, nil, false, fmt.Errorf("packless: open %s: %w", path, err)
	}
	ls := logStorage{Storage: stor, log: log.Named("leveldb")}
	db, err = leveldb.Open(ls, o)
	if err == nil && verify {
		if err = verifyDB(db); err != nil {
			_ = db.Close()
		}
	}
	if err == nil {
		return db, stor, false, nil
	}
	if !lerrors.IsCorrupted(err) || o.ReadOnly {
		_ = stor.Close()
		return nil, nil, false, fmt.Errorf("packless: open %s: %w", path, err)
	}
	log.Warn("store is corrupt; recovering it from its tables", "path", path, "error", err)
	if name := corruptTable(path, err); name != "" {
		// Recovery salvages what it can of the table and then deletes
		// it; keep the damaged original for a post-mortem.
		if cerr := copyFile(name, name+".corrupt"); cerr != nil {
			log.Warn("could not keep a copy of the corrupt table", "file", name, "error", cerr)
		} else {
			log.Warn("kept a copy of the corrupt table", "file", name+".corrupt")
		}
	}
	db, err = recoverDB(path, ls, o, log)
	if err != nil {
		_ = stor.Close()
		return nil, nil, false, fmt.Errorf("packless: recover %s: %w", path, err)
	}
	log.Warn("store recovered; records in damaged blocks are lost", "path", path)
	return db, stor, true, nil
}

// recoverDB runs LevelDB's recovery (what leveldb.RecoverFile does, on our
// logging storage). Recovery stops at a table file it cannot open at all
// (a torn footer); such a file is renamed NAME.corrupt, logged, and
// recovery tried again, at most once per table file.
func recoverDB(path string, ls logStorage, o *opt.Options, log hclog.Logger) (*leveldb.DB, error) {
	tables, err := ls.List(lstorage.TypeTable)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for range len(tables) + 1 {
		db, err := leveldb.Recover(ls, o)
		if err == nil {
			if verr := verifyDB(db); verr != nil {
				_ = db.Close()
				return nil, fmt.Errorf("verify after recovery: %w", verr)
			}
			return db, nil
		}
		name := corruptTable(path, err)
		if name == "" {
			return nil, err
		}
		if rerr := os.Rename(name, name+".corrupt"); rerr != nil {
			return nil, fmt.Errorf("%w; moving the table aside: %w", err, rerr)
		}
		log.Warn("moved an unreadable table aside; its records are lost", "file", name+".corrupt", "error", err)
	}
	return nil, errors.New("recovery did not converge")
}

// corruptTable returns the path of the table file a corruption error
// names, or "" if it names none.
func corruptTable(dir string, err error) string {
	var ce *lerrors.ErrCorrupted
	var sce *lstorage.ErrCorrupted
	var fd lstorage.FileDesc
	switch {
	case errors.As(err, &ce):
		fd = ce.Fd
	case errors.As(err, &sce):
		fd = sce.Fd
	}
	if fd.Type != lstorage.TypeTable || fd.Zero() {
		return ""
	}
	return tableFileName(dir, fd)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// tableFileName finds the file of a table descriptor (goleveldb names
// tables NNNNNN.ldb, older stores NNNNNN.sst).
func tableFileName(dir string, fd lstorage.FileDesc) string {
	for _, ext := range []string{"ldb", "sst"} {
		p := filepath.Join(dir, fmt.Sprintf("%06d.%s", fd.Num, ext))
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// verifyDB reads every record once with checksums enforced.
func verifyDB(db *leveldb.DB) error {
	it := db.NewIterator(nil, &opt.ReadOptions{Strict: opt.StrictAll})
	defer it.Release()
	for it.Next() {
	}
	return it.Error()
}

// loadMeta reads the store-wide values, initializing a new store.
func (s *Storage) loadMeta() error {
	v, err := s.db.Get(metaVersion, nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		if s.readOnly {
			break // an empty store opened read-only stays empty
		}
		if err := s.db.Put(metaVersion, be64(formatVersion), &opt.WriteOptions{Sync: true}); err != nil {
			return fmt.Errorf("write format version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read format version: %w", err)
	default:
		ver, err := getUint64(v)
		if err != nil {
			return fmt.Errorf("read format version: %w", err)
		}
		if ver != formatVersion {
			return fmt.Errorf("format version %d, this zhost reads %d: %w", ver, formatVersion, storage.ErrNotSupported)
		}
	}
	for _, m := range []struct {
		key []byte
		set func(uint64)
	}{
		{metaLastTid, func(x uint64) { s.lastTid.Store(x) }},
		{metaGCTid, func(x uint64) { s.gcTid.Store(x) }},
		{metaOidMark, func(x uint64) { s.oidMark = storage.Oid(x) }},
	} {
		v, err := s.db.Get(m.key, nil)
		if errors.Is(err, leveldb.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %q: %w", m.key[1:], err)
		}
		x, err := getUint64(v)
		if err != nil {
			return fmt.Errorf("read %q: %w", m.key[1:], err)
		}
		m.set(x)
	}
	// Collections before this open are not tracked per tid; be
	// conservative for LoadBefore.
	s.gcTid.Store(max(s.gcTid.Load(), s.lastTid.Load()))
	s.nextOid = max(s.oidMark, 1)
	return nil
}

// Capabilities: no history, undo or pack; read-only as opened.
func (s *Storage) Capabilities() storage.Capabilities {
	return storage.Capabilities{ReadOnly: s.readOnly}
}

// dbErr maps LevelDB's errors onto the contract's.
func dbErr(op string, err error) error {
	if errors.Is(err, leveldb.ErrClosed) || errors.Is(err, lstorage.ErrClosed) {
		return fmt.Errorf("packless: %s: %w", op, storage.ErrClosed)
	}
	return fmt.Errorf("packless: %s: %w", op, err)
}

func (s *Storage) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// getObject reads the current record of oid; ok is false if there is none.
func (s *Storage) getObject(r leveldbReader, oid storage.Oid) (object, bool, error) {
	v, err := r.Get(objKey(oid), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return object{}, false, nil
	}
	if err != nil {
		return object{}, false, err
	}
	o, err := decodeObject(v)
	if err != nil {
		s.log.Error("undecodable record", "oid", oid, "error", err)
		return object{}, false, fmt.Errorf("oid %s: %w", oid, err)
	}
	return o, true, nil
}

// leveldbReader is what *leveldb.DB and *leveldb.Snapshot share.
type leveldbReader interface {
	Get(key []byte, ro *opt.ReadOptions) ([]byte, error)
}

// Load returns the current revision of oid.
func (s *Storage) Load(ctx context.Context, oid storage.Oid) (storage.Record, error) {
	if err := ctx.Err(); err != nil {
		return storage.Record{}, fmt.Errorf("packless: load %s: %w", oid, err)
	}
	if s.isClosed() {
		return storage.Record{}, fmt.Errorf("packless: load %s: %w", oid, storage.ErrClosed)
	}
	o, ok, err := s.getObject(s.db, oid)
	if err != nil {
		return storage.Record{}, dbErr("load "+oid.String(), err)
	}
	if !ok {
		return storage.Record{}, fmt.Errorf("packless: load %s: %w", oid, storage.ErrNotFound)
	}
	return storage.Record{Oid: oid, Serial: o.serial, Data: o.data, Refs: o.refs}, nil
}

// LoadBefore returns the current revision if it is older than tid (with
// end ZeroTid). Without history it returns storage.ErrNotSupported when
// the current revision is not older than tid, and when the object is
// gone but may have been collected at or after tid.
func (s *Storage) LoadBefore(ctx context.Context, oid storage.Oid, tid storage.Tid) (storage.Record, storage.Tid, error) {
	// Read gcTid first: if a collection races this load, either the
	// object is still there or gcTid already says it may be gone.
	gc := storage.Tid(s.gcTid.Load())
	rec, err := s.Load(ctx, oid)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if gc >= tid || storage.Tid(s.gcTid.Load()) >= tid {
			return storage.Record{}, 0, fmt.Errorf("packless: load %s before %s: object collected since, no history: %w", oid, tid, storage.ErrNotSupported)
		}
		return storage.Record{}, 0, fmt.Errorf("packless: load %s before %s: %w", oid, tid, storage.ErrNotFound)
	case err != nil:
		return storage.Record{}, 0, err
	case rec.Serial >= tid:
		return storage.Record{}, 0, fmt.Errorf("packless: load %s before %s: current revision is %s, no history: %w", oid, tid, rec.Serial, storage.ErrNotSupported)
	}
	return rec, storage.ZeroTid, nil
}

// NewOids allocates n oids. It persists a reserve ahead of the handed-out
// oids (one synced write per oidReserve oids), so oids are never reused
// after a restart.
func (s *Storage) NewOids(ctx context.Context, n int) ([]storage.Oid, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("packless: new oids: %w", err)
	}
	if n < 1 || n > 65536 {
		return nil, fmt.Errorf("packless: new oids: count %d not in 1..65536: %w", n, storage.ErrInvalid)
	}
	if s.isClosed() {
		return nil, fmt.Errorf("packless: new oids: %w", storage.ErrClosed)
	}
	if s.readOnly {
		return nil, fmt.Errorf("packless: new oids: %w", storage.ErrReadOnly)
	}
	s.oidMu.Lock()
	defer s.oidMu.Unlock()
	if err := s.reserveOidsLocked(s.nextOid + storage.Oid(n)); err != nil {
		return nil, err
	}
	out := make([]storage.Oid, n)
	for i := range out {
		out[i] = s.nextOid
		s.nextOid++
	}
	return out, nil
}

// reserveOidsLocked makes sure every oid below upto is covered by the
// persisted mark. Callers hold oidMu.
func (s *Storage) reserveOidsLocked(upto storage.Oid) error {
	if upto <= s.oidMark {
		return nil
	}
	mark := upto + oidReserve
	if mark < upto { // the oid space wrapped; refuse rather than reuse
		return fmt.Errorf("packless: new oids: oid space exhausted: %w", storage.ErrInvalid)
	}
	if err := s.db.Put(metaOidMark, be64(uint64(mark)), &opt.WriteOptions{Sync: true}); err != nil {
		return dbErr("persist oid mark", err)
	}
	s.oidMark = mark
	return nil
}

// LastTid returns the newest committed tid.
func (s *Storage) LastTid(ctx context.Context) (storage.Tid, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("packless: last tid: %w", err)
	}
	if s.isClosed() {
		return 0, fmt.Errorf("packless: last tid: %w", storage.ErrClosed)
	}
	return storage.Tid(s.lastTid.Load()), nil
}

// Begin starts a transaction; it does not take the commit lock.
func (s *Storage) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("packless: begin: %w", err)
	}
	if s.readOnly {
		if s.isClosed() {
			return nil, fmt.Errorf("packless: begin: %w", storage.ErrClosed)
		}
		return nil, fmt.Errorf("packless: begin: %w", storage.ErrReadOnly)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("packless: begin: %w", storage.ErrClosed)
	}
	meta.Extension = maps.Clone(meta.Extension)
	t := &txn{s: s, meta: meta}
	s.openTxns[t] = struct{}{}
	return t, nil
}

// History is not supported: packless keeps no history.
func (s *Storage) History(ctx context.Context, oid storage.Oid, max int) ([]storage.Revision, error) {
	return nil, fmt.Errorf("packless: history %s: %w", oid, storage.ErrNotSupported)
}

// UndoLog is not supported: packless keeps no history.
func (s *Storage) UndoLog(ctx context.Context, max int) ([]storage.TxInfo, error) {
	return nil, fmt.Errorf("packless: undo log: %w", storage.ErrNotSupported)
}

// Undo is not supported: packless keeps no history.
func (s *Storage) Undo(ctx context.Context, tid storage.Tid, meta storage.TxMeta) (storage.Tid, []storage.Oid, error) {
	return 0, nil, fmt.Errorf("packless: undo %s: %w", tid, storage.ErrNotSupported)
}

// Pack is not supported and not needed: unreachable objects are collected
// at each commit.
func (s *Storage) Pack(ctx context.Context, tid storage.Tid, progress func(done, total int64)) error {
	return fmt.Errorf("packless: pack: %w", storage.ErrNotSupported)
}

// Iterate yields the current state as one synthetic transaction per
// distinct serial with start <= serial < stop, oldest first, read from
// one LevelDB snapshot (so it is consistent even while commits go on).
// The synthetic transactions carry no metadata: packless does not keep it.
func (s *Storage) Iterate(ctx context.Context, start, stop storage.Tid) iter.Seq2[storage.TxRecords, error] {
	return func(yield func(storage.TxRecords, error) bool) {
		if s.isClosed() {
			yield(storage.TxRecords{}, fmt.Errorf("packless: iterate: %w", storage.ErrClosed))
			return
		}
		snap, err := s.db.GetSnapshot()
		if err != nil {
			yield(storage.TxRecords{}, dbErr("iterate", err))
			return
		}
		defer snap.Release()
		rng := &util.Range{Start: serialKey(start, 0)}
		if stop != storage.ZeroTid {
			rng.Limit = serialKey(stop, 0)
		} else {
			rng.Limit = []byte{kindSerial + 1}
		}
		it := snap.NewIterator(rng, nil)
		defer it.Release()
		var cur storage.TxRecords
		flush := func() bool {
			if len(cur.Records) == 0 {
				return true
			}
			tx := cur
			cur = storage.TxRecords{}
			return yield(tx, nil)
		}
		for it.Next() {
			if err := ctx.Err(); err != nil {
				yield(storage.TxRecords{}, fmt.Errorf("packless: iterate: %w", err))
				return
			}
			serial, oid, ok := parseSerialKey(it.Key())
			if !ok {
				yield(storage.TxRecords{}, fmt.Errorf("packless: iterate: bad index key %x: %w", it.Key(), errCorruptRecord))
				return
			}
			if serial != cur.Tid && !flush() {
				return
			}
			o, found, err := s.getObject(snap, oid)
			if err != nil {
				yield(storage.TxRecords{}, dbErr("iterate", err))
				return
			}
			if !found || o.serial != serial {
				s.log.Warn("serial index names a record that is not current; skipping", "oid", oid, "serial", serial)
				continue
			}
			cur.Tid = serial
			cur.Oids = append(cur.Oids, oid)
			cur.Records = append(cur.Records, storage.Record{Oid: oid, Serial: serial, Data: slices.Clone(o.data), Refs: o.refs})
		}
		if err := it.Error(); err != nil {
			yield(storage.TxRecords{}, dbErr("iterate", err))
			return
		}
		flush()
	}
}

// Close aborts open transactions, then closes LevelDB. Calls after Close
// return storage.ErrClosed; Close twice returns nil.
func (s *Storage) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.closeNow()
	open := slices.Collect(maps.Keys(s.openTxns))
	s.mu.Unlock()
	for _, t := range open {
		t.abort()
	}
	// Wait for a Finish that is writing right now: it holds the lock.
	_ = s.lock.Lock(context.Background())
	defer s.lock.Unlock()
	err := s.db.Close()
	if serr := s.stor.Close(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("packless: close %s: %w", s.path, err)
	}
	s.log.Info("closed packless store", "path", s.path, "last_tid", storage.Tid(s.lastTid.Load()))
	return nil
}

// takeLock takes the commit lock, giving up when ctx ends or the storage
// closes.
func (s *Storage) takeLock(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closeCtx, cancel)
	defer stop()
	if err := s.lock.Lock(ctx); err != nil {
		if s.closeCtx.Err() != nil {
			return storage.ErrClosed
		}
		return err
	}
	if s.isClosed() {
		s.lock.Unlock()
		return storage.ErrClosed
	}
	return nil
}

var _ storage.Storage = (*Storage)(nil)
