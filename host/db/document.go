package db

import (
	"maps"
	"slices"
)

// Document is a JSON-like object: a map from string keys to values that
// are nil, bool, int64 (any Go integer reads back as one; beyond the
// int64 range as a big.Int), float64,
// string, []byte, time.Time (read back as an RFC 3339 string), []any or
// map[string]any, nested freely. Change Data directly; the change is
// found at commit.
//
// Documents do not merge: two transactions that change one document
// conflict, and Update runs the later one again, so the final state is
// always that of one serial order. (Types that want key-wise merging can
// use MergeMaps in their own Merge.)
type Document struct {
	Persistent
	Data map[string]any
}

// NewDocument returns a new document holding data (nil for empty).
func NewDocument(data map[string]any) *Document {
	if data == nil {
		data = map[string]any{}
	}
	return &Document{Data: data}
}

// TypeName implements Object.
func (d *Document) TypeName() string { return typeDocument }

// MarshalCBOR encodes the document's data as a CBOR map.
func (d *Document) MarshalCBOR() ([]byte, error) {
	if d.Data == nil {
		return encMode.Marshal(map[string]any{})
	}
	return encMode.Marshal(d.Data)
}

// UnmarshalCBOR decodes a CBOR map into Data.
func (d *Document) UnmarshalCBOR(b []byte) error {
	var m map[string]any
	if err := decMode.Unmarshal(b, &m); err != nil {
		return err
	}
	if m == nil {
		m = map[string]any{}
	}
	d.Data = m
	return nil
}

// Clone implements Cloner.
func (d *Document) Clone() Object { return &Document{Data: CloneMap(d.Data)} }

// CloneMap deep-copies a JSON-like map (maps, slices and byte slices are
// copied; other values are immutable and shared).
func CloneMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return CloneMap(t)
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = cloneValue(x)
		}
		return out
	case []byte:
		return slices.Clone(t)
	case map[any]any:
		out := make(map[any]any, len(t))
		for k, x := range t {
			out[k] = cloneValue(x)
		}
		return out
	default: // strings, numbers, bools, nil, time.Time: immutable
		return t
	}
}

// MergeMaps is a key-wise three-way merge for map-shaped objects (for
// example session data): a key changed (set or deleted) by one side only
// takes that side's value; changed by both to equal values is fine;
// changed by both to different values is a conflict (matching
// storage.ErrConflict). Values are compared by their CBOR encoding. old
// may be nil (the object was created by both sides).
func MergeMaps(old, committed, mine map[string]any) (map[string]any, error) {
	keys := map[string]struct{}{}
	for _, m := range []map[string]any{old, committed, mine} {
		for k := range m {
			keys[k] = struct{}{}
		}
	}
	out := make(map[string]any, len(keys))
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		o, inO := old[k]
		c, inC := committed[k]
		m, inM := mine[k]
		cChanged := inO != inC || !sameValue(o, c)
		mChanged := inO != inM || !sameValue(o, m)
		var v any
		var keep bool
		switch {
		case !cChanged:
			v, keep = m, inM
		case !mChanged:
			v, keep = c, inC
		case inC == inM && sameValue(c, m):
			v, keep = c, inC
		default:
			return nil, MergeConflict("key %q changed by both transactions", k)
		}
		if keep {
			out[k] = cloneValue(v)
		}
	}
	return out, nil
}

func sameValue(a, b any) bool {
	ea, err1 := encMode.Marshal(a)
	eb, err2 := encMode.Marshal(b)
	return err1 == nil && err2 == nil && string(ea) == string(eb)
}

var (
	_ Object = (*Document)(nil)
	_ Cloner = (*Document)(nil)
)
