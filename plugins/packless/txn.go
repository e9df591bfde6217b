package packless

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/syndtr/goleveldb/leveldb"

	"github.com/zhostdb/zhost/host/storage"
)

// txn is one packless transaction. Vote prepares the whole commit as one
// LevelDB batch (records, reference counts, collected objects, metadata);
// Finish writes it atomically. mu serializes the txn's methods against
// Close, which aborts it from another goroutine.
type txn struct {
	s    *Storage
	meta storage.TxMeta

	mu    sync.Mutex
	state storage.TxPhase // TxVoted: holds the commit lock and a prepared batch
	buf   storage.StoreBuffer

	batch     *leveldb.Batch
	tid       storage.Tid
	collected []storage.Oid // prepared by Vote; reported after Finish
	finished  bool          // Finish succeeded: Collected reports
}

func (t *txn) Store(ctx context.Context, rec storage.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.state.CheckStore("packless", rec.Oid); err != nil {
		return err
	}
	return t.buf.Add(ctx, "packless", rec)
}

func (t *txn) Vote(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.state.CheckVote("packless"); err != nil {
		return err
	}
	// Oids stored without being allocated must never be handed out.
	var top storage.Oid
	for _, r := range t.buf.Records() {
		top = max(top, r.Oid)
	}
	if t.buf.Len() > 0 && top+1 > top {
		t.s.oidMu.Lock()
		err := t.s.reserveOidsLocked(top + 1)
		if err == nil && t.s.nextOid <= top {
			t.s.nextOid = top + 1
		}
		t.s.oidMu.Unlock()
		if err != nil {
			t.state = storage.TxFailed
			return fmt.Errorf("packless: vote: %w", err)
		}
	}
	if err := t.s.takeLock(ctx); err != nil {
		t.state = storage.TxFailed
		return fmt.Errorf("packless: vote: %w", err)
	}
	if err := t.prepare(); err != nil {
		t.state = storage.TxFailed
		t.batch = nil
		t.s.lock.Unlock()
		return fmt.Errorf("packless: vote: %w", err)
	}
	t.state = storage.TxVoted
	return nil
}

// prepare checks serials and builds the batch. The caller holds the
// commit lock, so the store cannot change underneath: reads of the
// database here see exactly the state the batch applies to.
func (t *txn) prepare() error {
	s := t.s
	old := make([]object, t.buf.Len())
	existed := make([]bool, t.buf.Len())
	var conflicts []storage.Conflict
	for i, r := range t.buf.Records() {
		o, ok, err := s.getObject(s.db, r.Oid)
		if err != nil {
			return dbErr("read "+r.Oid.String(), err)
		}
		old[i], existed[i] = o, ok
		actual := storage.ZeroTid
		if ok {
			actual = o.serial
		}
		if actual != r.Serial {
			conflicts = append(conflicts, storage.Conflict{Oid: r.Oid, Expected: r.Serial, Actual: actual})
		}
	}
	if len(conflicts) > 0 {
		return &storage.ConflictError{Conflicts: conflicts}
	}
	tid := storage.NextTid(storage.Tid(s.lastTid.Load()), s.now())
	b := new(leveldb.Batch)
	rc := &refcounts{s: s, delta: map[storage.Oid]int64{}}
	// The new current records, with their references counted.
	current := map[storage.Oid]object{}
	var candidates []storage.Oid
	for i, r := range t.buf.Records() {
		if existed[i] {
			b.Delete(serialKey(old[i].serial, r.Oid))
		}
		b.Put(objKey(r.Oid), encodeObject(tid, r.Refs, r.Data))
		b.Put(serialKey(tid, r.Oid), nil)
		newRefs := refSet(r.Refs)
		current[r.Oid] = object{serial: tid, refs: newRefs}
		oldRefs := refSet(old[i].refs)
		for _, x := range newRefs {
			if _, found := slices.BinarySearch(oldRefs, x); !found {
				rc.delta[x]++
			}
		}
		for _, x := range oldRefs {
			if _, found := slices.BinarySearch(newRefs, x); !found {
				rc.delta[x]--
				candidates = append(candidates, x)
			}
		}
		if !existed[i] {
			// A new object nobody references is garbage. An object that
			// existed has a positive count (else an earlier commit would
			// have collected it), so it is a candidate only if a
			// reference to it goes away, which the loop above notes.
			candidates = append(candidates, r.Oid)
		}
	}
	// Collect: every candidate with no references left goes, and takes
	// its references' counts down with it.
	gone := map[storage.Oid]bool{}
	for n := 0; len(candidates) > 0; n++ {
		o := candidates[len(candidates)-1]
		candidates = candidates[:len(candidates)-1]
		if o == storage.RootOid || gone[o] {
			continue
		}
		cnt, err := rc.count(o)
		if err != nil {
			return err
		}
		if cnt > 0 {
			continue
		}
		obj, ok := current[o]
		if !ok {
			var err error
			obj, ok, err = s.getObject(s.db, o)
			if err != nil {
				return dbErr("read "+o.String(), err)
			}
			if !ok {
				continue // referenced but never stored
			}
			obj.refs = refSet(obj.refs)
		}
		gone[o] = true
		b.Delete(objKey(o))
		b.Delete(serialKey(obj.serial, o))
		for _, x := range obj.refs {
			rc.delta[x]--
			candidates = append(candidates, x)
		}
	}
	for o := range gone {
		delete(rc.delta, o)
		b.Delete(refcntKey(o))
	}
	if err := rc.write(b); err != nil {
		return err
	}
	b.Put(metaLastTid, be64(uint64(tid)))
	if len(gone) > 0 {
		b.Put(metaGCTid, be64(uint64(tid)))
	}
	collected := make([]storage.Oid, 0, len(gone))
	for o := range gone {
		collected = append(collected, o)
	}
	slices.Sort(collected)
	t.batch, t.tid, t.collected = b, tid, collected
	return nil
}

