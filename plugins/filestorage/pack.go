package filestorage

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/zhostdb/zhost/host/storage"
)

// Pack removes every revision not needed at or after tid and every object
// not reachable at tid from the root or from anything written since. It
// copies what stays to Data.fs.pack and renames that over Data.fs.
//
// Order of operations: (1) without any lock, scan the visible file to find
// the revision of each object current at tid and the reachable set; (2)
// still without a lock, copy the kept records, rewriting previous-revision
// and back pointers; (3) take the commit lock, copy the transactions
// committed meanwhile, fsync, rename, and swap the open file and index.
// Loads go on throughout (a reader of the old generation keeps it open
// until done); commits wait only during step 3. One pack runs at a time;
// a second waits for the first. progress gets bytes done and total, never
// while a lock is held. Errors: storage.ErrInvalid for a tid in the
// future, storage.ErrReadOnly, storage.ErrClosed if the storage closes
// meanwhile, the context's error if it ends; a failed pack leaves Data.fs
// as it was.
func (s *Storage) Pack(ctx context.Context, tid storage.Tid, progress func(done, total int64)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filestorage: pack: %w", err)
	}
	if s.opts.ReadOnly {
		return fmt.Errorf("filestorage: pack: %w", storage.ErrReadOnly)
	}
	last, err := s.LastTid(ctx)
	if err != nil {
		return fmt.Errorf("filestorage: pack: %w", err)
	}
	if limit := max(storage.TidAt(s.opts.Now()), last+1); tid > limit {
		return fmt.Errorf("filestorage: pack to %s: tid is in the future: %w", tid, storage.ErrInvalid)
	}
	if !s.startBackground() {
		return errClosed("pack")
	}
	defer s.bg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closeCtx, cancel)
	defer stop()
	select {
	case s.packSem <- struct{}{}:
	case <-ctx.Done():
		return s.packErr(ctx, fmt.Errorf("waiting for another pack: %w", ctx.Err()))
	}
	defer func() { <-s.packSem }()
	began := time.Now()
	var p *packer
	for attempt := 1; ; attempt++ {
		p = &packer{s: s, ctx: ctx, tid: tid, progress: progress}
		err := p.run()
		if err == nil {
			break
		}
		_ = os.Remove(s.path + ".pack")
		if errors.Is(err, errRevived) && attempt < maxPackAttempts {
			s.log.Info("pack: a transaction committed meanwhile references an object found unreachable; packing again", "path", s.path, "attempt", attempt)
			continue
		}
		return s.packErr(ctx, err)
	}
	p.report(true) // after the locks are released
	s.log.Info("packed", "path", s.path, "pack_tid", tid, "bytes_before", p.sizeBefore, "bytes_after", p.sizeAfter,
		"objects", p.objects, "elapsed", time.Since(began).Round(time.Millisecond))
	return nil
}

func (s *Storage) packErr(ctx context.Context, err error) error {
	if s.closeCtx.Err() != nil && ctx.Err() != nil {
		return errClosed("pack")
	}
	return fmt.Errorf("filestorage: pack: %w", err)
}

// errRevived: a transaction committed while pack copied references an
// object pack found unreachable and did not copy. The pack is abandoned
// (Data.fs unchanged) and run again, which sees that transaction.
var errRevived = errors.New("a transaction committed during pack references an object the pack dropped")

// maxPackAttempts bounds the reruns after errRevived.
const maxPackAttempts = 3

type packer struct {
	s        *Storage
	ctx      context.Context
	tid      storage.Tid
	progress func(done, total int64)

	done, total, reported int64
	sizeBefore, sizeAfter int64
	objects               int

	// Output.
	f       *os.File
	w       *bufio.Writer
	pos     int64
	fileID  [16]byte
	builder txnBuilder
	newPos  map[int64]int64 // old offset -> new offset of copied kindData records
	lastNew map[storage.Oid]entry

	// What step 1 found, to check the transactions step 3 copies.
	atPack    map[storage.Oid]atPackRev
	reachable map[storage.Oid]bool
}

// checkRevived fails with errRevived if a record of t (committed after
// the scan) references an object that had a revision at the pack tid but
// was found unreachable, so was not copied.
func (p *packer) checkRevived(d *dataFile, t *parsedTxn) error {
	for i := range t.recs {
		r := &t.recs[i]
		refs := r.refs
		if r.kind == kindBack {
			var err error
			if _, refs, _, _, err = d.resolve(r.pos); err != nil {
				return fmt.Errorf("copy new transactions: %w", err)
			}
		}
		for _, ref := range refs {
			if rev, ok := p.atPack[ref]; ok && !rev.deleted && !p.reachable[ref] {
				return fmt.Errorf("%w (oid %s, transaction %s)", errRevived, ref, t.tid)
			}
		}
	}
	return nil
}

type atPackRev struct {
	pos     int64
	deleted bool
}

