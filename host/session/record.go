package session

import (
	"bytes"
	"fmt"
	"maps"
	"reflect"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/zhostdb/zhost/host/db"
)

// TypeName is the object type under which sessions are stored, registered
// with host/db by this package's init function, so any node that imports
// host/session can decode any session.
const TypeName = "session"

func init() {
	db.MustRegisterType(TypeName, func() db.Object { return new(Record) })
}

// Record is one session as stored: its own object in the container, so
// requests of different browsers never write the same object. Values are
// kept CBOR-encoded per key, which makes the key-level merge a byte
// comparison and lets every node decode a value the same way.
//
// Record is exported only because host/db decodes it by type name;
// applications use Handle.
type Record struct {
	db.Persistent `cbor:"-"`
	// Created and LastAccess are Unix nanoseconds.
	Created    int64 `cbor:"1,keyasint"`
	LastAccess int64 `cbor:"2,keyasint"`
	// Data maps each key to its CBOR-encoded value.
	Data map[string][]byte `cbor:"3,keyasint,omitempty"`
	// Deleted is set in the same transaction that unlinks the record
	// from the container. Writing the record makes every concurrent
	// change to it (a request's save, another node's sweep) conflict
	// with the deletion instead of merging past it.
	Deleted bool `cbor:"4,keyasint,omitempty"`
	// Version counts the writes that changed Data (not the last-access
	// refreshes). It only grows; merging keeps the larger. Browsers
	// carry the version they last wrote in a cookie, so a node whose
	// view is older waits for it (read-your-writes across nodes).
	Version uint64 `cbor:"5,keyasint,omitempty"`

	// merged is the Version of the state Merge last produced from this
	// one (0: none), so the request that wrote it can send the browser
	// the version actually stored. Not encoded.
	merged uint64
}

// TypeName implements db.Object.
func (r *Record) TypeName() string { return TypeName }

// Clone implements db.Cloner (a deep copy without the decode).
func (r *Record) Clone() db.Object {
	c := &Record{Created: r.Created, LastAccess: r.LastAccess, Deleted: r.Deleted, Version: r.Version}
	if r.Data != nil {
		c.Data = make(map[string][]byte, len(r.Data))
		for k, v := range r.Data {
			c.Data[k] = bytes.Clone(v)
		}
	}
	return c
}

// Merge implements db.Merger: the key-level merge that makes concurrent
// requests of one browser (two tabs, parallel XHR) both succeed. r is this
// transaction's new state, old what it was based on, committed what
// another transaction committed meanwhile. Every key this transaction
// set, changed or deleted (compared with old) is applied on top of
// committed; every other key keeps its committed value. So changes to
// different keys both survive, and for the same key the transaction that
// commits last wins. LastAccess is the later of the two; Created is the
// committed one. A deletion on either side never merges: the session is
// gone (or the deleter runs again and sees it was used).
func (r *Record) Merge(old, committed db.Object) (db.Object, error) {
	theirs, ok := committed.(*Record)
	if !ok {
		return nil, db.MergeConflict("session merge: committed state is a %s", committed.TypeName())
	}
	if r.Deleted || theirs.Deleted {
		return nil, db.MergeConflict("session deleted concurrently")
	}
	var base *Record
	if old != nil {
		if base, ok = old.(*Record); !ok {
			return nil, db.MergeConflict("session merge: old state is a %s", old.TypeName())
		}
	} else {
		base = &Record{}
	}
	out := theirs.Clone().(*Record)
	if out.Data == nil {
		out.Data = map[string][]byte{}
	}
	for k, v := range r.Data {
		if ov, had := base.Data[k]; !had || !bytes.Equal(ov, v) {
			out.Data[k] = bytes.Clone(v)
		}
	}
	for k := range base.Data {
		if _, kept := r.Data[k]; !kept {
			delete(out.Data, k)
		}
	}
	if len(out.Data) == 0 {
		out.Data = nil
	}
	out.LastAccess = max(r.LastAccess, theirs.LastAccess)
	out.Version = max(r.Version, theirs.Version)
	if r.Version > base.Version && out.Version <= theirs.Version {
		// This transaction changed the data: the merged state differs
		// from every committed one, so it needs a version of its own.
		// Versions then grow with every data change in commit order,
		// and a node that sees version v has seen every write up to it.
		out.Version = theirs.Version + 1
	}
	r.merged = out.Version
	return out, nil
}

