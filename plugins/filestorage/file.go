package filestorage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/zhostdb/zhost/host/storage"
)

// dataFile is one open generation of Data.fs. Pack replaces the file with
// a new generation; readers that still hold the old one (an Iterate in
// progress, a Load between index lookup and read) keep reading it until
// they release it, and the last release closes it.
type dataFile struct {
	f       *os.File
	refs    atomic.Int64 // holders, plus one for being current
	closeMu sync.Once
	// limit bounds every read: no record extends past it, so a damaged
	// length can never make a reader allocate more than the file holds.
	limit atomic.Int64
}

func newDataFile(f *os.File, size int64) *dataFile {
	d := &dataFile{f: f}
	d.refs.Store(1)
	d.limit.Store(size)
	return d
}

// setLimit sets the read limit to the end of the data, once open has
// found it (the file may be longer: preallocated zeros).
func (d *dataFile) setLimit(end int64) { d.limit.Store(end) }

// grow raises the read limit after an append.
func (d *dataFile) grow(end int64) {
	for {
		cur := d.limit.Load()
		if end <= cur || d.limit.CompareAndSwap(cur, end) {
			return
		}
	}
}

// acquire adds a holder. Callers hold Storage.mu (read or write), which
// keeps the generation from being retired concurrently.
func (d *dataFile) acquire() *dataFile { d.refs.Add(1); return d }

// release drops a holder; the last one closes the file.
func (d *dataFile) release() {
	if d.refs.Add(-1) == 0 {
		d.closeMu.Do(func() { _ = d.f.Close() })
	}
}

// readFull reads exactly len(b) bytes at off.
func (d *dataFile) readFull(b []byte, off int64) error {
	n, err := d.f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("read %d bytes at %d: short read (%d): %w", len(b), off, n, errCorrupt)
	}
	return fmt.Errorf("read %d bytes at %d: %w", len(b), off, err)
}

// speculative is how much a record read fetches at once: most records fit,
// so one pread serves header, refs and data.
const speculative = 4096

var readBufs = sync.Pool{New: func() any { b := make([]byte, speculative); return &b }}

// readRecord reads the record at pos: header, refs and (for kindData) data.
func (d *dataFile) readRecord(pos int64) (recHeader, []storage.Oid, []byte, error) {
	pooled := readBufs.Get().(*[]byte)
	defer readBufs.Put(pooled)
	buf := *pooled
	n, err := d.f.ReadAt(buf, pos)
	if n < recHeaderSize {
		if err == nil || errors.Is(err, io.EOF) {
			err = errCorrupt
		}
		return recHeader{}, nil, nil, fmt.Errorf("read record at %d: %w", pos, err)
	}
	h := decodeRecHeader(buf, pos)
	if h.kind > kindDeleted || (h.kind != kindData && h.bodyLen() != 0) {
		return recHeader{}, nil, nil, fmt.Errorf("record at %d: bad kind %d: %w", pos, h.kind, errCorrupt)
	}
	total := h.totalLen()
	if total > int64(n) {
		if total > d.limit.Load()-pos {
			return recHeader{}, nil, nil, fmt.Errorf("record at %d: %d bytes run past the end of the file: %w", pos, total, errCorrupt)
		}
		big := make([]byte, total)
		copy(big, buf[:n])
		if err := d.readFull(big[n:], pos+int64(n)); err != nil {
			return recHeader{}, nil, nil, fmt.Errorf("read record at %d: %w", pos, err)
		}
		buf = big
	}
	o := recHeaderSize
	var refs []storage.Oid
	if h.nrefs > 0 {
		refs = make([]storage.Oid, h.nrefs)
		for i := range refs {
			refs[i] = storage.Oid(binary.BigEndian.Uint64(buf[o:]))
			o += 8
		}
	}
	var data []byte
	if h.kind == kindData {
		data = make([]byte, h.dlen)
		copy(data, buf[o:o+int(h.dlen)])
	}
	return h, refs, data, nil
}

// readRecordHeader reads only the header of the record at pos.
func (d *dataFile) readRecordHeader(pos int64) (recHeader, error) {
	var b [recHeaderSize]byte
	if err := d.readFull(b[:], pos); err != nil {
		return recHeader{}, fmt.Errorf("read record header at %d: %w", pos, err)
	}
	return decodeRecHeader(b[:], pos), nil
}

// resolve returns the refs and data of the revision stored at pos,
// following a back pointer. deleted reports a kindDeleted revision.
func (d *dataFile) resolve(pos int64) (h recHeader, refs []storage.Oid, data []byte, deleted bool, err error) {
	h, refs, data, err = d.readRecord(pos)
	if err != nil {
		return h, nil, nil, false, err
	}
	switch h.kind {
	case kindDeleted:
		return h, nil, nil, true, nil
	case kindBack:
		t, r, dt, err := d.readRecord(h.back)
		if err != nil {
			return h, nil, nil, false, fmt.Errorf("follow back pointer of record at %d: %w", pos, err)
		}
		if t.kind != kindData || t.oid != h.oid {
			return h, nil, nil, false, fmt.Errorf("record at %d: back pointer to record at %d of kind %d, oid %s: %w", pos, h.back, t.kind, t.oid, errCorrupt)
		}
		return h, r, dt, false, nil
	}
	if data == nil {
		data = []byte{}
	}
	return h, refs, data, false, nil
}

