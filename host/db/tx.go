package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/zhostdb/zhost/host/storage"
)

// Tx is one transaction: a consistent snapshot of the tree plus the
// changes made through it. A Tx is used by one goroutine at a time. Paths
// are absolute ("/a/b/c"; "/" is the root folder) and cross mount points.
// Objects returned by a Tx are its private copies, valid until the Tx
// ends; see Object.
type Tx struct {
	db       *DB
	readOnly bool
	done     bool
	snaps    map[*partition]storage.Tid
	objs     map[objKey]*entry
	order    []*entry
	meta     storage.TxMeta
	// tids are the commit's tids by partition, after a successful Commit.
	tids map[*partition]storage.Tid
}

type objKey struct {
	part *partition
	oid  storage.Oid
}

// entry is one object a transaction has loaded or created.
type entry struct {
	tx       *Tx
	part     *partition
	oid      storage.Oid
	path     string
	serial   storage.Tid // serial loaded; ZeroTid when created
	base     Object      // shared decoded state as loaded; nil when created
	baseData []byte      // record bytes as loaded
	obj      Object      // the transaction's private state
	created  bool
	replaced bool // Put replaced the object: write even if bytes match
	// current: RequireCurrent was called; the commit writes the object
	// even if unchanged and never merges it, so a concurrent change to
	// it makes the commit conflict.
	current bool
}

// Snapshot returns the tid the transaction reads the main partition at:
// it sees every transaction with a tid up to and including it.
func (tx *Tx) Snapshot() storage.Tid { return tx.snaps[tx.db.main] }

// ReadOnly reports whether the transaction was started by View or
// BeginRead.
func (tx *Tx) ReadOnly() bool { return tx.readOnly }

// SetMeta replaces the metadata (user, description, extension) attached
// to the commit; the default is Options.Meta.
func (tx *Tx) SetMeta(meta storage.TxMeta) { tx.meta = meta }

// DB returns the database the transaction belongs to.
func (tx *Tx) DB() *DB { return tx.db }

// Root returns the root folder of the main tree.
func (tx *Tx) Root(ctx context.Context) (*Folder, error) { return tx.Folder(ctx, "/") }

// Get returns the object at path (a *Folder, *Document, *Counter or a
// registered type). ErrNotFound if a name is missing, ErrNotFolder if the
// path goes through a non-folder, a *MountError under an unavailable
// mount, ErrReadConflict (retried by Update and View) when a packless
// partition already overwrote the snapshot's revision.
func (tx *Tx) Get(ctx context.Context, path string) (Object, error) {
	e, err := tx.lookup(ctx, path)
	if err != nil {
		return nil, err
	}
	return e.obj, nil
}

// Folder returns the folder at path; ErrWrongType if it is not a folder.
func (tx *Tx) Folder(ctx context.Context, path string) (*Folder, error) {
	return GetAs[*Folder](ctx, tx, path)
}

// Document returns the document at path; ErrWrongType if it is not one.
func (tx *Tx) Document(ctx context.Context, path string) (*Document, error) {
	return GetAs[*Document](ctx, tx, path)
}

// Counter returns the counter at path; ErrWrongType if it is not one.
func (tx *Tx) Counter(ctx context.Context, path string) (*Counter, error) {
	return GetAs[*Counter](ctx, tx, path)
}

// GetAs returns the object at path as type T (for registered types:
// GetAs[*mypkg.Session](ctx, tx, path)); ErrWrongType if it has another
// type.
func GetAs[T Object](ctx context.Context, tx *Tx, path string) (T, error) {
	var zero T
	obj, err := tx.Get(ctx, path)
	if err != nil {
		return zero, err
	}
	t, ok := obj.(T)
	if !ok {
		return zero, fmt.Errorf("%s is a %s: %w", path, obj.TypeName(), ErrWrongType)
	}
	return t, nil
}

