package remote

import (
	"container/list"
	"sync"
)

// lru is a map that keeps at most max bytes of values (by the cost each
// was added with), dropping the least recently used. It is safe for
// concurrent use.
type lru[K comparable, V any] struct {
	mu   sync.Mutex
	max  int64
	size int64
	ll   *list.List // of *item[K, V], most recently used first
	m    map[K]*list.Element
}

type item[K comparable, V any] struct {
	k    K
	v    V
	cost int64
}

func newLRU[K comparable, V any](max int64) *lru[K, V] {
	return &lru[K, V]{max: max, ll: list.New(), m: make(map[K]*list.Element)}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		c.ll.MoveToFront(el)
		return el.Value.(*item[K, V]).v, true
	}
	var zero V
	return zero, false
}

// add keeps v under k unless it alone costs more than the whole cache.
func (c *lru[K, V]) add(k K, v V, cost int64) {
	if cost > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		it := el.Value.(*item[K, V])
		c.size += cost - it.cost
		it.v, it.cost = v, cost
		c.ll.MoveToFront(el)
	} else {
		c.m[k] = c.ll.PushFront(&item[K, V]{k: k, v: v, cost: cost})
		c.size += cost
	}
	for c.size > c.max {
		el := c.ll.Back()
		it := el.Value.(*item[K, V])
		c.ll.Remove(el)
		delete(c.m, it.k)
		c.size -= it.cost
	}
}

func (c *lru[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		c.ll.Remove(el)
		delete(c.m, k)
		c.size -= el.Value.(*item[K, V]).cost
	}
}

// bytes and len report what the cache holds.
func (c *lru[K, V]) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
