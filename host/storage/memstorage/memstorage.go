package memstorage

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
)

// Options configures a memory storage. The zero value is a writable storage
// with full history and no logging.
type Options struct {
	// Logger receives debug lines about commits, undo and pack. Nil means
	// hclog.NewNullLogger().
	Logger hclog.Logger
	// ReadOnly makes every write return storage.ErrReadOnly.
	ReadOnly bool
	// OnCommit, if set, is called after every committed transaction
	// (Finish and Undo) with what it wrote, in tid order, after Load
	// already sees it. It runs while the commit lock is held, so it must
	// not commit to this storage; reads are fine. It is how a test server
	// learns what to invalidate without polling.
	OnCommit func(info storage.TxInfo)
	// Now is the clock tids are derived from. Nil means time.Now. Tests
	// set it to check that tids keep increasing when the clock goes back.
	Now func() time.Time
}

// revision is one stored revision of an object. A nil data marks an undone
// creation: the object does not exist from serial on.
type revision struct {
	serial storage.Tid
	data   []byte
	refs   []storage.Oid
	tx     *txEntry
}

// txEntry is one committed transaction as Iterate and UndoLog see it.
type txEntry struct {
	info storage.TxInfo
	// recs are the records the transaction wrote that pack has not
	// dropped; Serial is the transaction's tid.
	recs []storage.Record
}

// Storage is an in-memory storage.Storage with full history, undo and pack.
// It is for tests: nothing is written to disk, and every record is copied
// in and out so callers cannot alias its state. Create one with New.
type Storage struct {
	log      hclog.Logger
	readOnly bool
	onCommit func(storage.TxInfo)
	now      func() time.Time

	lock     *storage.CommitLock
	closeCtx context.Context
	closeNow context.CancelFunc

	mu       sync.RWMutex
	closed   bool
	objects  map[storage.Oid][]revision // oldest first
	txns     []*txEntry                 // oldest first
	lastTid  storage.Tid
	nextOid  storage.Oid
	packTid  storage.Tid // revisions before it may be gone
	openTxns map[*txn]struct{}
}

// New returns an empty memory storage.
func New(opts Options) *Storage {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Storage{
		log:      log,
		readOnly: opts.ReadOnly,
		onCommit: opts.OnCommit,
		now:      now,
		lock:     storage.NewCommitLock(),
		closeCtx: ctx,
		closeNow: cancel,
		objects:  map[storage.Oid][]revision{},
		nextOid:  1,
		openTxns: map[*txn]struct{}{},
	}
}

// Capabilities reports full history, undo and pack.
func (s *Storage) Capabilities() storage.Capabilities {
	return storage.Capabilities{History: true, Undo: true, Pack: true, ReadOnly: s.readOnly}
}

func errClosed(op string) error { return fmt.Errorf("memstorage: %s: %w", op, storage.ErrClosed) }

func cloneRecord(oid storage.Oid, r revision) storage.Record {
	return storage.Record{Oid: oid, Serial: r.serial, Data: slices.Clone(r.data), Refs: slices.Clone(r.refs)}
}

// Load returns the current revision of oid. Safe for concurrent use.
func (s *Storage) Load(ctx context.Context, oid storage.Oid) (storage.Record, error) {
	if err := ctx.Err(); err != nil {
		return storage.Record{}, fmt.Errorf("memstorage: load %s: %w", oid, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.Record{}, errClosed("load")
	}
	revs := s.objects[oid]
	if len(revs) == 0 || revs[len(revs)-1].data == nil {
		return storage.Record{}, fmt.Errorf("memstorage: load %s: %w", oid, storage.ErrNotFound)
	}
	return cloneRecord(oid, revs[len(revs)-1]), nil
}

// LoadBefore returns the revision of oid current just before tid and the
// serial of the revision that replaced it. Safe for concurrent use.
func (s *Storage) LoadBefore(ctx context.Context, oid storage.Oid, tid storage.Tid) (storage.Record, storage.Tid, error) {
	if err := ctx.Err(); err != nil {
		return storage.Record{}, 0, fmt.Errorf("memstorage: load %s before %s: %w", oid, tid, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.Record{}, 0, errClosed("load before")
	}
	revs := s.objects[oid]
	// i is the first revision not before tid.
	i := sort.Search(len(revs), func(i int) bool { return revs[i].serial >= tid })
	if i == 0 || revs[i-1].data == nil {
		return storage.Record{}, 0, fmt.Errorf("memstorage: load %s before %s: %w", oid, tid, storage.ErrNotFound)
	}
	end := storage.ZeroTid
	if i < len(revs) {
		end = revs[i].serial
	}
	return cloneRecord(oid, revs[i-1]), end, nil
}

// NewOids allocates n oids (1 <= n <= 65536). Safe for concurrent use.
func (s *Storage) NewOids(ctx context.Context, n int) ([]storage.Oid, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstorage: new oids: %w", err)
	}
	if n < 1 || n > 65536 {
		return nil, fmt.Errorf("memstorage: new oids: count %d not in 1..65536: %w", n, storage.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed("new oids")
	}
	if s.readOnly {
		return nil, fmt.Errorf("memstorage: new oids: %w", storage.ErrReadOnly)
	}
	out := make([]storage.Oid, n)
	for i := range out {
		out[i] = s.nextOid
		s.nextOid++
	}
	return out, nil
}

// LastTid returns the newest committed tid. Safe for concurrent use.
func (s *Storage) LastTid(ctx context.Context) (storage.Tid, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memstorage: last tid: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, errClosed("last tid")
	}
	return s.lastTid, nil
}

// Begin starts a transaction; it does not take the commit lock.
func (s *Storage) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstorage: begin: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed("begin")
	}
	if s.readOnly {
		return nil, fmt.Errorf("memstorage: begin: %w", storage.ErrReadOnly)
	}
	t := &txn{s: s, meta: cloneMeta(meta)}
	s.openTxns[t] = struct{}{}
	return t, nil
}

