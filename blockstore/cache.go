package blockstore

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// cacheKey names one version of one block: a new version has a new
// generation, so stale entries are normally never found, only aged out.
// A generation can be reused (see put), so put replaces.
type cacheKey struct {
	id    FileID
	block int64
	gen   uint64
}

type cacheItem struct {
	key  cacheKey
	data []byte // decoded block, len = the record's raw length (the rest of the block is zeros)
}

// blockCache is the bounded LRU cache of decoded blocks. Its data slices are
// never modified after insertion (readers copy out of them).
type blockCache struct {
	mu    sync.Mutex // protects lru, items, bytes
	limit int64
	bytes int64
	lru   *list.List // of *cacheItem, front = most recent
	items map[cacheKey]*list.Element

	hits, misses atomic.Int64
}

func newBlockCache(limit int64) *blockCache {
	return &blockCache{limit: limit, lru: list.New(), items: make(map[cacheKey]*list.Element)}
}

// get returns the cached data or nil.
func (c *blockCache) get(k cacheKey) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.lru.MoveToFront(el)
		c.hits.Add(1)
		return el.Value.(*cacheItem).data
	}
	c.misses.Add(1)
	return nil
}

// has reports whether k is cached, without counting a hit or miss.
func (c *blockCache) has(k cacheKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[k]
	return ok
}

// put inserts data (which the cache now owns and nobody may modify),
// replacing what k held: a generation can be used again (an uncommitted
// record dropped, then the file reopened with NextGen from the index), and
// the caller's data is the current version's (the record just written or
// read).
func (c *blockCache) put(k cacheKey, data []byte) {
	sz := int64(cap(data))
	if c.limit <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.lru.Remove(el)
		delete(c.items, k)
		c.bytes -= int64(cap(el.Value.(*cacheItem).data))
	}
	if sz > c.limit {
		return
	}
	c.items[k] = c.lru.PushFront(&cacheItem{key: k, data: data})
	c.bytes += sz
	for c.bytes > c.limit {
		el := c.lru.Back()
		it := el.Value.(*cacheItem)
		c.lru.Remove(el)
		delete(c.items, it.key)
		c.bytes -= int64(cap(it.data))
	}
}

// size returns the bytes held.
func (c *blockCache) size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
