package filestorage

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
)

// Storage is an open Data.fs. All methods are safe for concurrent use.
type Storage struct {
	path string
	opts Options
	log  hclog.Logger
	lock *os.File

	closeCtx context.Context
	closeNow context.CancelFunc

	// mu guards the visible state: what Load and friends see.
	mu      sync.RWMutex
	file    *dataFile // nil once closed
	fileID  [16]byte
	index   map[storage.Oid]entry
	lastTid storage.Tid // newest visible transaction
	visEnd  int64       // end of the newest visible transaction

	// commit serializes writers (Vote to Finish/Abort, undo, the end of
	// pack). The fields below it are only touched while holding it.
	commit      *storage.CommitLock
	end         int64       // end of the newest written transaction
	lastWritten storage.Tid // tid of the newest written transaction
	builder     txnBuilder
	// alloc is the data file's size: end plus preallocated zeros.
	// allocRetry holds off the next extension after one failed.
	alloc      int64
	allocRetry int64

	// qmu guards transactions that are finished (written, status
	// committed) but not yet visible: group commit publishes them after
	// the shared fsync, outside the commit lock.
	qmu        sync.Mutex
	pending    map[storage.Oid]entry
	queue      []*finished
	writtenEnd int64
	// syncMu makes one goroutine the fsync leader at a time.
	syncMu sync.Mutex
	synced int64
	// durable is the end of the data known to be on stable storage: set
	// at open, after each completed fsync and by pack. Every transaction
	// written records it (durableEnd).
	durable atomic.Int64
	// inflight counts committers between the start of Vote and the end
	// of Finish (or Abort); enqueued is signalled at each Finish, so a
	// group commit leader can wait for them to join its fsync.
	inflight  atomic.Int64
	enqueued  chan struct{}
	lastFsync atomic.Int64          // duration of the last fsync, in ns
	broken    atomic.Pointer[error] // a failed fsync: the file's state is unknown

	oidMu   sync.Mutex
	nextOid storage.Oid
	oidMark storage.Oid // oids below it may have been handed out; on disk in Data.fs.oids

	// txMu guards closed and txns, and the background WaitGroup's Add.
	txMu   sync.Mutex
	closed bool
	txns   map[*txn]struct{}
	bg     sync.WaitGroup

	packSem chan struct{}

	// Figures for tests and benchmarks.
	openIndexUsed bool
	openScanned   int64 // bytes of transactions scanned at open
	fsyncs        atomic.Int64
	fsyncNanos    atomic.Int64

	indexMu       sync.Mutex // one index save at a time
	indexSaving   atomic.Bool
	indexedEnd    atomic.Int64 // data file position the saved index covers
	indexedNextID atomic.Uint64
	// indexedFileID is the file id of the data file the saved index
	// describes. Written under indexMu and mu (read), so a pack's swap
	// (under mu) is either before a save's check or after its update.
	indexedFileID [16]byte
	// indexSaveHook, if set (tests), runs in writeIndex between the
	// snapshot and the write, with indexMu held.
	indexSaveHook func()
	// syncHook, if set (tests), runs in syncTo just before the fsync,
	// with syncMu held: the transactions written meanwhile form a group
	// that is not yet durable.
	syncHook func()
	// packDirSyncHook, if set (tests), runs instead of the directory
	// fsync after pack renames the packed file over the data file.
	packDirSyncHook func() error
}

// finished is a transaction waiting to become visible.
type finished struct {
	tid     storage.Tid
	end     int64
	updates []oidEntry
}

type oidEntry struct {
	oid storage.Oid
	e   entry
}

// Open opens (creating if missing, unless read-only) the data file at
// path, takes its lock, and recovers its index: from Data.fs.index if that
// checks out against the file, else by scanning the file. A torn tail is
// cut off and saved as path.trN. The returned Storage must be closed.
func Open(path string, opts Options) (*Storage, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open filestorage %s: %w", path, err)
	}
	s := &Storage{
		path:     path,
		opts:     opts,
		log:      opts.Logger,
		commit:   storage.NewCommitLock(),
		pending:  map[storage.Oid]entry{},
		txns:     map[*txn]struct{}{},
		packSem:  make(chan struct{}, 1),
		enqueued: make(chan struct{}, 1),
	}
	s.closeCtx, s.closeNow = context.WithCancel(context.Background())
	if s.lock, err = lockFile(path+".lock", opts.ReadOnly); err != nil {
		s.closeNow()
		return nil, fmt.Errorf("open filestorage %s: %w", path, err)
	}
	if err := s.openFile(); err != nil {
		s.closeNow()
		_ = unlockFile(s.lock)
		return nil, fmt.Errorf("open filestorage %s: %w", path, err)
	}
	return s, nil
}