func (p *packer) report(force bool) {
	if p.progress == nil || (!force && p.done-p.reported < 1<<20) {
		return
	}
	p.reported = p.done
	p.progress(p.done, p.total)
}

func (p *packer) run() error {
	s := p.s
	d, visEnd, err := s.snapshot()
	if err != nil {
		return err
	}
	defer d.release()
	p.sizeBefore = visEnd
	span := visEnd - fileHeaderSize
	p.total = 2 * span

	// Step 1: the revision current at tid of every object, and the roots:
	// the root object plus everything written at or after tid.
	atPack := map[storage.Oid]atPackRev{}
	reachable := map[storage.Oid]bool{}
	var stack []storage.Oid
	push := func(o storage.Oid) {
		if !reachable[o] {
			reachable[o] = true
			stack = append(stack, o)
		}
	}
	push(storage.RootOid)
	sc := newScanner(d, fileHeaderSize, visEnd)
	for {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		t, err := sc.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		for i := range t.recs {
			r := &t.recs[i]
			if r.tid < p.tid {
				atPack[r.oid] = atPackRev{pos: r.pos, deleted: r.kind == kindDeleted}
				continue
			}
			push(r.oid)
			refs := r.refs
			if r.kind == kindBack {
				if _, refs, _, _, err = d.resolve(r.pos); err != nil {
					return fmt.Errorf("scan: %w", err)
				}
			}
			for _, ref := range refs {
				push(ref)
			}
		}
		p.done = sc.pos - fileHeaderSize
		p.report(false)
	}
	p.atPack, p.reachable = atPack, reachable
	// Mark: follow the references of the revisions current at tid.
	for len(stack) > 0 {
		if len(stack)%4096 == 0 {
			if err := p.ctx.Err(); err != nil {
				return err
			}
		}
		o := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		rev, ok := atPack[o]
		if !ok || rev.deleted {
			continue
		}
		_, refs, _, _, err := d.resolve(rev.pos)
		if err != nil {
			return fmt.Errorf("mark: %w", err)
		}
		for _, ref := range refs {
			push(ref)
		}
	}

	// Step 2: copy, without any lock.
	if err := p.create(); err != nil {
		return err
	}
	defer func() {
		if p.f != nil {
			_ = p.f.Close()
		}
	}()
	keep := func(r *parsedRec) bool {
		rev, ok := atPack[r.oid]
		return ok && rev.pos == r.pos && !rev.deleted && reachable[r.oid]
	}
	sc = newScanner(d, fileHeaderSize, visEnd)
	for {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		t, err := sc.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		if t.tid >= p.tid {
			if err := p.copyTxn(d, t, t.recs, t.status); err != nil {
				return err
			}
		} else {
			var kept []parsedRec
			for i := range t.recs {
				if keep(&t.recs[i]) {
					kept = append(kept, t.recs[i])
				}
			}
			// The newest transaction stays even if empty: it carries the
			// last tid, which must survive so tids never go backwards.
			if len(kept) > 0 || t.end() == visEnd {
				if err := p.copyTxn(d, t, kept, statusPacked); err != nil {
					return err
				}
			}
		}
		p.done = span + sc.pos - fileHeaderSize
		p.report(false)
	}

	// Step 3: under the commit lock, catch up and swap.
	if err := s.takeLock(p.ctx); err != nil {
		return err
	}
	defer s.commit.Unlock()
	// Publish everything a group commit still has queued, and keep the
	// syncer out while the file changes under it.
	if err := s.syncTo(s.syncTarget()); err != nil {
		return err
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	end := s.end
	p.total += end - visEnd
	sc = newScanner(d, visEnd, end)
	for {
		t, err := sc.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("copy new transactions: %w", err)
		}
		if err := p.checkRevived(d, t); err != nil {
			return err
		}
		if err := p.copyTxn(d, t, t.recs, t.status); err != nil {
			return err
		}
		// No progress calls here: the callback must never run while
		// commits wait for this step.
		p.done = 2*span + sc.pos - visEnd
	}
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", p.f.Name(), err)
	}
	// The packed file is preallocated like the one it replaces; the
	// fsync below makes its size durable with its data.
	alloc := p.pos
	if s.opts.Sync != SyncNone && !s.opts.noPrealloc {
		to := p.pos + preallocChunk(p.pos)
		if err := extendFile(p.f, p.pos, to); err != nil {
			s.log.Warn("pack: could not preallocate space in the packed file", "path", s.path, "error", err)
			if fi, err := p.f.Stat(); err == nil {
				alloc = fi.Size()
			}
		} else {
			alloc = to
		}
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", p.f.Name(), err)
	}
	if s.opts.KeepOld {
		old := s.path + ".old"
		if err := os.Remove(old); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("keep old file: %w", err)
		}
		if err := os.Link(s.path, old); err != nil {
			return fmt.Errorf("keep old file: %w", err)
		}
	}
	if err := os.Rename(p.f.Name(), s.path); err != nil {
		return fmt.Errorf("swap in packed file: %w", err)
	}
	// From here on the packed file is Data.fs: adopt it whatever happens,
	// or commits would go to the replaced file.
	syncRename := func() error { return syncDir(filepath.Dir(s.path)) }
	if s.packDirSyncHook != nil {
		syncRename = s.packDirSyncHook
	}
	if err := syncRename(); err != nil {
		// A power loss may bring the old file back under the name, and
		// with it lose every commit made to the packed file: take none
		// until a reopen (which fsyncs the directory) makes it durable.
		err = fmt.Errorf("fsync the directory after renaming the packed file over %s: %w", s.path, err)
		s.broken.Store(&err)
		s.log.Error("pack: the rename may not survive a power loss; refusing further commits until the storage is reopened", "path", s.path, "error", err)
	}
	index := make(map[storage.Oid]entry, len(p.lastNew))
	for oid, e := range p.lastNew {
		index[oid] = e
	}
	s.mu.Lock()
	old := s.file
	s.file = newDataFile(p.f, p.pos)
	s.fileID = p.fileID
	s.index = index
	s.visEnd = p.pos
	s.mu.Unlock()
	if s.opts.KeepOld {
		// Data.fs.old is exact, like a cleanly closed file.
		if err := old.f.Truncate(end); err != nil {
			s.log.Warn("pack: could not cut the preallocated space of the old file", "path", s.path+".old", "error", err)
		}
	}
	old.release()
	p.f = nil
	s.end, s.synced, s.alloc, s.allocRetry = p.pos, p.pos, alloc, 0
	s.durable.Store(p.pos) // fsynced above
	s.qmu.Lock()
	s.writtenEnd = p.pos
	clear(s.pending) // empty after the flush above; offsets of the old file
	s.qmu.Unlock()
	s.indexedEnd.Store(-1) // the old index describes the old file
	p.sizeAfter, p.objects = p.pos, len(index)
	p.done = p.total
	// Saved outside the locks; until it lands, the old index is rejected
	// (its file id differs) and open scans. Registered while Pack's own
	// registration still holds Close off.
	if !s.startBackground() {
		return nil
	}
	go func() {
		defer s.bg.Done()
		if err := s.writeIndex(); err != nil {
			s.log.Error("saving the index after pack failed", "path", s.path, "error", err)
		}
	}()
	return nil
}

