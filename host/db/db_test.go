package db_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newMem(t *testing.T) *memstorage.Storage {
	t.Helper()
	st := memstorage.New(memstorage.Options{})
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func openDB(t *testing.T, st storage.Storage, opts db.Options) *db.DB {
	t.Helper()
	d, err := db.Open(testCtx(t), st, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// Session is a registered custom type, as host/session defines its own.
type Session struct {
	db.Persistent
	ID       string         `cbor:"id"`
	Data     map[string]any `cbor:"data"`
	Accessed int64          `cbor:"accessed"`
}

func (*Session) TypeName() string { return "test.session" }

// Merge merges data key-wise and keeps the latest access time.
func (s *Session) Merge(old, committed db.Object) (db.Object, error) {
	c := committed.(*Session)
	var od map[string]any
	if o, ok := old.(*Session); ok {
		od = o.Data
	}
	data, err := db.MergeMaps(od, c.Data, s.Data)
	if err != nil {
		return nil, err
	}
	return &Session{ID: s.ID, Data: data, Accessed: max(s.Accessed, c.Accessed)}, nil
}

func init() {
	db.MustRegisterType("test.session", func() db.Object { return new(Session) })
}

func TestOpenCreatesRootAndReadsBack(t *testing.T) {
	ctx := testCtx(t)
	st := newMem(t)
	d := openDB(t, st, db.Options{})

	rec, err := st.Load(ctx, storage.RootOid)
	if err != nil {
		t.Fatalf("root not created: %v", err)
	}
	if len(rec.Data) == 0 {
		t.Fatal("root record empty")
	}

	tid, err := d.Update(ctx, func(tx *db.Tx) error {
		pages, err := tx.MkdirAll(ctx, "/site/pages")
		if err != nil {
			return err
		}
		if err := pages.Put(ctx, "home", db.NewDocument(map[string]any{"title": "Home", "n": 3, "tags": []any{"a", "b"}})); err != nil {
			return err
		}
		return tx.Put(ctx, "/site/hits", db.NewCounter(7))
	})
	if err != nil || tid == storage.ZeroTid {
		t.Fatalf("update: tid %v err %v", tid, err)
	}

	err = d.View(ctx, func(tx *db.Tx) error {
		if tx.Snapshot() != tid {
			t.Errorf("snapshot %v, want %v", tx.Snapshot(), tid)
		}
		doc, err := tx.Document(ctx, "/site/pages/home")
		if err != nil {
			return err
		}
		if doc.Data["title"] != "Home" || doc.Data["n"] != int64(3) || !slices.Equal(doc.Data["tags"].([]any), []any{"a", "b"}) {
			t.Errorf("document data %#v", doc.Data)
		}
		if doc.Path() != "/site/pages/home" || doc.Partition() != "main" || doc.Serial() != tid {
			t.Errorf("path %q partition %q serial %v", doc.Path(), doc.Partition(), doc.Serial())
		}
		c, err := tx.Counter(ctx, "/site/hits")
		if err != nil {
			return err
		}
		if c.Value() != 7 {
			t.Errorf("counter %d", c.Value())
		}
		site, err := tx.Folder(ctx, "/site/")
		if err != nil {
			return err
		}
		names, err := site.Names(ctx)
		if err != nil {
			return err
		}
		if !slices.Equal(names, []string{"hits", "pages"}) {
			t.Errorf("names %v", names)
		}
		parent, err := site.Parent(ctx)
		if err != nil {
			return err
		}
		if parent.Path() != "/" {
			t.Errorf("parent path %q", parent.Path())
		}
		if _, err := parent.Parent(ctx); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("parent of root: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A second DB over the same storage (another node) sees the same tree.
	d2 := openDB(t, st, db.Options{})
	err = d2.View(ctx, func(tx *db.Tx) error {
		_, err := tx.Document(ctx, "/site/pages/home")
		return err
	})
	if err != nil {
		t.Fatalf("second node: %v", err)
	}
}

func TestErrors(t *testing.T) {
	ctx := testCtx(t)
	d := openDB(t, newMem(t), db.Options{})
	_, err := d.Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, "/doc", db.NewDocument(nil))
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		fn   func(tx *db.Tx) error
		want error
	}{
		{"missing", func(tx *db.Tx) error { _, err := tx.Get(ctx, "/nope"); return err }, db.ErrNotFound},
		{"missing matches storage", func(tx *db.Tx) error { _, err := tx.Get(ctx, "/nope/x"); return err }, storage.ErrNotFound},
		{"through document", func(tx *db.Tx) error { _, err := tx.Get(ctx, "/doc/x"); return err }, db.ErrNotFolder},
		{"wrong type", func(tx *db.Tx) error { _, err := tx.Counter(ctx, "/doc"); return err }, db.ErrWrongType},
		{"dotdot", func(tx *db.Tx) error { _, err := tx.Get(ctx, "/a/../b"); return err }, db.ErrInvalidPath},
		{"long name", func(tx *db.Tx) error { _, err := tx.Get(ctx, "/"+string(make([]byte, 300))); return err }, db.ErrInvalidPath},
		{"bad utf8", func(tx *db.Tx) error { _, err := tx.Get(ctx, "/\xff"); return err }, db.ErrInvalidPath},
		{"create exists", func(tx *db.Tx) error { return tx.Create(ctx, "/doc", db.NewDocument(nil)) }, db.ErrExists},
		{"delete missing", func(tx *db.Tx) error { return tx.Delete(ctx, "/nope") }, db.ErrNotFound},
		{"delete root", func(tx *db.Tx) error { return tx.Delete(ctx, "/") }, db.ErrInvalidPath},
		{"put under missing", func(tx *db.Tx) error { return tx.Put(ctx, "/a/b", db.NewDocument(nil)) }, db.ErrNotFound},
		{"mkdir through doc", func(tx *db.Tx) error { _, err := tx.MkdirAll(ctx, "/doc/x"); return err }, db.ErrNotFolder},
		{"put nil", func(tx *db.Tx) error { return tx.Put(ctx, "/x", nil) }, storage.ErrInvalid},
		{"put typed nil", func(tx *db.Tx) error { return tx.Put(ctx, "/x", (*db.Document)(nil)) }, storage.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := d.Update(ctx, c.fn)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}

	// Read-only transactions refuse changes.
	err = d.View(ctx, func(tx *db.Tx) error { return tx.Put(ctx, "/x", db.NewDocument(nil)) })
	if !errors.Is(err, db.ErrReadOnlyTx) {
		t.Fatalf("put in view: %v", err)
	}
	// A finished transaction refuses everything.
	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx.Abort()
	if _, err := tx.Get(ctx, "/doc"); !errors.Is(err, db.ErrTxDone) {
		t.Fatalf("get after abort: %v", err)
	}
	if _, err := tx.Commit(ctx); !errors.Is(err, db.ErrTxDone) {
		t.Fatalf("commit after abort: %v", err)
	}
	// Moving an object that is already in the tree is refused.
	_, err = d.Update(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, "/doc")
		if err != nil {
			return err
		}
		return tx.Put(ctx, "/other", doc)
	})
	if !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("put of attached object elsewhere: %v", err)
	}
}

func TestChangeDetectionAndDelete(t *testing.T) {
	ctx := testCtx(t)
	st := newMem(t)
	d := openDB(t, st, db.Options{})
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, "/doc", db.NewDocument(map[string]any{"a": 1}))
	}); err != nil {
		t.Fatal(err)
	}
	before, _ := st.LastTid(ctx)
	// Reading (and even re-assigning the same value) writes nothing.
	tid, err := d.Update(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, "/doc")
		if err != nil {
			return err
		}
		doc.Data["a"] = 1
		return nil
	})
	if err != nil || tid != storage.ZeroTid {
		t.Fatalf("no-op update: tid %v err %v", tid, err)
	}
	if after, _ := st.LastTid(ctx); after != before {
		t.Fatalf("no-op update committed: %v -> %v", before, after)
	}
	// Changing in place is found and written.
	tid, err = d.Update(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, "/doc")
		if err != nil {
			return err
		}
		doc.Data["b"] = map[string]any{"nested": true}
		return nil
	})
	if err != nil || tid == storage.ZeroTid {
		t.Fatalf("update: tid %v err %v", tid, err)
	}
	var got map[string]any
	if err := d.View(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, "/doc")
		got = doc.Data
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got["b"].(map[string]any)["nested"] != true || got["a"] != int64(1) {
		t.Fatalf("data %#v", got)
	}
	// A change in an aborted transaction does not leak into the cache.
	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := tx.Document(ctx, "/doc")
	if err != nil {
		t.Fatal(err)
	}
	doc.Data["leak"] = true
	tx.Abort()
	if err := d.View(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, "/doc")
		if err == nil && doc.Data["leak"] != nil {
			t.Error("aborted change visible")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Replacing keeps working across types, and delete unlinks.
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		if err := tx.Put(ctx, "/doc", db.NewCounter(5)); err != nil {
			return err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		c, err := tx.Counter(ctx, "/doc")
		if err != nil {
			return err
		}
		if c.Value() != 5 {
			return fmt.Errorf("counter %d", c.Value())
		}
		return tx.Delete(ctx, "/doc")
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.View(ctx, func(tx *db.Tx) error {
		ok, err := tx.Exists(ctx, "/doc")
		if ok {
			t.Error("deleted object still there")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The root no longer references the deleted object.
	rec, err := st.Load(ctx, storage.RootOid)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Refs) != 0 {
		t.Fatalf("root refs after delete: %v", rec.Refs)
	}
}

func TestSnapshotIsolation(t *testing.T) {
	ctx := testCtx(t)
	d := openDB(t, newMem(t), db.Options{})
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, "/doc", db.NewDocument(map[string]any{"v": 1}))
	}); err != nil {
		t.Fatal(err)
	}
	reader, err := d.BeginRead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Abort()
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, "/doc")
		if err != nil {
			return err
		}
		doc.Data["v"] = 2
		return tx.Put(ctx, "/new", db.NewDocument(nil))
	}); err != nil {
		t.Fatal(err)
	}
	doc, err := reader.Document(ctx, "/doc")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Data["v"] != int64(1) {
		t.Fatalf("snapshot saw v=%v", doc.Data["v"])
	}
	if ok, err := reader.Exists(ctx, "/new"); ok || err != nil {
		t.Fatalf("snapshot sees later object: %v %v", ok, err)
	}
}