// expired reports whether the session is past its idle timeout or its
// absolute lifetime at now.
func (r *Record) expired(now time.Time, timeout, lifetime time.Duration) bool {
	n := now.UnixNano()
	if n-r.LastAccess >= int64(timeout) {
		return true
	}
	return lifetime > 0 && n-r.Created >= int64(lifetime)
}

// expiresAt is when the session expires if it is not accessed again.
func (r *Record) expiresAt(timeout, lifetime time.Duration) time.Time {
	t := r.LastAccess + int64(timeout)
	if lifetime > 0 {
		t = min(t, r.Created+int64(lifetime))
	}
	return time.Unix(0, t)
}

func (r *Record) event(typ EventType, reason, id string, now time.Time) Event {
	return Event{
		Type: typ, Reason: reason, ID: id, Key: Key(id),
		Created: time.Unix(0, r.Created).UTC(), LastAccess: time.Unix(0, r.LastAccess).UTC(),
		Time: now.UTC(),
	}
}

// cloneData returns a deep copy of the data map (nil stays nil).
func cloneData(m map[string][]byte) map[string][]byte {
	if m == nil {
		return nil
	}
	out := maps.Clone(m)
	for k, v := range out {
		out[k] = bytes.Clone(v)
	}
	return out
}

// Value encoding: deterministic CBOR, so an unchanged value encodes to the
// same bytes and the merge can compare bytes. Decoding to an interface
// gives map[string]any for maps, int64 for integers, float64, string,
// bool, []byte, []any, nil.
var (
	valEnc cbor.EncMode
	valDec cbor.DecMode
)

func init() {
	var err error
	valEnc, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(fmt.Sprintf("session: cbor encoder options: %v", err))
	}
	valDec, err = cbor.DecOptions{
		DefaultMapType:   reflect.TypeOf(map[string]any(nil)),
		IntDec:           cbor.IntDecConvertSigned,
		MaxNestedLevels:  32,
		MaxArrayElements: 1 << 20,
		MaxMapPairs:      1 << 20,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("session: cbor decoder options: %v", err))
	}
}

func encodeValue(v any) ([]byte, error) {
	b, err := valEnc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w: %w", v, err, ErrValue)
	}
	return b, nil
}

func decodeValue(b []byte, into any) error {
	if err := valDec.Unmarshal(b, into); err != nil {
		return fmt.Errorf("decode session value: %w", err)
	}
	return nil
}

var _ db.Object = (*Record)(nil)
var _ db.Merger = (*Record)(nil)
var _ db.Cloner = (*Record)(nil)

// CountTypeName is the object type of the container's session count.
const CountTypeName = "session_count"

func init() {
	db.MustRegisterType(CountTypeName, func() db.Object { return new(Count) })
}

// Count is the number of sessions in a container, kept beside the items
// folder so the limit check is one load. Concurrent changes merge like
// ZODB's BTrees.Length (committed + this transaction's delta), except
// that an increase that would take the count past Limit does not merge:
// that is how the limit stays exact when several nodes create sessions
// at once, or when a node's view lags another's commit. The losing
// transaction runs again, sees the full count and answers ErrFull.
//
// Count is exported only because host/db decodes it by type name.
type Count struct {
	db.Persistent `cbor:"-"`
	N             int64 `cbor:"1,keyasint"`
	// Limit is the limit of the node that last created a session (0:
	// none); the merge enforces it.
	Limit int64 `cbor:"2,keyasint,omitempty"`
}

// TypeName implements db.Object.
func (c *Count) TypeName() string { return CountTypeName }

// Clone implements db.Cloner.
func (c *Count) Clone() db.Object { return &Count{N: c.N, Limit: c.Limit} }

// Merge implements db.Merger (see Count).
func (c *Count) Merge(old, committed db.Object) (db.Object, error) {
	theirs, ok := committed.(*Count)
	if !ok {
		return nil, db.MergeConflict("session count replaced by a %s", committed.TypeName())
	}
	var base int64
	if o, ok := old.(*Count); ok {
		base = o.N
	}
	delta := c.N - base
	n := theirs.N + delta
	if delta > 0 && c.Limit > 0 && n > c.Limit {
		return nil, db.MergeConflict("session limit %d reached", c.Limit)
	}
	return &Count{N: n, Limit: c.Limit}, nil
}

var _ db.Object = (*Count)(nil)
var _ db.Merger = (*Count)(nil)
var _ db.Cloner = (*Count)(nil)