func (s *Storage) openFile() error {
	var f *os.File
	var err error
	if s.opts.ReadOnly {
		f, err = os.Open(s.path)
	} else {
		f, err = os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o644)
	}
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat: %w", err)
	}
	size := st.Size()
	if size == 0 {
		if s.opts.ReadOnly {
			_ = f.Close()
			return fmt.Errorf("read-only open of an empty file: %w", errCorrupt)
		}
		if err := writeFileHeader(f); err != nil {
			_ = f.Close()
			return err
		}
		if err := syncDir(filepath.Dir(s.path)); err != nil {
			_ = f.Close()
			return err
		}
		size = fileHeaderSize
	}
	id, err := readFileHeader(f)
	if err != nil {
		_ = f.Close()
		return err
	}
	s.fileID = id
	s.file = newDataFile(f, size)
	if err := s.recover(size); err != nil {
		s.file.release()
		s.file = nil
		return err
	}
	return nil
}

func writeFileHeader(f *os.File) error {
	var h [fileHeaderSize]byte
	copy(h[:4], fileMagic)
	binary.BigEndian.PutUint32(h[4:], fileVersion)
	if _, err := rand.Read(h[8:]); err != nil {
		return fmt.Errorf("file id: %w", err)
	}
	if _, err := f.WriteAt(h[:], 0); err != nil {
		return fmt.Errorf("write file header: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write file header: fsync: %w", err)
	}
	return nil
}

func readFileHeader(f *os.File) ([16]byte, error) {
	var h [fileHeaderSize]byte
	var id [16]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return id, fmt.Errorf("read file header: not a filestorage data file: %w", errors.Join(err, errCorrupt))
	}
	if string(h[:4]) != fileMagic {
		return id, fmt.Errorf("read file header: bad magic %q, not a filestorage data file: %w", h[:4], errCorrupt)
	}
	if v := binary.BigEndian.Uint32(h[4:]); v != fileVersion {
		return id, fmt.Errorf("read file header: format version %d, this build reads %d: %w", v, fileVersion, errCorrupt)
	}
	copy(id[:], h[8:])
	return id, nil
}

