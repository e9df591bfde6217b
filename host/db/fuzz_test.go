package db

import (
	"testing"
)

// FuzzDecodeObject: any bytes in a record decode to an object or an
// error, never a panic; what decodes encodes again.
func FuzzDecodeObject(f *testing.F) {
	for _, obj := range []Object{
		&Folder{entries: []folderEntry{{Name: "a", Oid: 1}, {Name: "b", Oid: 2}}},
		&Folder{buckets: []folderEntry{{Name: "", Oid: 3}, {Name: "m", Oid: 4}}},
		&bucket{entries: []folderEntry{{Name: "x", Oid: 5}}, splits: 2},
		NewDocument(map[string]any{"k": []any{1, "v", map[string]any{"n": nil}}}),
		NewCounter(-7),
	} {
		data, _, err := encodeObject(obj)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte{0x82, 0x66, 'f', 'o', 'l', 'd', 'e', 'r', 0x82, 0x81, 0x82, 0x61, 'b', 0x01, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := decodeObject(data)
		if err != nil {
			return
		}
		if _, _, err := encodeObject(obj); err != nil {
			t.Fatalf("decoded %T does not encode: %v", obj, err)
		}
		if _, err := cloneObject(obj, data); err != nil {
			t.Fatalf("decoded %T does not clone: %v", obj, err)
		}
	})
}

// FuzzSplitPath: any path is split or rejected; accepted names are
// valid and never climb.
func FuzzSplitPath(f *testing.F) {
	for _, p := range []string{"/", "/a/b", "a//b/", "/a/../b", "/\xff", "/./a"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		comps, err := splitPath(p)
		if err != nil {
			return
		}
		for _, c := range comps {
			if checkName(c) != nil || c == "." {
				t.Fatalf("path %q gave bad name %q", p, c)
			}
		}
		again, err := splitPath(joinPath(comps))
		if err != nil || len(again) != len(comps) {
			t.Fatalf("path %q does not round-trip: %v %v", p, again, err)
		}
	})
}
