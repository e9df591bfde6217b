package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/zhostdb/zhost/host/storage"
)

const (
	typeFolder   = "folder"
	typeBucket   = "bucket"
	typeDocument = "document"
	typeCounter  = "counter"
)

// Folder layout limits. A folder keeps up to MaxInlineChildren children in
// its own record; past that its children move into bucket records of at
// most MaxBucketChildren each (split in half when full), and the folder
// record keeps only one (first name, bucket oid) pair per bucket. Adding a
// child then rewrites one bucket, not the whole folder, and concurrent
// adds to different buckets do not even conflict. Buckets emptied by
// deletes stay (they cost one small record each).
const (
	MaxInlineChildren = 128
	MaxBucketChildren = 256
)

// Folder is an ordered collection of named children (sorted by name,
// bytewise). Get it from a Tx; create one with &Folder{} or Mkdir.
//
// Merge rules (applied when two transactions change one folder): children
// added, replaced or removed under different names merge; the same name
// changed by both (to different objects) is a conflict; a transaction
// that split a bucket or converted the folder to buckets conflicts with
// any concurrent change to the same bucket or folder record.
type Folder struct {
	Persistent
	entries []folderEntry // inline children, sorted
	buckets []folderEntry // bucketed: first name -> bucket oid, sorted; buckets[0].Name == ""
	// shared: entries and buckets belong to the cached state this copy
	// was made from (copy on write), so loading a large folder costs no
	// copy until the transaction changes it.
	shared bool
}

// own makes f's slices private before a change.
func (f *Folder) own() {
	if f.shared {
		f.entries, f.buckets, f.shared = slices.Clone(f.entries), slices.Clone(f.buckets), false
	}
}

// folderEntry is one (name, oid) pair, encoded as a two-element array.
type folderEntry struct {
	_    struct{} `cbor:",toarray"`
	Name string
	Oid  storage.Oid
}

type folderWire struct {
	_       struct{} `cbor:",toarray"`
	Entries []folderEntry
	Buckets []folderEntry
}

// TypeName implements Object.
func (f *Folder) TypeName() string { return typeFolder }

// MarshalCBOR encodes the folder record body.
func (f *Folder) MarshalCBOR() ([]byte, error) {
	return encMode.Marshal(folderWire{Entries: nonNil(f.entries), Buckets: nonNil(f.buckets)})
}

// UnmarshalCBOR decodes the folder record body.
func (f *Folder) UnmarshalCBOR(data []byte) error {
	var w folderWire
	if err := decMode.Unmarshal(data, &w); err != nil {
		return err
	}
	if err := checkSorted(w.Entries); err != nil {
		return fmt.Errorf("folder entries: %w", err)
	}
	if err := checkSorted(w.Buckets); err != nil {
		return fmt.Errorf("folder buckets: %w", err)
	}
	if len(w.Buckets) > 0 && (len(w.Entries) > 0 || w.Buckets[0].Name != "") {
		return fmt.Errorf("malformed bucketed folder: %w", storage.ErrInvalid)
	}
	f.entries, f.buckets = w.Entries, w.Buckets
	return nil
}

// Clone implements Cloner. The copy shares the entries until it changes.
func (f *Folder) Clone() Object {
	return &Folder{entries: f.entries, buckets: f.buckets, shared: true}
}

func (f *Folder) refs() []storage.Oid {
	src := f.entries
	if len(f.buckets) > 0 {
		src = f.buckets
	}
	out := make([]storage.Oid, len(src))
	for i, e := range src {
		out[i] = e.Oid
	}
	return out
}

// Merge implements Merger with the folder rules above.
func (f *Folder) Merge(old, committed Object) (Object, error) {
	o, _ := old.(*Folder)
	if o == nil {
		o = &Folder{}
	}
	c, ok := committed.(*Folder)
	if !ok {
		return nil, MergeConflict("folder replaced by a %s", committed.TypeName())
	}
	ob, cb, mb := len(o.buckets) > 0, len(c.buckets) > 0, len(f.buckets) > 0
	switch {
	case !ob && !cb && !mb:
		es, err := mergeEntries(o.entries, c.entries, f.entries)
		if err != nil {
			return nil, err
		}
		return &Folder{entries: es}, nil
	case ob && cb && mb:
		bs, err := mergeEntries(o.buckets, c.buckets, f.buckets)
		if err != nil {
			return nil, err
		}
		if len(bs) == 0 || bs[0].Name != "" {
			return nil, MergeConflict("folder buckets")
		}
		return &Folder{buckets: bs}, nil
	default:
		return nil, MergeConflict("folder converted to buckets concurrently")
	}
}

