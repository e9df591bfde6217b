package filestorage

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/zhostdb/zhost/host/storage"
)

// Begin starts a transaction. It takes no lock; any number may be open.
// storage.ErrReadOnly on a read-only storage, storage.ErrClosed after
// Close, storage.ErrInvalid for metadata over 16 MiB or an extension key
// the format reserves ("\x00zhost.durable").
func (s *Storage) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filestorage: begin: %w", err)
	}
	if s.opts.ReadOnly {
		return nil, fmt.Errorf("filestorage: begin: %w", storage.ErrReadOnly)
	}
	if err := checkMeta(meta); err != nil {
		return nil, fmt.Errorf("filestorage: begin: %w", err)
	}
	t := &txn{s: s, meta: cloneMeta(meta), byOid: map[storage.Oid]int{}}
	if !s.register(t) {
		return nil, errClosed("begin")
	}
	return t, nil
}

func checkMeta(meta storage.TxMeta) error {
	if len(meta.User) > maxMetaLen || len(meta.Description) > maxMetaLen || len(encodeExtension(meta.Extension)) > maxMetaLen {
		return fmt.Errorf("transaction metadata larger than %d bytes: %w", maxMetaLen, storage.ErrInvalid)
	}
	if _, ok := meta.Extension[durableKey]; ok {
		return fmt.Errorf("transaction extension key %q is reserved by the data file format: %w", durableKey, storage.ErrInvalid)
	}
	return nil
}

func cloneMeta(m storage.TxMeta) storage.TxMeta {
	m.Extension = maps.Clone(m.Extension)
	return m
}

func (s *Storage) register(t *txn) bool {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	if s.closed {
		return false
	}
	s.txns[t] = struct{}{}
	return true
}

func (s *Storage) unregister(t *txn) {
	s.txMu.Lock()
	delete(s.txns, t)
	s.txMu.Unlock()
}

// takeLock takes the commit lock, giving up when ctx ends
// (storage.ErrCommitLockTimeout) or the storage closes (storage.ErrClosed).
func (s *Storage) takeLock(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closeCtx, cancel)
	defer stop()
	if err := s.commit.Lock(ctx); err != nil {
		if s.closeCtx.Err() != nil {
			return storage.ErrClosed
		}
		return err
	}
	if s.closeCtx.Err() != nil {
		s.commit.Unlock()
		return storage.ErrClosed
	}
	if p := s.broken.Load(); p != nil {
		s.commit.Unlock()
		return fmt.Errorf("an earlier fsync failed, the storage must be reopened: %w", *p)
	}
	return nil
}

// currentLocked returns the newest written revision of oid, visible or
// not. The caller holds the commit lock.
func (s *Storage) currentLocked(oid storage.Oid) (entry, bool) {
	s.qmu.Lock()
	e, ok := s.pending[oid]
	s.qmu.Unlock()
	if ok {
		return e, true
	}
	s.mu.RLock()
	e, ok = s.index[oid]
	s.mu.RUnlock()
	return e, ok
}

type txState int

const (
	txOpen txState = iota
	txVoted
	txFailed // vote failed: only Abort is allowed
	txDone   // finished or aborted
)

// stored is one record of a transaction before it is written.
type stored struct {
	oid    storage.Oid
	serial storage.Tid // the serial it is based on
	kind   byte
	back   int64 // kindBack target (undo)
	refs   []storage.Oid
	data   []byte
}

// txn is one transaction. mu serializes its methods against Close, which
// aborts it from another goroutine.
type txn struct {
	s    *Storage
	meta storage.TxMeta

	// prepare, if set, runs under the commit lock at Vote and fills recs
	// (undo computes what to restore against the locked state).
	prepare func() error
	// undo makes conflicts storage.ErrUndoConflict.
	undo bool

	mu    sync.Mutex
	state txState
	recs  []stored
	byOid map[storage.Oid]int

	start, end int64
	tid        storage.Tid
	updates    []oidEntry
}

