package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/zhostdb/zhost/host/storage"
)

// ErrMalformed: a frame or a message body does not follow the
// specification (truncated field, count larger than the bytes left,
// trailing bytes, unknown kind).
var ErrMalformed = errors.New("malformed message")

// nilLen is the length that encodes a nil byte string (as opposed to an
// empty one): record data is nil only for an undone creation in Iterate.
const nilLen = math.MaxUint32

// Encoder appends big-endian fields to a byte slice. The zero value is
// ready to use. It never fails: sizes are checked by the frame writer.
type Encoder struct {
	B []byte
}

// U8 appends one byte.
func (e *Encoder) U8(v uint8) { e.B = append(e.B, v) }

// Bool appends a boolean as one byte, 0 or 1.
func (e *Encoder) Bool(v bool) {
	if v {
		e.B = append(e.B, 1)
	} else {
		e.B = append(e.B, 0)
	}
}

// U16 appends a big-endian uint16.
func (e *Encoder) U16(v uint16) { e.B = binary.BigEndian.AppendUint16(e.B, v) }

// U32 appends a big-endian uint32.
func (e *Encoder) U32(v uint32) { e.B = binary.BigEndian.AppendUint32(e.B, v) }

// U64 appends a big-endian uint64.
func (e *Encoder) U64(v uint64) { e.B = binary.BigEndian.AppendUint64(e.B, v) }

// Bytes appends a length-prefixed byte string; nil is encoded apart from
// empty (length 0xFFFFFFFF).
func (e *Encoder) Bytes(v []byte) {
	if v == nil {
		e.U32(nilLen)
		return
	}
	e.U32(uint32(len(v)))
	e.B = append(e.B, v...)
}

// String appends a length-prefixed UTF-8 string.
func (e *Encoder) String(v string) {
	e.U32(uint32(len(v)))
	e.B = append(e.B, v...)
}

// Oids appends a count and the oids.
func (e *Encoder) Oids(v []storage.Oid) {
	e.U32(uint32(len(v)))
	for _, o := range v {
		e.U64(uint64(o))
	}
}

// Meta appends transaction metadata; extension keys are sorted so equal
// metadata always encodes to equal bytes.
func (e *Encoder) Meta(m storage.TxMeta) {
	e.String(m.User)
	e.String(m.Description)
	keys := make([]string, 0, len(m.Extension))
	for k := range m.Extension {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.U32(uint32(len(keys)))
	for _, k := range keys {
		e.String(k)
		e.String(m.Extension[k])
	}
}

// Record appends a record: oid, serial, data, refs.
func (e *Encoder) Record(r storage.Record) {
	e.U64(uint64(r.Oid))
	e.U64(uint64(r.Serial))
	e.Bytes(r.Data)
	e.Oids(r.Refs)
}

// recordSize is the encoded size of r (Encoder.Record).
func recordSize(r storage.Record) int { return 8 + 8 + 4 + len(r.Data) + 4 + 8*len(r.Refs) }

// metaSize is the encoded size of m (Encoder.Meta).
func metaSize(m storage.TxMeta) int {
	n := 4 + len(m.User) + 4 + len(m.Description) + 4
	for k, v := range m.Extension {
		n += 4 + len(k) + 4 + len(v)
	}
	return n
}

// Decoder reads big-endian fields from a byte slice. The first error
// sticks: later reads return zero values, and Err reports it, so message
// decoders read every field and check once.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a decoder over b. Byte strings it returns alias b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Err returns the first error met, or nil.
func (d *Decoder) Err() error { return d.err }

// Finish returns the first error met, or ErrMalformed if bytes are left.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes: %w", len(d.b), ErrMalformed)
	}
	return d.err
}

func (d *Decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated %s: %w", what, ErrMalformed)
	}
	d.b = nil
}

// U8 reads one byte.
func (d *Decoder) U8() uint8 {
	if len(d.b) < 1 {
		d.fail("u8")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// Bool reads a boolean; any byte other than 0 or 1 is malformed.
func (d *Decoder) Bool() bool {
	v := d.U8()
	if v > 1 && d.err == nil {
		d.err = fmt.Errorf("boolean byte %d: %w", v, ErrMalformed)
	}
	return v == 1
}

// U16 reads a big-endian uint16.
func (d *Decoder) U16() uint16 {
	if len(d.b) < 2 {
		d.fail("u16")
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

// U32 reads a big-endian uint32.
func (d *Decoder) U32() uint32 {
	if len(d.b) < 4 {
		d.fail("u32")
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

// U64 reads a big-endian uint64.
func (d *Decoder) U64() uint64 {
	if len(d.b) < 8 {
		d.fail("u64")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// count reads an element count and checks that at least min bytes per
// element remain, so a lying count never causes a huge allocation.
func (d *Decoder) count(min int, what string) int {
	n := d.U32()
	if d.err != nil {
		return 0
	}
	if min < 1 {
		min = 1
	}
	if uint64(n)*uint64(min) > uint64(len(d.b)) {
		d.err = fmt.Errorf("%s count %d exceeds the %d bytes left: %w", what, n, len(d.b), ErrMalformed)
		d.b = nil
		return 0
	}
	return int(n)
}

// Bytes reads a length-prefixed byte string. The result aliases the
// decoder's buffer.
func (d *Decoder) Bytes() []byte {
	n := d.U32()
	if d.err != nil {
		return nil
	}
	if n == nilLen {
		return nil
	}
	if uint64(n) > uint64(len(d.b)) {
		d.fail("bytes")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// String reads a length-prefixed string.
func (d *Decoder) String() string {
	n := d.U32()
	if d.err != nil {
		return ""
	}
	if uint64(n) > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

// Oids reads a count and that many oids.
func (d *Decoder) Oids() []storage.Oid {
	n := d.count(8, "oid")
	if d.err != nil || n == 0 {
		return nil
	}
	out := make([]storage.Oid, n)
	for i := range out {
		out[i] = storage.Oid(binary.BigEndian.Uint64(d.b[8*i:]))
	}
	d.b = d.b[8*n:]
	return out
}

// Meta reads transaction metadata.
func (d *Decoder) Meta() storage.TxMeta {
	var m storage.TxMeta
	m.User = d.String()
	m.Description = d.String()
	n := d.count(8, "extension")
	if n > 0 {
		m.Extension = make(map[string]string, n)
		for i := 0; i < n && d.err == nil; i++ {
			k := d.String()
			m.Extension[k] = d.String()
		}
	}
	return m
}

// Record reads a record.
func (d *Decoder) Record() storage.Record {
	var r storage.Record
	r.Oid = storage.Oid(d.U64())
	r.Serial = storage.Tid(d.U64())
	r.Data = d.Bytes()
	r.Refs = d.Oids()
	return r
}