// bucket holds a slice of a large folder's children.
type bucket struct {
	Persistent
	entries []folderEntry
	splits  uint64 // bumped when the bucket gives half its entries away
	shared  bool   // entries belong to the cached state (copy on write)
}

func (b *bucket) own() {
	if b.shared {
		b.entries, b.shared = slices.Clone(b.entries), false
	}
}

type bucketWire struct {
	_       struct{} `cbor:",toarray"`
	Entries []folderEntry
	Splits  uint64
}

func (b *bucket) TypeName() string { return typeBucket }

func (b *bucket) MarshalCBOR() ([]byte, error) {
	return encMode.Marshal(bucketWire{Entries: nonNil(b.entries), Splits: b.splits})
}

func (b *bucket) UnmarshalCBOR(data []byte) error {
	var w bucketWire
	if err := decMode.Unmarshal(data, &w); err != nil {
		return err
	}
	if err := checkSorted(w.Entries); err != nil {
		return fmt.Errorf("bucket entries: %w", err)
	}
	b.entries, b.splits = w.Entries, w.Splits
	return nil
}

func (b *bucket) Clone() Object {
	return &bucket{entries: b.entries, splits: b.splits, shared: true}
}

func (b *bucket) refs() []storage.Oid {
	out := make([]storage.Oid, len(b.entries))
	for i, e := range b.entries {
		out[i] = e.Oid
	}
	return out
}

func (b *bucket) Merge(old, committed Object) (Object, error) {
	o, _ := old.(*bucket)
	c, _ := committed.(*bucket)
	if o == nil || c == nil {
		return nil, MergeConflict("bucket created or replaced concurrently")
	}
	if o.splits != c.splits || o.splits != b.splits {
		return nil, MergeConflict("bucket split concurrently")
	}
	es, err := mergeEntries(o.entries, c.entries, b.entries)
	if err != nil {
		return nil, err
	}
	return &bucket{entries: es, splits: b.splits}, nil
}

