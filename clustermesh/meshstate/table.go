package meshstate

import (
	"maps"
	"sync"
)

// Op says what an Event reports.
type Op uint8

const (
	// OpUpsert: Key was added or changed to Value.
	OpUpsert Op = iota
	// OpDelete: Key was removed; Value is the value it had.
	OpDelete
	// OpSynced: every entry of Cluster (of this kind) has been delivered
	// once: the first complete list after the cluster's canary. Key and
	// Value are zero. Sent again after each re-join's list.
	OpSynced
)

func (o Op) String() string {
	switch o {
	case OpUpsert:
		return "upsert"
	case OpDelete:
		return "delete"
	case OpSynced:
		return "synced"
	}
	return "Op(?)"
}

// Event is one change of one kind of a remote cluster's state.
type Event[K comparable, V any] struct {
	Op      Op
	Cluster string
	Key     K
	Value   V
}

// table holds one kind of state of every remote cluster and its
// subscribers. Changes and deliveries happen under mu, so every subscriber
// sees the changes in the order they were applied.
type table[K comparable, V any] struct {
	kind  Kind
	equal func(a, b V) bool

	mu       sync.Mutex
	clusters map[string]*clusterTable[K, V]
	subs     []subscriber[K, V]
	nextSub  uint64
}

type clusterTable[K comparable, V any] struct {
	entries map[K]V
	synced  bool
}

type subscriber[K comparable, V any] struct {
	id uint64
	fn func(Event[K, V])
}

func newTable[K comparable, V any](kind Kind, equal func(a, b V) bool) *table[K, V] {
	return &table[K, V]{kind: kind, equal: equal, clusters: make(map[string]*clusterTable[K, V])}
}

// cluster returns cluster's table, creating it; t.mu must be held.
func (t *table[K, V]) cluster(name string) *clusterTable[K, V] {
	ct := t.clusters[name]
	if ct == nil {
		ct = &clusterTable[K, V]{entries: make(map[K]V)}
		t.clusters[name] = ct
	}
	return ct
}

// emit delivers ev to every subscriber; t.mu must be held.
func (t *table[K, V]) emit(ev Event[K, V]) {
	for _, s := range t.subs {
		s.fn(ev)
	}
}

// upsert stores k → v and reports the cluster's entry count. An unchanged
// value is not delivered again.
func (t *table[K, V]) upsert(cluster string, k K, v V) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	ct := t.cluster(cluster)
	if old, ok := ct.entries[k]; ok && t.equal(old, v) {
		return len(ct.entries)
	}
	ct.entries[k] = v
	t.emit(Event[K, V]{Op: OpUpsert, Cluster: cluster, Key: k, Value: v})
	return len(ct.entries)
}

// delete removes k and reports the cluster's entry count.
func (t *table[K, V]) delete(cluster string, k K) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	ct := t.clusters[cluster]
	if ct == nil {
		return 0
	}
	if old, ok := ct.entries[k]; ok {
		delete(ct.entries, k)
		t.emit(Event[K, V]{Op: OpDelete, Cluster: cluster, Key: k, Value: old})
	}
	return len(ct.entries)
}

// sweep deletes every entry of cluster not in keep and reports the count
// left.
func (t *table[K, V]) sweep(cluster string, keep map[K]struct{}) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	ct := t.clusters[cluster]
	if ct == nil {
		return 0
	}
	for k, v := range ct.entries {
		if _, ok := keep[k]; ok {
			continue
		}
		delete(ct.entries, k)
		t.emit(Event[K, V]{Op: OpDelete, Cluster: cluster, Key: k, Value: v})
	}
	return len(ct.entries)
}

// markSynced records and announces cluster's initial sync.
func (t *table[K, V]) markSynced(cluster string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cluster(cluster).synced = true
	t.emit(Event[K, V]{Op: OpSynced, Cluster: cluster})
}

// drop deletes every entry of cluster (delivering the deletes) and forgets
// the cluster.
func (t *table[K, V]) drop(cluster string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ct := t.clusters[cluster]
	if ct == nil {
		return
	}
	for k, v := range ct.entries {
		delete(ct.entries, k)
		t.emit(Event[K, V]{Op: OpDelete, Cluster: cluster, Key: k, Value: v})
	}
	delete(t.clusters, cluster)
}

func (t *table[K, V]) len(cluster string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ct := t.clusters[cluster]; ct != nil {
		return len(ct.entries)
	}
	return 0
}

func (t *table[K, V]) get(cluster string, k K) (V, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ct := t.clusters[cluster]; ct != nil {
		v, ok := ct.entries[k]
		return v, ok
	}
	var zero V
	return zero, false
}

// find looks k up in every cluster; with several matches the cluster
// that sorts first wins, so the answer does not depend on map order.
func (t *table[K, V]) find(k K) (string, V, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var (
		best  string
		value V
		found bool
	)
	for name, ct := range t.clusters {
		if v, ok := ct.entries[k]; ok && (!found || name < best) {
			best, value, found = name, v, true
		}
	}
	return best, value, found
}

func (t *table[K, V]) snapshot(cluster string) map[K]V {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ct := t.clusters[cluster]; ct != nil {
		return maps.Clone(ct.entries)
	}
	return map[K]V{}
}

// subscribe replays the current state to fn (upserts, then OpSynced for
// synced clusters), then delivers every later change, until cancel.
func (t *table[K, V]) subscribe(fn func(Event[K, V])) (cancel func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, ct := range t.clusters {
		for k, v := range ct.entries {
			fn(Event[K, V]{Op: OpUpsert, Cluster: name, Key: k, Value: v})
		}
		if ct.synced {
			fn(Event[K, V]{Op: OpSynced, Cluster: name})
		}
	}
	t.nextSub++
	id := t.nextSub
	t.subs = append(t.subs, subscriber[K, V]{id: id, fn: fn})
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		for i, s := range t.subs {
			if s.id == id {
				t.subs = append(t.subs[:i:i], t.subs[i+1:]...)
				return
			}
		}
	}
}