// recover builds the in-memory index: from the index file if it is
// trustworthy, then by scanning whatever follows the position it covers.
func (s *Storage) recover(size int64) error {
	start := int64(fileHeaderSize)
	s.index = map[storage.Oid]entry{}
	var nextOid storage.Oid
	x, err := loadIndex(s.path + ".index")
	switch {
	case err == nil:
		if verr := s.verifyIndex(x, size); verr != nil {
			s.log.Warn("index does not match the data file; rebuilding it by scanning", "path", s.path, "reason", verr)
			if x.fileID == s.fileID {
				nextOid = x.nextOid // never hand out an oid twice
			}
		} else {
			s.index = x.entries
			start, s.lastTid, nextOid = x.pos, x.lastTid, x.nextOid
			s.indexedEnd.Store(x.pos)
			s.indexedNextID.Store(uint64(x.nextOid))
			s.indexedFileID = x.fileID
		}
	case errors.Is(err, os.ErrNotExist):
		if size > fileHeaderSize {
			s.log.Info("no index file; rebuilding it by scanning", "path", s.path)
		}
	default:
		s.log.Warn("index file unreadable; rebuilding it by scanning", "path", s.path, "reason", err)
	}
	scanned := 0
	sc := newScanner(s.file, start, size)
	sc.zeroEnds = true
	end := start // end of the last good transaction
	var stopErr error
	unfinished := false // stopped at a transaction still marked 'c'
	for {
		p, err := sc.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			stopErr = err
			break
		}
		if p.status == statusCheckpoint {
			stopErr = fmt.Errorf("transaction %s at %d was voted but never finished", p.tid, p.pos)
			unfinished = true
			break
		}
		if p.tid <= s.lastTid {
			stopErr = fmt.Errorf("transaction at %d: tid %s not after %s: %w", p.pos, p.tid, s.lastTid, errCorrupt)
			break
		}
		for i := range p.recs {
			r := &p.recs[i]
			s.index[r.oid] = entry{pos: r.pos, tid: r.tid, deleted: r.kind == kindDeleted}
			if r.oid >= nextOid {
				nextOid = r.oid + 1
			}
		}
		s.lastTid = p.tid
		end = sc.pos
		scanned++
	}
	s.openIndexUsed, s.openScanned = start > fileHeaderSize, end-start
	// What follows the last good transaction: nothing, preallocated
	// zeros (kept as they are), or a torn or unfinished transaction
	// (possibly followed by zeros), which is cut off.
	dataEnd := size
	if end < size {
		if dataEnd, err = s.file.dataEnd(end, size); err != nil {
			return err
		}
		if dataEnd > end && stopErr == nil {
			stopErr = fmt.Errorf("zero transaction header at %d followed by non-zero bytes up to %d: %w", end, dataEnd, errCorrupt)
		}
	}
	// What is saved aside: up to the last non-zero byte, or as far as the
	// torn transaction's header says if that is further (its last bytes
	// may be zeros).
	saveEnd := dataEnd
	if dataEnd > end {
		var hb [16]byte
		if n, _ := s.file.f.ReadAt(hb[:], end); n == len(hb) {
			if l := binary.BigEndian.Uint64(hb[8:]); l >= txnHeaderSize+txnTrailerSize {
				saveEnd = max(saveEnd, end+int64(min(l, uint64(size-end))))
			}
		}
	}
	tornGroup := false
	damaged := stopErr != nil && errors.Is(stopErr, errCorrupt)
	if end < dataEnd && (damaged || unfinished) {
		// A torn tail ends the data. If the data still ends with a
		// transaction that verifies and committed, either the damage is
		// in the middle (bit rot, a bad sector: cutting there would drop
		// acknowledged transactions) or a power loss tore a group commit
		// (the disk got a later transaction of an unsynced group and not
		// an earlier one, and then none after the damage was
		// acknowledged, as no fsync covering the damage completed). The
		// last transaction's durable end tells them apart: durable ends
		// only grow along the file, so if the last one's is not past the
		// damage, no transaction after it was written once the damage's
		// position was durable, and a torn write explains the damage.
		// A transaction still marked 'c' is the same question, as its
		// status byte is outside the checksum: it is unfinished if its
		// finishing write was lost with the power, but damage if a later
		// transaction was written once it was durable, since only
		// finished transactions count as durable. Files that record no
		// durable end keep cutting it, as they always did.
		if h, ok := s.file.txnEndingNear(dataEnd, size); ok && h.pos > end {
			if p, err := s.file.readTxnAt(h.pos, h.end()); err == nil && p.status != statusCheckpoint && (damaged || p.durable != noDurable) {
				if p.durable == noDurable || p.durable > end {
					recorded := "it records no durable end"
					if p.durable != noDurable {
						recorded = fmt.Sprintf("it was written once the file was durable up to %d", p.durable)
					}
					return fmt.Errorf("damaged transaction at %d (%v), but valid transactions follow it up to %s at %d and %s: not a torn tail, refusing to cut committed data (restore Data.fs or repair it): %w",
						end, stopErr, p.tid, h.pos, recorded, errCorrupt)
				}
				tornGroup = true
				saveEnd = max(saveEnd, h.end())
				stopErr = fmt.Errorf("%w; the transactions after it, up to %s at %d, were written while the file was durable only up to %d, so none was acknowledged: a group commit torn by a power loss",
					stopErr, p.tid, h.pos, p.durable)
			}
		}
	}
	s.alloc = size
	switch {
	case end < dataEnd:
		if err := s.cutTail(end, saveEnd, tornGroup, stopErr); err != nil {
			return err
		}
		if !s.opts.ReadOnly {
			s.alloc = end
		}
	case end < size:
		s.log.Debug("preallocated space after the data", "path", s.path, "data_end", end, "bytes", size-end)
	}
	if !s.opts.ReadOnly {
		// What open found is what the first transaction written records
		// as durable: make it so (a crashed process may have left it in
		// the page cache only).
		if err := fdatasync(s.file.f); err != nil {
			return fmt.Errorf("fsync after recovery: %w", err)
		}
		// And its name: a pack's rename over it may not be durable yet
		// (its directory fsync failed before a restart).
		if err := syncDir(filepath.Dir(s.path)); err != nil {
			return fmt.Errorf("after recovery: %w", err)
		}
		s.durable.Store(end)
	}
	s.file.setLimit(end)
	if nextOid == storage.RootOid {
		nextOid = 1 // the root is never handed out by NewOids
	}
	if mark, err := readOidMark(s.path + ".oids"); err != nil {
		s.log.Warn("oid mark unreadable; oids handed out but never committed before a crash may be handed out again", "path", s.path, "error", err)
	} else if mark > nextOid {
		nextOid = mark
	}
	s.nextOid = nextOid
	s.oidMark = nextOid
	s.visEnd, s.end, s.writtenEnd, s.synced = end, end, end, end
	s.lastWritten = s.lastTid
	s.log.Debug("opened", "path", s.path, "objects", len(s.index), "last_tid", s.lastTid,
		"index_used", start > fileHeaderSize, "scanned_transactions", scanned)
	return nil
}

