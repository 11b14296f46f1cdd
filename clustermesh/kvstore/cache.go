package kvstore

import (
	"context"
	"sync"
)

// Cache is a read cache of one watched prefix: key → value, fed by the
// events of Watch/ListAndWatch through Run (or Apply). It stores raw bytes;
// decoding is the consumer's business, so one corrupt value never stops
// the others.
type Cache struct {
	mu      sync.RWMutex
	entries map[string]cacheEntry
	rev     int64
	synced  chan struct{} // closed at the first EventListDone
	isSync  bool
}

// cacheEntry keeps the value as a string (16 bytes, immutable) and its mod
// revision, so the cache can build a Snapshot for resuming.
type cacheEntry struct {
	value string
	rev   int64
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{entries: make(map[string]cacheEntry), synced: make(chan struct{})}
}

// Run applies events until the channel closes or ctx ends.
func (c *Cache) Run(ctx context.Context, events <-chan Event) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			c.Apply(ev)
		case <-ctx.Done():
			return
		}
	}
}

// Apply applies one event.
func (c *Cache) Apply(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev.Kind {
	case EventUpsert:
		c.entries[ev.Key] = cacheEntry{value: string(ev.Value), rev: ev.Revision}
	case EventDelete:
		delete(c.entries, ev.Key)
	case EventListDone:
		if !c.isSync {
			c.isSync = true
			close(c.synced)
		}
	}
	if ev.Revision > c.rev {
		c.rev = ev.Revision
	}
}

// Synced is closed once the initial list has been applied.
func (c *Cache) Synced() <-chan struct{} { return c.synced }

// Get returns a copy of key's value.
func (c *Cache) Get(key string) ([]byte, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	return []byte(e.value), true
}

// Len is the number of cached keys.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Entries returns a copy of the cache as key → value.
func (c *Cache) Entries() map[string]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m := make(map[string]string, len(c.entries))
	for k, e := range c.entries {
		m[k] = e.value
	}
	return m
}

// Snapshot returns what the cache knows, for WatchOptions.Resume.
func (c *Cache) Snapshot() Snapshot {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := Snapshot{Revision: c.rev, Keys: make(map[string]int64, len(c.entries))}
	for k, e := range c.entries {
		s.Keys[k] = e.rev
	}
	return s
}