// refcounts overlays the changes of one commit on the stored counts.
type refcounts struct {
	s     *Storage
	base  map[storage.Oid]int64 // stored counts read so far
	delta map[storage.Oid]int64
}

func (r *refcounts) stored(o storage.Oid) (int64, error) {
	if v, ok := r.base[o]; ok {
		return v, nil
	}
	if r.base == nil {
		r.base = map[storage.Oid]int64{}
	}
	v, err := r.s.db.Get(refcntKey(o), nil)
	var n int64
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
	case err != nil:
		return 0, dbErr("read reference count of "+o.String(), err)
	default:
		u, w := binary.Uvarint(v)
		if w <= 0 {
			return 0, fmt.Errorf("packless: reference count of %s: %w", o, errCorruptRecord)
		}
		n = int64(u)
	}
	r.base[o] = n
	return n, nil
}

func (r *refcounts) count(o storage.Oid) (int64, error) {
	n, err := r.stored(o)
	return n + r.delta[o], err
}

func (r *refcounts) write(b *leveldb.Batch) error {
	for o, d := range r.delta {
		if d == 0 {
			continue
		}
		n, err := r.count(o)
		if err != nil {
			return err
		}
		if n < 0 {
			r.s.log.Warn("reference count went below zero; clamping", "oid", o, "count", n)
			n = 0
		}
		if n == 0 {
			b.Delete(refcntKey(o))
		} else {
			b.Put(refcntKey(o), binary.AppendUvarint(nil, uint64(n)))
		}
	}
	return nil
}

func (t *txn) Finish(ctx context.Context) (storage.Tid, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.state.CheckFinish("packless"); err != nil {
		return 0, err
	}
	s := t.s
	defer t.done()
	if len(t.collected) > 0 {
		s.gcTid.Store(uint64(t.tid)) // before the write: see LoadBefore
	}
	if err := s.db.Write(t.batch, s.wo); err != nil {
		s.log.Error("commit failed", "tid", t.tid, "error", err)
		return 0, dbErr("finish "+t.tid.String(), err)
	}
	s.lastTid.Store(uint64(t.tid))
	t.finished = true
	s.log.Debug("commit", "tid", t.tid, "oids", t.buf.Len(), "collected", len(t.collected), "user", t.meta.User)
	return t.tid, nil
}

// Collected returns the oids the finished commit removed because nothing
// referenced them any more (storage.CollectingTxn); nil before a
// successful Finish. Sorted ascending.
func (t *txn) Collected() []storage.Oid {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.finished || len(t.collected) == 0 {
		return nil
	}
	return slices.Clone(t.collected)
}

func (t *txn) Abort(ctx context.Context) error {
	t.abort()
	return nil
}

func (t *txn) abort() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != storage.TxDone {
		t.done()
	}
}

// done ends the transaction: releases the commit lock if held and forgets
// it. Callers hold t.mu.
func (t *txn) done() {
	if t.state == storage.TxVoted {
		t.s.lock.Unlock()
	}
	t.state = storage.TxDone
	t.buf.Reset()
	t.batch = nil
	t.s.mu.Lock()
	delete(t.s.openTxns, t)
	t.s.mu.Unlock()
}

var (
	_ storage.Txn           = (*txn)(nil)
	_ storage.CollectingTxn = (*txn)(nil)
)