// verifyIndex checks that x describes this data file up to x.pos: same
// file id, and the transaction ending at x.pos verifies and is x.lastTid.
func (s *Storage) verifyIndex(x *indexFile, size int64) error {
	if x.fileID != s.fileID {
		return errors.New("index belongs to another data file (file id differs)")
	}
	if x.pos > size {
		return fmt.Errorf("index covers %d bytes, the data file has %d", x.pos, size)
	}
	if x.pos == fileHeaderSize {
		if x.lastTid != storage.ZeroTid || len(x.entries) != 0 {
			return errors.New("index of an empty file has entries")
		}
		return nil
	}
	h, err := s.file.readTxnHeaderBefore(x.pos)
	if err != nil {
		return fmt.Errorf("newest indexed transaction: %w", err)
	}
	p, err := s.file.readTxnAt(h.pos, x.pos)
	if err != nil {
		return fmt.Errorf("newest indexed transaction: %w", err)
	}
	if p.tid != x.lastTid || p.status == statusCheckpoint {
		return fmt.Errorf("newest indexed transaction is %s, the index says %s", p.tid, x.lastTid)
	}
	return nil
}

// cutTail truncates the data file at end, saving the bytes up to to (the
// zeros after it are preallocated space) as Data.fs.trN. A read-only open
// only ignores them. group says the tail is a torn group commit: whole
// transactions after a torn one, none of them acknowledged.
func (s *Storage) cutTail(end, to int64, group bool, why error) error {
	what := "a torn or unfinished tail"
	if group {
		what = "a torn group commit"
	}
	if s.opts.ReadOnly {
		s.log.Warn("data file has "+what+"; ignoring it (read-only)",
			"path", s.path, "at", end, "bytes", to-end, "reason", why)
		return nil
	}
	var saved string
	for n := 0; n < 10000; n++ {
		name := s.path + ".tr" + strconv.Itoa(n)
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("save torn tail: %w", err)
		}
		_, cerr := io.Copy(f, io.NewSectionReader(s.file.f, end, to-end))
		if cerr == nil {
			cerr = f.Sync()
		}
		if err := errors.Join(cerr, f.Close()); err != nil {
			return fmt.Errorf("save torn tail to %s: %w", name, err)
		}
		saved = name
		break
	}
	if saved == "" {
		return fmt.Errorf("save torn tail: no free %s.trN name", s.path)
	}
	if err := s.file.f.Truncate(end); err != nil {
		return fmt.Errorf("truncate torn tail: %w", err)
	}
	if err := s.file.f.Sync(); err != nil {
		return fmt.Errorf("truncate torn tail: fsync: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return err
	}
	s.log.Warn("truncated "+what+" of the data file",
		"path", s.path, "at", end, "bytes", to-end, "saved_as", saved, "reason", why)
	return nil
}

// snapshotIndex copies what saveIndex needs under the read lock.
func (s *Storage) snapshotIndex() *indexFile {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.oidMu.Lock()
	next := s.nextOid
	s.oidMu.Unlock()
	return &indexFile{fileID: s.fileID, pos: s.visEnd, lastTid: s.lastTid, nextOid: next, entries: maps.Clone(s.index)}
}

