package sdk

// earlyAborts remembers the keys the host aborted before their
// transaction began here (an Abort by key can overtake the request it
// names), so that the request fails when it arrives. Aborts of keys whose
// request had already ended here leave entries that nothing consumes;
// the memory is bounded, and when it is full the oldest entry goes: a
// genuine early abort is consumed within moments of being made, so it is
// never the oldest for long. Not safe for concurrent use (the Server's
// mutex guards it).
type earlyAborts struct {
	max  int
	seq  uint64
	keys map[txnKey]uint64 // key -> when it was added (seq)
	// order is the keys in the order they were added, with entries
	// already taken or dropped left in place until they reach the front
	// (or a compaction).
	order []earlyAbort
}

type earlyAbort struct {
	key txnKey
	seq uint64
}

func newEarlyAborts(max int) *earlyAborts {
	return &earlyAborts{max: max, keys: map[txnKey]uint64{}}
}

func (e *earlyAborts) len() int { return len(e.keys) }

// add remembers k, forgetting the oldest key if the memory is full.
func (e *earlyAborts) add(k txnKey) {
	if _, ok := e.keys[k]; ok {
		return
	}
	for len(e.keys) >= e.max && len(e.order) > 0 {
		old := e.order[0]
		e.order = e.order[1:]
		if e.keys[old.key] == old.seq {
			delete(e.keys, old.key)
		}
	}
	e.seq++
	e.keys[k] = e.seq
	e.order = append(e.order, earlyAbort{k, e.seq})
	if len(e.order) > 2*e.max {
		e.compact()
	}
}

// take reports whether k was remembered, and forgets it.
func (e *earlyAborts) take(k txnKey) bool {
	if _, ok := e.keys[k]; !ok {
		return false
	}
	delete(e.keys, k)
	return true
}

// dropHandle forgets every key of a storage handle.
func (e *earlyAborts) dropHandle(handle uint64) {
	for k := range e.keys {
		if k.handle == handle {
			delete(e.keys, k)
		}
	}
}

// compact drops the entries of order that no longer name a remembered
// key, keeping the others in order (and the slice from growing).
func (e *earlyAborts) compact() {
	kept := make([]earlyAbort, 0, len(e.keys))
	for _, a := range e.order {
		if e.keys[a.key] == a.seq {
			kept = append(kept, a)
		}
	}
	e.order = kept
}
