package session

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

// MaxKeyLen bounds the length of a session data key, in bytes.
const MaxKeyLen = 256

// loadAttempts bounds how often loading the session starts over on a
// fresh snapshot after a read conflict (a packless partition that already
// overwrote the snapshot's revision).
const loadAttempts = 5

// Handle is one request's view of its session: the session data manager.
// It is lazy: nothing touches storage until a method needs the session,
// so a request that never looks at its session costs nothing. Reads come
// from the request's transaction; changes are kept in the handle and
// written once, when the request ends (or at Commit), in that same
// transaction, and only if something changed: a request that only reads
// writes nothing, except the last-access time once per Refresh.
//
// A Handle is safe for concurrent use by the goroutines of its request.
// The zero or nil *Handle (a request that did not pass through the
// middleware) answers every call with ErrNoManager.
type Handle struct {
	m  *Manager
	rw *responseWriter
	r  *http.Request

	mu sync.Mutex
	reqState
	// After a Commit the request's cookie may be stale (a session was
	// created, renewed or invalidated): the next load uses committedID.
	committed        bool
	committedID      string
	committedVersion uint64
}

// reqState is what a Handle knows and plans; reset after every commit.
type reqState struct {
	tx       *db.Tx
	txShared bool
	loaded   bool

	// The session as this request sees it.
	id         string  // id of the live session; "" when there is none
	base       *Record // stored state whose data is visible; nil for none or new
	created    int64   // of the live session
	lastAccess int64   // stored last access of the live session

	// What the request changes, applied at the end.
	create       bool   // id names a session this request creates
	copyFrom     string // key of the session a renewal copies its data from
	deleteKey    string // key of a stored session this request deletes
	deleteID     string
	deleteReason string
	sets         map[string][]byte
	dels         map[string]struct{}
}

// Info describes a live session.
type Info struct {
	// Key is the non-secret handle of the browser id (see Key).
	Key string
	// New is true when this request created the session (it is stored
	// at the end of the request).
	New        bool
	Created    time.Time
	LastAccess time.Time
	// ExpiresAt is when the session expires if not accessed again.
	ExpiresAt time.Time
}

func (h *Handle) check() error {
	if h == nil || h.m == nil {
		return ErrNoManager
	}
	return nil
}

// load reads the session named by the request's cookie, once per request
// (or per Commit). Malformed, unknown and expired ids all mean "no
// session": they never cause an error. When the browser's version cookie
// says it wrote a newer version of the session than this node sees (it
// wrote through another node an instant ago), load waits for this node to
// catch up, up to StaleWait, starting a fresh snapshot each time.
func (h *Handle) load(ctx context.Context) error {
	if h.loaded {
		return nil
	}
	if err := h.m.ensureContainer(ctx); err != nil {
		return fmt.Errorf("load session: %w", err)
	}
	id, ok := h.m.ids.FromRequest(h.r)
	want := uint64(0)
	if ok {
		want = h.m.ids.versionFromRequest(h.r)
	}
	if h.committed {
		id, ok, want = h.committedID, h.committedID != "", h.committedVersion
	}
	var deadline time.Time
	backoff := time.Millisecond
	conflicts := 0
	for {
		if err := h.beginTx(ctx); err != nil {
			return err
		}
		if !ok {
			break
		}
		rec, err := db.GetAs[*Record](ctx, h.tx, h.m.recordPath(Key(id)))
		switch {
		case err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, db.ErrWrongType):
		case errors.Is(err, storage.ErrConflict) && !h.txShared && conflicts < loadAttempts:
			conflicts++
			h.tx.Abort()
			h.tx = nil
			continue
		default:
			return fmt.Errorf("load session %s: %w", Key(id), err)
		}
		if err != nil {
			rec = nil
		}
		if want > 0 && (rec == nil || rec.Version < want) && !h.txShared && h.m.o.StaleWait > 0 {
			// This node has not seen the browser's last write yet.
			if deadline.IsZero() {
				deadline = time.Now().Add(h.m.o.StaleWait)
			}
			if time.Now().Before(deadline) {
				h.tx.Abort()
				h.tx = nil
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					return fmt.Errorf("load session %s: wait for version %d: %w", Key(id), want, ctx.Err())
				case <-t.C:
				}
				backoff = min(2*backoff, 20*time.Millisecond)
				continue
			}
			h.m.log.Warn("node still behind the session version the browser wrote; going on", "key", Key(id), "want", want)
			if rec == nil && h.rw != nil {
				// Most likely deleted meanwhile (another tab logged
				// out): stop the browser from asking again.
				h.rw.expireVersion(h.m.ids, h.r)
			}
		}
		if rec != nil && !rec.Deleted && !rec.expired(h.m.o.Now(), h.m.o.Timeout, h.m.o.Lifetime) {
			h.id, h.base, h.created, h.lastAccess = id, rec.Clone().(*Record), rec.Created, rec.LastAccess
		}
		break
	}
	h.loaded = true
	return nil
}

