package filestorage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"

	"github.com/zhostdb/zhost/host/storage"
)

// readTxnMeta reads the header and metadata of the transaction at pos.
func (d *dataFile) readTxnMeta(pos int64) (txnHeader, storage.TxMeta, error) {
	var hb [txnHeaderSize]byte
	if err := d.readFull(hb[:], pos); err != nil {
		return txnHeader{}, storage.TxMeta{}, err
	}
	h := decodeTxnHeader(hb[:], pos)
	n := int64(h.ulen) + int64(h.dlen) + int64(h.elen)
	if n > h.length || n > 3*maxMetaLen+int64(durableExtLen) {
		return h, storage.TxMeta{}, fmt.Errorf("transaction at %d: metadata length %d: %w", pos, n, errCorrupt)
	}
	b := make([]byte, n)
	if err := d.readFull(b, pos+txnHeaderSize); err != nil {
		return h, storage.TxMeta{}, err
	}
	meta := storage.TxMeta{User: string(b[:h.ulen]), Description: string(b[h.ulen : h.ulen+h.dlen])}
	ext, _, err := decodeExtension(b[h.ulen+h.dlen:])
	if err != nil {
		return h, meta, fmt.Errorf("transaction at %d: %w", pos, err)
	}
	meta.Extension = ext
	return h, meta, nil
}

// History returns up to max revisions of oid, newest first (max <= 0:
// all), following previous-revision pointers. An undone creation shows as
// a revision of size 0. Safe for concurrent use.
func (s *Storage) History(ctx context.Context, oid storage.Oid, max int) ([]storage.Revision, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filestorage: history %s: %w", oid, err)
	}
	d, e, ok, err := s.acquire(oid)
	if err != nil {
		return nil, errClosed("history")
	}
	defer d.release()
	if !ok {
		return nil, fmt.Errorf("filestorage: history %s: %w", oid, storage.ErrNotFound)
	}
	var out []storage.Revision
	for pos := e.pos; pos != 0 && (max <= 0 || len(out) < max); {
		if len(out)%1024 == 1023 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("filestorage: history %s: %w", oid, err)
			}
		}
		h, err := d.readRecordHeader(pos)
		if err != nil {
			return nil, fmt.Errorf("filestorage: history %s: %w", oid, err)
		}
		if h.oid != oid || (h.prev != 0 && h.prev >= pos) {
			return nil, fmt.Errorf("filestorage: history %s: record at %d: %w", oid, pos, errCorrupt)
		}
		size := int(h.dlen)
		if h.kind == kindBack {
			t, err := d.readRecordHeader(h.back)
			if err != nil {
				return nil, fmt.Errorf("filestorage: history %s: %w", oid, err)
			}
			size = int(t.dlen)
		}
		_, meta, err := d.readTxnMeta(h.txnpos)
		if err != nil {
			return nil, fmt.Errorf("filestorage: history %s: %w", oid, err)
		}
		out = append(out, storage.Revision{Serial: h.tid, Size: size, TxMeta: meta})
		pos = h.prev
	}
	return out, nil
}

// snapshot returns the current file generation and the end of the
// visible transactions.
func (s *Storage) snapshot() (*dataFile, int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.file == nil {
		return nil, 0, storage.ErrClosed
	}
	return s.file.acquire(), s.visEnd, nil
}

// Iterate yields the visible transactions with start <= tid < stop
// (stop ZeroTid: no bound), oldest first, with their records; an undone
// creation is a record with nil Data. It reads one file generation
// sequentially: a pack that swaps files meanwhile does not disturb it.
// The loop body may call back into the storage.
func (s *Storage) Iterate(ctx context.Context, start, stop storage.Tid) iter.Seq2[storage.TxRecords, error] {
	return func(yield func(storage.TxRecords, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(storage.TxRecords{}, fmt.Errorf("filestorage: iterate: %w", err))
			return
		}
		d, limit, err := s.snapshot()
		if err != nil {
			yield(storage.TxRecords{}, errClosed("iterate"))
			return
		}
		defer d.release()
		from, err := d.findStart(start, limit)
		if err != nil {
			yield(storage.TxRecords{}, fmt.Errorf("filestorage: iterate: %w", err))
			return
		}
		sc := newScanner(d, from, limit)
		for {
			if err := ctx.Err(); err != nil {
				yield(storage.TxRecords{}, fmt.Errorf("filestorage: iterate: %w", err))
				return
			}
			p, err := sc.next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(storage.TxRecords{}, fmt.Errorf("filestorage: iterate: %w", err))
				return
			}
			if p.tid < start {
				continue
			}
			if stop != storage.ZeroTid && p.tid >= stop {
				return
			}
			tx, err := d.txRecords(p)
			if err != nil {
				yield(storage.TxRecords{}, fmt.Errorf("filestorage: iterate: %w", err))
				return
			}
			if !yield(tx, nil) {
				return
			}
		}
	}
}

// findStart returns the position of the first transaction with tid >=
// start, walking back from limit through trailers (catch-up iterations
// start near the end), or from the start of the file if start precedes
// the first transaction.
func (d *dataFile) findStart(start storage.Tid, limit int64) (int64, error) {
	if start == storage.ZeroTid || limit == fileHeaderSize {
		return fileHeaderSize, nil
	}
	var hb [txnHeaderSize]byte
	if err := d.readFull(hb[:], fileHeaderSize); err != nil {
		return 0, err
	}
	if first := decodeTxnHeader(hb[:], fileHeaderSize); start <= first.tid {
		return fileHeaderSize, nil
	}
	pos := limit
	for pos > fileHeaderSize {
		h, err := d.readTxnHeaderBefore(pos)
		if err != nil {
			return 0, err
		}
		if h.tid < start {
			break
		}
		pos = h.pos
	}
	return pos, nil
}