func cloneMeta(m storage.TxMeta) storage.TxMeta {
	m.Extension = maps.Clone(m.Extension)
	return m
}

// History returns up to max revisions of oid, newest first (max <= 0: all).
func (s *Storage) History(ctx context.Context, oid storage.Oid, max int) ([]storage.Revision, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstorage: history %s: %w", oid, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed("history")
	}
	revs := s.objects[oid]
	if len(revs) == 0 {
		return nil, fmt.Errorf("memstorage: history %s: %w", oid, storage.ErrNotFound)
	}
	var out []storage.Revision
	for i := len(revs) - 1; i >= 0 && (max <= 0 || len(out) < max); i-- {
		out = append(out, storage.Revision{Serial: revs[i].serial, Size: len(revs[i].data), TxMeta: cloneMeta(revs[i].tx.info.TxMeta)})
	}
	return out, nil
}

// Iterate yields the transactions with start <= tid < stop, oldest first.
// It copies each transaction under the read lock and yields it without
// the lock held, so the loop body may call back into the storage.
func (s *Storage) Iterate(ctx context.Context, start, stop storage.Tid) iter.Seq2[storage.TxRecords, error] {
	return func(yield func(storage.TxRecords, error) bool) {
		next := start
		for {
			if err := ctx.Err(); err != nil {
				yield(storage.TxRecords{}, fmt.Errorf("memstorage: iterate: %w", err))
				return
			}
			tx, ok, err := s.txAtOrAfter(next, stop)
			if err != nil {
				yield(storage.TxRecords{}, err)
				return
			}
			if !ok {
				return
			}
			if !yield(tx, nil) {
				return
			}
			next = tx.Tid + 1
		}
	}
}

// txAtOrAfter copies the oldest transaction with from <= tid < stop.
func (s *Storage) txAtOrAfter(from, stop storage.Tid) (storage.TxRecords, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.TxRecords{}, false, errClosed("iterate")
	}
	i := sort.Search(len(s.txns), func(i int) bool { return s.txns[i].info.Tid >= from })
	if i == len(s.txns) || (stop != storage.ZeroTid && s.txns[i].info.Tid >= stop) {
		return storage.TxRecords{}, false, nil
	}
	e := s.txns[i]
	out := storage.TxRecords{TxInfo: cloneInfo(e.info)}
	for _, r := range e.recs {
		out.Records = append(out.Records, storage.Record{Oid: r.Oid, Serial: r.Serial, Data: slices.Clone(r.Data), Refs: slices.Clone(r.Refs)})
	}
	return out, true, nil
}

func cloneInfo(i storage.TxInfo) storage.TxInfo {
	i.TxMeta = cloneMeta(i.TxMeta)
	i.Oids = slices.Clone(i.Oids)
	return i
}

// UndoLog returns up to max undoable transactions, newest first (max <= 0:
// all). Transactions before the last pack time are not undoable.
func (s *Storage) UndoLog(ctx context.Context, max int) ([]storage.TxInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstorage: undo log: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed("undo log")
	}
	var out []storage.TxInfo
	for i := len(s.txns) - 1; i >= 0 && (max <= 0 || len(out) < max); i-- {
		if s.txns[i].info.Tid < s.packTid {
			break
		}
		out = append(out, cloneInfo(s.txns[i].info))
	}
	return out, nil
}

