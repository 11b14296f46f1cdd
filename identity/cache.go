package identity

import (
	"log/slog"
	"slices"
	"sync"
)

// cache mirrors the id keys of one cluster: ID → labels and labels → ID.
// It is fed only by the watch (apply, markSynced) and read by lookups and
// by the allocator's choice of free IDs.
type cache struct {
	log     *slog.Logger
	keys    Keys
	max     ClusterMax
	cluster ClusterID

	synced   chan struct{}
	syncOnce sync.Once

	mu sync.RWMutex
	// ids holds every ID of the cluster's range present in etcd; labels
	// is nil for an entry whose value did not parse (still occupied).
	ids map[NumericIdentity]cacheEntry
	// byKey maps a label string to its IDs: normally one; two only while an
	// unreferenced orphan waits for garbage collection.
	byKey map[string][]NumericIdentity
}

type cacheEntry struct {
	key    string
	labels Labels
}

func newCache(log *slog.Logger, keys Keys, max ClusterMax, cluster ClusterID) *cache {
	return &cache{
		log:     log,
		keys:    keys,
		max:     max,
		cluster: cluster,
		synced:  make(chan struct{}),
		ids:     make(map[NumericIdentity]cacheEntry),
		byKey:   make(map[string][]NumericIdentity),
	}
}

func (c *cache) markSynced() { c.syncOnce.Do(func() { close(c.synced) }) }

// apply records one watch event. Entries that are not valid identities of
// this cluster are logged and skipped; the watch goes on.
func (c *cache) apply(deleted bool, key string, value []byte) {
	id, err := c.keys.ParseIDKey(key)
	if err != nil {
		c.log.Error("Skipping invalid identity key", logKey, key, logError, err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(id)
	if deleted {
		return
	}
	if err := c.max.validateIn(c.cluster, id); err != nil {
		c.log.Error("Skipping identity outside this cluster's range", logKey, key, logError, err)
		return
	}
	s := string(value)
	ls, err := ParseLabels(s)
	if err != nil {
		// Keep the ID occupied so it is never handed out, but unusable.
		c.log.Error("Identity has invalid labels", logKey, key, logError, err)
		c.ids[id] = cacheEntry{}
		return
	}
	c.ids[id] = cacheEntry{key: s, labels: ls}
	c.byKey[s] = append(c.byKey[s], id)
}

func (c *cache) removeLocked(id NumericIdentity) {
	old, ok := c.ids[id]
	if !ok {
		return
	}
	delete(c.ids, id)
	if old.labels == nil {
		return
	}
	rest := slices.DeleteFunc(c.byKey[old.key], func(x NumericIdentity) bool { return x == id })
	if len(rest) == 0 {
		delete(c.byKey, old.key)
	} else {
		c.byKey[old.key] = rest
	}
}

func (c *cache) byID(id NumericIdentity) (Labels, bool) {
	c.mu.RLock()
	e, ok := c.ids[id]
	c.mu.RUnlock()
	if !ok || e.labels == nil {
		return nil, false
	}
	return e.labels, true
}

func (c *cache) byLabels(key string) (NumericIdentity, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ids := c.byKey[key]
	if len(ids) == 0 {
		return 0, false
	}
	return ids[0], true
}

// len is the number of IDs in the cache.
func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.ids)
}
