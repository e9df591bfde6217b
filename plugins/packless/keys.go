package packless

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/zhostdb/zhost/host/storage"
)

// The key space of one packless store. Every key starts with a one-byte
// kind, so each kind is a contiguous range LevelDB can iterate.
const (
	kindMeta   = 0x00 // kindMeta + name: store-wide values
	kindObject = 'o'  // 'o' + oid: the current record (see encodeObject)
	kindRefcnt = 'c'  // 'c' + oid: how many current records reference oid (uvarint)
	kindSerial = 's'  // 's' + serial + oid: empty; the index Iterate walks
)

var (
	metaVersion = []byte("\x00version")
	metaLastTid = []byte("\x00lasttid") // newest committed tid
	metaOidMark = []byte("\x00oidmark") // every oid below it may have been handed out
	metaGCTid   = []byte("\x00gctid")   // newest tid that collected an object
)

// formatVersion is stored under metaVersion; Open refuses other versions.
const formatVersion = 1

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func objKey(oid storage.Oid) []byte {
	return binary.BigEndian.AppendUint64([]byte{kindObject}, uint64(oid))
}

func refcntKey(oid storage.Oid) []byte {
	return binary.BigEndian.AppendUint64([]byte{kindRefcnt}, uint64(oid))
}

func serialKey(serial storage.Tid, oid storage.Oid) []byte {
	k := binary.BigEndian.AppendUint64([]byte{kindSerial}, uint64(serial))
	return binary.BigEndian.AppendUint64(k, uint64(oid))
}

// parseSerialKey splits a kindSerial key.
func parseSerialKey(k []byte) (storage.Tid, storage.Oid, bool) {
	if len(k) != 17 || k[0] != kindSerial {
		return 0, 0, false
	}
	return storage.Tid(binary.BigEndian.Uint64(k[1:9])), storage.Oid(binary.BigEndian.Uint64(k[9:])), true
}

// errCorruptRecord reports a stored value packless cannot decode.
var errCorruptRecord = errors.New("corrupt stored record")

// encodeObject lays out a current record: serial (8 bytes big endian),
// the number of refs (uvarint), the refs (8 bytes each), then the data.
func encodeObject(serial storage.Tid, refs []storage.Oid, data []byte) []byte {
	b := make([]byte, 0, 8+binary.MaxVarintLen64+8*len(refs)+len(data))
	b = binary.BigEndian.AppendUint64(b, uint64(serial))
	b = binary.AppendUvarint(b, uint64(len(refs)))
	for _, r := range refs {
		b = binary.BigEndian.AppendUint64(b, uint64(r))
	}
	return append(b, data...)
}

// object is a decoded current record.
type object struct {
	serial storage.Tid
	refs   []storage.Oid
	data   []byte
}

// decodeObject parses what encodeObject wrote. The returned data aliases
// b; refs do not.
func decodeObject(b []byte) (object, error) {
	if len(b) < 9 {
		return object{}, fmt.Errorf("%w: %d bytes", errCorruptRecord, len(b))
	}
	o := object{serial: storage.Tid(binary.BigEndian.Uint64(b))}
	n, w := binary.Uvarint(b[8:])
	if w <= 0 || n > uint64(len(b)-8-w)/8 {
		return object{}, fmt.Errorf("%w: bad reference count", errCorruptRecord)
	}
	p := 8 + w
	if n > 0 {
		o.refs = make([]storage.Oid, n)
		for i := range o.refs {
			o.refs[i] = storage.Oid(binary.BigEndian.Uint64(b[p:]))
			p += 8
		}
	}
	o.data = b[p:]
	return o, nil
}

// refSet returns refs without duplicates, sorted.
func refSet(refs []storage.Oid) []storage.Oid {
	if len(refs) == 0 {
		return nil
	}
	s := slices.Clone(refs)
	slices.Sort(s)
	return slices.Compact(s)
}

func getUint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: %d-byte counter", errCorruptRecord, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
