package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

// ObjectJSON is the JSON of one object, as GET /PATH answers it and PUT
// echoes it.
type ObjectJSON struct {
	Path   string `json:"path"`
	URL    string `json:"url"`
	Type   string `json:"type"`
	Serial string `json:"serial"`
	// Data is a document's data.
	Data map[string]any `json:"data,omitempty"`
	// Value is a counter's value.
	Value *int64 `json:"value,omitempty"`
	// Children lists a folder's children (one page of them).
	Children []ChildJSON `json:"children,omitempty"`
	// Next is the URL of the next page of children, when there is one.
	Next string `json:"next,omitempty"`
}

// ChildJSON is one child of a folder.
type ChildJSON struct {
	Name string `json:"name"`
	Path string `json:"path"`
	URL  string `json:"url"`
	Type string `json:"type,omitempty"`
	// Error says why the child could not be loaded (an unavailable
	// mount); Type is then empty.
	Error string `json:"error,omitempty"`
}

// cleanPath turns a request path into an object path: "/" or "/a/b",
// without empty or "." names. ".." is rejected.
func cleanPath(p string) (string, error) {
	var names []string
	for _, n := range strings.Split(p, "/") {
		switch n {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("path %q: '..' is not allowed: %w", p, db.ErrInvalidPath)
		}
		names = append(names, n)
	}
	return "/" + strings.Join(names, "/"), nil
}

// splitParent returns the parent path and the last name of a clean path
// other than "/".
func splitParent(p string) (string, string) {
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/", p[1:]
	}
	return p[:i], p[i+1:]
}

func (a *App) serveObject(w http.ResponseWriter, r *http.Request) {
	path, err := cleanPath(r.URL.Path)
	if err != nil {
		a.writeDBError(w, r, r.URL.Path, err)
		return
	}
	if err := a.checkReserved(path, r.Method != http.MethodGet && r.Method != http.MethodHead); err != nil {
		a.writeDBError(w, r, path, err)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		a.getObject(w, r, path)
	case http.MethodPut:
		a.putObject(w, r, path)
	case http.MethodDelete:
		a.deleteObject(w, r, path)
	default:
		methodNotAllowed(w, r, a, "GET, HEAD, PUT, DELETE")
	}
}

// serial returns the serial of any object (every type embeds
// db.Persistent).
func serialOf(obj db.Object) storage.Tid {
	if s, ok := obj.(interface{ Serial() storage.Tid }); ok {
		return s.Serial()
	}
	return storage.ZeroTid
}

func (a *App) getObject(w http.ResponseWriter, r *http.Request, path string) {
	after := r.URL.Query().Get("after")
	limit := DefaultListLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			a.writeError(w, r, http.StatusBadRequest, path, fmt.Errorf("limit %q: want 1 to %d", s, MaxListLimit))
			return
		}
		limit = n
	}
	var out ObjectJSON
	var serial storage.Tid
	var isFolder bool
	err := a.db.View(r.Context(), func(tx *db.Tx) error {
		obj, err := tx.Get(r.Context(), path)
		if err != nil {
			return err
		}
		serial = serialOf(obj)
		_, isFolder = obj.(*db.Folder)
		out, err = a.objectJSON(r.Context(), r, path, obj, after, limit)
		return err
	})
	if err != nil {
		if errors.Is(err, db.ErrNotFolder) {
			err = fmt.Errorf("%s: %w", path, db.ErrNotFound) // a path through a document names nothing
		}
		a.writeDBError(w, r, path, err)
		return
	}
	if isFolder {
		// A folder's listing also depends on its buckets and on its
		// children's types, which its own serial does not cover: no
		// ETag, so no stale 304.
		writeJSON(w, http.StatusOK, out)
		return
	}
	w.Header().Set("ETag", etag(serial))
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, serial) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// objectJSON renders obj; for a folder, one page of children.
func (a *App) objectJSON(ctx context.Context, r *http.Request, path string, obj db.Object, after string, limit int) (ObjectJSON, error) {
	out := ObjectJSON{Path: path, URL: a.urlFor(r, path), Type: obj.TypeName(), Serial: serialOf(obj).String()}
	switch o := obj.(type) {
	case *db.Document:
		out.Data = o.Data
		if out.Data == nil {
			out.Data = map[string]any{}
		}
	case *db.Counter:
		v := o.Value()
		out.Value = &v
	case *db.Folder:
		names, err := o.List(ctx, after, limit+1)
		if err != nil {
			return out, err
		}
		more := len(names) > limit
		if more {
			names = names[:limit]
		}
		out.Children = make([]ChildJSON, 0, len(names))
		for _, n := range names {
			cp := childPath(path, n)
			if a.checkReserved(cp, false) != nil {
				continue
			}
			c := ChildJSON{Name: n, Path: cp, URL: a.urlFor(r, cp)}
			if child, err := o.Get(ctx, n); err != nil {
				if errors.Is(err, storage.ErrConflict) {
					return out, err // a read conflict: View runs again
				}
				c.Error = err.Error()
			} else {
				c.Type = child.TypeName()
			}
			out.Children = append(out.Children, c)
		}
		if more {
			q := url.Values{"after": {names[len(names)-1]}, "limit": {strconv.Itoa(limit)}}
			out.Next = a.urlFor(r, path) + "?" + q.Encode()
		}
	}
	return out, nil
}

