package packless

import (
	"bytes"
	"slices"
	"testing"

	"github.com/zhostdb/zhost/host/storage"
)

func TestObjectRoundTrip(t *testing.T) {
	for _, c := range []struct {
		refs []storage.Oid
		data []byte
	}{
		{nil, []byte{}},
		{[]storage.Oid{0, 1, 1 << 63}, []byte("data")},
		{[]storage.Oid{7}, bytes.Repeat([]byte{0}, 1000)},
	} {
		b := encodeObject(42, c.refs, c.data)
		o, err := decodeObject(b)
		if err != nil {
			t.Fatal(err)
		}
		if o.serial != 42 || !slices.Equal(o.refs, c.refs) || !bytes.Equal(o.data, c.data) {
			t.Fatalf("round trip of %v %q = %+v", c.refs, c.data, o)
		}
	}
}

// FuzzDecodeObject: no input makes decoding panic, and whatever decodes
// encodes back to the same bytes.
func FuzzDecodeObject(f *testing.F) {
	f.Add(encodeObject(1, []storage.Oid{2, 3}, []byte("x")))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 20))
	f.Add(append(encodeObject(9, nil, nil), 0x80))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := decodeObject(b)
		if err != nil {
			return
		}
		if got := encodeObject(o.serial, o.refs, o.data); !bytes.Equal(got, b) {
			// Uvarints have non-minimal encodings; only those may differ.
			o2, err := decodeObject(got)
			if err != nil || o2.serial != o.serial || !slices.Equal(o2.refs, o.refs) || !bytes.Equal(o2.data, o.data) {
				t.Fatalf("re-encoding %x gave %x", b, got)
			}
		}
	})
}

func TestSerialKeyOrder(t *testing.T) {
	a, b := serialKey(1, 1<<40), serialKey(2, 0)
	if bytes.Compare(a, b) >= 0 {
		t.Fatal("serial keys do not sort by serial first")
	}
	s, o, ok := parseSerialKey(a)
	if !ok || s != 1 || o != 1<<40 {
		t.Fatalf("parseSerialKey = %s %s %v", s, o, ok)
	}
	if _, _, ok := parseSerialKey([]byte("s123")); ok {
		t.Fatal("parsed a short key")
	}
}
