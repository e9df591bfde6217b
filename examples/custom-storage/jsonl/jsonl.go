// Package jsonl is the backend of the custom-storage example plugin: a
// small storage kept in one append-only JSON-lines file, written only
// against host/storage and plugins/sdk. Each committed transaction is one
// line; oid allocations are lines too, so oids are never reused. Opening
// replays the file; a torn or garbled tail (a crash in the middle of a
// write) is cut off.
//
// It keeps only the current revision of each object (no history, undo or
// pack), so its file grows with every commit: it is an example of the
// plugin contract, not a production backend.
package jsonl

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
)

// TypeName is the backend type the example plugin exports.
const TypeName = "jsonl"

// Schema is the config schema of a storage block of type jsonl.
func Schema() hcl.Schema {
	return hcl.Schema{Attributes: []hcl.Attribute{
		{Name: "path", Type: hcl.TypePath, Required: true, Description: "the JSON-lines file"},
		{Name: "sync", Type: hcl.TypeBool, Default: true, Description: "fsync every commit"},
		{Name: "read_only", Type: hcl.TypeBool, Default: false, Description: "refuse every write"},
	}}
}

// Options configures a Storage.
type Options struct {
	// Path is the file; it is created if missing.
	Path string
	// Sync fsyncs after every commit and oid allocation.
	Sync     bool
	ReadOnly bool
	Logger   hclog.Logger
}

// FromConfig opens the storage a storage block describes.
func FromConfig(v hcl.Values, logger hclog.Logger) (*Storage, error) {
	path, _ := v["path"].(string)
	if path == "" {
		return nil, fmt.Errorf("jsonl: missing path: %w", storage.ErrInvalid)
	}
	sync, ok := v["sync"].(bool)
	if !ok {
		sync = true
	}
	ro, _ := v["read_only"].(bool)
	return Open(Options{Path: path, Sync: sync, ReadOnly: ro, Logger: logger})
}

// line is one line of the file.
type line struct {
	// Kind is "tx" (a committed transaction) or "oids" (an allocation;
	// Next is the first oid not yet handed out).
	Kind string            `json:"k"`
	Tid  uint64            `json:"tid,omitempty"`
	User string            `json:"user,omitempty"`
	Desc string            `json:"desc,omitempty"`
	Ext  map[string]string `json:"ext,omitempty"`
	Recs []lineRecord      `json:"recs,omitempty"`
	Next uint64            `json:"next,omitempty"`
}

type lineRecord struct {
	Oid  uint64   `json:"oid"`
	Data []byte   `json:"data"`
	Refs []uint64 `json:"refs,omitempty"`
}

type object struct {
	serial storage.Tid
	data   []byte
	refs   []storage.Oid
}

// Storage is a jsonl storage. All methods are safe for concurrent use.
type Storage struct {
	opts Options
	lock *storage.CommitLock

	mu      sync.RWMutex
	f       *os.File
	objects map[storage.Oid]object
	metas   map[storage.Tid]storage.TxMeta // meta of every tid still some object's serial
	uses    map[storage.Tid]int            // how many objects have each tid as serial
	last    storage.Tid
	nextOid storage.Oid
	txns    map[*txn]struct{}
	closed  bool
}

// Open opens (creating if missing) the storage file.
func Open(opts Options) (*Storage, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o755); err != nil {
		return nil, fmt.Errorf("jsonl: open %s: %w", opts.Path, err)
	}
	f, err := os.OpenFile(opts.Path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jsonl: open %s: %w", opts.Path, err)
	}
	s := &Storage{
		opts:    opts,
		lock:    storage.NewCommitLock(),
		f:       f,
		objects: map[storage.Oid]object{},
		metas:   map[storage.Tid]storage.TxMeta{},
		uses:    map[storage.Tid]int{},
		nextOid: 1,
		txns:    map[*txn]struct{}{},
	}
	if err := s.replay(); err != nil {
		_ = f.Close()
		return nil, err
	}
	return s, nil
}

