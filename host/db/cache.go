package db

import (
	"container/list"
	"sync"

	"github.com/zhostdb/zhost/host/storage"
)

// objectCache holds decoded objects shared by the transactions of one DB,
// keyed by (partition, oid) and tagged with the serial they were decoded
// from, so a hit is only used for exactly that revision: correctness never
// depends on invalidations, which only free memory early. One revision per
// oid is kept (the newest seen). Cached objects are never changed;
// transactions get copies. Size is bounded in bytes (LRU eviction).
type objectCache struct {
	mu    sync.Mutex
	limit int64
	bytes int64
	items map[cacheKey]*list.Element
	lru   list.List // front = most recently used; values *cacheItem
}

type cacheKey struct {
	part uint32
	oid  storage.Oid
}

type cacheItem struct {
	key    cacheKey
	serial storage.Tid
	obj    Object
	size   int64
}

func newObjectCache(limit int64) *objectCache {
	return &objectCache{limit: limit, items: map[cacheKey]*list.Element{}}
}

// get returns the decoded object of (part, oid) at serial, if cached.
func (c *objectCache) get(part uint32, oid storage.Oid, serial storage.Tid) (Object, bool) {
	if c.limit <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[cacheKey{part, oid}]
	if !ok {
		return nil, false
	}
	it := el.Value.(*cacheItem)
	if it.serial != serial {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return it.obj, true
}

// put caches obj, decoded from a record of dataLen bytes, unless a newer
// revision of the oid is already cached.
func (c *objectCache) put(part uint32, oid storage.Oid, serial storage.Tid, obj Object, dataLen int) {
	size := int64(2*dataLen + 64)
	if c.limit <= 0 || size > c.limit/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := cacheKey{part, oid}
	if el, ok := c.items[k]; ok {
		it := el.Value.(*cacheItem)
		if it.serial >= serial {
			return
		}
		c.bytes += size - it.size
		it.serial, it.obj, it.size = serial, obj, size
		c.lru.MoveToFront(el)
	} else {
		c.items[k] = c.lru.PushFront(&cacheItem{key: k, serial: serial, obj: obj, size: size})
		c.bytes += size
	}
	for c.bytes > c.limit {
		el := c.lru.Back()
		if el == nil {
			break
		}
		c.removeEl(el)
	}
}

// invalidate drops the given oids of a partition, or every entry of the
// partition when oids is nil (the storage lost track of what changed); it
// returns how many entries it dropped.
func (c *objectCache) invalidate(part uint32, oids []storage.Oid) int {
	if c.limit <= 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	if oids == nil {
		for k, el := range c.items {
			if k.part == part {
				c.removeEl(el)
				n++
			}
		}
		return n
	}
	for _, oid := range oids {
		if el, ok := c.items[cacheKey{part, oid}]; ok {
			c.removeEl(el)
			n++
		}
	}
	return n
}

func (c *objectCache) removeEl(el *list.Element) {
	it := el.Value.(*cacheItem)
	c.lru.Remove(el)
	delete(c.items, it.key)
	c.bytes -= it.size
}

func (c *objectCache) size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