// Undo commits a transaction restoring, for every object tid wrote, the
// revision before it. It takes the commit lock, waiting until ctx ends.
func (s *Storage) Undo(ctx context.Context, tid storage.Tid, meta storage.TxMeta) (storage.Tid, []storage.Oid, error) {
	if s.isClosed() {
		return 0, nil, errClosed("undo")
	}
	if s.readOnly {
		return 0, nil, fmt.Errorf("memstorage: undo %s: %w", tid, storage.ErrReadOnly)
	}
	if err := s.takeLock(ctx); err != nil {
		return 0, nil, fmt.Errorf("memstorage: undo %s: %w", tid, err)
	}
	defer s.lock.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, nil, errClosed("undo")
	}
	i := sort.Search(len(s.txns), func(i int) bool { return s.txns[i].info.Tid >= tid })
	if i == len(s.txns) || s.txns[i].info.Tid != tid || tid < s.packTid {
		return 0, nil, fmt.Errorf("memstorage: undo %s: no undoable transaction: %w", tid, storage.ErrNotFound)
	}
	undone := s.txns[i]
	var recs []storage.Record
	var conflicts []string
	for _, oid := range undone.info.Oids {
		revs := s.objects[oid]
		if len(revs) == 0 {
			conflicts = append(conflicts, fmt.Sprintf("%s (collected)", oid))
			continue
		}
		cur := revs[len(revs)-1]
		if cur.serial != tid {
			conflicts = append(conflicts, fmt.Sprintf("%s (changed by %s)", oid, cur.serial))
			continue
		}
		// The revision before the undone one; absent means the undone
		// transaction created the object, so undo removes it.
		rec := storage.Record{Oid: oid}
		if len(revs) >= 2 {
			prev := revs[len(revs)-2]
			rec.Data, rec.Refs = prev.data, prev.refs
		}
		recs = append(recs, rec)
	}
	if len(conflicts) > 0 {
		return 0, nil, fmt.Errorf("memstorage: undo %s: %v: %w", tid, conflicts, storage.ErrUndoConflict)
	}
	if meta.Extension == nil {
		meta.Extension = map[string]string{}
	} else {
		meta = cloneMeta(meta)
	}
	meta.Extension["undo"] = tid.String()
	info := s.commitLocked(meta, recs)
	s.log.Debug("undo", "undone", tid, "tid", info.Tid, "oids", len(info.Oids))
	if s.onCommit != nil {
		s.onCommit(cloneInfo(info))
	}
	return info.Tid, slices.Clone(info.Oids), nil
}

// commitLocked appends recs as one transaction. Callers hold the commit
// lock and s.mu.
func (s *Storage) commitLocked(meta storage.TxMeta, recs []storage.Record) storage.TxInfo {
	tid := storage.NextTid(s.lastTid, s.now())
	e := &txEntry{info: storage.TxInfo{Tid: tid, TxMeta: meta}}
	for _, r := range recs {
		r.Serial = tid
		e.recs = append(e.recs, r)
		e.info.Oids = append(e.info.Oids, r.Oid)
		s.objects[r.Oid] = append(s.objects[r.Oid], revision{serial: tid, data: r.Data, refs: r.Refs, tx: e})
		if r.Oid >= s.nextOid {
			s.nextOid = r.Oid + 1
		}
	}
	s.txns = append(s.txns, e)
	s.lastTid = tid
	return e.info
}