// replay reads every line and cuts off a damaged tail.
func (s *Storage) replay() error {
	data, err := os.ReadFile(s.opts.Path)
	if err != nil {
		return fmt.Errorf("jsonl: read %s: %w", s.opts.Path, err)
	}
	good := 0
	for good < len(data) {
		end := bytes.IndexByte(data[good:], '\n')
		if end < 0 {
			break // a line without its newline was torn
		}
		var l line
		if err := json.Unmarshal(data[good:good+end], &l); err != nil {
			break
		}
		s.apply(l)
		good += end + 1
	}
	if good < len(data) {
		s.opts.Logger.Warn("cutting off a damaged tail", "path", s.opts.Path, "offset", good, "bytes", len(data)-good)
		if s.opts.ReadOnly {
			return fmt.Errorf("jsonl: %s has a damaged tail at offset %d and the storage is read-only", s.opts.Path, good)
		}
		if err := s.f.Truncate(int64(good)); err != nil {
			return fmt.Errorf("jsonl: truncate %s: %w", s.opts.Path, err)
		}
	}
	if _, err := s.f.Seek(int64(good), 0); err != nil {
		return fmt.Errorf("jsonl: seek %s: %w", s.opts.Path, err)
	}
	return nil
}

func (s *Storage) apply(l line) {
	switch l.Kind {
	case "oids":
		if storage.Oid(l.Next) > s.nextOid {
			s.nextOid = storage.Oid(l.Next)
		}
	case "tx":
		tid := storage.Tid(l.Tid)
		for _, r := range l.Recs {
			if old, ok := s.objects[storage.Oid(r.Oid)]; ok {
				if s.uses[old.serial]--; s.uses[old.serial] <= 0 {
					delete(s.uses, old.serial)
					delete(s.metas, old.serial)
				}
			}
			s.uses[tid]++
			refs := make([]storage.Oid, len(r.Refs))
			for i, o := range r.Refs {
				refs[i] = storage.Oid(o)
			}
			data := r.Data
			if data == nil {
				data = []byte{}
			}
			s.objects[storage.Oid(r.Oid)] = object{serial: tid, data: data, refs: refs}
			if storage.Oid(r.Oid) >= s.nextOid {
				s.nextOid = storage.Oid(r.Oid) + 1
			}
		}
		if s.uses[tid] > 0 {
			s.metas[tid] = storage.TxMeta{User: l.User, Description: l.Desc, Extension: l.Ext}
		}
		if tid > s.last {
			s.last = tid
		}
	}
}

func (s *Storage) write(l line) error {
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("jsonl: encode: %w", err)
	}
	b = append(b, '\n')
	if _, err := s.f.Write(b); err != nil {
		return fmt.Errorf("jsonl: write %s: %w", s.opts.Path, err)
	}
	if s.opts.Sync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("jsonl: sync %s: %w", s.opts.Path, err)
		}
	}
	return nil
}

func errClosed(op string) error { return fmt.Errorf("jsonl: %s: %w", op, storage.ErrClosed) }

// Capabilities: current revisions only.
func (s *Storage) Capabilities() storage.Capabilities {
	return storage.Capabilities{ReadOnly: s.opts.ReadOnly}
}

func (s *Storage) Load(ctx context.Context, oid storage.Oid) (storage.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.Record{}, errClosed("load")
	}
	o, ok := s.objects[oid]
	if !ok {
		return storage.Record{}, fmt.Errorf("jsonl: load %s: %w", oid, storage.ErrNotFound)
	}
	return storage.Record{Oid: oid, Serial: o.serial, Data: slices.Clone(o.data), Refs: slices.Clone(o.refs)}, nil
}

// LoadBefore works only when the current revision is older than tid.
func (s *Storage) LoadBefore(ctx context.Context, oid storage.Oid, tid storage.Tid) (storage.Record, storage.Tid, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.Record{}, 0, errClosed("load before")
	}
	o, ok := s.objects[oid]
	switch {
	case !ok:
		return storage.Record{}, 0, fmt.Errorf("jsonl: load %s before %s: %w", oid, tid, storage.ErrNotFound)
	case o.serial < tid:
		return storage.Record{Oid: oid, Serial: o.serial, Data: slices.Clone(o.data), Refs: slices.Clone(o.refs)}, storage.ZeroTid, nil
	default:
		return storage.Record{}, 0, fmt.Errorf("jsonl: load %s before %s: the current revision is newer and there is no history: %w", oid, tid, storage.ErrNotSupported)
	}
}

