package filestorage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"

	"github.com/zhostdb/zhost/host/storage"
)

// On-disk layout. Every integer is big-endian. See doc.go and format.md for
// the narrative; the constants here are the single source of truth.
const (
	fileMagic      = "ZHFS"
	fileVersion    = 1
	fileHeaderSize = 24 // magic[4] version u32 fileID[16]

	// Transaction header: tid u64, length u64 (whole record, header to
	// trailer inclusive), status u8, reserved [3]u8, nrec u32, ulen u32,
	// dlen u32, elen u32.
	txnHeaderSize = 36
	// Transaction trailer: crc32c u32 (of header bytes 0..16 and 20..end
	// of the records), length u64 again.
	txnTrailerSize = 12
	txnStatusOff   = 16

	// Data record header: oid u64, tid u64, prev u64, txnpos u64, back
	// u64, nrefs u32, dlen u32, kind u8. Then nrefs oids, then dlen bytes.
	recHeaderSize = 49

	// maxRecordData bounds one record's data; the length field is a u32.
	maxRecordData = 1<<32 - 1
	// maxMetaLen bounds user, description and encoded extension.
	maxMetaLen = 16 << 20
)

// Transaction status bytes.
const (
	// statusCheckpoint: written at Vote, not yet finished. Only the last
	// transaction of a file may carry it; open treats it as a torn tail.
	statusCheckpoint = 'c'
	// statusCommitted: finished.
	statusCommitted = ' '
	// statusPacked: older than the last pack time; kept for history but
	// no longer undoable.
	statusPacked = 'p'
)