// Store adds a record; see storage.Txn. The data and refs are copied.
func (t *txn) Store(ctx context.Context, rec storage.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == txDone {
		return fmt.Errorf("filestorage: store %s: transaction is over: %w", rec.Oid, storage.ErrClosed)
	}
	if t.state != txOpen {
		return fmt.Errorf("filestorage: store %s after vote: %w", rec.Oid, storage.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filestorage: store %s: %w", rec.Oid, err)
	}
	if rec.Data == nil {
		return fmt.Errorf("filestorage: store %s: nil data: %w", rec.Oid, storage.ErrInvalid)
	}
	if uint64(len(rec.Data)) > maxRecordData || uint64(len(rec.Refs)) > uint64(^uint32(0)) {
		return fmt.Errorf("filestorage: store %s: record of %d bytes and %d refs is too large: %w", rec.Oid, len(rec.Data), len(rec.Refs), storage.ErrInvalid)
	}
	r := stored{oid: rec.Oid, serial: rec.Serial, kind: kindData, data: slices.Clone(rec.Data), refs: slices.Clone(rec.Refs)}
	if i, ok := t.byOid[rec.Oid]; ok {
		t.recs[i] = r
		return nil
	}
	t.byOid[rec.Oid] = len(t.recs)
	t.recs = append(t.recs, r)
	return nil
}

// Vote takes the commit lock, checks every serial, and writes the
// transaction with status checkpoint; see storage.Txn.
func (t *txn) Vote(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.state {
	case txDone:
		return fmt.Errorf("filestorage: vote: transaction is over: %w", storage.ErrClosed)
	case txVoted:
		return fmt.Errorf("filestorage: vote twice: %w", storage.ErrInvalid)
	case txFailed:
		return fmt.Errorf("filestorage: vote after a failed vote: %w", storage.ErrInvalid)
	}
	s := t.s
	s.inflight.Add(1)
	if err := s.takeLock(ctx); err != nil {
		s.inflight.Add(-1)
		t.state = txFailed
		return fmt.Errorf("filestorage: vote: %w", err)
	}
	if err := t.voteLocked(); err != nil {
		s.inflight.Add(-1)
		t.state = txFailed
		s.commit.Unlock()
		return err
	}
	t.state = txVoted
	return nil
}

func (t *txn) voteLocked() error {
	s := t.s
	if t.prepare != nil {
		if err := t.prepare(); err != nil {
			return err
		}
	}
	var conflicts []storage.Conflict
	prevs := make([]int64, len(t.recs))
	for i, r := range t.recs {
		e, ok := s.currentLocked(r.oid)
		actual := storage.ZeroTid
		if ok {
			prevs[i] = e.pos
			if !e.deleted {
				actual = e.tid
			}
		}
		if t.undo && ok {
			actual = e.tid // undo names the exact revision it replaces
		}
		if actual != r.serial {
			conflicts = append(conflicts, storage.Conflict{Oid: r.oid, Expected: r.serial, Actual: actual})
		}
	}
	if len(conflicts) > 0 {
		cerr := &storage.ConflictError{Conflicts: conflicts}
		if t.undo {
			return fmt.Errorf("filestorage: undo: %v: %w", cerr, storage.ErrUndoConflict)
		}
		return fmt.Errorf("filestorage: vote: %w", cerr)
	}
	tid := storage.NextTid(s.lastWritten, s.opts.Now())
	b := &s.builder
	b.begin(s.end, tid, statusCheckpoint, t.meta, s.durableEnd())
	t.updates = make([]oidEntry, len(t.recs))
	for i := range t.recs {
		r := &t.recs[i]
		pos := b.add(&newRec{oid: r.oid, prev: prevs[i], back: r.back, kind: r.kind, refs: r.refs, data: r.data})
		t.updates[i] = oidEntry{oid: r.oid, e: entry{pos: pos, tid: tid, deleted: r.kind == kindDeleted}}
	}
	buf := b.finish()
	t.start, t.end, t.tid = s.end, s.end+int64(len(buf)), tid
	s.mu.RLock()
	d := s.file
	s.mu.RUnlock()
	s.reserve(d.f, t.end)
	if _, err := d.f.WriteAt(buf, t.start); err != nil {
		s.cutAt(d.f, t.start)
		return fmt.Errorf("filestorage: vote: write transaction at %d: %w", t.start, err)
	}
	s.alloc = max(s.alloc, t.end)
	d.grow(t.end)
	if cap(b.buf) > 4<<20 {
		b.buf = nil // do not pin a huge buffer
	}
	return nil
}

// currentFile returns the current generation's file. Only the commit-lock
// holder calls it; pack swaps generations under the commit lock.
func (s *Storage) currentFile() *os.File {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.file.f
}

// Finish marks the transaction committed, makes it durable per the sync
// policy and visible, and returns its tid; see storage.Txn.
func (t *txn) Finish(ctx context.Context) (storage.Tid, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.state {
	case txDone:
		return 0, fmt.Errorf("filestorage: finish: transaction is over: %w", storage.ErrClosed)
	case txOpen:
		return 0, fmt.Errorf("filestorage: finish before vote: %w", storage.ErrInvalid)
	case txFailed:
		return 0, fmt.Errorf("filestorage: finish after a failed vote: %w", storage.ErrInvalid)
	}
	s := t.s
	t.state = txDone
	defer s.unregister(t)
	f := s.currentFile()
	if _, err := f.WriteAt([]byte{statusCommitted}, t.start+txnStatusOff); err != nil {
		s.cutAt(f, t.start)
		s.inflight.Add(-1)
		s.commit.Unlock()
		return 0, fmt.Errorf("filestorage: finish %s: mark committed: %w", t.tid, err)
	}
	s.end, s.lastWritten = t.end, t.tid
	fin := &finished{tid: t.tid, end: t.end, updates: t.updates}
	var maxOid storage.Oid
	s.qmu.Lock()
	for _, u := range t.updates {
		s.pending[u.oid] = u.e
		maxOid = max(maxOid, u.oid)
	}
	s.queue = append(s.queue, fin)
	s.writtenEnd = t.end
	s.qmu.Unlock()
	s.inflight.Add(-1)
	select {
	case s.enqueued <- struct{}{}:
	default:
	}
	if len(t.updates) > 0 {
		s.bumpOids(maxOid)
	}
	var err error
	if s.opts.Sync == SyncGroup {
		s.commit.Unlock()
		err = s.syncTo(t.end)
	} else {
		err = s.syncTo(t.end)
		s.commit.Unlock()
	}
	if err != nil {
		return 0, fmt.Errorf("filestorage: finish %s: %w", t.tid, err)
	}
	return t.tid, nil
}

// syncTo returns once every transaction ending at or before end is
// durable (per the sync policy) and visible. One caller at a time is the
// leader: it takes every queued transaction, fsyncs once for all of them,
// and publishes them in commit order; callers already covered return at
// once. That is the group commit.
func (s *Storage) syncTo(end int64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if p := s.broken.Load(); p != nil {
		return fmt.Errorf("an earlier fsync failed: %w", *p)
	}
	if s.synced >= end {
		return nil
	}
	if s.opts.Sync == SyncGroup {
		s.gather()
	}
	s.qmu.Lock()
	target, batch := s.writtenEnd, s.queue
	s.queue = nil
	s.qmu.Unlock()
	if s.opts.Sync != SyncNone {
		s.mu.RLock()
		d := s.file
		s.mu.RUnlock()
		if d == nil {
			return storage.ErrClosed
		}
		if s.syncHook != nil {
			s.syncHook()
		}
		s.fsyncs.Add(1)
		t0 := time.Now()
		err := fdatasync(d.f)
		took := time.Since(t0)
		s.fsyncNanos.Add(int64(took))
		s.lastFsync.Store(int64(took))
		if err != nil {
			err = fmt.Errorf("fsync %s: %w", s.path, err)
			s.broken.Store(&err)
			s.log.Error("fsync failed; refusing further commits", "path", s.path, "error", err)
			return err
		}
		s.durable.Store(target)
	}
	s.publish(batch)
	s.synced = target
	return nil
}

// durableEnd is the durable end the next transaction written records:
// the end of the data covered by the last completed fsync (or found at
// open, or by the pack that made the file). It only ever names data that
// is on stable storage, so a transaction recording an end beyond a
// position proves that position was durable before the transaction was
// written; see doc.go, Opening and recovery. The caller holds the
// commit lock (pack, which resets it, takes that lock too).
func (s *Storage) durableEnd() int64 {
	if s.opts.noDurable {
		return noDurable
	}
	return s.durable.Load()
}

// maxGather bounds how long a group commit leader waits for committers
// that are voting to join its fsync.
const maxGather = 500 * time.Microsecond

// gather lets committers that are between Vote and Finish join the fsync
// the leader is about to start: waiting up to half an fsync for them costs
// less than the extra fsync they would otherwise need. The caller holds
// syncMu.
func (s *Storage) gather() {
	if s.inflight.Load() == 0 {
		return
	}
	wait := min(time.Duration(s.lastFsync.Load())/2, maxGather)
	if wait <= 0 {
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for s.inflight.Load() > 0 {
		select {
		case <-s.enqueued:
		case <-timer.C:
			return
		}
	}
}

// publish makes finished transactions visible, in commit order.
func (s *Storage) publish(batch []*finished) {
	if len(batch) == 0 {
		return
	}
	s.mu.Lock()
	for _, f := range batch {
		for _, u := range f.updates {
			s.index[u.oid] = u.e
		}
		s.lastTid, s.visEnd = f.tid, f.end
	}
	visEnd := s.visEnd
	s.mu.Unlock()
	// Only after the index has them: a committer that misses them in
	// pending finds them in the index.
	s.qmu.Lock()
	for _, f := range batch {
		for _, u := range f.updates {
			if e, ok := s.pending[u.oid]; ok && e.pos == u.e.pos {
				delete(s.pending, u.oid)
			}
		}
	}
	s.qmu.Unlock()
	s.maybeSaveIndex(visEnd)
}

// Abort discards the transaction: a voted one is cut from the file and
// releases the commit lock.
func (t *txn) Abort(ctx context.Context) error {
	t.abort()
	return nil
}

func (t *txn) abort() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == txDone {
		return
	}
	s := t.s
	if t.state == txVoted {
		s.unwrite(s.currentFile(), t.start, t.end)
		s.inflight.Add(-1)
		s.commit.Unlock()
	}
	t.state = txDone
	t.recs, t.byOid = nil, nil
	s.unregister(t)
}

// maxZeroedAbort is the largest voted transaction Abort overwrites with
// zeros, keeping the preallocated space; a larger one is truncated away.
const maxZeroedAbort = 1 << 20

// unwrite removes the voted transaction at [start, end) from the file,
// leaving zeros or nothing after the data. The caller holds the commit
// lock.
func (s *Storage) unwrite(f *os.File, start, end int64) {
	if s.alloc > end && end-start <= maxZeroedAbort {
		err := zeroFill(f, start, end)
		if err == nil {
			return
		}
		s.log.Warn("abort: could not zero the voted transaction; truncating it", "path", s.path, "error", err)
	}
	s.cutAt(f, start)
}

// cutAt truncates the file at end after a failed or aborted write. On
// failure the checkpoint status keeps the bytes from ever counting as
// committed (open cuts them), and the next vote overwrites them. The
// caller holds the commit lock.
func (s *Storage) cutAt(f *os.File, end int64) {
	if err := f.Truncate(end); err != nil {
		s.log.Warn("could not truncate a voted transaction", "path", s.path, "at", end, "error", err)
		if fi, err := f.Stat(); err == nil {
			s.alloc = fi.Size()
		}
		return
	}
	s.alloc = end
}

var _ storage.Txn = (*txn)(nil)
