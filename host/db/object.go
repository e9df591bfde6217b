package db

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/fxamacker/cbor/v2"
	"github.com/zhostdb/zhost/host/storage"
)

// Object is one persistent object as application code sees it: a pointer
// to a struct that embeds Persistent. The built-in types are *Folder,
// *Document and *Counter; other packages add their own with RegisterType.
//
// An Object returned by a Tx belongs to that transaction: it is a private
// copy, so the application may change it freely; the change is found at
// commit (the object is encoded again and compared with what was loaded)
// and written. An Object must not be used after its transaction ends.
type Object interface {
	// TypeName returns the name the type is registered under. It is
	// written into every record, so any node can decode any object; it
	// must never change for a stored type.
	TypeName() string
	persistent() *Persistent
}

// Persistent is embedded (by value) in every object type. It carries the
// object's identity inside its transaction and is never encoded.
type Persistent struct {
	e *entry
}

func (p *Persistent) persistent() *Persistent { return p }

// Oid returns the object's oid inside its partition, or storage.RootOid
// with ok false when the object has not been added to the tree yet.
func (p *Persistent) Oid() (oid storage.Oid, ok bool) {
	if p.e == nil {
		return 0, false
	}
	return p.e.oid, true
}

// Path returns the absolute path the object was reached by (mount points
// included), or "" when it has not been added to the tree yet.
func (p *Persistent) Path() string {
	if p.e == nil {
		return ""
	}
	return p.e.path
}

// Serial returns the serial (tid of the revision) the object was loaded
// at; storage.ZeroTid for an object created in this transaction.
func (p *Persistent) Serial() storage.Tid {
	if p.e == nil {
		return storage.ZeroTid
	}
	return p.e.serial
}

// Partition returns the name of the partition the object lives in: the
// main partition's name (Options.MainPartition) or a mount's target
// partition. "" when the object has not been added to the tree yet.
func (p *Persistent) Partition() string {
	if p.e == nil {
		return ""
	}
	return p.e.part.name
}

// Merger is implemented by object types whose concurrent changes can be
// merged (conflict resolution, as ZODB's _p_resolveConflict). When a
// commit conflicts on an object, the DB loads the committed state and
// calls Merge on the transaction's own new state with old, the state the
// transaction was based on (nil if it created the object), and committed,
// the state another transaction committed meanwhile. Merge returns the
// merged state (which may be the receiver, a new object or committed) or
// an error wrapping ErrConflict if the changes cannot be merged; the
// Update helper then runs the whole transaction again. Merge must not
// change old or committed, must be deterministic, and must not load other
// objects.
type Merger interface {
	Merge(old, committed Object) (Object, error)
}

// Cloner is an optional fast path: an object type that implements it
// returns a deep copy of itself (without the embedded Persistent). Types
// without it are copied by decoding their record again.
type Cloner interface {
	Clone() Object
}

// referrer is implemented by the built-in types that reference other
// objects (folders and their buckets); the oids go into Record.Refs.
type referrer interface {
	refs() []storage.Oid
}

type typeInfo struct {
	name string
	new  func() Object
}

var (
	typesMu sync.RWMutex
	types   = map[string]typeInfo{}
)

// RegisterType makes an object type known to the DB under name, so
// records of that type can be decoded. newObject returns a fresh zero
// object (a pointer to a struct embedding Persistent); its TypeName must
// return name. The object is encoded with CBOR (github.com/fxamacker/cbor/v2,
// deterministic mode): exported fields, `cbor:"..."` tags, or the type's
// own MarshalCBOR/UnmarshalCBOR. Register in an init function of the
// package that defines the type, on every node. Names are global;
// "folder", "bucket", "document" and "counter" are taken by the built-in
// types. RegisterType is safe for concurrent use; registering a name twice
// is an error.
func RegisterType(name string, newObject func() Object) error {
	if name == "" || newObject == nil {
		return fmt.Errorf("register type %q: empty name or nil constructor: %w", name, storage.ErrInvalid)
	}
	probe := newObject()
	if probe == nil || reflect.ValueOf(probe).Kind() != reflect.Pointer {
		return fmt.Errorf("register type %q: constructor must return a non-nil pointer: %w", name, storage.ErrInvalid)
	}
	if probe.TypeName() != name {
		return fmt.Errorf("register type %q: TypeName returns %q: %w", name, probe.TypeName(), storage.ErrInvalid)
	}
	typesMu.Lock()
	defer typesMu.Unlock()
	if _, dup := types[name]; dup {
		return fmt.Errorf("register type %q: already registered: %w", name, storage.ErrInvalid)
	}
	types[name] = typeInfo{name: name, new: newObject}
	return nil
}

