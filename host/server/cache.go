package server

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/zhostdb/zhost/host/storage"
)

// recordCache holds current records of one partition, bounded in bytes,
// least recently used out first. The server may cache current records
// because it is the only writer of its backends: every change passes
// through publish, which updates the cache. Safe for concurrent use.
type recordCache struct {
	hits, misses atomic.Int64

	mu    sync.Mutex
	max   int64
	size  int64
	items map[storage.Oid]*cacheEntry
	head  cacheEntry // sentinel of a circular list; head.next is the most recent
}

type cacheEntry struct {
	rec        storage.Record
	prev, next *cacheEntry
}

func newRecordCache(max int64) *recordCache {
	c := &recordCache{max: max, items: make(map[storage.Oid]*cacheEntry)}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

func (c *recordCache) unlink(e *cacheEntry) {
	e.prev.next = e.next
	e.next.prev = e.prev
}

func (c *recordCache) pushFront(e *cacheEntry) {
	e.prev = &c.head
	e.next = c.head.next
	c.head.next.prev = e
	c.head.next = e
}

// get returns the cached current record of oid. The record's slices are
// shared: callers must not modify them.
func (c *recordCache) get(oid storage.Oid) (storage.Record, bool) {
	if c.max <= 0 {
		return storage.Record{}, false
	}
	c.mu.Lock()
	e, ok := c.items[oid]
	if !ok {
		c.mu.Unlock()
		c.misses.Add(1)
		return storage.Record{}, false
	}
	c.hits.Add(1)
	if c.head.next != e {
		c.unlink(e)
		c.pushFront(e)
	}
	rec := e.rec
	c.mu.Unlock()
	return rec, true
}

// put stores rec as the current record of its oid.
func (c *recordCache) put(rec storage.Record) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(rec)
}

// putAll stores the records of a transaction tid as current.
func (c *recordCache) putAll(tid storage.Tid, recs []storage.Record) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		r.Serial = tid
		if int64(r.Size()) > c.max/4 {
			c.removeLocked(r.Oid)
			continue
		}
		// Own copies: the records alias the Vote frame they were decoded
		// from, which a cached slice would keep alive whole.
		r.Data = slices.Clone(r.Data)
		r.Refs = slices.Clone(r.Refs)
		c.putLocked(r)
	}
}

func (c *recordCache) putLocked(rec storage.Record) {
	sz := int64(rec.Size())
	if sz > c.max/4 {
		c.removeLocked(rec.Oid)
		return
	}
	if e, ok := c.items[rec.Oid]; ok {
		c.size += sz - int64(e.rec.Size())
		e.rec = rec
		c.unlink(e)
		c.pushFront(e)
	} else {
		e := &cacheEntry{rec: rec}
		c.items[rec.Oid] = e
		c.pushFront(e)
		c.size += sz
	}
	for c.size > c.max && c.head.prev != &c.head {
		last := c.head.prev
		c.unlink(last)
		delete(c.items, last.rec.Oid)
		c.size -= int64(last.rec.Size())
	}
}

func (c *recordCache) remove(oid storage.Oid) {
	c.mu.Lock()
	c.removeLocked(oid)
	c.mu.Unlock()
}

func (c *recordCache) removeLocked(oid storage.Oid) {
	if e, ok := c.items[oid]; ok {
		c.unlink(e)
		delete(c.items, oid)
		c.size -= int64(e.rec.Size())
	}
}

func (c *recordCache) clear() {
	c.mu.Lock()
	c.items = make(map[storage.Oid]*cacheEntry)
	c.head.prev, c.head.next = &c.head, &c.head
	c.size = 0
	c.mu.Unlock()
}

func (c *recordCache) stats() (bytes int64, objects int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size, len(c.items)
}