func childPath(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// etagMatches reports whether an If-Match / If-None-Match list names
// serial ("*" names any existing object).
func etagMatches(header string, serial storage.Tid) bool {
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimSpace(part)
		if part == "*" {
			return serial != storage.ZeroTid
		}
		if t, err := parseTid(part); err == nil && t == serial && serial != storage.ZeroTid {
			return true
		}
	}
	return false
}

// check applies If-Match (ifMatch != "") and If-None-Match: * (create)
// to the current serial (ZeroTid: nothing there).
func checkPreconditions(path, ifMatch string, create bool, current storage.Tid) error {
	if ifMatch != "" && !etagMatches(ifMatch, current) {
		return &preconditionError{path: path, current: current}
	}
	if create && current != storage.ZeroTid {
		return &preconditionError{path: path, current: current}
	}
	return nil
}

func (a *App) putObject(w http.ResponseWriter, r *http.Request, path string) {
	if path == "/" {
		methodNotAllowed(w, r, a, "GET, HEAD")
		return
	}
	data, err := a.readJSONObject(w, r)
	if err != nil {
		a.writeError(w, r, statusOfBody(err), path, err)
		return
	}
	ifMatch := r.Header.Get("If-Match")
	createOnly := strings.TrimSpace(r.Header.Get("If-None-Match")) == "*"
	var res putResult
	tid, err := a.db.Update(r.Context(), func(tx *db.Tx) error {
		var err error
		res, err = putDocument(r.Context(), tx, path, data, ifMatch, createOnly)
		return err
	})
	if err != nil {
		a.writeWriteError(w, r, path, err)
		return
	}
	serial := res.serial(tid)
	if res.main {
		a.setWriteTid(w, r, tid)
	}
	w.Header().Set("ETag", etag(serial))
	out := ObjectJSON{Path: path, URL: a.urlFor(r, path), Type: "document", Serial: serial.String(), Data: data}
	status := http.StatusOK
	if res.created {
		status = http.StatusCreated
		w.Header().Set("Location", out.URL)
	}
	writeJSON(w, status, out)
}

// putResult is what a put or delete did inside its transaction.
type putResult struct {
	created bool
	// changed: the transaction wrote the object (false for a put of the
	// data the document already holds), so its serial is the tid.
	changed bool
	// main: the change is in the main partition, so its tid is one a
	// later request can wait for.
	main bool
	// before is the serial the object had (ZeroTid if created).
	before storage.Tid
	// obj is the document put (nil for a delete).
	obj db.Object
}

// serial is the object's serial after a commit with tid: tid, unless the
// transaction did not write it (an identical document), which leaves the
// old serial.
func (p putResult) serial(tid storage.Tid) storage.Tid {
	if tid == storage.ZeroTid || !p.changed {
		return p.before
	}
	return tid
}

// target is what a write at a path finds: the parent folder, the last
// name, whether the parent lives in the main partition, and the object
// now there (nil when nothing is).
type target struct {
	parent *db.Folder
	name   string
	main   bool
	obj    db.Object
}