// Pack drops every revision not needed at or after tid and every object
// not reachable from the root at tid. It holds the storage's write lock
// for its whole (in-memory, short) run, so loads and commits wait for it
// but never see a half-packed state.
func (s *Storage) Pack(ctx context.Context, tid storage.Tid, progress func(done, total int64)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstorage: pack: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed("pack")
	}
	if s.readOnly {
		return fmt.Errorf("memstorage: pack: %w", storage.ErrReadOnly)
	}
	if limit := max(storage.TidAt(s.now()), s.lastTid+1); tid > limit {
		return fmt.Errorf("memstorage: pack to %s: tid is in the future: %w", tid, storage.ErrInvalid)
	}
	total := int64(len(s.objects))
	// Keep, per object, the revision current at tid and every newer one.
	kept := make(map[storage.Oid][]revision, len(s.objects))
	for oid, revs := range s.objects {
		i := sort.Search(len(revs), func(i int) bool { return revs[i].serial >= tid })
		from := i
		if i > 0 {
			from = i - 1
		}
		keep := revs[from:]
		if len(keep) > 0 && keep[0].data == nil && keep[0].serial < tid {
			keep = keep[1:] // nothing existed at tid; history before it goes
		}
		if len(keep) > 0 {
			kept[oid] = keep
		}
	}
	// Mark from the root as of tid and from everything written at or after
	// tid, following the references of every kept revision.
	marked := map[storage.Oid]bool{}
	var stack []storage.Oid
	push := func(o storage.Oid) {
		if !marked[o] {
			marked[o] = true
			stack = append(stack, o)
		}
	}
	push(storage.RootOid)
	for oid, revs := range kept {
		if revs[len(revs)-1].serial >= tid {
			push(oid)
		}
	}
	for len(stack) > 0 {
		o := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, r := range kept[o] {
			for _, ref := range r.refs {
				push(ref)
			}
		}
	}
	removed := 0
	var done int64
	for oid := range s.objects {
		if revs, ok := kept[oid]; ok && marked[oid] {
			s.objects[oid] = slices.Clone(revs)
		} else {
			delete(s.objects, oid)
			removed++
		}
		done++
		if progress != nil && done%1024 == 0 {
			progress(done, total)
		}
	}
	// Transactions keep only the records that survived.
	txns := s.txns[:0]
	for _, e := range s.txns {
		recs := e.recs[:0]
		for _, r := range e.recs {
			if revs, ok := s.objects[r.Oid]; ok && revs[0].serial <= r.Serial {
				recs = append(recs, r)
			}
		}
		e.recs = recs
		if len(recs) > 0 {
			txns = append(txns, e)
		}
	}
	clear(s.txns[len(txns):])
	s.txns = txns
	if tid > s.packTid {
		s.packTid = tid
	}
	if progress != nil {
		progress(total, total)
	}
	s.log.Debug("pack", "tid", tid, "objects", len(s.objects), "removed", removed)
	return nil
}

// Close aborts open transactions and releases the state. Calls after Close
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
	s.mu.Lock()
	s.objects, s.txns = nil, nil
	s.mu.Unlock()
	return nil
}

func (s *Storage) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
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

// txn is one memstorage transaction. mu serializes its methods against
// Close, which aborts it from another goroutine.
type txn struct {
	s    *Storage
	meta storage.TxMeta

	mu    sync.Mutex
	state storage.TxPhase
	recs  storage.StoreBuffer
}

func (t *txn) Store(ctx context.Context, rec storage.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.state.CheckStore("memstorage", rec.Oid); err != nil {
		return err
	}
	return t.recs.Add(ctx, "memstorage", rec)
}

func (t *txn) Vote(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.state.CheckVote("memstorage"); err != nil {
		return err
	}
	if err := t.s.takeLock(ctx); err != nil {
		t.state = storage.TxFailed
		return fmt.Errorf("memstorage: vote: %w", err)
	}
	t.s.mu.RLock()
	var conflicts []storage.Conflict
	for _, r := range t.recs.Records() {
		actual := storage.ZeroTid
		if revs := t.s.objects[r.Oid]; len(revs) > 0 && revs[len(revs)-1].data != nil {
			actual = revs[len(revs)-1].serial
		}
		if actual != r.Serial {
			conflicts = append(conflicts, storage.Conflict{Oid: r.Oid, Expected: r.Serial, Actual: actual})
		}
	}
	t.s.mu.RUnlock()
	if len(conflicts) > 0 {
		t.state = storage.TxFailed
		t.s.lock.Unlock()
		return fmt.Errorf("memstorage: vote: %w", &storage.ConflictError{Conflicts: conflicts})
	}
	t.state = storage.TxVoted
	return nil
}

func (t *txn) Finish(ctx context.Context) (storage.Tid, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.state.CheckFinish("memstorage"); err != nil {
		return 0, err
	}
	// A successful vote means Finish succeeds; ctx is not consulted.
	s := t.s
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		t.state = storage.TxDone
		s.lock.Unlock()
		return 0, errClosed("finish")
	}
	info := s.commitLocked(t.meta, t.recs.Records())
	delete(s.openTxns, t)
	s.mu.Unlock()
	t.state = storage.TxDone
	s.log.Debug("commit", "tid", info.Tid, "oids", len(info.Oids), "user", info.User)
	if s.onCommit != nil {
		s.onCommit(cloneInfo(info))
	}
	s.lock.Unlock()
	return info.Tid, nil
}

func (t *txn) Abort(ctx context.Context) error {
	t.abort()
	return nil
}

func (t *txn) abort() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == storage.TxDone {
		return
	}
	if t.state == storage.TxVoted {
		t.s.lock.Unlock()
	}
	t.state = storage.TxDone
	t.recs.Reset()
	t.s.mu.Lock()
	delete(t.s.openTxns, t)
	t.s.mu.Unlock()
}

var (
	_ storage.Storage = (*Storage)(nil)
	_ storage.Txn     = (*txn)(nil)
)