// writeIndex saves the index if it changed since the last save: a new
// data file (pack swapped one in), or more transactions or oids.
//
// A pack may swap the data file while a save is writing the snapshot it
// took before: that save describes the replaced file, carries its file id
// (so open rejects it and scans), and is not recorded as the current
// index; writeIndex then saves again for the new file, so the
// post-pack index is never skipped as "already saved" on the strength of
// a stale one whose position happens to match.
func (s *Storage) writeIndex() error {
	s.indexMu.Lock()
	defer s.indexMu.Unlock()
	for range 3 {
		s.mu.RLock()
		s.oidMu.Lock()
		clean := s.fileID == s.indexedFileID && s.visEnd == s.indexedEnd.Load() && uint64(s.nextOid) == s.indexedNextID.Load()
		s.oidMu.Unlock()
		s.mu.RUnlock()
		if clean {
			return nil
		}
		x := s.snapshotIndex()
		if s.indexSaveHook != nil {
			s.indexSaveHook()
		}
		if err := s.syncForIndex(x); err != nil {
			return err
		}
		if err := saveIndex(s.path+".index", x); err != nil {
			return err
		}
		s.mu.RLock()
		current := s.fileID == x.fileID
		if current {
			s.indexedFileID = x.fileID
			s.indexedEnd.Store(x.pos)
			s.indexedNextID.Store(uint64(x.nextOid))
		}
		s.mu.RUnlock()
		if current {
			s.log.Debug("index saved", "path", s.path, "pos", x.pos, "objects", len(x.entries))
			return nil
		}
		s.log.Debug("a pack replaced the data file while its index was saved; saving the new one", "path", s.path)
	}
	return fmt.Errorf("save index %s: the data file kept changing under the save", s.path)
}

// syncForIndex makes the data the index snapshot x covers durable
// before the index is saved: open trusts the index for everything before
// x.pos, so a power loss must not find the index on disk and some of
// that data torn. With "always" and "group" only fsynced transactions
// are visible, so there is nothing to do; with "none" it fsyncs the data
// file (an index save is rare: every Options.IndexInterval bytes and at
// Close) and raises the durable end to x.pos. A snapshot of a file a
// pack has replaced since is skipped: its index is not kept as current.
func (s *Storage) syncForIndex(x *indexFile) error {
	if s.opts.Sync != SyncNone {
		return nil
	}
	s.mu.RLock()
	d := s.file
	if d == nil || s.fileID != x.fileID {
		s.mu.RUnlock()
		return nil
	}
	d.acquire()
	s.mu.RUnlock()
	defer d.release()
	if err := fdatasync(d.f); err != nil {
		return fmt.Errorf("save index: fsync %s first: %w", s.path, err)
	}
	// Under mu, so a pack's swap (after which it sets the durable end of
	// the new file) is either before the check or after the raise.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fileID != x.fileID {
		return nil
	}
	for {
		cur := s.durable.Load()
		if x.pos <= cur || s.durable.CompareAndSwap(cur, x.pos) {
			return nil
		}
	}
}

// maybeSaveIndex starts a background index save when enough has been
// appended since the last one.
func (s *Storage) maybeSaveIndex(visEnd int64) {
	if s.opts.ReadOnly || s.opts.IndexInterval < 0 || visEnd-s.indexedEnd.Load() < s.opts.IndexInterval {
		return
	}
	if !s.indexSaving.CompareAndSwap(false, true) {
		return
	}
	if !s.startBackground() {
		s.indexSaving.Store(false)
		return
	}
	go func() {
		defer s.bg.Done()
		defer s.indexSaving.Store(false)
		if err := s.writeIndex(); err != nil {
			s.log.Error("saving the index failed; open will scan more of the file", "path", s.path, "error", err)
		}
	}()
}

// startBackground registers work Close must wait for; false once closed.
func (s *Storage) startBackground() bool {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	if s.closed {
		return false
	}
	s.bg.Add(1)
	return true
}

// Path returns the data file's path.
func (s *Storage) Path() string { return s.path }

// Capabilities reports history, undo and pack.
func (s *Storage) Capabilities() storage.Capabilities {
	return storage.Capabilities{History: true, Undo: true, Pack: true, ReadOnly: s.opts.ReadOnly}
}

func errClosed(op string) error { return fmt.Errorf("filestorage: %s: %w", op, storage.ErrClosed) }