// Data record kinds.
const (
	// kindData: refs and data follow the header.
	kindData = 0
	// kindBack: the revision's refs and data are those of the kindData
	// record at offset back (written by undo, so restoring an old
	// revision copies no bytes).
	kindBack = 1
	// kindDeleted: the object does not exist as of this revision (undo of
	// its creation).
	kindDeleted = 2
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a transaction or record that does not parse. At the
// tail of the file it means a torn write; elsewhere it is damage.
var errCorrupt = errors.New("corrupt data file")

type txnHeader struct {
	pos    int64
	tid    storage.Tid
	length int64
	status byte
	nrec   uint32
	ulen   uint32
	dlen   uint32
	elen   uint32
}

func (h *txnHeader) end() int64 { return h.pos + h.length }

func decodeTxnHeader(b []byte, pos int64) txnHeader {
	return txnHeader{
		pos:    pos,
		tid:    storage.Tid(binary.BigEndian.Uint64(b[0:])),
		length: int64(binary.BigEndian.Uint64(b[8:])),
		status: b[16],
		nrec:   binary.BigEndian.Uint32(b[20:]),
		ulen:   binary.BigEndian.Uint32(b[24:]),
		dlen:   binary.BigEndian.Uint32(b[28:]),
		elen:   binary.BigEndian.Uint32(b[32:]),
	}
}

// checkTxnHeader validates the fixed part of a header against the space
// available (limit is the end of the readable file).
func checkTxnHeader(h *txnHeader, limit int64) error {
	if h.length < txnHeaderSize+txnTrailerSize || h.length > limit-h.pos {
		return fmt.Errorf("transaction at %d: length %d out of range: %w", h.pos, h.length, errCorrupt)
	}
	if h.status != statusCommitted && h.status != statusPacked && h.status != statusCheckpoint {
		return fmt.Errorf("transaction at %d: bad status %q: %w", h.pos, h.status, errCorrupt)
	}
	meta := int64(h.ulen) + int64(h.dlen) + int64(h.elen)
	if meta > h.length-txnHeaderSize-txnTrailerSize {
		return fmt.Errorf("transaction at %d: metadata longer than transaction: %w", h.pos, errCorrupt)
	}
	if int64(h.nrec)*recHeaderSize > h.length {
		return fmt.Errorf("transaction at %d: %d records do not fit: %w", h.pos, h.nrec, errCorrupt)
	}
	return nil
}

type recHeader struct {
	pos    int64
	oid    storage.Oid
	tid    storage.Tid
	prev   int64
	txnpos int64
	back   int64
	nrefs  uint32
	dlen   uint32
	kind   byte
}

func (r *recHeader) bodyLen() int64  { return int64(r.nrefs)*8 + int64(r.dlen) }
func (r *recHeader) totalLen() int64 { return recHeaderSize + r.bodyLen() }

func decodeRecHeader(b []byte, pos int64) recHeader {
	return recHeader{
		pos:    pos,
		oid:    storage.Oid(binary.BigEndian.Uint64(b[0:])),
		tid:    storage.Tid(binary.BigEndian.Uint64(b[8:])),
		prev:   int64(binary.BigEndian.Uint64(b[16:])),
		txnpos: int64(binary.BigEndian.Uint64(b[24:])),
		back:   int64(binary.BigEndian.Uint64(b[32:])),
		nrefs:  binary.BigEndian.Uint32(b[40:]),
		dlen:   binary.BigEndian.Uint32(b[44:]),
		kind:   b[48],
	}
}

func putRecHeader(b []byte, r *recHeader) {
	binary.BigEndian.PutUint64(b[0:], uint64(r.oid))
	binary.BigEndian.PutUint64(b[8:], uint64(r.tid))
	binary.BigEndian.PutUint64(b[16:], uint64(r.prev))
	binary.BigEndian.PutUint64(b[24:], uint64(r.txnpos))
	binary.BigEndian.PutUint64(b[32:], uint64(r.back))
	binary.BigEndian.PutUint32(b[40:], r.nrefs)
	binary.BigEndian.PutUint32(b[44:], r.dlen)
	b[48] = r.kind
}

// checkRec validates a record header found inside transaction h.
func checkRec(r *recHeader, h *txnHeader, limit int64) error {
	if r.tid != h.tid || r.txnpos != h.pos {
		return fmt.Errorf("record at %d: does not belong to transaction at %d: %w", r.pos, h.pos, errCorrupt)
	}
	if r.pos+r.totalLen() > limit {
		return fmt.Errorf("record at %d: longer than its transaction: %w", r.pos, errCorrupt)
	}
	switch r.kind {
	case kindData:
	case kindBack:
		if r.back < fileHeaderSize || r.back >= r.pos || r.bodyLen() != 0 {
			return fmt.Errorf("record at %d: bad back pointer %d: %w", r.pos, r.back, errCorrupt)
		}
	case kindDeleted:
		if r.bodyLen() != 0 {
			return fmt.Errorf("record at %d: deletion with data: %w", r.pos, errCorrupt)
		}
	default:
		return fmt.Errorf("record at %d: bad kind %d: %w", r.pos, r.kind, errCorrupt)
	}
	if r.prev != 0 && (r.prev < fileHeaderSize || r.prev >= r.pos) {
		return fmt.Errorf("record at %d: bad previous-revision pointer %d: %w", r.pos, r.prev, errCorrupt)
	}
	return nil
}

// durableKey is the extension key under which every transaction this
// package writes records its durable end: how far the data file was
// known to be on stable storage when the transaction was written (the
// data covered by the last completed fsync, or found at the last open).
// The value is a u64. It is part of the format, not of the metadata a
// caller sees: decodeExtension takes it out, and Begin refuses it in a
// caller's extension. Open uses it to tell a torn group commit from
// damage in the middle of the file (see doc.go).
const durableKey = "\x00zhost.durable"

// noDurable is the durable end of a transaction that records none
// (written before the record existed).
const noDurable = -1

// durableExtLen is what the durable end adds to a transaction's
// extension at most: a count, then the key and the u64 value.
const durableExtLen = 4 + 4 + len(durableKey) + 4 + 8

// encodeExtension writes a map as count u32 then (klen u32, k, vlen u32,
// v) in key order, so equal maps encode equally.
func encodeExtension(m map[string]string) []byte {
	return appendExtension(nil, m, noDurable)
}

// appendExtension appends the encoding of m, preceded by the durable
// end under durableKey unless durable is noDurable, to b. An empty map
// without a durable end encodes as nothing.
func appendExtension(b []byte, m map[string]string, durable int64) []byte {
	n := len(m)
	if durable != noDurable {
		n++
	}
	if n == 0 {
		return b
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	if durable != noDurable {
		b = binary.BigEndian.AppendUint32(b, uint32(len(durableKey)))
		b = append(b, durableKey...)
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(durable))
	}
	if len(m) == 0 {
		return b
	}
	keys := slices.Sorted(maps.Keys(m))
	for _, k := range keys {
		b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(m[k])))
		b = append(b, m[k]...)
	}
	return b
}

