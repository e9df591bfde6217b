package wire

import (
	"testing"

	"github.com/zhostdb/zhost/host/storage"
)

func hintRecords(n int) []storage.Record {
	recs := make([]storage.Record, n)
	for i := range recs {
		recs[i] = storage.Record{Oid: storage.Oid(i + 1), Serial: 5, Data: make([]byte, 100+i%90), Refs: make([]storage.Oid, i%3)}
	}
	return recs
}

// TestSizeHintExact checks that the large messages announce exactly
// their encoded size, and that AppendFrame then encodes them into a new
// buffer with one allocation (not one per doubling).
func TestSizeHintExact(t *testing.T) {
	recs := hintRecords(1000)
	meta := storage.TxMeta{User: "u", Description: "d", Extension: map[string]string{"a": "b", "cc": "dd"}}
	items := make([]Item, 0, len(recs)+1)
	for _, r := range recs {
		items = append(items, Item{Record: r, End: 9})
	}
	items = append(items, Item{Code: CodeNotFound, Record: storage.Record{Oid: 77}})
	for _, m := range []Message{
		&Vote{Handle: 1, Txn: 2, Meta: meta, Records: recs},
		&Commit{Handle: 1, Txn: 2, LockWaitMillis: 3, Meta: meta, Records: recs},
		&Commit{},
		&Records{Items: items},
	} {
		h, ok := m.(sizeHinter)
		if !ok {
			t.Fatalf("%s has no size hint", m.Kind())
		}
		b := AppendFrame(nil, 1, m)
		if got, want := h.sizeHint(), len(b)-HeaderSize; got != want {
			t.Errorf("%s: size hint %d, encoded body %d bytes", m.Kind(), got, want)
		}
		allocs := testing.AllocsPerRun(5, func() { b = AppendFrame(nil, 1, m) })
		// The buffer, the Encoder (it escapes through the interface) and
		// Meta's sorted extension keys: not one allocation per doubling.
		if allocs > 6 {
			t.Errorf("%s: AppendFrame into a new buffer made %.0f allocations, want at most 6 (doubling makes over 20)", m.Kind(), allocs)
		}
	}
}