// Exists reports whether an object is at path. Errors other than
// ErrNotFound (unavailable mount, storage failure) are returned.
func (tx *Tx) Exists(ctx context.Context, path string) (bool, error) {
	_, err := tx.lookup(ctx, path)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// MkdirAll returns the folder at path, creating it and any missing parent
// folders. ErrNotFolder if a name on the way is another kind of object.
func (tx *Tx) MkdirAll(ctx context.Context, path string) (*Folder, error) {
	comps, err := splitPath(path)
	if err != nil {
		return nil, err
	}
	// Walk down from the deepest existing folder, so mounts are crossed.
	for i := len(comps); i >= 0; i-- {
		obj, err := tx.Get(ctx, joinPath(comps[:i]))
		if errors.Is(err, storage.ErrNotFound) && i > 0 {
			continue
		}
		if err != nil {
			return nil, err
		}
		f, ok := obj.(*Folder)
		if !ok {
			return nil, fmt.Errorf("%s: %w", joinPath(comps[:i]), ErrNotFolder)
		}
		for _, name := range comps[i:] {
			if f, err = f.Mkdir(ctx, name); err != nil {
				return nil, err
			}
		}
		return f, nil
	}
	return nil, fmt.Errorf("mkdir %s: %w", path, ErrNotFound)
}

// Put stores obj at path: a new object is created, an existing one is
// replaced (keeping its oid, so concurrent changes to it conflict). The
// parent folder must exist. obj must be new (not yet in a tree) or the
// very object already at path.
func (tx *Tx) Put(ctx context.Context, path string, obj Object) error {
	f, name, err := tx.parent(ctx, path)
	if err != nil {
		return err
	}
	return f.Put(ctx, name, obj)
}

// Create stores a new obj at path; ErrExists if path is taken.
func (tx *Tx) Create(ctx context.Context, path string, obj Object) error {
	f, name, err := tx.parent(ctx, path)
	if err != nil {
		return err
	}
	return f.Create(ctx, name, obj)
}

// Delete removes the object at path (with everything below it) from the
// tree. The records stay until pack or the packless collector finds them
// unreachable. ErrNotFound if nothing is there.
func (tx *Tx) Delete(ctx context.Context, path string) error {
	f, name, err := tx.parent(ctx, path)
	if err != nil {
		return err
	}
	return f.Delete(ctx, name)
}

// parent returns the folder holding path's last name, and that name.
func (tx *Tx) parent(ctx context.Context, path string) (*Folder, string, error) {
	comps, err := splitPath(path)
	if err != nil {
		return nil, "", err
	}
	if len(comps) == 0 {
		return nil, "", fmt.Errorf("the root folder cannot be replaced or deleted: %w", ErrInvalidPath)
	}
	f, err := tx.Folder(ctx, joinPath(comps[:len(comps)-1]))
	if err != nil {
		return nil, "", err
	}
	return f, comps[len(comps)-1], nil
}

// lookup resolves a main-tree path to the entry of its object.
func (tx *Tx) lookup(ctx context.Context, path string) (*entry, error) {
	if tx.done {
		return nil, ErrTxDone
	}
	comps, err := splitPath(path)
	if err != nil {
		return nil, err
	}
	m := tx.db.mountFor(comps)
	if m == nil {
		return tx.walkIn(ctx, tx.db.main, storage.RootOid, "/", comps)
	}
	p, folder, err := m.ready()
	if err != nil {
		return nil, err
	}
	e, err := tx.walkIn(ctx, p, folder, m.path, comps[len(m.comps):])
	if err != nil && !isTreeError(err) {
		err = &MountError{Name: m.cfg.Name, Path: m.path, Err: err}
	}
	return e, err
}

// isTreeError reports errors about the tree's shape (as opposed to the
// partition's health), which need no mount context.
func isTreeError(err error) bool {
	for _, s := range []error{storage.ErrNotFound, ErrNotFolder, ErrWrongType, ErrInvalidPath, ErrTxDone} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// walkIn follows comps inside one partition from the folder start (whose
// path is startPath), ignoring mounts.
func (tx *Tx) walkIn(ctx context.Context, p *partition, start storage.Oid, startPath string, comps []string) (*entry, error) {
	if startPath == "" {
		startPath = "/"
	}
	e, err := tx.load(ctx, p, start, startPath)
	if err != nil {
		return nil, err
	}
	for _, name := range comps {
		f, ok := e.obj.(*Folder)
		if !ok {
			return nil, fmt.Errorf("%s: %w", e.path, ErrNotFolder)
		}
		oid, found, err := f.lookup(ctx, name)
		if err != nil {
			return nil, err
		}
		cp := childPath(e.path, name)
		if !found {
			return nil, fmt.Errorf("%s: %w", cp, ErrNotFound)
		}
		if e, err = tx.load(ctx, p, oid, cp); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// mkdirAllIn is MkdirAll inside one partition, ignoring mounts.
func (tx *Tx) mkdirAllIn(ctx context.Context, p *partition, start storage.Oid, startPath string, comps []string, create bool) (*Folder, error) {
	if startPath == "" {
		startPath = "/"
	}
	e, err := tx.load(ctx, p, start, startPath)
	if err != nil {
		return nil, err
	}
	f, ok := e.obj.(*Folder)
	if !ok {
		return nil, fmt.Errorf("%s: %w", e.path, ErrNotFolder)
	}
	for _, name := range comps {
		if f, err = f.mkdir(ctx, name, false); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// ensureRoot loads the root folder of p, creating it if p has none.
func (tx *Tx) ensureRoot(ctx context.Context, p *partition) (*Folder, error) {
	e, err := tx.load(ctx, p, storage.RootOid, "/")
	if errors.Is(err, storage.ErrNotFound) {
		f := &Folder{}
		if tx.readOnly {
			return nil, fmt.Errorf("create root folder of %q: %w", p.name, ErrReadOnlyTx)
		}
		tx.attach(p, storage.RootOid, "/", f, storage.ZeroTid, nil, nil, true)
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	f, ok := e.obj.(*Folder)
	if !ok {
		return nil, fmt.Errorf("root of partition %q is a %s: %w", p.name, e.obj.TypeName(), ErrNotFolder)
	}
	return f, nil
}

// snapshot returns the transaction's snapshot of p, taking it on first use.
func (tx *Tx) snapshot(ctx context.Context, p *partition) (storage.Tid, error) {
	if s, ok := tx.snaps[p]; ok {
		return s, nil
	}
	s, err := p.st.LastTid(ctx)
	if err != nil {
		return 0, fmt.Errorf("last tid of partition %q: %w", p.name, err)
	}
	tx.snaps[p] = s
	return s, nil
}

// load returns the entry of (p, oid), loading it at the snapshot.
func (tx *Tx) load(ctx context.Context, p *partition, oid storage.Oid, path string) (*entry, error) {
	if tx.done {
		return nil, ErrTxDone
	}
	if e := tx.objs[objKey{p, oid}]; e != nil {
		return e, nil
	}
	snap, err := tx.snapshot(ctx, p)
	if err != nil {
		return nil, err
	}
	d := tx.db
	rec, _, err := p.st.LoadBefore(ctx, oid, snap+1)
	switch {
	case errors.Is(err, storage.ErrNotSupported):
		d.readConflicts.Add(1)
		return nil, fmt.Errorf("load %s (oid %s in %q) at %s: %w", path, oid, p.name, snap, ErrReadConflict)
	case errors.Is(err, storage.ErrNotFound):
		return nil, fmt.Errorf("load %s (oid %s in %q): %w", path, oid, p.name, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("load %s (oid %s in %q): %w", path, oid, p.name, err)
	}
	d.loads.Add(1)
	base, ok := d.cache.get(p.id, oid, rec.Serial)
	if ok {
		d.hits.Add(1)
	} else {
		if base, err = decodeObject(rec.Data); err != nil {
			return nil, fmt.Errorf("load %s (oid %s in %q): %w", path, oid, p.name, err)
		}
		d.cache.put(p.id, oid, rec.Serial, base, len(rec.Data))
	}
	obj, err := cloneObject(base, rec.Data)
	if err != nil {
		return nil, fmt.Errorf("load %s (oid %s in %q): copy: %w", path, oid, p.name, err)
	}
	return tx.attach(p, oid, path, obj, rec.Serial, base, rec.Data, false), nil
}

// attach registers obj as the transaction's state of (p, oid).
func (tx *Tx) attach(p *partition, oid storage.Oid, path string, obj Object, serial storage.Tid, base Object, baseData []byte, created bool) *entry {
	e := &entry{tx: tx, part: p, oid: oid, path: path, serial: serial, base: base, baseData: baseData, obj: obj, created: created}
	obj.persistent().e = e
	tx.objs[objKey{p, oid}] = e
	tx.order = append(tx.order, e)
	return e
}

// create adds a new object to p under a fresh oid.
func (tx *Tx) create(ctx context.Context, p *partition, obj Object, path string) (*entry, error) {
	if err := tx.writable(); err != nil {
		return nil, err
	}
	if isNil(obj) {
		return nil, fmt.Errorf("create %s: nil object: %w", path, storage.ErrInvalid)
	}
	if obj.persistent().e != nil {
		return nil, fmt.Errorf("create %s: object already stored at %s: %w", path, obj.persistent().e.path, storage.ErrInvalid)
	}
	if !Registered(obj.TypeName()) {
		return nil, fmt.Errorf("create %s: type %q: %w", path, obj.TypeName(), ErrUnknownType)
	}
	oid, err := p.newOid(ctx)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return tx.attach(p, oid, path, obj, storage.ZeroTid, nil, nil, true), nil
}

func (tx *Tx) writable() error {
	if tx.done {
		return ErrTxDone
	}
	if tx.readOnly {
		return ErrReadOnlyTx
	}
	return nil
}

// RequireCurrent makes the commit fail with a conflict (matching
// storage.ErrConflict, so Update runs fn again) if obj, an object this
// transaction loaded, was changed by another transaction after this one
// loaded it, even if this transaction leaves obj unchanged and even if
// obj's type could merge the change (ZODB's readCurrent). Use it for
// compare-and-set: a precondition checked against obj's serial stays true
// up to the commit. It costs one extra record write of obj.
func (tx *Tx) RequireCurrent(obj Object) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if isNil(obj) || obj.persistent().e == nil || obj.persistent().e.tx != tx {
		return fmt.Errorf("require current: object not loaded by this transaction: %w", storage.ErrInvalid)
	}
	obj.persistent().e.current = true
	return nil
}

// Abort ends the transaction without writing anything. It is safe to call
// after Commit (a no-op) and more than once.
func (tx *Tx) Abort() {
	tx.done = true
}