// decodeExtension decodes an extension map and takes the durable end out
// of it (noDurable if it records none). A map left empty is nil.
func decodeExtension(b []byte) (map[string]string, int64, error) {
	if len(b) == 0 {
		return nil, noDurable, nil
	}
	if len(b) < 4 {
		return nil, noDurable, fmt.Errorf("extension: short: %w", errCorrupt)
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n)*8 > uint64(len(b)) {
		return nil, noDurable, fmt.Errorf("extension: %d entries do not fit: %w", n, errCorrupt)
	}
	durable := int64(noDurable)
	m := make(map[string]string, n)
	for range n {
		var k, v []byte
		for _, dst := range []*[]byte{&k, &v} {
			if len(b) < 4 {
				return nil, noDurable, fmt.Errorf("extension: short: %w", errCorrupt)
			}
			l := binary.BigEndian.Uint32(b)
			b = b[4:]
			if uint64(l) > uint64(len(b)) {
				return nil, noDurable, fmt.Errorf("extension: string overruns: %w", errCorrupt)
			}
			*dst = b[:l]
			b = b[l:]
		}
		if string(k) == durableKey {
			if len(v) != 8 || durable != noDurable {
				return nil, noDurable, fmt.Errorf("extension: bad durable end record: %w", errCorrupt)
			}
			durable = int64(binary.BigEndian.Uint64(v))
			if durable < 0 {
				return nil, noDurable, fmt.Errorf("extension: durable end %d out of range: %w", durable, errCorrupt)
			}
			continue
		}
		m[string(k)] = string(v)
	}
	if len(b) != 0 {
		return nil, noDurable, fmt.Errorf("extension: %d trailing bytes: %w", len(b), errCorrupt)
	}
	if len(m) == 0 {
		m = nil
	}
	return m, durable, nil
}

// newRec is one record to be encoded into a transaction.
type newRec struct {
	oid  storage.Oid
	prev int64
	back int64
	kind byte
	refs []storage.Oid
	data []byte
}

// txnBuilder encodes one transaction into a single buffer, so it is
// written with one write call.
type txnBuilder struct {
	buf  []byte
	pos  int64
	tid  storage.Tid
	nrec uint32
}

// begin starts a transaction record at file offset pos. durable is the
// durable end it records (noDurable: none, as before the record existed).
func (b *txnBuilder) begin(pos int64, tid storage.Tid, status byte, meta storage.TxMeta, durable int64) {
	b.pos, b.tid, b.nrec = pos, tid, 0
	b.buf = b.buf[:0]
	var h [txnHeaderSize]byte
	binary.BigEndian.PutUint64(h[0:], uint64(tid))
	h[txnStatusOff] = status
	binary.BigEndian.PutUint32(h[24:], uint32(len(meta.User)))
	binary.BigEndian.PutUint32(h[28:], uint32(len(meta.Description)))
	b.buf = append(b.buf, h[:]...)
	b.buf = append(b.buf, meta.User...)
	b.buf = append(b.buf, meta.Description...)
	extAt := len(b.buf)
	b.buf = appendExtension(b.buf, meta.Extension, durable)
	binary.BigEndian.PutUint32(b.buf[32:], uint32(len(b.buf)-extAt))
}

// add appends a record and returns its file offset.
func (b *txnBuilder) add(r *newRec) int64 {
	pos := b.pos + int64(len(b.buf))
	h := recHeader{oid: r.oid, tid: b.tid, prev: r.prev, txnpos: b.pos, back: r.back,
		nrefs: uint32(len(r.refs)), dlen: uint32(len(r.data)), kind: r.kind}
	var hb [recHeaderSize]byte
	putRecHeader(hb[:], &h)
	b.buf = append(b.buf, hb[:]...)
	for _, ref := range r.refs {
		b.buf = binary.BigEndian.AppendUint64(b.buf, uint64(ref))
	}
	b.buf = append(b.buf, r.data...)
	b.nrec++
	return pos
}