func TestCustomType(t *testing.T) {
	ctx := testCtx(t)
	st := newMem(t)
	d := openDB(t, st, db.Options{})
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, "/s", &Session{ID: "abc", Data: map[string]any{"cart": []any{"x"}}, Accessed: 10})
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.View(ctx, func(tx *db.Tx) error {
		s, err := db.GetAs[*Session](ctx, tx, "/s")
		if err != nil {
			return err
		}
		if s.ID != "abc" || s.Accessed != 10 || s.Data["cart"].([]any)[0] != "x" {
			t.Errorf("session %#v", s)
		}
		if _, err := db.GetAs[*db.Document](ctx, tx, "/s"); !errors.Is(err, db.ErrWrongType) {
			t.Errorf("GetAs wrong type: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.RegisterType("test.session", func() db.Object { return new(Session) }); err == nil {
		t.Fatal("duplicate registration accepted")
	}
	if err := db.RegisterType("other", func() db.Object { return new(Session) }); err == nil {
		t.Fatal("mismatched TypeName accepted")
	}
}

func TestMergeMaps(t *testing.T) {
	old := map[string]any{"a": 1, "b": 2, "c": 3}
	committed := map[string]any{"a": 10, "b": 2, "c": 3, "d": 4}
	mine := map[string]any{"a": 1, "b": 20, "e": 5}
	got, err := db.MergeMaps(old, committed, mine)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": 10, "b": 20, "d": 4, "e": 5}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v want %v", got, want)
	}
	if _, err := db.MergeMaps(old, map[string]any{"a": 10}, map[string]any{"a": 11}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("conflicting keys: %v", err)
	}
}