func (p *packer) create() error {
	name := p.s.path + ".pack"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	p.f = f
	p.w = bufio.NewWriterSize(f, 1<<20)
	var h [fileHeaderSize]byte
	copy(h[:4], fileMagic)
	binary.BigEndian.PutUint32(h[4:], fileVersion)
	if _, err := rand.Read(h[8:]); err != nil {
		return fmt.Errorf("file id: %w", err)
	}
	copy(p.fileID[:], h[8:])
	if _, err := p.w.Write(h[:]); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	p.pos = fileHeaderSize
	p.newPos = map[int64]int64{}
	p.lastNew = map[storage.Oid]entry{}
	return nil
}

// copyTxn writes transaction t with the given records to the packed file,
// pointing each record at the previous kept revision of its object and
// keeping back pointers whose target was kept (else copying the data).
func (p *packer) copyTxn(d *dataFile, t *parsedTxn, recs []parsedRec, status byte) error {
	b := &p.builder
	// The packed file becomes Data.fs only once it is fsynced whole, so
	// everything before a copied transaction is durable by then.
	durable := p.pos
	if p.s.opts.noDurable {
		durable = noDurable
	}
	b.begin(p.pos, t.tid, status, t.meta, durable)
	for i := range recs {
		r := &recs[i]
		nr := newRec{oid: r.oid, kind: r.kind}
		if e, ok := p.lastNew[r.oid]; ok {
			nr.prev = e.pos
		}
		switch r.kind {
		case kindData:
			nr.refs, nr.data = r.refs, r.data
		case kindBack:
			if np, ok := p.newPos[r.back]; ok {
				nr.back = np
			} else {
				_, refs, data, _, err := d.resolve(r.pos)
				if err != nil {
					return fmt.Errorf("copy: %w", err)
				}
				nr.kind, nr.refs, nr.data = kindData, refs, data
			}
		}
		np := b.add(&nr)
		if nr.kind == kindData {
			p.newPos[r.pos] = np
		}
		p.lastNew[r.oid] = entry{pos: np, tid: t.tid, deleted: nr.kind == kindDeleted}
	}
	buf := b.finish()
	if _, err := p.w.Write(buf); err != nil {
		return fmt.Errorf("write %s: %w", p.f.Name(), err)
	}
	p.pos += int64(len(buf))
	if cap(b.buf) > 4<<20 {
		b.buf = nil
	}
	return nil
}