// MustRegisterType is RegisterType for init functions: it panics on error,
// which can only be a programming mistake (a duplicate or malformed type).
func MustRegisterType(name string, newObject func() Object) {
	if err := RegisterType(name, newObject); err != nil {
		panic(err)
	}
}

func lookupType(name string) (typeInfo, bool) {
	typesMu.RLock()
	defer typesMu.RUnlock()
	t, ok := types[name]
	return t, ok
}

// Registered reports whether a type name is registered.
func Registered(name string) bool {
	_, ok := lookupType(name)
	return ok
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	eo := cbor.CoreDetEncOptions()
	eo.Time = cbor.TimeRFC3339Nano
	encMode, err = eo.EncMode()
	if err != nil {
		panic(fmt.Sprintf("db: cbor encoder options: %v", err))
	}
	decMode, err = cbor.DecOptions{
		DefaultMapType:   reflect.TypeOf(map[string]any(nil)),
		IntDec:           cbor.IntDecConvertSignedOrBigInt,
		MaxArrayElements: 1 << 24,
		MaxMapPairs:      1 << 24,
		MaxNestedLevels:  64,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("db: cbor decoder options: %v", err))
	}
	for _, t := range []typeInfo{
		{name: typeFolder, new: func() Object { return new(Folder) }},
		{name: typeBucket, new: func() Object { return new(bucket) }},
		{name: typeDocument, new: func() Object { return new(Document) }},
		{name: typeCounter, new: func() Object { return new(Counter) }},
	} {
		types[t.name] = t
	}
}

// envelope is the record format: the type name and the type's own CBOR
// body, as a two-element array.
type envelope struct {
	_    struct{} `cbor:",toarray"`
	Type string
	Body cbor.RawMessage
}

// encodeObject returns the record bytes and references of obj.
func encodeObject(obj Object) (data []byte, refs []storage.Oid, err error) {
	body, err := encMode.Marshal(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s: %w", obj.TypeName(), err)
	}
	data, err = encMode.Marshal(envelope{Type: obj.TypeName(), Body: body})
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s envelope: %w", obj.TypeName(), err)
	}
	if r, ok := obj.(referrer); ok {
		refs = r.refs()
	}
	return data, refs, nil
}

// decodeObject decodes record bytes into a fresh object of the recorded type.
func decodeObject(data []byte) (Object, error) {
	var env envelope
	if err := decMode.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	t, ok := lookupType(env.Type)
	if !ok {
		return nil, fmt.Errorf("decode record: type %q: %w", env.Type, ErrUnknownType)
	}
	obj := t.new()
	if err := decMode.Unmarshal(env.Body, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", env.Type, err)
	}
	return obj, nil
}

// cloneObject returns a private deep copy of a decoded (shared) object.
func cloneObject(obj Object, data []byte) (Object, error) {
	if c, ok := obj.(Cloner); ok {
		cp := c.Clone()
		if cp != nil && cp.TypeName() == obj.TypeName() {
			*cp.persistent() = Persistent{}
			return cp, nil
		}
	}
	return decodeObject(data)
}

// isNil reports whether obj is nil or a typed nil pointer, which cannot
// carry a Persistent.
func isNil(obj Object) bool {
	if obj == nil {
		return true
	}
	v := reflect.ValueOf(obj)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