// acquire returns the current file generation and the index entry of oid.
func (s *Storage) acquire(oid storage.Oid) (*dataFile, entry, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.file == nil {
		return nil, entry{}, false, storage.ErrClosed
	}
	e, ok := s.index[oid]
	return s.file.acquire(), e, ok, nil
}

// Load returns the current revision of oid. Safe for concurrent use; it
// reads with one pread for most records and never waits for commits.
func (s *Storage) Load(ctx context.Context, oid storage.Oid) (storage.Record, error) {
	if err := ctx.Err(); err != nil {
		return storage.Record{}, fmt.Errorf("filestorage: load %s: %w", oid, err)
	}
	d, e, ok, err := s.acquire(oid)
	if err != nil {
		return storage.Record{}, errClosed("load")
	}
	defer d.release()
	if !ok || e.deleted {
		return storage.Record{}, fmt.Errorf("filestorage: load %s: %w", oid, storage.ErrNotFound)
	}
	h, refs, data, deleted, err := d.resolve(e.pos)
	if err != nil {
		return storage.Record{}, fmt.Errorf("filestorage: load %s: %w", oid, err)
	}
	if h.oid != oid || deleted {
		return storage.Record{}, fmt.Errorf("filestorage: load %s: index points at a record of %s: %w", oid, h.oid, errCorrupt)
	}
	return storage.Record{Oid: oid, Serial: e.tid, Data: data, Refs: refs}, nil
}

// maxChain bounds a walk along previous-revision pointers, so a damaged
// file cannot make one call loop forever.
const maxChain = 1 << 30

// LoadBefore returns the revision of oid current just before tid, walking
// back-pointers from the current revision. Safe for concurrent use.
func (s *Storage) LoadBefore(ctx context.Context, oid storage.Oid, tid storage.Tid) (storage.Record, storage.Tid, error) {
	if err := ctx.Err(); err != nil {
		return storage.Record{}, 0, fmt.Errorf("filestorage: load %s before %s: %w", oid, tid, err)
	}
	d, e, ok, err := s.acquire(oid)
	if err != nil {
		return storage.Record{}, 0, errClosed("load before")
	}
	defer d.release()
	notFound := fmt.Errorf("filestorage: load %s before %s: %w", oid, tid, storage.ErrNotFound)
	if !ok {
		return storage.Record{}, 0, notFound
	}
	end := storage.ZeroTid
	pos := e.pos
	for i := 0; pos != 0; i++ {
		if i%1024 == 1023 {
			if err := ctx.Err(); err != nil {
				return storage.Record{}, 0, fmt.Errorf("filestorage: load %s before %s: %w", oid, tid, err)
			}
		}
		if i > maxChain {
			return storage.Record{}, 0, fmt.Errorf("filestorage: load %s before %s: revision chain too long: %w", oid, tid, errCorrupt)
		}
		h, err := d.readRecordHeader(pos)
		if err != nil {
			return storage.Record{}, 0, fmt.Errorf("filestorage: load %s before %s: %w", oid, tid, err)
		}
		if h.oid != oid || (h.prev != 0 && h.prev >= pos) {
			return storage.Record{}, 0, fmt.Errorf("filestorage: load %s before %s: record at %d: %w", oid, tid, pos, errCorrupt)
		}
		if h.tid < tid {
			_, refs, data, deleted, err := d.resolve(pos)
			if err != nil {
				return storage.Record{}, 0, fmt.Errorf("filestorage: load %s before %s: %w", oid, tid, err)
			}
			if deleted {
				return storage.Record{}, 0, notFound
			}
			return storage.Record{Oid: oid, Serial: h.tid, Data: data, Refs: refs}, end, nil
		}
		end = h.tid
		pos = h.prev
	}
	return storage.Record{}, 0, notFound
}