// mergeEntries is the three-way merge of sorted (name, oid) lists: a name
// changed on one side only takes that side; changed identically on both
// is fine; changed differently on both is a conflict.
func mergeEntries(old, committed, mine []folderEntry) ([]folderEntry, error) {
	om, cm, mm := entryMap(old), entryMap(committed), entryMap(mine)
	names := map[string]struct{}{}
	for _, m := range []map[string]storage.Oid{om, cm, mm} {
		for n := range m {
			names[n] = struct{}{}
		}
	}
	out := make([]folderEntry, 0, len(names))
	for n := range names {
		o, inO := om[n]
		c, inC := cm[n]
		m, inM := mm[n]
		cChanged := inO != inC || o != c
		mChanged := inO != inM || o != m
		var oid storage.Oid
		var keep bool
		switch {
		case !cChanged:
			oid, keep = m, inM
		case !mChanged:
			oid, keep = c, inC
		case inC == inM && c == m:
			oid, keep = c, inC
		default:
			return nil, MergeConflict("child %q changed by both transactions", n)
		}
		if keep {
			out = append(out, folderEntry{Name: n, Oid: oid})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func entryMap(es []folderEntry) map[string]storage.Oid {
	m := make(map[string]storage.Oid, len(es))
	for _, e := range es {
		m[e.Name] = e.Oid
	}
	return m
}

func checkSorted(es []folderEntry) error {
	for i := 1; i < len(es); i++ {
		if es[i-1].Name >= es[i].Name {
			return fmt.Errorf("names not sorted: %w", storage.ErrInvalid)
		}
	}
	return nil
}

func nonNil(es []folderEntry) []folderEntry {
	if es == nil {
		return []folderEntry{}
	}
	return es
}

func searchEntries(es []folderEntry, name string) (int, bool) {
	return slices.BinarySearchFunc(es, name, func(e folderEntry, n string) int { return strings.Compare(e.Name, n) })
}

func (f *Folder) entry() (*entry, error) {
	if f.e == nil {
		return nil, fmt.Errorf("folder: %w", ErrDetached)
	}
	if f.e.tx.done {
		return nil, ErrTxDone
	}
	return f.e, nil
}

// bucketFor loads the bucket that holds (or would hold) name.
func (f *Folder) bucketFor(ctx context.Context, name string) (int, *bucket, error) {
	i := sort.Search(len(f.buckets), func(i int) bool { return f.buckets[i].Name > name }) - 1
	if i < 0 {
		i = 0
	}
	be, err := f.e.tx.load(ctx, f.e.part, f.buckets[i].Oid, f.e.path)
	if err != nil {
		return 0, nil, err
	}
	b, ok := be.obj.(*bucket)
	if !ok {
		return 0, nil, fmt.Errorf("%s: bucket oid %s holds a %s: %w", f.e.path, f.buckets[i].Oid, be.obj.TypeName(), storage.ErrInvalid)
	}
	return i, b, nil
}

// lookup finds a stored child's oid (mounts not considered).
func (f *Folder) lookup(ctx context.Context, name string) (storage.Oid, bool, error) {
	if _, err := f.entry(); err != nil {
		return 0, false, err
	}
	es := f.entries
	if len(f.buckets) > 0 {
		_, b, err := f.bucketFor(ctx, name)
		if err != nil {
			return 0, false, err
		}
		es = b.entries
	}
	i, ok := searchEntries(es, name)
	if !ok {
		return 0, false, nil
	}
	return es[i].Oid, true, nil
}

// set adds or replaces a stored child.
func (f *Folder) set(ctx context.Context, name string, oid storage.Oid) error {
	f.own()
	if len(f.buckets) == 0 {
		f.entries = insertEntry(f.entries, name, oid)
		if len(f.entries) > MaxInlineChildren {
			return f.convert(ctx)
		}
		return nil
	}
	i, b, err := f.bucketFor(ctx, name)
	if err != nil {
		return err
	}
	b.own()
	b.entries = insertEntry(b.entries, name, oid)
	if len(b.entries) <= MaxBucketChildren {
		return nil
	}
	half := len(b.entries) / 2
	nb := &bucket{entries: slices.Clone(b.entries[half:])}
	b.entries = slices.Clip(b.entries[:half])
	b.splits++
	ne, err := f.e.tx.create(ctx, f.e.part, nb, f.e.path)
	if err != nil {
		return err
	}
	f.buckets = slices.Insert(f.buckets, i+1, folderEntry{Name: nb.entries[0].Name, Oid: ne.oid})
	return nil
}

// convert moves an inline folder's children into buckets.
func (f *Folder) convert(ctx context.Context) error {
	per := MaxBucketChildren / 2
	var buckets []folderEntry
	for start := 0; start < len(f.entries); start += per {
		end := min(start+per, len(f.entries))
		b := &bucket{entries: slices.Clone(f.entries[start:end])}
		be, err := f.e.tx.create(ctx, f.e.part, b, f.e.path)
		if err != nil {
			return err
		}
		first := b.entries[0].Name
		if start == 0 {
			first = ""
		}
		buckets = append(buckets, folderEntry{Name: first, Oid: be.oid})
	}
	f.entries, f.buckets = nil, buckets
	return nil
}

func insertEntry(es []folderEntry, name string, oid storage.Oid) []folderEntry {
	i, ok := searchEntries(es, name)
	if ok {
		es[i].Oid = oid
		return es
	}
	return slices.Insert(es, i, folderEntry{Name: name, Oid: oid})
}

// remove drops a stored child; false if it was absent.
func (f *Folder) remove(ctx context.Context, name string) (bool, error) {
	if len(f.buckets) == 0 {
		i, ok := searchEntries(f.entries, name)
		if ok {
			f.own()
			f.entries = slices.Delete(f.entries, i, i+1)
		}
		return ok, nil
	}
	_, b, err := f.bucketFor(ctx, name)
	if err != nil {
		return false, err
	}
	i, ok := searchEntries(b.entries, name)
	if ok {
		b.own()
		b.entries = slices.Delete(b.entries, i, i+1)
	}
	return ok, nil
}

// each calls fn for every stored child in name order, from the first name
// after `after`, until fn returns false.
func (f *Folder) each(ctx context.Context, after string, fn func(name string, oid storage.Oid) bool) error {
	if len(f.buckets) == 0 {
		i, ok := searchEntries(f.entries, after)
		if ok {
			i++
		}
		for _, e := range f.entries[i:] {
			if !fn(e.Name, e.Oid) {
				return nil
			}
		}
		return nil
	}
	start := 0
	if after != "" {
		start = sort.Search(len(f.buckets), func(i int) bool { return f.buckets[i].Name > after }) - 1
		start = max(start, 0)
	}
	for _, br := range f.buckets[start:] {
		be, err := f.e.tx.load(ctx, f.e.part, br.Oid, f.e.path)
		if err != nil {
			return err
		}
		b, ok := be.obj.(*bucket)
		if !ok {
			return fmt.Errorf("%s: bucket oid %s holds a %s: %w", f.e.path, br.Oid, be.obj.TypeName(), storage.ErrInvalid)
		}
		for _, e := range b.entries {
			if e.Name <= after && after != "" {
				continue
			}
			if !fn(e.Name, e.Oid) {
				return nil
			}
		}
	}
	return nil
}

// Names returns the names of the folder's children in order, mount points
// directly inside it included.
func (f *Folder) Names(ctx context.Context) ([]string, error) {
	return f.List(ctx, "", -1)
}

// List returns up to limit child names (all when limit < 0) that sort
// after `after` ("" = from the start), mount points included: paging for
// large folders.
func (f *Folder) List(ctx context.Context, after string, limit int) ([]string, error) {
	e, err := f.entry()
	if err != nil {
		return nil, err
	}
	var names []string
	if limit != 0 {
		err = f.each(ctx, after, func(name string, _ storage.Oid) bool {
			names = append(names, name)
			return limit < 0 || len(names) < limit
		})
		if err != nil {
			return nil, err
		}
	}
	comps, err := splitPath(e.path)
	if err != nil {
		return nil, err
	}
	if mounts := e.tx.db.mountNamesUnder(comps); len(mounts) > 0 {
		for _, m := range mounts {
			if m > after || after == "" {
				if _, found := slices.BinarySearch(names, m); !found {
					names = append(names, m)
				}
			}
		}
		slices.Sort(names)
		if limit >= 0 && len(names) > limit {
			names = names[:limit]
		}
	}
	return names, nil
}

// Len returns the number of children stored in the folder (mount points
// not counted). For a bucketed folder it loads every bucket.
func (f *Folder) Len(ctx context.Context) (int, error) {
	if _, err := f.entry(); err != nil {
		return 0, err
	}
	n := 0
	err := f.each(ctx, "", func(string, storage.Oid) bool { n++; return true })
	return n, err
}

// Get returns the child called name (crossing into a mount if name is a
// mount point); ErrNotFound if there is none.
func (f *Folder) Get(ctx context.Context, name string) (Object, error) {
	e, err := f.entry()
	if err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	cp := childPath(e.path, name)
	if e.tx.db.mountAt[cp] != nil {
		return e.tx.Get(ctx, cp)
	}
	oid, found, err := f.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s: %w", cp, ErrNotFound)
	}
	ce, err := e.tx.load(ctx, e.part, oid, cp)
	if err != nil {
		return nil, err
	}
	return ce.obj, nil
}

// Has reports whether the folder has a child called name.
func (f *Folder) Has(ctx context.Context, name string) (bool, error) {
	e, err := f.entry()
	if err != nil {
		return false, err
	}
	if err := checkName(name); err != nil {
		return false, err
	}
	cp := childPath(e.path, name)
	if e.tx.db.mountAt[cp] != nil {
		return e.tx.Exists(ctx, cp)
	}
	_, found, err := f.lookup(ctx, name)
	return found, err
}

// Parent returns the folder this one is in, crossing a mount point
// upwards (the parent of a mounted folder is the main-tree folder above
// the mount point). ErrNotFound for the root.
func (f *Folder) Parent(ctx context.Context) (*Folder, error) {
	e, err := f.entry()
	if err != nil {
		return nil, err
	}
	comps, err := splitPath(e.path)
	if err != nil {
		return nil, err
	}
	if len(comps) == 0 {
		return nil, fmt.Errorf("parent of the root folder: %w", ErrNotFound)
	}
	return e.tx.Folder(ctx, joinPath(comps[:len(comps)-1]))
}

// Put adds obj as the child called name, replacing any child of that name
// (the new state keeps the old child's oid, so a concurrent change to
// that child conflicts instead of being lost). obj must be new, or the
// object already stored under name.
func (f *Folder) Put(ctx context.Context, name string, obj Object) error {
	return f.put(ctx, name, obj, false)
}

// Create adds obj as the child called name; ErrExists if name is taken.
func (f *Folder) Create(ctx context.Context, name string, obj Object) error {
	return f.put(ctx, name, obj, true)
}

func (f *Folder) put(ctx context.Context, name string, obj Object, exclusive bool) error {
	e, err := f.entry()
	if err != nil {
		return err
	}
	if err := e.tx.writable(); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	cp := childPath(e.path, name)
	if err := f.checkNotMount(cp); err != nil {
		return err
	}
	if isNil(obj) {
		return fmt.Errorf("put %s: nil object: %w", cp, storage.ErrInvalid)
	}
	oid, found, err := f.lookup(ctx, name)
	if err != nil {
		return err
	}
	if found && exclusive {
		return fmt.Errorf("%s: %w", cp, ErrExists)
	}
	if pe := obj.persistent().e; pe != nil {
		if found && pe.tx == e.tx && pe.part == e.part && pe.oid == oid {
			return nil // already there; changes are found at commit
		}
		return fmt.Errorf("put %s: object already stored at %s: %w", cp, pe.path, storage.ErrInvalid)
	}
	if !Registered(obj.TypeName()) {
		return fmt.Errorf("put %s: type %q: %w", cp, obj.TypeName(), ErrUnknownType)
	}
	if found {
		old, err := e.tx.load(ctx, e.part, oid, cp)
		if err != nil {
			return err
		}
		old.obj.persistent().e = nil
		old.obj = obj
		old.replaced = true
		obj.persistent().e = old
		return nil
	}
	ne, err := e.tx.create(ctx, e.part, obj, cp)
	if err != nil {
		return err
	}
	return f.set(ctx, name, ne.oid)
}

// Delete removes the child called name (and everything below it) from
// the folder; ErrNotFound if there is none.
func (f *Folder) Delete(ctx context.Context, name string) error {
	e, err := f.entry()
	if err != nil {
		return err
	}
	if err := e.tx.writable(); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	cp := childPath(e.path, name)
	if err := f.checkNotMount(cp); err != nil {
		return err
	}
	ok, err := f.remove(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("delete %s: %w", cp, ErrNotFound)
	}
	return nil
}

// Mkdir returns the child folder called name, creating it if missing.
// ErrNotFolder if name is another kind of object.
func (f *Folder) Mkdir(ctx context.Context, name string) (*Folder, error) {
	return f.mkdir(ctx, name, true)
}

func (f *Folder) mkdir(ctx context.Context, name string, mounts bool) (*Folder, error) {
	e, err := f.entry()
	if err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	cp := childPath(e.path, name)
	var obj Object
	if mounts {
		obj, err = e.tx.Get(ctx, cp)
	} else {
		var oid storage.Oid
		var found bool
		if oid, found, err = f.lookup(ctx, name); err == nil {
			if !found {
				err = ErrNotFound
			} else {
				var ce *entry
				if ce, err = e.tx.load(ctx, e.part, oid, cp); err == nil {
					obj = ce.obj
				}
			}
		}
	}
	if err == nil {
		sub, ok := obj.(*Folder)
		if !ok {
			return nil, fmt.Errorf("%s is a %s: %w", cp, obj.TypeName(), ErrNotFolder)
		}
		return sub, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if err := e.tx.writable(); err != nil {
		return nil, err
	}
	sub := &Folder{}
	ne, err := e.tx.create(ctx, e.part, sub, cp)
	if err != nil {
		return nil, err
	}
	if err := f.set(ctx, name, ne.oid); err != nil {
		return nil, err
	}
	return sub, nil
}

func (f *Folder) checkNotMount(path string) error {
	if m := f.e.tx.db.mountAt[path]; m != nil {
		return fmt.Errorf("%s (mount %q): %w", path, m.cfg.Name, ErrMountPoint)
	}
	return nil
}

var (
	_ Object   = (*Folder)(nil)
	_ Merger   = (*Folder)(nil)
	_ Cloner   = (*Folder)(nil)
	_ referrer = (*Folder)(nil)
	_ Object   = (*bucket)(nil)
	_ Merger   = (*bucket)(nil)
	_ referrer = (*bucket)(nil)
)
