package db

// Counter is an int64 whose concurrent increments merge: when two
// transactions change one counter, the result is the committed value plus
// this transaction's delta (new - old), as ZODB's BTrees.Length does. Use
// Add for increments; Set is a change like any other and merges as the
// delta it implies.
type Counter struct {
	Persistent
	n int64
}

// NewCounter returns a new counter holding n.
func NewCounter(n int64) *Counter { return &Counter{n: n} }

// TypeName implements Object.
func (c *Counter) TypeName() string { return typeCounter }

// Value returns the counter's value in this transaction.
func (c *Counter) Value() int64 { return c.n }

// Add adds delta and returns the new value.
func (c *Counter) Add(delta int64) int64 { c.n += delta; return c.n }

// Set sets the value.
func (c *Counter) Set(n int64) { c.n = n }

// MarshalCBOR encodes the value as a CBOR integer.
func (c *Counter) MarshalCBOR() ([]byte, error) { return encMode.Marshal(c.n) }

// UnmarshalCBOR decodes a CBOR integer.
func (c *Counter) UnmarshalCBOR(b []byte) error { return decMode.Unmarshal(b, &c.n) }

// Clone implements Cloner.
func (c *Counter) Clone() Object { return &Counter{n: c.n} }

// Merge implements Merger: committed + (mine - old).
func (c *Counter) Merge(old, committed Object) (Object, error) {
	cc, ok := committed.(*Counter)
	if !ok {
		return nil, MergeConflict("counter replaced by a %s", committed.TypeName())
	}
	var base int64
	if o, ok := old.(*Counter); ok {
		base = o.n
	}
	delta := c.n - base
	if (c.n >= base) != (delta >= 0) {
		return nil, MergeConflict("counter change %d - %d overflows", c.n, base)
	}
	n := cc.n + delta
	if (delta >= 0) != (n >= cc.n) {
		return nil, MergeConflict("counter %d + %d overflows", cc.n, delta)
	}
	return &Counter{n: n}, nil
}

var (
	_ Object = (*Counter)(nil)
	_ Merger = (*Counter)(nil)
	_ Cloner = (*Counter)(nil)
)