// NewOids allocates n fresh oids (1 <= n <= 65536). The counter is saved
// with the index and raised past every oid found in the file at open, so
// oids are not reused across restarts.
func (s *Storage) NewOids(ctx context.Context, n int) ([]storage.Oid, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filestorage: new oids: %w", err)
	}
	if n < 1 || n > 65536 {
		return nil, fmt.Errorf("filestorage: new oids: count %d not in 1..65536: %w", n, storage.ErrInvalid)
	}
	if s.isClosed() {
		return nil, errClosed("new oids")
	}
	if s.opts.ReadOnly {
		return nil, fmt.Errorf("filestorage: new oids: %w", storage.ErrReadOnly)
	}
	s.oidMu.Lock()
	defer s.oidMu.Unlock()
	if end := s.nextOid + storage.Oid(n); end > s.oidMark || end < s.nextOid {
		// Persist a mark past what is handed out, so a crash before
		// these oids are committed cannot hand them out again.
		mark := end + oidReserve
		if mark < end {
			return nil, fmt.Errorf("filestorage: new oids: oid space exhausted: %w", storage.ErrInvalid)
		}
		if err := writeOidMark(s.path+".oids", mark); err != nil {
			return nil, fmt.Errorf("filestorage: new oids: %w", err)
		}
		s.oidMark = mark
	}
	out := make([]storage.Oid, n)
	for i := range out {
		out[i] = s.nextOid
		s.nextOid++
	}
	return out, nil
}

// bumpOids raises the oid counter past oids written by a commit.
func (s *Storage) bumpOids(max storage.Oid) {
	s.oidMu.Lock()
	if max >= s.nextOid {
		s.nextOid = max + 1
	}
	s.oidMu.Unlock()
}

// LastTid returns the tid of the newest visible transaction (ZeroTid for
// an empty file). Safe for concurrent use; storage.ErrClosed after Close.
func (s *Storage) LastTid(ctx context.Context) (storage.Tid, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("filestorage: last tid: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.file == nil {
		return 0, errClosed("last tid")
	}
	return s.lastTid, nil
}

func (s *Storage) isClosed() bool {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	return s.closed
}

// Close aborts open transactions, stops a running pack (its partial file
// is removed), publishes what a group commit still has queued, saves the
// index and releases the file and its lock, in that order. Calls after
// Close return storage.ErrClosed; Close twice returns nil.
func (s *Storage) Close() error {
	s.txMu.Lock()
	if s.closed {
		s.txMu.Unlock()
		return nil
	}
	s.closed = true
	open := slices.Collect(maps.Keys(s.txns))
	s.txMu.Unlock()
	s.closeNow()
	for _, t := range open {
		t.abort()
	}
	s.bg.Wait()
	var errs []error
	// Every transaction is finished or aborted; publish whatever a group
	// commit left queued.
	if err := s.syncTo(s.syncTarget()); err != nil {
		errs = append(errs, err)
	}
	if !s.opts.ReadOnly && s.broken.Load() == nil {
		if err := s.writeIndex(); err != nil {
			errs = append(errs, err)
		}
		// Every writer is gone: cut the preallocated zeros, so the file
		// on disk is exactly its data.
		s.mu.RLock()
		d := s.file
		s.mu.RUnlock()
		if d != nil {
			if err := s.trimSlack(d.f, s.syncTarget()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.mu.Lock()
	if s.file != nil {
		s.file.release()
		s.file = nil
	}
	s.index = nil
	s.mu.Unlock()
	errs = append(errs, unlockFile(s.lock))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("filestorage: close %s: %w", s.path, err)
	}
	return nil
}

func (s *Storage) syncTarget() int64 {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.writtenEnd
}

var _ storage.Storage = (*Storage)(nil)

// oidReserve is how far past the handed-out oids the persisted mark
// goes, so most NewOids calls write nothing.
const oidReserve = 1 << 16

// readOidMark reads the oid mark file; 0 if there is none.
func readOidMark(path string) (storage.Oid, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != 12 || crc32.Checksum(b[:8], crcTable) != binary.BigEndian.Uint32(b[8:]) {
		return 0, fmt.Errorf("oid mark %s: bad size or checksum: %w", path, errCorrupt)
	}
	return storage.Oid(binary.BigEndian.Uint64(b)), nil
}

// writeOidMark replaces the oid mark file (write, fsync, rename).
func writeOidMark(path string, mark storage.Oid) error {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:], uint64(mark))
	binary.BigEndian.PutUint32(b[8:], crc32.Checksum(b[:8], crcTable))
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("save oid mark: %w", err)
	}
	_, werr := f.Write(b[:])
	if werr == nil {
		werr = f.Sync()
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save oid mark %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save oid mark: %w", err)
	}
	return syncDir(filepath.Dir(path))
}