// finish writes length, record count, checksum and trailer, and returns
// the encoded transaction.
func (b *txnBuilder) finish() []byte {
	length := uint64(len(b.buf) + txnTrailerSize)
	binary.BigEndian.PutUint64(b.buf[8:], length)
	binary.BigEndian.PutUint32(b.buf[20:], b.nrec)
	crc := txnCRC(b.buf)
	b.buf = binary.BigEndian.AppendUint32(b.buf, crc)
	b.buf = binary.BigEndian.AppendUint64(b.buf, length)
	return b.buf
}

// txnCRC checksums a transaction without its status byte (flipped in
// place at Finish and by nothing else) and without its trailer. body is
// the transaction from its header up to, not including, the trailer.
func txnCRC(body []byte) uint32 {
	c := crc32.Update(0, crcTable, body[:txnStatusOff])
	return crc32.Update(c, crcTable, body[txnStatusOff+4:])
}

// parsedTxn is a fully read and verified transaction.
type parsedTxn struct {
	txnHeader
	meta storage.TxMeta
	// durable is the durable end the transaction records (noDurable:
	// none); see durableKey.
	durable int64
	recs    []parsedRec
}

type parsedRec struct {
	recHeader
	refs []storage.Oid
	data []byte // aliases the transaction buffer
}

// parseTxn verifies and decodes a whole transaction held in b (exactly
// h.length bytes, starting at file offset pos).
func parseTxn(b []byte, pos int64) (*parsedTxn, error) {
	if len(b) < txnHeaderSize+txnTrailerSize {
		return nil, fmt.Errorf("transaction at %d: short: %w", pos, errCorrupt)
	}
	h := decodeTxnHeader(b, pos)
	if err := checkTxnHeader(&h, pos+int64(len(b))); err != nil {
		return nil, err
	}
	if h.length != int64(len(b)) {
		return nil, fmt.Errorf("transaction at %d: length %d, have %d bytes: %w", pos, h.length, len(b), errCorrupt)
	}
	tr := b[len(b)-txnTrailerSize:]
	if int64(binary.BigEndian.Uint64(tr[4:])) != h.length {
		return nil, fmt.Errorf("transaction at %d: trailer length mismatch: %w", pos, errCorrupt)
	}
	body := b[:len(b)-txnTrailerSize]
	if binary.BigEndian.Uint32(tr) != txnCRC(body) {
		return nil, fmt.Errorf("transaction at %d: checksum mismatch: %w", pos, errCorrupt)
	}
	p := &parsedTxn{txnHeader: h}
	off := int64(txnHeaderSize)
	p.meta.User = string(body[off : off+int64(h.ulen)])
	off += int64(h.ulen)
	p.meta.Description = string(body[off : off+int64(h.dlen)])
	off += int64(h.dlen)
	ext, durable, err := decodeExtension(body[off : off+int64(h.elen)])
	if err != nil {
		return nil, fmt.Errorf("transaction at %d: %w", pos, err)
	}
	p.meta.Extension, p.durable = ext, durable
	off += int64(h.elen)
	end := int64(len(body))
	p.recs = make([]parsedRec, 0, h.nrec)
	for range h.nrec {
		if off+recHeaderSize > end {
			return nil, fmt.Errorf("transaction at %d: record header overruns: %w", pos, errCorrupt)
		}
		r := parsedRec{recHeader: decodeRecHeader(body[off:], pos+off)}
		if err := checkRec(&r.recHeader, &h, pos+end); err != nil {
			return nil, err
		}
		o := off + recHeaderSize
		if r.nrefs > 0 {
			r.refs = make([]storage.Oid, r.nrefs)
			for i := range r.refs {
				r.refs[i] = storage.Oid(binary.BigEndian.Uint64(body[o:]))
				o += 8
			}
		}
		if r.kind == kindData {
			r.data = body[o : o+int64(r.dlen)]
		}
		off += r.totalLen()
		p.recs = append(p.recs, r)
	}
	if off != end {
		return nil, fmt.Errorf("transaction at %d: %d bytes after the last record: %w", pos, end-off, errCorrupt)
	}
	return p, nil
}

func (p *parsedTxn) info() storage.TxInfo {
	info := storage.TxInfo{Tid: p.tid, TxMeta: p.meta}
	info.Oids = make([]storage.Oid, len(p.recs))
	for i := range p.recs {
		info.Oids[i] = p.recs[i].oid
	}
	return info
}