func (s *Storage) NewOids(ctx context.Context, n int) ([]storage.Oid, error) {
	if n < 1 || n > 65536 {
		return nil, fmt.Errorf("jsonl: new oids: n = %d out of 1..65536: %w", n, storage.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed("new oids")
	}
	if s.opts.ReadOnly {
		return nil, fmt.Errorf("jsonl: new oids: %w", storage.ErrReadOnly)
	}
	first := s.nextOid
	if err := s.write(line{Kind: "oids", Next: uint64(first) + uint64(n)}); err != nil {
		return nil, err
	}
	s.nextOid += storage.Oid(n)
	out := make([]storage.Oid, n)
	for i := range out {
		out[i] = first + storage.Oid(i)
	}
	return out, nil
}

func (s *Storage) LastTid(ctx context.Context) (storage.Tid, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, errClosed("last tid")
	}
	return s.last, nil
}

func (s *Storage) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed("begin")
	}
	if s.opts.ReadOnly {
		return nil, fmt.Errorf("jsonl: begin: %w", storage.ErrReadOnly)
	}
	t := &txn{s: s, meta: meta}
	s.txns[t] = struct{}{}
	return t, nil
}

func (s *Storage) History(ctx context.Context, oid storage.Oid, max int) ([]storage.Revision, error) {
	return nil, fmt.Errorf("jsonl: history: %w", storage.ErrNotSupported)
}

// Iterate yields the current state as one synthetic transaction per
// distinct serial, oldest first.
func (s *Storage) Iterate(ctx context.Context, start, stop storage.Tid) iter.Seq2[storage.TxRecords, error] {
	return func(yield func(storage.TxRecords, error) bool) {
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			yield(storage.TxRecords{}, errClosed("iterate"))
			return
		}
		byTid := map[storage.Tid][]storage.Record{}
		for oid, o := range s.objects {
			if o.serial >= start && (stop == storage.ZeroTid || o.serial < stop) {
				byTid[o.serial] = append(byTid[o.serial], storage.Record{Oid: oid, Serial: o.serial, Data: slices.Clone(o.data), Refs: slices.Clone(o.refs)})
			}
		}
		metas := maps.Clone(s.metas)
		s.mu.RUnlock()
		for _, tid := range slices.Sorted(maps.Keys(byTid)) {
			if err := ctx.Err(); err != nil {
				yield(storage.TxRecords{}, fmt.Errorf("jsonl: iterate: %w", err))
				return
			}
			recs := byTid[tid]
			slices.SortFunc(recs, func(a, b storage.Record) int { return cmp.Compare(a.Oid, b.Oid) })
			oids := make([]storage.Oid, len(recs))
			for i, r := range recs {
				oids[i] = r.Oid
			}
			if !yield(storage.TxRecords{TxInfo: storage.TxInfo{Tid: tid, TxMeta: metas[tid], Oids: oids}, Records: recs}, nil) {
				return
			}
		}
	}
}

func (s *Storage) UndoLog(ctx context.Context, max int) ([]storage.TxInfo, error) {
	return nil, fmt.Errorf("jsonl: undo log: %w", storage.ErrNotSupported)
}

func (s *Storage) Undo(ctx context.Context, tid storage.Tid, meta storage.TxMeta) (storage.Tid, []storage.Oid, error) {
	return 0, nil, fmt.Errorf("jsonl: undo: %w", storage.ErrNotSupported)
}

func (s *Storage) Pack(ctx context.Context, tid storage.Tid, progress func(done, total int64)) error {
	return fmt.Errorf("jsonl: pack: %w", storage.ErrNotSupported)
}

// Close aborts open transactions (releasing the commit lock and any vote
// waiting for it) and closes the file.
func (s *Storage) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	txns := slices.Collect(maps.Keys(s.txns))
	s.txns = nil
	s.mu.Unlock()
	for _, t := range txns {
		t.closeByStorage()
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("jsonl: close %s: %w", s.opts.Path, err)
	}
	return nil
}

type txn struct {
	s    *Storage
	meta storage.TxMeta

	mu     sync.Mutex
	state  storage.TxPhase
	recs   storage.StoreBuffer
	locked bool
	// cancelVote ends a vote waiting for the commit lock when the storage
	// closes.
	cancelVote context.CancelFunc
}

func (t *txn) Store(ctx context.Context, rec storage.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.state.CheckStore("jsonl", rec.Oid); err != nil {
		return err
	}
	return t.recs.Add(ctx, "jsonl", rec)
}

