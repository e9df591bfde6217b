package packless

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/zhostdb/zhost/host/storage"
)

// CollectStats reports what a full collection did.
type CollectStats struct {
	Live      int           // objects reachable from the root
	Removed   int           // unreachable objects deleted
	Recounted int           // reference counts corrected
	Reindexed int           // serial index entries added or removed
	Took      time.Duration // wall time, commit lock held throughout
}

// collectBatch bounds the size of one write of a collection.
const collectBatch = 4096

// Collect runs a full mark-and-sweep from the root: it deletes every
// object not reachable from it (which reference counting alone never
// frees: cycles), and rebuilds the reference counts and the serial index
// from what is reachable. Commits made with a correct store never need
// it; run it after a recovery (Open does) or from time to time when
// objects may form cycles.
//
// It holds the commit lock for its whole run (waiting for it until ctx
// ends), so commits wait while loads go on. It is safe to interrupt: it
// deletes only unreachable objects, and counts are fixed after deletion,
// so a crash in between leaves counts too high (objects leak until the
// next Collect), never too low.
func (s *Storage) Collect(ctx context.Context) (CollectStats, error) {
	start := time.Now()
	var st CollectStats
	if s.readOnly {
		return st, fmt.Errorf("packless: collect: %w", storage.ErrReadOnly)
	}
	if err := s.takeLock(ctx); err != nil {
		return st, fmt.Errorf("packless: collect: %w", err)
	}
	defer s.lock.Unlock()
	// Mark, counting the references of live objects as we go.
	counts := map[storage.Oid]uint64{}
	serials := map[storage.Oid]storage.Tid{}
	stack := []storage.Oid{storage.RootOid}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("packless: collect: %w", err)
		}
		if s.closeCtx.Err() != nil {
			return st, fmt.Errorf("packless: collect: %w", storage.ErrClosed)
		}
		o := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		obj, ok, err := s.getObject(s.db, o)
		if err != nil {
			return st, dbErr("collect: read "+o.String(), err)
		}
		if !ok {
			delete(serials, o) // a dangling reference
			continue
		}
		serials[o] = obj.serial
		for _, r := range refSet(obj.refs) {
			counts[r]++
			if _, seen := serials[r]; !seen {
				serials[r] = 0 // pushed; the real serial comes when popped
				stack = append(stack, r)
			}
		}
	}
	st.Live = len(serials)
	w := &batchWriter{s: s}
	// Sweep objects.
	it := s.db.NewIterator(&util.Range{Start: []byte{kindObject}, Limit: []byte{kindObject + 1}}, nil)
	for it.Next() {
		k := it.Key()
		if len(k) != 9 {
			continue
		}
		o := storage.Oid(binary.BigEndian.Uint64(k[1:]))
		if _, live := serials[o]; live || o == storage.RootOid {
			continue
		}
		obj, err := decodeObject(it.Value())
		if err == nil {
			w.b.Delete(serialKey(obj.serial, o))
		}
		w.b.Delete(objKey(o))
		st.Removed++
		if err := w.maybeFlush(); err != nil {
			it.Release()
			return st, err
		}
	}
	it.Release()
	if err := it.Error(); err != nil {
		return st, dbErr("collect: sweep", err)
	}
	if err := w.flush(); err != nil {
		return st, err
	}
	// Reference counts: drop stale ones, fix wrong ones, add missing ones.
	it = s.db.NewIterator(&util.Range{Start: []byte{kindRefcnt}, Limit: []byte{kindRefcnt + 1}}, nil)
	seen := map[storage.Oid]bool{}
	for it.Next() {
		k := it.Key()
		if len(k) != 9 {
			continue
		}
		o := storage.Oid(binary.BigEndian.Uint64(k[1:]))
		seen[o] = true
		have, n := binary.Uvarint(it.Value())
		want := counts[o]
		if _, live := serials[o]; !live {
			want = 0
		}
		if n > 0 && have == want {
			continue
		}
		if want == 0 {
			w.b.Delete(refcntKey(o))
		} else {
			w.b.Put(refcntKey(o), binary.AppendUvarint(nil, want))
		}
		st.Recounted++
		if err := w.maybeFlush(); err != nil {
			it.Release()
			return st, err
		}
	}
	it.Release()
	if err := it.Error(); err != nil {
		return st, dbErr("collect: recount", err)
	}
	for o, n := range counts {
		if _, live := serials[o]; live && !seen[o] {
			w.b.Put(refcntKey(o), binary.AppendUvarint(nil, n))
			st.Recounted++
			if err := w.maybeFlush(); err != nil {
				return st, err
			}
		}
	}
	// Serial index: exactly one entry per live object, at its serial.
	it = s.db.NewIterator(&util.Range{Start: []byte{kindSerial}, Limit: []byte{kindSerial + 1}}, nil)
	indexed := map[storage.Oid]bool{}
	for it.Next() {
		serial, o, ok := parseSerialKey(it.Key())
		if cur, live := serials[o]; ok && live && cur == serial {
			indexed[o] = true
			continue
		}
		w.b.Delete(it.Key())
		st.Reindexed++
		if err := w.maybeFlush(); err != nil {
			it.Release()
			return st, err
		}
	}
	it.Release()
	if err := it.Error(); err != nil {
		return st, dbErr("collect: reindex", err)
	}
	for o, serial := range serials {
		if !indexed[o] {
			w.b.Put(serialKey(serial, o), nil)
			st.Reindexed++
			if err := w.maybeFlush(); err != nil {
				return st, err
			}
		}
	}
	if st.Removed > 0 {
		// Collected objects may have been visible to any earlier
		// snapshot: LoadBefore must not report them as never existing.
		gc := storage.Tid(s.lastTid.Load()) + 1
		s.gcTid.Store(uint64(gc))
		w.b.Put(metaGCTid, be64(uint64(gc)))
	}
	if err := w.flush(); err != nil {
		return st, err
	}
	st.Took = time.Since(start)
	s.log.Info("collected", "live", st.Live, "removed", st.Removed, "recounted", st.Recounted,
		"reindexed", st.Reindexed, "took", st.Took)
	return st, nil
}

// batchWriter writes a long run of changes in bounded batches.
type batchWriter struct {
	s *Storage
	b leveldb.Batch
}

func (w *batchWriter) maybeFlush() error {
	if w.b.Len() < collectBatch {
		return nil
	}
	return w.flush()
}

func (w *batchWriter) flush() error {
	if w.b.Len() == 0 {
		return nil
	}
	if err := w.s.db.Write(&w.b, &opt.WriteOptions{Sync: true}); err != nil {
		return dbErr("collect: write", err)
	}
	w.b.Reset()
	return nil
}
