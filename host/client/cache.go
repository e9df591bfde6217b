package client

import (
	"sync"
	"sync/atomic"

	"github.com/zhostdb/zhost/host/storage"
)

// maxRevsPerOid bounds how many revisions of one object the cache keeps
// (the current one and the newest closed ones, for snapshot readers).
const maxRevsPerOid = 4

// entryOverhead is what the cache charges per object beyond its records'
// Size, so many tiny records cannot exceed the bound through bookkeeping.
const entryOverhead = 64

// cache is the client's RAM cache of one partition: for each oid a few
// revisions, each with its validity range [serial, end) (end ZeroTid: the
// current revision as of the client's LastTid). Bounded in bytes, least
// recently used object out first. Safe for concurrent use.
type cache struct {
	mu sync.Mutex
	// keepClosed keeps replaced revisions for snapshot readers. Off for a
	// partition without history: its backend answers LoadBefore only
	// from the current revision, and the cache must not know more.
	keepClosed bool
	max        int64
	size       int64
	items      map[storage.Oid]*centry
	head       centry
	hits       atomic.Int64
	misses     atomic.Int64
	evicted    atomic.Int64
}

type crev struct {
	rec storage.Record
	end storage.Tid
}

type centry struct {
	oid        storage.Oid
	revs       []crev
	size       int64
	prev, next *centry
}

func newCache(max int64) *cache {
	c := &cache{max: max, items: make(map[storage.Oid]*centry), keepClosed: true}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

func (c *cache) unlink(e *centry) {
	e.prev.next = e.next
	e.next.prev = e.prev
}

func (c *cache) pushFront(e *centry) {
	e.prev = &c.head
	e.next = c.head.next
	c.head.next.prev = e
	c.head.next = e
}

func (c *cache) touch(e *centry) {
	if c.head.next != e {
		c.unlink(e)
		c.pushFront(e)
	}
}

// current returns the current revision of oid.
func (c *cache) current(oid storage.Oid) (storage.Record, bool) {
	c.mu.Lock()
	if e, ok := c.items[oid]; ok {
		for _, r := range e.revs {
			if r.end == storage.ZeroTid {
				c.touch(e)
				c.mu.Unlock()
				c.hits.Add(1)
				return r.rec, true
			}
		}
	}
	c.mu.Unlock()
	c.misses.Add(1)
	return storage.Record{}, false
}

// before returns the revision of oid current just before tid, if cached.
// A current revision qualifies only when tid <= known+1, known being the
// last tid whose invalidations were applied: beyond it a newer revision
// may exist that the client has not heard of yet.
func (c *cache) before(oid storage.Oid, tid, known storage.Tid) (storage.Record, storage.Tid, bool) {
	c.mu.Lock()
	if e, ok := c.items[oid]; ok {
		for _, r := range e.revs {
			if r.rec.Serial >= tid {
				continue
			}
			if r.end == storage.ZeroTid && tid <= known+1 || r.end != storage.ZeroTid && r.end >= tid {
				c.touch(e)
				c.mu.Unlock()
				c.hits.Add(1)
				return r.rec, r.end, true
			}
		}
	}
	c.mu.Unlock()
	c.misses.Add(1)
	return storage.Record{}, storage.ZeroTid, false
}

func revSize(r storage.Record) int64 { return int64(r.Size()) }

// put adds a revision valid in [rec.Serial, end) (end ZeroTid: current).
func (c *cache) put(rec storage.Record, end storage.Tid) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(rec, end)
}

// commit applies the client's own transaction tid: the revisions it
// replaced end at tid, its records are the current ones.
func (c *cache) commit(tid storage.Tid, recs []storage.Record) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var seen map[storage.Oid]bool
	if len(recs) > 1 {
		seen = make(map[storage.Oid]bool, len(recs))
	}
	// Newest first: an oid stored twice in the transaction keeps the
	// last record.
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if seen != nil {
			if seen[r.Oid] {
				continue
			}
			seen[r.Oid] = true
		}
		c.invalidateLocked(tid, r.Oid)
		r.Serial = tid
		c.putLocked(r, storage.ZeroTid)
	}
}

func (c *cache) putLocked(rec storage.Record, end storage.Tid) {
	if end != storage.ZeroTid && !c.keepClosed {
		return
	}
	sz := revSize(rec)
	if sz+entryOverhead > c.max/8 {
		return
	}
	e, ok := c.items[rec.Oid]
	if !ok {
		e = &centry{oid: rec.Oid, size: entryOverhead}
		c.items[rec.Oid] = e
		c.pushFront(e)
		c.size += entryOverhead
	} else {
		c.touch(e)
	}
	for i, r := range e.revs {
		if r.rec.Serial == rec.Serial {
			// Same revision: learn its end if we did not know it.
			if r.end == storage.ZeroTid && end != storage.ZeroTid {
				e.revs[i].end = end
			}
			return
		}
		if end == storage.ZeroTid && r.end == storage.ZeroTid && r.rec.Serial > rec.Serial {
			// We already hold a newer current revision: the reply is
			// stale as a current one and its end is unknown.
			return
		}
	}
	if end == storage.ZeroTid {
		// A newer current revision replaces an older one whose end we
		// cannot know (a revision between the two may exist).
		kept := e.revs[:0]
		for _, r := range e.revs {
			if r.end == storage.ZeroTid && r.rec.Serial < rec.Serial {
				s := revSize(r.rec)
				e.size -= s
				c.size -= s
				continue
			}
			kept = append(kept, r)
		}
		e.revs = kept
	}
	e.revs = append(e.revs, crev{rec: rec, end: end})
	e.size += sz
	c.size += sz
	if len(e.revs) > maxRevsPerOid {
		// Drop the oldest closed revision.
		oldest := -1
		for i, r := range e.revs {
			if r.end != storage.ZeroTid && (oldest < 0 || r.rec.Serial < e.revs[oldest].rec.Serial) {
				oldest = i
			}
		}
		if oldest >= 0 {
			s := revSize(e.revs[oldest].rec)
			e.revs = append(e.revs[:oldest], e.revs[oldest+1:]...)
			e.size -= s
			c.size -= s
		}
	}
	c.evict()
}

func (c *cache) evict() {
	for c.size > c.max && c.head.prev != &c.head {
		last := c.head.prev
		c.unlink(last)
		delete(c.items, last.oid)
		c.size -= last.size
		c.evicted.Add(1)
	}
}

// invalidate closes the current revision of each oid at tid (the serial
// of the revision that replaced it), keeping it for snapshot readers.
func (c *cache) invalidate(tid storage.Tid, oids []storage.Oid) {
	c.mu.Lock()
	for _, oid := range oids {
		c.invalidateLocked(tid, oid)
	}
	c.mu.Unlock()
}

func (c *cache) invalidateLocked(tid storage.Tid, oid storage.Oid) {
	e, ok := c.items[oid]
	if !ok {
		return
	}
	kept := e.revs[:0]
	for _, r := range e.revs {
		if r.end == storage.ZeroTid && r.rec.Serial < tid {
			if !c.keepClosed {
				s := revSize(r.rec)
				e.size -= s
				c.size -= s
				continue
			}
			r.end = tid
		}
		kept = append(kept, r)
	}
	e.revs = kept
}

// clear drops everything.
func (c *cache) clear() {
	c.mu.Lock()
	c.items = make(map[storage.Oid]*centry)
	c.head.prev, c.head.next = &c.head, &c.head
	c.size = 0
	c.mu.Unlock()
}

func (c *cache) stats() (size int64, objects int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size, len(c.items)
}