func (t *txn) Vote(ctx context.Context) error {
	t.mu.Lock()
	switch t.state {
	case storage.TxDone:
		t.mu.Unlock()
		return fmt.Errorf("jsonl: vote: transaction is over: %w", storage.ErrClosed)
	case storage.TxVoted, storage.TxFailed:
		t.mu.Unlock()
		return fmt.Errorf("jsonl: vote twice: %w", storage.ErrInvalid)
	}
	vctx, cancel := context.WithCancel(ctx)
	t.cancelVote = cancel
	t.mu.Unlock()
	err := t.s.lock.Lock(vctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cancelVote = nil
	cancel()
	if t.state == storage.TxDone { // closed while waiting
		if err == nil {
			t.s.lock.Unlock()
		}
		return fmt.Errorf("jsonl: vote: storage closed: %w", storage.ErrClosed)
	}
	if err != nil {
		t.state = storage.TxFailed
		return fmt.Errorf("jsonl: vote: %w", err)
	}
	t.s.mu.RLock()
	if t.s.closed {
		// Close released the lock (aborting the transaction holding it)
		// just before it would have ended this wait.
		t.s.mu.RUnlock()
		t.s.lock.Unlock()
		t.state = storage.TxDone
		return fmt.Errorf("jsonl: vote: %w", storage.ErrClosed)
	}
	t.locked = true
	var conflicts []storage.Conflict
	for _, r := range t.recs.Records() {
		cur := t.s.objects[r.Oid].serial
		if cur != r.Serial {
			conflicts = append(conflicts, storage.Conflict{Oid: r.Oid, Expected: r.Serial, Actual: cur})
		}
	}
	t.s.mu.RUnlock()
	if len(conflicts) > 0 {
		t.state = storage.TxFailed
		return fmt.Errorf("jsonl: vote: %w", &storage.ConflictError{Conflicts: conflicts})
	}
	t.state = storage.TxVoted
	return nil
}

func (t *txn) Finish(ctx context.Context) (storage.Tid, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.state {
	case storage.TxDone:
		return 0, fmt.Errorf("jsonl: finish: transaction is over: %w", storage.ErrClosed)
	case storage.TxOpen, storage.TxFailed:
		return 0, fmt.Errorf("jsonl: finish without a successful vote: %w", storage.ErrInvalid)
	}
	s := t.s
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, errClosed("finish")
	}
	tid := storage.NextTid(s.last, time.Now())
	l := line{Kind: "tx", Tid: uint64(tid), User: t.meta.User, Desc: t.meta.Description, Ext: t.meta.Extension}
	for _, r := range t.recs.Records() {
		refs := make([]uint64, len(r.Refs))
		for i, o := range r.Refs {
			refs[i] = uint64(o)
		}
		l.Recs = append(l.Recs, lineRecord{Oid: uint64(r.Oid), Data: r.Data, Refs: refs})
	}
	if err := s.write(l); err != nil {
		s.mu.Unlock()
		return 0, err
	}
	s.apply(l)
	delete(s.txns, t)
	s.mu.Unlock()
	t.state = storage.TxDone
	t.locked = false
	s.lock.Unlock()
	return tid, nil
}

func (t *txn) Abort(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == storage.TxDone {
		return nil
	}
	t.finishLocked()
	t.s.mu.Lock()
	if t.s.txns != nil {
		delete(t.s.txns, t)
	}
	t.s.mu.Unlock()
	return nil
}

// closeByStorage ends the transaction because its storage closed.
func (t *txn) closeByStorage() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != storage.TxDone {
		t.finishLocked()
	}
}

func (t *txn) finishLocked() {
	t.state = storage.TxDone
	t.recs.Reset()
	if t.cancelVote != nil {
		t.cancelVote()
	}
	if t.locked {
		t.locked = false
		t.s.lock.Unlock()
	}
}

// Crash damages a closed storage's file the way a kill -9 or a power loss
// would, for the conformance suite: truncate cuts the end, garbage
// overwrites it.
func Crash(path string, truncate bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	n := min(fi.Size(), 37)
	if truncate {
		return os.Truncate(path, fi.Size()-n)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(bytes.Repeat([]byte{0xff}, int(n)), fi.Size()-n)
	return errors.Join(err, f.Sync())
}

var (
	_ storage.Storage = (*Storage)(nil)
	_ storage.Txn     = (*txn)(nil)
)