// locate finds path's parent folder inside tx, creating missing folders
// when mkdir is set, and the object at path. Nothing at path is not an
// error (obj is nil); a missing parent without mkdir is db.ErrNotFound.
func locate(ctx context.Context, tx *db.Tx, path string, mkdir bool) (target, error) {
	var t target
	parentPath, name := splitParent(path)
	var err error
	if mkdir {
		t.parent, err = tx.MkdirAll(ctx, parentPath)
	} else {
		t.parent, err = tx.Folder(ctx, parentPath)
	}
	if err != nil {
		return t, err
	}
	t.name = name
	root, err := tx.Root(ctx)
	if err != nil {
		return t, err
	}
	t.main = t.parent.Partition() == root.Partition()
	t.obj, err = t.parent.Get(ctx, name)
	if errors.Is(err, db.ErrNotFound) {
		return t, nil
	}
	return t, err
}

// putDocument creates or replaces the document at path inside tx,
// creating missing parent folders. A document that already holds data is
// left alone, so that the serial reported for it stays exact.
func putDocument(ctx context.Context, tx *db.Tx, path string, data map[string]any, ifMatch string, createOnly bool) (putResult, error) {
	var res putResult
	t, err := locate(ctx, tx, path, true)
	res.main = t.main
	if err != nil {
		return res, err
	}
	if t.obj == nil {
		if err := checkPreconditions(path, ifMatch, createOnly, storage.ZeroTid); err != nil {
			return res, err
		}
		res.created, res.changed = true, true
		doc := db.NewDocument(db.CloneMap(data))
		res.obj = doc
		return res, t.parent.Create(ctx, t.name, doc)
	}
	doc, ok := t.obj.(*db.Document)
	if !ok {
		return res, fmt.Errorf("%s is a %s, not a document: %w", path, t.obj.TypeName(), db.ErrWrongType)
	}
	res.before, res.obj = doc.Serial(), doc
	if err := checkPreconditions(path, ifMatch, createOnly, res.before); err != nil {
		return res, err
	}
	if reflect.DeepEqual(doc.Data, data) {
		return res, nil
	}
	doc.Data = db.CloneMap(data)
	res.changed = true
	return res, nil
}

// deleteObject removes path and everything below it.
func (a *App) deleteObject(w http.ResponseWriter, r *http.Request, path string) {
	if path == "/" {
		methodNotAllowed(w, r, a, "GET, HEAD")
		return
	}
	ifMatch := r.Header.Get("If-Match")
	var res putResult
	tid, err := a.db.Update(r.Context(), func(tx *db.Tx) error {
		var err error
		res, err = deleteAt(r.Context(), tx, path, ifMatch)
		return err
	})
	if err != nil {
		a.writeWriteError(w, r, path, err)
		return
	}
	if res.main {
		a.setWriteTid(w, r, tid)
	}
	w.WriteHeader(http.StatusNoContent)
}

func deleteAt(ctx context.Context, tx *db.Tx, path, ifMatch string) (putResult, error) {
	var res putResult
	t, err := locate(ctx, tx, path, false)
	res.main = t.main
	if err != nil {
		return res, err
	}
	if t.obj == nil {
		return res, fmt.Errorf("%s: %w", path, db.ErrNotFound)
	}
	res.before = serialOf(t.obj)
	if err := checkPreconditions(path, ifMatch, false, res.before); err != nil {
		return res, err
	}
	if ifMatch != "" {
		// Removing the name changes the parent only: without this a
		// concurrent change to the object itself would not conflict,
		// and the delete would drop an acknowledged write.
		if err := tx.RequireCurrent(t.obj); err != nil {
			return res, err
		}
	}
	res.changed = true
	return res, t.parent.Delete(ctx, t.name)
}

// writeWriteError maps errors of writes: a path through a document is a
// conflict with what is there, not a missing object.
func (a *App) writeWriteError(w http.ResponseWriter, r *http.Request, path string, err error) {
	var pe *preconditionError
	if errors.As(err, &pe) && pe.current != storage.ZeroTid {
		w.Header().Set("ETag", etag(pe.current))
	}
	a.writeDBError(w, r, path, err)
}
