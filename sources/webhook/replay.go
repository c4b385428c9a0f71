package webhook

import (
	"container/list"
	"sync"
	"time"
)

// replayCache remembers the delivery IDs accepted most recently, with when
// each was last seen. It is bounded: past its size the least recently seen
// ID is forgotten, so a delivery older than the last size accepted ones can
// be replayed. Only authenticated deliveries enter it, so filling it takes
// the secret.
type replayCache struct {
	mu    sync.Mutex
	size  int
	order *list.List // of *replayEntry, most recently seen first
	byKey map[string]*list.Element
}

type replayEntry struct {
	key  string
	seen time.Time
}

func newReplayCache(size int) *replayCache {
	return &replayCache{size: size, order: list.New(), byKey: make(map[string]*list.Element)}
}

// seen reports whether key was recorded before, and records it as seen at
// now either way: a replay refreshes its entry, so a delivery replayed
// again and again stays remembered.
func (c *replayCache) seen(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[key]; ok {
		e.Value.(*replayEntry).seen = now
		c.order.MoveToFront(e)
		return true
	}
	c.byKey[key] = c.order.PushFront(&replayEntry{key: key, seen: now})
	for c.order.Len() > c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.byKey, oldest.Value.(*replayEntry).key)
	}
	return false
}