// txRecords turns a parsed transaction into what Iterate yields, copying
// data out of the scanner's buffer and resolving back pointers.
func (d *dataFile) txRecords(p *parsedTxn) (storage.TxRecords, error) {
	tx := storage.TxRecords{TxInfo: p.info()}
	tx.Records = make([]storage.Record, len(p.recs))
	for i := range p.recs {
		r := &p.recs[i]
		rec := storage.Record{Oid: r.oid, Serial: r.tid}
		switch r.kind {
		case kindData:
			rec.Data = slices.Clone(r.data)
			if rec.Data == nil {
				rec.Data = []byte{}
			}
			rec.Refs = slices.Clone(r.refs)
		case kindBack:
			_, refs, data, _, err := d.resolve(r.pos)
			if err != nil {
				return tx, err
			}
			rec.Data, rec.Refs = data, refs
		}
		tx.Records[i] = rec
	}
	return tx, nil
}

// UndoLog returns up to max undoable transactions, newest first (max <=
// 0: all). Transactions before the last pack time are not undoable.
func (s *Storage) UndoLog(ctx context.Context, max int) ([]storage.TxInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filestorage: undo log: %w", err)
	}
	d, limit, err := s.snapshot()
	if err != nil {
		return nil, errClosed("undo log")
	}
	defer d.release()
	var out []storage.TxInfo
	for pos := limit; pos > fileHeaderSize && (max <= 0 || len(out) < max); {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("filestorage: undo log: %w", err)
		}
		h, err := d.readTxnHeaderBefore(pos)
		if err != nil {
			return nil, fmt.Errorf("filestorage: undo log: %w", err)
		}
		if h.status == statusPacked {
			break
		}
		p, err := d.readTxnAt(h.pos, pos)
		if err != nil {
			return nil, fmt.Errorf("filestorage: undo log: %w", err)
		}
		out = append(out, p.info())
		pos = h.pos
	}
	return out, nil
}

// Undo commits a new transaction that restores, for every object the
// transaction tid wrote, the revision before it, by back pointer (no data
// is copied). It takes the commit lock like Vote, waiting until ctx ends.
// storage.ErrUndoConflict if a later transaction changed one of the
// objects; storage.ErrNotFound if tid is unknown or before the last pack.
func (s *Storage) Undo(ctx context.Context, tid storage.Tid, meta storage.TxMeta) (storage.Tid, []storage.Oid, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, fmt.Errorf("filestorage: undo %s: %w", tid, err)
	}
	if s.opts.ReadOnly {
		return 0, nil, fmt.Errorf("filestorage: undo %s: %w", tid, storage.ErrReadOnly)
	}
	if err := checkMeta(meta); err != nil {
		return 0, nil, fmt.Errorf("filestorage: undo %s: %w", tid, err)
	}
	meta = cloneMeta(meta)
	if meta.Extension == nil {
		meta.Extension = map[string]string{}
	}
	meta.Extension["undo"] = tid.String()
	t := &txn{s: s, meta: meta, undo: true, byOid: map[storage.Oid]int{}}
	t.prepare = func() error { return s.prepareUndo(t, tid) }
	if !s.register(t) {
		return 0, nil, errClosed("undo")
	}
	defer t.abort() // no-op after Finish
	if err := t.Vote(ctx); err != nil {
		if errors.Is(err, storage.ErrUndoConflict) || errors.Is(err, storage.ErrNotFound) {
			return 0, nil, err
		}
		return 0, nil, fmt.Errorf("filestorage: undo %s: %w", tid, err)
	}
	oids := make([]storage.Oid, len(t.recs))
	for i, r := range t.recs {
		oids[i] = r.oid
	}
	newTid, err := t.Finish(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("filestorage: undo %s: %w", tid, err)
	}
	s.log.Debug("undo", "undone", tid, "tid", newTid, "oids", len(oids))
	return newTid, oids, nil
}

// prepareUndo runs under the commit lock: it finds transaction tid among
// the written ones and fills t with the revisions to restore.
func (s *Storage) prepareUndo(t *txn, tid storage.Tid) error {
	s.mu.RLock()
	d := s.file
	s.mu.RUnlock()
	notFound := fmt.Errorf("filestorage: undo %s: no undoable transaction: %w", tid, storage.ErrNotFound)
	var h txnHeader
	found := false
	for pos := s.end; pos > fileHeaderSize; pos = h.pos {
		var err error
		if h, err = d.readTxnHeaderBefore(pos); err != nil {
			return fmt.Errorf("filestorage: undo %s: %w", tid, err)
		}
		if h.tid <= tid || h.status == statusPacked {
			found = h.tid == tid && h.status == statusCommitted
			break
		}
	}
	if !found {
		return notFound
	}
	p, err := d.readTxnAt(h.pos, h.end())
	if err != nil {
		return fmt.Errorf("filestorage: undo %s: %w", tid, err)
	}
	for i := range p.recs {
		r := &p.recs[i]
		st := stored{oid: r.oid, serial: tid, kind: kindDeleted}
		if r.prev != 0 {
			ph, err := d.readRecordHeader(r.prev)
			if err != nil {
				return fmt.Errorf("filestorage: undo %s: %w", tid, err)
			}
			switch ph.kind {
			case kindData:
				st.kind, st.back = kindBack, ph.pos
			case kindBack:
				st.kind, st.back = kindBack, ph.back
			}
		}
		t.byOid[r.oid] = len(t.recs)
		t.recs = append(t.recs, st)
	}
	return nil
}
