package filestorage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/zhostdb/zhost/host/storage"
)

// Index file (Data.fs.index): the oid -> current revision map as of a file
// position, so open reads only what was appended after it.
//
//	magic "ZHFSIDX1" | fileID [16] | pos u64 | lastTid u64 | nextOid u64 |
//	count u64 | count x (oid u64, pos u64, tid u64, flags u8) | crc32c u32
//
// pos is the end of the last transaction the index covers and lastTid its
// tid; open trusts the index only if the data file has the same fileID and
// the transaction ending at pos verifies and carries lastTid.
const (
	indexMagic      = "ZHFSIDX1"
	indexHeaderSize = 8 + 16 + 8*4
	indexEntrySize  = 25
	entryDeleted    = 1
)

// entry is where the current revision of an oid lives.
type entry struct {
	pos     int64
	tid     storage.Tid
	deleted bool // the revision is kindDeleted (creation undone)
}

type indexFile struct {
	fileID  [16]byte
	pos     int64
	lastTid storage.Tid
	nextOid storage.Oid
	entries map[storage.Oid]entry
}

func loadIndex(path string) (*indexFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", path, err)
	}
	if len(b) < indexHeaderSize+4 || string(b[:8]) != indexMagic {
		return nil, fmt.Errorf("index %s: not an index file: %w", path, errCorrupt)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("index %s: checksum mismatch: %w", path, errCorrupt)
	}
	x := &indexFile{}
	copy(x.fileID[:], b[8:24])
	x.pos = int64(binary.BigEndian.Uint64(b[24:]))
	x.lastTid = storage.Tid(binary.BigEndian.Uint64(b[32:]))
	x.nextOid = storage.Oid(binary.BigEndian.Uint64(b[40:]))
	n := binary.BigEndian.Uint64(b[48:])
	if n > uint64(len(body)-indexHeaderSize)/indexEntrySize || uint64(len(body)-indexHeaderSize) != n*indexEntrySize {
		return nil, fmt.Errorf("index %s: %d entries do not match its size: %w", path, n, errCorrupt)
	}
	x.entries = make(map[storage.Oid]entry, n)
	p := body[indexHeaderSize:]
	for range n {
		oid := storage.Oid(binary.BigEndian.Uint64(p))
		e := entry{pos: int64(binary.BigEndian.Uint64(p[8:])), tid: storage.Tid(binary.BigEndian.Uint64(p[16:])), deleted: p[24]&entryDeleted != 0}
		if e.pos < fileHeaderSize || e.pos >= x.pos {
			return nil, fmt.Errorf("index %s: entry for %s points outside the covered file: %w", path, oid, errCorrupt)
		}
		x.entries[oid] = e
		p = p[indexEntrySize:]
	}
	return x, nil
}

// saveIndex writes x to path atomically (temporary file, fsync, rename).
func saveIndex(path string, x *indexFile) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("save index: %w", err)
	}
	defer func() {
		if f != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	h := crc32.New(crcTable)
	w := bufio.NewWriterSize(f, 1<<20)
	mw := &teeWriter{w: w, h: h}
	var hb [indexHeaderSize]byte
	copy(hb[:8], indexMagic)
	copy(hb[8:24], x.fileID[:])
	binary.BigEndian.PutUint64(hb[24:], uint64(x.pos))
	binary.BigEndian.PutUint64(hb[32:], uint64(x.lastTid))
	binary.BigEndian.PutUint64(hb[40:], uint64(x.nextOid))
	binary.BigEndian.PutUint64(hb[48:], uint64(len(x.entries)))
	mw.write(hb[:])
	var eb [indexEntrySize]byte
	for oid, e := range x.entries {
		binary.BigEndian.PutUint64(eb[0:], uint64(oid))
		binary.BigEndian.PutUint64(eb[8:], uint64(e.pos))
		binary.BigEndian.PutUint64(eb[16:], uint64(e.tid))
		eb[24] = 0
		if e.deleted {
			eb[24] = entryDeleted
		}
		mw.write(eb[:])
	}
	var cb [4]byte
	binary.BigEndian.PutUint32(cb[:], h.Sum32())
	mw.err = errors.Join(mw.err, write(w, cb[:]))
	if mw.err != nil {
		return fmt.Errorf("save index %s: %w", tmp, mw.err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("save index %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("save index %s: fsync: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		f = nil
		_ = os.Remove(tmp)
		return fmt.Errorf("save index %s: %w", tmp, err)
	}
	f = nil
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save index: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

type teeWriter struct {
	w   *bufio.Writer
	h   interface{ Write([]byte) (int, error) }
	err error
}

func (t *teeWriter) write(b []byte) {
	if t.err != nil {
		return
	}
	_, _ = t.h.Write(b)
	t.err = write(t.w, b)
}

func write(w *bufio.Writer, b []byte) error {
	_, err := w.Write(b)
	return err
}

// syncDir fsyncs a directory so a rename or create in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