// readTxnAt reads and verifies the whole transaction at pos; limit is the
// end of the readable file.
func (d *dataFile) readTxnAt(pos, limit int64) (*parsedTxn, error) {
	var hb [txnHeaderSize]byte
	if pos+txnHeaderSize > limit {
		return nil, fmt.Errorf("transaction at %d: header beyond end %d: %w", pos, limit, errCorrupt)
	}
	if err := d.readFull(hb[:], pos); err != nil {
		return nil, err
	}
	h := decodeTxnHeader(hb[:], pos)
	if err := checkTxnHeader(&h, limit); err != nil {
		return nil, err
	}
	buf := make([]byte, h.length)
	copy(buf, hb[:])
	if err := d.readFull(buf[txnHeaderSize:], pos+txnHeaderSize); err != nil {
		return nil, err
	}
	return parseTxn(buf, pos)
}

// readTxnHeaderBefore reads the header of the transaction that ends at
// end, found through its trailer.
func (d *dataFile) readTxnHeaderBefore(end int64) (txnHeader, error) {
	var tb [txnTrailerSize]byte
	if end-txnTrailerSize < fileHeaderSize {
		return txnHeader{}, fmt.Errorf("no transaction before %d: %w", end, errCorrupt)
	}
	if err := d.readFull(tb[:], end-txnTrailerSize); err != nil {
		return txnHeader{}, err
	}
	length := int64(binary.BigEndian.Uint64(tb[4:]))
	pos := end - length
	if length < txnHeaderSize+txnTrailerSize || pos < fileHeaderSize {
		return txnHeader{}, fmt.Errorf("transaction ending at %d: bad trailer length %d: %w", end, length, errCorrupt)
	}
	var hb [txnHeaderSize]byte
	if err := d.readFull(hb[:], pos); err != nil {
		return txnHeader{}, err
	}
	h := decodeTxnHeader(hb[:], pos)
	if h.length != length {
		return txnHeader{}, fmt.Errorf("transaction ending at %d: header length %d, trailer %d: %w", end, h.length, length, errCorrupt)
	}
	if err := checkTxnHeader(&h, end); err != nil {
		return txnHeader{}, err
	}
	return h, nil
}

// scanner reads transactions forward with one buffered sequential read,
// verifying each completely. It is how open rebuilds the index, and how
// pack and Iterate walk the file.
type scanner struct {
	r     *bufio.Reader
	pos   int64
	limit int64
	buf   []byte
	// zeroEnds makes an all-zero header (or an all-zero remainder shorter
	// than a header) the end of the data, as io.EOF: open scans the whole
	// file, preallocated zeros included. Readers of the visible part
	// (pack, Iterate) leave it off, so zeros inside it are damage.
	zeroEnds bool
}

func newScanner(d *dataFile, from, limit int64) *scanner {
	return &scanner{
		r:     bufio.NewReaderSize(io.NewSectionReader(d.f, from, limit-from), 1<<20),
		pos:   from,
		limit: limit,
	}
}

// next returns the next transaction, io.EOF at limit, or an error
// wrapping errCorrupt for a transaction that does not verify (its pos is
// s.pos). The returned transaction's data aliases an internal buffer
// valid until the next call.
func (s *scanner) next() (*parsedTxn, error) {
	if s.pos == s.limit {
		return nil, io.EOF
	}
	var hb [txnHeaderSize]byte
	if s.pos+txnHeaderSize > s.limit {
		rest := hb[:s.limit-s.pos]
		if s.zeroEnds {
			if _, err := io.ReadFull(s.r, rest); err == nil && allZero(rest) {
				return nil, io.EOF
			}
		}
		return nil, fmt.Errorf("transaction at %d: header beyond end %d: %w", s.pos, s.limit, errCorrupt)
	}
	if _, err := io.ReadFull(s.r, hb[:]); err != nil {
		return nil, fmt.Errorf("read transaction at %d: %w", s.pos, err)
	}
	if s.zeroEnds && allZero(hb[:]) {
		return nil, io.EOF
	}
	h := decodeTxnHeader(hb[:], s.pos)
	if err := checkTxnHeader(&h, s.limit); err != nil {
		return nil, err
	}
	if int64(cap(s.buf)) < h.length {
		s.buf = make([]byte, h.length)
	}
	b := s.buf[:h.length]
	copy(b, hb[:])
	if _, err := io.ReadFull(s.r, b[txnHeaderSize:]); err != nil {
		return nil, fmt.Errorf("read transaction at %d: %w", s.pos, err)
	}
	p, err := parseTxn(b, s.pos)
	if err != nil {
		return nil, err
	}
	s.pos += h.length
	return p, nil
}