func (h *Handle) beginTx(ctx context.Context) error {
	if h.tx != nil {
		return nil
	}
	tx, err := h.m.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin session transaction: %w", err)
	}
	tx.SetMeta(storage.TxMeta{User: "session", Description: "session " + h.r.URL.Path,
		Extension: map[string]string{"node": h.m.o.Node}})
	h.tx = tx
	return nil
}

// value returns the encoded value of key as this request sees it.
func (h *Handle) value(key string) ([]byte, bool) {
	if h.id == "" {
		return nil, false
	}
	if v, ok := h.sets[key]; ok {
		return v, true
	}
	if _, ok := h.dels[key]; ok {
		return nil, false
	}
	if h.base == nil {
		return nil, false
	}
	v, ok := h.base.Data[key]
	return v, ok
}

// Exists reports whether the request has a live session, without
// creating one (HasSession). It counts as an access for the idle timeout.
func (h *Handle) Exists(ctx context.Context) (bool, error) {
	unlock, err := h.lockLoaded(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	return h.id != "", nil
}

// Get returns the value stored under key, decoded generically (maps as
// map[string]any, integers as int64, also when they were stored as
// another integer type), and whether it was there. A request without a
// session gets (nil, false, nil).
func (h *Handle) Get(ctx context.Context, key string) (any, bool, error) {
	var v any
	ok, err := h.Decode(ctx, key, &v)
	return v, ok, err
}

// Decode decodes the value stored under key into the value into points
// to (a struct stored with Set comes back into the same struct type), and
// reports whether the key was there.
func (h *Handle) Decode(ctx context.Context, key string, into any) (bool, error) {
	unlock, err := h.lockLoaded(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	b, ok := h.value(key)
	if !ok {
		return false, nil
	}
	if err := decodeValue(b, into); err != nil {
		return true, fmt.Errorf("session key %q: %w", key, err)
	}
	return true, nil
}

// Keys returns the session's keys, sorted; none without a session.
func (h *Handle) Keys(ctx context.Context) ([]string, error) {
	unlock, err := h.lockLoaded(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if h.id == "" {
		return nil, nil
	}
	keys := map[string]struct{}{}
	if h.base != nil {
		for k := range h.base.Data {
			keys[k] = struct{}{}
		}
	}
	for k := range h.dels {
		delete(keys, k)
	}
	for k := range h.sets {
		keys[k] = struct{}{}
	}
	return slices.Sorted(maps.Keys(keys)), nil
}

// Set stores v under key, creating the session if the request has none
// (which sets the browser id cookie, so it must happen before the
// response's headers are written: ErrHeadersWritten otherwise). v may be
// anything CBOR encodes: nil, bools, numbers, strings, []byte, slices,
// maps with string keys, structs (by exported fields). ErrFull when a new
// session would exceed the limit; ErrValue for a value that cannot be
// encoded. The change is written at the end of the request.
func (h *Handle) Set(ctx context.Context, key string, v any) error {
	if err := h.check(); err != nil {
		return err
	}
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("session key %q: empty or longer than %d bytes: %w", key, MaxKeyLen, ErrValue)
	}
	enc, err := encodeValue(v)
	if err != nil {
		return fmt.Errorf("session key %q: %w", key, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.load(ctx); err != nil {
		return err
	}
	if h.id == "" {
		if err := h.start(ctx); err != nil {
			return err
		}
	}
	if h.sets == nil {
		h.sets = map[string][]byte{}
	}
	h.sets[key] = enc
	delete(h.dels, key)
	return nil
}

// Delete removes key from the session (nothing happens without a
// session, or when the key is absent).
func (h *Handle) Delete(ctx context.Context, key string) error {
	unlock, err := h.lockLoaded(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if h.id == "" {
		return nil
	}
	if _, ok := h.value(key); !ok {
		return nil
	}
	delete(h.sets, key)
	if h.base != nil {
		if _, stored := h.base.Data[key]; stored {
			if h.dels == nil {
				h.dels = map[string]struct{}{}
			}
			h.dels[key] = struct{}{}
		}
	}
	return nil
}

// start creates a new session for this request: a fresh id in the
// cookie, stored at the end of the request.
func (h *Handle) start(ctx context.Context) error {
	if h.rw != nil && h.rw.headersWritten() {
		return ErrHeadersWritten
	}
	if lim := h.m.o.Limit; lim > 0 {
		n, err := h.m.Count(ctx)
		if err != nil {
			return fmt.Errorf("new session: %w", err)
		}
		if n >= lim {
			h.m.refused.Add(1)
			h.m.log.Warn("session limit reached; new session refused", "container", h.m.o.Container, "limit", lim)
			return fmt.Errorf("new session: %d of %d sessions: %w", n, lim, ErrFull)
		}
	}
	id, err := NewID()
	if err != nil {
		return fmt.Errorf("new session: %w", err)
	}
	now := h.m.o.Now().UnixNano()
	h.id, h.create, h.created, h.lastAccess = id, true, now, now
	h.setCookie(id)
	return nil
}

// lockLoaded is the prologue of every method that reads or changes the
// session: it checks the handle is usable, locks it and loads the session
// (once per request). On success the caller holds h.mu and must call
// unlock; on error nothing is held.
func (h *Handle) lockLoaded(ctx context.Context) (unlock func(), err error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	if err := h.load(ctx); err != nil {
		h.mu.Unlock()
		return nil, err
	}
	return h.mu.Unlock, nil
}

func (h *Handle) setCookie(id string) {
	if h.rw != nil {
		h.rw.setCookie(h.m.ids, h.r, id)
	}
}

// Renew gives the session a new browser id and retires the old one (call
// it after a login, against session fixation). The data, creation time and
// absolute lifetime carry over; the old id names no session once the
// request commits. ErrNoSession without a session; ErrHeadersWritten
// after the response's headers were written. A request still running with
// the old id at that moment cannot write to the session any more: its
// changes are dropped.
func (h *Handle) Renew(ctx context.Context) error {
	unlock, err := h.lockLoaded(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if h.id == "" {
		return ErrNoSession
	}
	if h.rw != nil && h.rw.headersWritten() {
		return ErrHeadersWritten
	}
	id, err := NewID()
	if err != nil {
		return fmt.Errorf("renew session: %w", err)
	}
	if !h.create {
		k := Key(h.id)
		h.copyFrom, h.deleteKey, h.deleteID, h.deleteReason = k, k, h.id, ReasonRenewed
	}
	h.id, h.create = id, true
	h.setCookie(id)
	return nil
}

// Invalidate deletes the session at the end of the request and tells the
// browser to forget its id (if the headers are not written yet; else the
// id simply names no session any more). A later Set in the same request
// starts a new session. Without a session it does nothing.
func (h *Handle) Invalidate(ctx context.Context) error {
	unlock, err := h.lockLoaded(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if h.id == "" {
		return nil
	}
	if h.create {
		if h.copyFrom != "" {
			h.deleteReason = ReasonInvalidated
		}
	} else {
		h.deleteKey, h.deleteID, h.deleteReason = Key(h.id), h.id, ReasonInvalidated
	}
	h.id, h.create, h.copyFrom, h.base, h.sets, h.dels = "", false, "", nil, nil, nil
	if h.rw != nil {
		h.rw.expireCookie(h.m.ids, h.r)
	}
	return nil
}

// Info describes the live session; ok is false without one.
func (h *Handle) Info(ctx context.Context) (info Info, ok bool, err error) {
	unlock, err := h.lockLoaded(ctx)
	if err != nil {
		return Info{}, false, err
	}
	defer unlock()
	if h.id == "" {
		return Info{}, false, nil
	}
	r := Record{Created: h.created, LastAccess: h.lastAccess}
	return Info{
		Key: Key(h.id), New: h.create,
		Created: time.Unix(0, h.created), LastAccess: time.Unix(0, h.lastAccess),
		ExpiresAt: r.expiresAt(h.m.o.Timeout, h.m.o.Lifetime),
	}, true, nil
}

// Key returns the non-secret key of the live session's id ("" without a
// session, or before the session was first used).
func (h *Handle) Key() string {
	if h.check() != nil {
		return ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.id == "" {
		return ""
	}
	return Key(h.id)
}

// Tx returns the request's transaction, so the handler's own changes to
// the object tree commit atomically with the session's at the end of the
// request. After Tx, a conflict on the handler's objects that merging
// cannot resolve fails the end-of-request commit: nothing of the request
// is written, and the middleware replaces the held answer with 409 (see
// Middleware). Without Tx, a session conflict that merging cannot
// resolve is simply redone in a fresh transaction.
func (h *Handle) Tx(ctx context.Context) (*db.Tx, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.beginTx(ctx); err != nil {
		return nil, err
	}
	h.txShared = true
	return h.tx, nil
}

// Commit writes the session's changes now (and the handler's, if it used
// Tx) instead of at the end of the request, and returns the outcome, so a
// handler can report a failure before it writes its response. The handle
// then starts over: the next call loads the session again in a new
// transaction.
func (h *Handle) Commit(ctx context.Context) error {
	if err := h.check(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.finish(ctx)
}

// abort drops the request's changes (the handler panicked).
func (h *Handle) abort() {
	if h.check() != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tx != nil {
		h.tx.Abort()
	}
	h.reset()
}

func (h *Handle) reset() { h.reqState = reqState{} }

// finish commits the request's changes, if any, and resets the handle.
// Called with h.mu held.
func (h *Handle) finish(ctx context.Context) error {
	id, touched := h.id, h.loaded
	var version uint64
	defer func() {
		h.reset()
		if touched {
			h.committed, h.committedID, h.committedVersion = true, id, version
		}
	}()
	if h.tx == nil {
		return nil // the session was never touched
	}
	now := h.m.o.Now()
	touch := h.id != "" && !h.create && now.UnixNano()-h.lastAccess >= int64(h.m.o.Refresh)
	dirty := h.create || h.deleteKey != "" || len(h.sets) > 0 || len(h.dels) > 0 || touch
	if !dirty {
		if h.txShared {
			if _, err := h.tx.Commit(ctx); err != nil {
				h.m.failed.Add(1)
				return fmt.Errorf("commit request transaction: %w", err)
			}
			return nil
		}
		h.tx.Abort()
		return nil
	}
	lockKey := h.deleteKey
	if lockKey == "" {
		lockKey = Key(h.id)
	}
	l := h.m.saveLock(lockKey)
	l.Lock()
	defer l.Unlock()
	events, ver, written, err := h.apply(ctx, h.tx, now, touch)
	if err == nil {
		_, err = h.tx.Commit(ctx)
		if err == nil && written != nil && written.merged > ver {
			ver = written.merged // the commit merged: tell the browser the stored version
		}
	} else {
		h.tx.Abort()
	}
	if err != nil && errors.Is(err, storage.ErrConflict) && !h.txShared {
		// Merging resolves concurrent changes to one session; what is
		// left is a folder bucket that split or a read conflict. The
		// intents are known, so redo them on a fresh snapshot.
		h.m.replays.Add(1)
		h.m.log.Debug("session commit conflicted; redoing it", "error", err)
		_, err = h.m.db.Update(ctx, func(tx *db.Tx) error {
			var aerr error
			events, ver, written, aerr = h.apply(ctx, tx, now, touch)
			return aerr
		})
		if err == nil && written != nil && written.merged > ver {
			ver = written.merged
		}
	}
	if err != nil {
		h.m.failed.Add(1)
		return fmt.Errorf("save session: %w", err)
	}
	version = ver
	if ver > 0 && h.rw != nil {
		h.rw.setVersion(h.m.ids, h.r, ver)
	}
	for _, ev := range events {
		if ev.Type == EventAdd {
			h.m.created.Add(1)
		} else {
			h.m.deleted.Add(1)
		}
		h.m.emit(ev)
	}
	return nil
}

// apply writes the request's session changes into tx and returns the
// events they cause, the version of the session's data it wrote (0 when
// it wrote none) and the record it changed (nil for none; a merge at
// commit sets its merged version). It reads the stored state afresh from tx, so it
// can run again in a new transaction after a conflict.
func (h *Handle) apply(ctx context.Context, tx *db.Tx, now time.Time, touch bool) ([]Event, uint64, *Record, error) {
	var events []Event
	var count *Count
	counter := func() (*Count, error) {
		if count != nil {
			return count, nil
		}
		c, err := db.GetAs[*Count](ctx, tx, h.m.countPath)
		count = c
		return c, err
	}
	items, err := tx.Folder(ctx, h.m.itemsPath)
	if err != nil {
		return nil, 0, nil, err
	}
	var copied map[string][]byte
	copiedCreated, copiedVersion := int64(0), uint64(0)
	if h.deleteKey != "" {
		old, err := db.GetAs[*Record](ctx, tx, h.m.recordPath(h.deleteKey))
		switch {
		case err == nil:
			if h.copyFrom == h.deleteKey {
				copied, copiedCreated, copiedVersion = cloneData(old.Data), old.Created, old.Version
			}
			events = append(events, old.event(EventDelete, h.deleteReason, h.deleteID, now))
			c, err := counter()
			if err != nil {
				return nil, 0, nil, err
			}
			if err := unlink(ctx, items, c, h.deleteKey, old); err != nil {
				return nil, 0, nil, err
			}
		case errors.Is(err, storage.ErrNotFound):
			// Removed meanwhile (swept, invalidated by another request).
		default:
			return nil, 0, nil, err
		}
	}
	if h.id == "" {
		return events, 0, nil, nil
	}
	if h.create {
		if h.copyFrom != "" && copied == nil {
			// The renewed session vanished meanwhile: the new one
			// starts from this request's view of it.
			if h.base != nil {
				copied, copiedCreated, copiedVersion = cloneData(h.base.Data), h.base.Created, h.base.Version
			}
		}
		rec := &Record{Created: h.created, LastAccess: now.UnixNano(), Data: copied, Version: copiedVersion + 1}
		if copiedCreated != 0 {
			rec.Created = copiedCreated
		}
		h.applyDiff(rec)
		if err := items.Create(ctx, Key(h.id), rec); err != nil {
			return nil, 0, nil, err
		}
		c, err := counter()
		if err != nil {
			return nil, 0, nil, err
		}
		lim := int64(h.m.o.Limit)
		if lim > 0 && c.N >= lim {
			h.m.refused.Add(1)
			return nil, 0, nil, fmt.Errorf("store new session: %d of %d sessions: %w", c.N, lim, ErrFull)
		}
		c.N++
		c.Limit = lim
		reason := ReasonNew
		if h.copyFrom != "" {
			reason = ReasonRenewed
		}
		return append(events, rec.event(EventAdd, reason, h.id, now)), rec.Version, nil, nil
	}
	rec, err := db.GetAs[*Record](ctx, tx, h.m.recordPath(Key(h.id)))
	if errors.Is(err, storage.ErrNotFound) {
		h.m.log.Debug("session removed while the request ran; its changes are dropped", "key", Key(h.id))
		return events, 0, nil, nil
	}
	if err != nil {
		return nil, 0, nil, err
	}
	var ver uint64
	if len(h.sets) > 0 || len(h.dels) > 0 {
		h.applyDiff(rec)
		rec.Version++
		ver = rec.Version
	}
	if touch {
		rec.LastAccess = max(rec.LastAccess, now.UnixNano())
	}
	return events, ver, rec, nil
}

// applyDiff writes the request's sets and deletes into rec.
func (h *Handle) applyDiff(rec *Record) {
	if len(h.sets) > 0 && rec.Data == nil {
		rec.Data = make(map[string][]byte, len(h.sets))
	}
	for k, v := range h.sets {
		rec.Data[k] = v
	}
	for k := range h.dels {
		delete(rec.Data, k)
	}
	if len(rec.Data) == 0 {
		rec.Data = nil
	}
}
