package sdk

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"

	"github.com/zhostdb/zhost/host/storage"
)

// The packed record layout of StoreRequest.packed_records (documented in
// the .proto): a uint32 count, then per record oid, serial (uint64 each),
// the number of refs and the data's length (uint32 each), the refs
// (uint64 each) and the data; little-endian. It replaces one protobuf
// message per record on the Calls stream: the plugin decodes a batch
// with two allocations whatever its size, and record data is not copied.

// packHeader is the size of the count in front of the records.
const packHeader = 4

// packRecordHeader is the fixed part of one packed record.
const packRecordHeader = 8 + 8 + 4 + 4

// packInitial is the least first capacity of a packed batch: most
// transactions are a record or two; a large batch grows by doubling.
const packInitial = 512

// packedBatch gathers records in the packed layout. The zero value is an
// empty batch.
type packedBatch struct {
	buf []byte // packHeader bytes of room for the count, then the records
	n   int
}

// add appends rec, copying its data and refs (the caller may reuse them).
// The caller keeps data and refs under 4 GiB each (a record is bounded
// by MaxMessageSize long before).
func (p *packedBatch) add(rec storage.Record) {
	need := packRecordHeader + len(rec.Data) + 8*len(rec.Refs)
	if p.buf == nil {
		p.buf = make([]byte, packHeader, max(packInitial, packHeader+need))
	} else if cap(p.buf)-len(p.buf) < need {
		// Double: append grows large slices by 1.25x, copying a batch
		// of small records over and over.
		grown := getPackBuf(max(2*cap(p.buf), len(p.buf)+need))[:len(p.buf)]
		copy(grown, p.buf)
		putPackBuf(p.buf)
		p.buf = grown
	}
	p.buf = binary.LittleEndian.AppendUint64(p.buf, uint64(rec.Oid))
	p.buf = binary.LittleEndian.AppendUint64(p.buf, uint64(rec.Serial))
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(rec.Refs)))
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(rec.Data)))
	for _, r := range rec.Refs {
		p.buf = binary.LittleEndian.AppendUint64(p.buf, uint64(r))
	}
	p.buf = append(p.buf, rec.Data...)
	p.n++
}

// Large packed batches reuse their buffers: a fresh 256 KiB buffer is
// zeroed and faulted in page by page, which made packing a 1000-record
// batch cost 330 µs instead of 16 µs into a reused one
// (BenchmarkPackBatch). Buffers of packPoolMin bytes and more are kept
// in one pool per power of two.
const (
	packPoolMin = 16 << 10
	packPoolMax = 4 << 20
)

// packPools[c] holds buffers of 1<<c bytes (c <= 22: packPoolMax).
var packPools [23]sync.Pool

// getPackBuf returns an empty buffer with room for n bytes.
func getPackBuf(n int) []byte {
	if n < packPoolMin || n > packPoolMax {
		return make([]byte, 0, n)
	}
	c := bits.Len(uint(n - 1)) // the power of two 1<<c >= n
	if b, ok := packPools[c].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<c)
}

// putPackBuf hands back a buffer from getPackBuf that nothing refers to
// any more; others are left to the collector.
func putPackBuf(b []byte) {
	c := cap(b)
	if c < packPoolMin || c > packPoolMax || c&(c-1) != 0 {
		return
	}
	b = b[:0]
	packPools[bits.Len(uint(c-1))].Put(&b)
}

// bytes returns the packed batch with its count filled in, nil if empty.
func (p *packedBatch) bytes() []byte {
	if p.n == 0 {
		return nil
	}
	binary.LittleEndian.PutUint32(p.buf, uint32(p.n))
	return p.buf
}

// size is how many bytes the batch holds.
func (p *packedBatch) size() int { return len(p.buf) }

// unpackRecords decodes a packed batch. The records' data alias b. Any
// inconsistency (a length past the end, bytes left over) is an error
// matching storage.ErrInvalid; no input makes it panic or allocate more
// than a small multiple of len(b).
func unpackRecords(b []byte) ([]storage.Record, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) < packHeader {
		return nil, fmt.Errorf("packed records: %d bytes, shorter than the count: %w", len(b), storage.ErrInvalid)
	}
	n := uint64(binary.LittleEndian.Uint32(b))
	rest := b[packHeader:]
	if n > uint64(len(rest))/packRecordHeader {
		return nil, fmt.Errorf("packed records: count %d does not fit in %d bytes: %w", n, len(rest), storage.ErrInvalid)
	}
	// First pass: check the lengths and count the refs, so the refs of
	// every record share one allocation.
	totalRefs := uint64(0)
	for i, off := uint64(0), uint64(0); i < n; i++ {
		if uint64(len(rest))-off < packRecordHeader {
			return nil, fmt.Errorf("packed records: record %d of %d is cut short: %w", i, n, storage.ErrInvalid)
		}
		nrefs := uint64(binary.LittleEndian.Uint32(rest[off+16:]))
		size := uint64(binary.LittleEndian.Uint32(rest[off+20:]))
		off += packRecordHeader
		if need := 8*nrefs + size; uint64(len(rest))-off < need {
			return nil, fmt.Errorf("packed records: record %d of %d needs %d bytes, %d left: %w", i, n, need, uint64(len(rest))-off, storage.ErrInvalid)
		}
		off += 8*nrefs + size
		totalRefs += nrefs
		if i == n-1 && off != uint64(len(rest)) {
			return nil, fmt.Errorf("packed records: %d bytes left over after %d records: %w", uint64(len(rest))-off, n, storage.ErrInvalid)
		}
	}
	if n == 0 && len(rest) != 0 {
		return nil, fmt.Errorf("packed records: %d bytes left over after 0 records: %w", len(rest), storage.ErrInvalid)
	}
	recs := make([]storage.Record, n)
	var refs []storage.Oid
	if totalRefs > 0 {
		refs = make([]storage.Oid, totalRefs)
	}
	off := 0
	for i := range recs {
		nrefs := int(binary.LittleEndian.Uint32(rest[off+16:]))
		size := int(binary.LittleEndian.Uint32(rest[off+20:]))
		rec := storage.Record{
			Oid:    storage.Oid(binary.LittleEndian.Uint64(rest[off:])),
			Serial: storage.Tid(binary.LittleEndian.Uint64(rest[off+8:])),
		}
		off += packRecordHeader
		if nrefs > 0 {
			rec.Refs = refs[:nrefs:nrefs]
			refs = refs[nrefs:]
			for j := range rec.Refs {
				rec.Refs[j] = storage.Oid(binary.LittleEndian.Uint64(rest[off:]))
				off += 8
			}
		}
		rec.Data = rest[off : off+size : off+size]
		off += size
		recs[i] = rec
	}
	return recs, nil
}