func newMemB(b *testing.B) *memstorage.Storage {
	b.Helper()
	st := memstorage.New(memstorage.Options{})
	b.Cleanup(func() { _ = st.Close() })
	return st
}

// TestCorruptRecords: garbage or an unregistered type in a record is an
// error for the path that reaches it, never a panic.
func TestCorruptRecords(t *testing.T) {
	ctx := testCtx(t)
	st := newMem(t)
	d := openDB(t, st, db.Options{})
	var oid storage.Oid
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		doc := db.NewDocument(nil)
		if err := tx.Put(ctx, "/x", doc); err != nil {
			return err
		}
		oid, _ = doc.Oid()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	overwrite := func(data []byte) {
		t.Helper()
		cur, err := st.Load(ctx, oid)
		if err != nil {
			t.Fatal(err)
		}
		txn, err := st.Begin(ctx, storage.TxMeta{})
		if err != nil {
			t.Fatal(err)
		}
		if err := txn.Store(ctx, storage.Record{Oid: oid, Serial: cur.Serial, Data: data}); err != nil {
			t.Fatal(err)
		}
		if err := txn.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := txn.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]struct {
		data []byte
		want error
	}{
		"garbage":      {[]byte{0xff, 0x00, 0x13}, nil},
		"unknown type": {[]byte("\x82\x65nosuc\x40"), db.ErrUnknownType},
		"truncated":    {[]byte("\x82\x68document\xa1"), nil},
	} {
		overwrite(c.data)
		err := d.View(ctx, func(tx *db.Tx) error {
			_, err := tx.Get(ctx, "/x")
			return err
		})
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The rest of the tree is fine.
	if _, err := d.Update(ctx, func(tx *db.Tx) error { return tx.Put(ctx, "/y", db.NewCounter(1)) }); err != nil {
		t.Fatal(err)
	}
}

// TestDocumentValues: every JSON-like value round-trips, a large unsigned
// integer included, and re-encoding an unchanged document writes nothing.
func TestDocumentValues(t *testing.T) {
	ctx := testCtx(t)
	d := openDB(t, newMem(t), db.Options{})
	data := map[string]any{
		"nil": nil, "bool": true, "int": -5, "big": uint64(1<<64 - 1), "float": 1.5,
		"str": "s", "bytes": []byte{1, 2}, "list": []any{1, "a", []any{}}, "map": map[string]any{"x": map[string]any{}},
	}
	if _, err := d.Update(ctx, func(tx *db.Tx) error { return tx.Put(ctx, "/d", db.NewDocument(data)) }); err != nil {
		t.Fatal(err)
	}
	tid, err := d.Update(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, "/d")
		if err != nil {
			return err
		}
		if doc.Data["int"] != int64(-5) || doc.Data["float"] != 1.5 || doc.Data["big"] == nil || doc.Data["nil"] != nil {
			return fmt.Errorf("data %#v", doc.Data)
		}
		return nil
	})
	if err != nil || tid != storage.ZeroTid {
		t.Fatalf("unchanged document: tid %v err %v", tid, err)
	}
}
