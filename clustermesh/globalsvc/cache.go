package globalsvc

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/strait-net/strait/clustermesh/schema"
)

// ServiceName is a namespace/name pair.
type ServiceName struct {
	Namespace, Name string
}

// String returns "namespace/name".
func (n ServiceName) String() string { return n.Namespace + "/" + n.Name }

type localEntry struct {
	svc LocalService
	cfg Config
}

// Cache holds the local services and every remote cluster's ClusterService
// entries by namespace/name, plus health marks, and merges them on demand.
// It is safe for concurrent use.
//
// It keeps the values it is handed (LocalService maps, *schema.ClusterService):
// callers must not modify them afterwards. Results (Get, List) share
// nothing with the cache and may be kept and modified.
type Cache struct {
	local Cluster

	mu sync.Mutex
	// locals: services of the local cluster.
	locals map[ServiceName]*localEntry
	// remotes: shared entries of remote clusters, by service then cluster.
	// Present even when no local service of that name exists, so that a
	// local service created later picks them up.
	remotes map[ServiceName]map[string]*schema.ClusterService
	// unhealthy: health marks, only true values are stored.
	unhealthy map[BackendKey]bool
}

// NewCache returns an empty cache for the local cluster. The local name
// must not be empty: it tells local backends from remote ones.
func NewCache(local Cluster) (*Cache, error) {
	if local.Name == "" {
		return nil, fmt.Errorf("%w: empty local cluster name", ErrInvalidService)
	}
	return &Cache{
		local:     local,
		locals:    make(map[ServiceName]*localEntry),
		remotes:   make(map[ServiceName]map[string]*schema.ClusterService),
		unhealthy: make(map[BackendKey]bool),
	}, nil
}

// UpsertLocal adds or replaces a local service. The error is
// ErrInvalidService (nothing stored) or the joined *AnnotationErrors of
// ParseAnnotations (stored, with the fallbacks they name).
func (c *Cache) UpsertLocal(svc LocalService) error {
	if err := svc.validate(); err != nil {
		return err
	}
	cfg, err := ParseAnnotations(svc.Namespace, svc.Name, svc.Annotations)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.locals[ServiceName{svc.Namespace, svc.Name}] = &localEntry{svc: svc, cfg: cfg}
	return err
}

// DeleteLocal removes a local service; its remote entries are kept.
func (c *Cache) DeleteLocal(namespace, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.locals, ServiceName{namespace, name})
}

// Upsert adds or replaces a remote cluster's entry (as decoded by
// schema.DecodeClusterService). An entry with Shared false removes that
// cluster's entry for the service instead: the remote cluster consumes our
// backends but does not export its own. The error is ErrInvalidService for
// a nil entry or one without cluster, namespace or name, and
// ErrLocalCluster for an entry naming the local cluster.
func (c *Cache) Upsert(svc *schema.ClusterService) error {
	if svc == nil || svc.Cluster == "" || svc.Namespace == "" || svc.Name == "" {
		return fmt.Errorf("%w: cluster service lacks its cluster, namespace or name", ErrInvalidService)
	}
	if svc.Cluster == c.local.Name {
		return fmt.Errorf("%w: %s", ErrLocalCluster, svc.Key())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !svc.Shared {
		c.deleteLocked(svc.Cluster, ServiceName{svc.Namespace, svc.Name})
		return nil
	}
	name := ServiceName{svc.Namespace, svc.Name}
	byCluster := c.remotes[name]
	if byCluster == nil {
		byCluster = make(map[string]*schema.ClusterService)
		c.remotes[name] = byCluster
	}
	byCluster[svc.Cluster] = svc
	return nil
}

// Delete removes the entry of cluster for namespace/name, if any.
func (c *Cache) Delete(cluster, namespace, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleteLocked(cluster, ServiceName{namespace, name})
}

func (c *Cache) deleteLocked(cluster string, name ServiceName) {
	byCluster := c.remotes[name]
	delete(byCluster, cluster)
	if len(byCluster) == 0 {
		delete(c.remotes, name)
	}
}

// DeleteCluster removes every entry and health mark of a remote cluster
// (the cluster left the mesh or its state was revoked).
func (c *Cache) DeleteCluster(cluster string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, byCluster := range c.remotes {
		delete(byCluster, cluster)
		if len(byCluster) == 0 {
			delete(c.remotes, name)
		}
	}
	for k := range c.unhealthy {
		if k.Cluster == cluster {
			delete(c.unhealthy, k)
		}
	}
}

// SetUnhealthy marks a backend (local or remote) as failing its health
// checks, or clears the mark. Marks are kept until cleared or until
// DeleteCluster removes the backend's cluster; the health checker that
// sets them clears them for backends it stops checking.
func (c *Cache) SetUnhealthy(key BackendKey, unhealthy bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if unhealthy {
		c.unhealthy[key] = true
	} else {
		delete(c.unhealthy, key)
	}
}

// Get merges namespace/name. ok is false when no local service of that
// name exists: remote entries alone make no service.
func (c *Cache) Get(namespace, name string) (m Merged, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sn := ServiceName{namespace, name}
	e := c.locals[sn]
	if e == nil {
		return Merged{}, false
	}
	return c.mergeLocked(sn, e), true
}

// List merges every local service, sorted by namespace then name.
func (c *Cache) List() []Merged {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := slices.SortedFunc(maps.Keys(c.locals), func(a, b ServiceName) int {
		if r := cmp.Compare(a.Namespace, b.Namespace); r != 0 {
			return r
		}
		return cmp.Compare(a.Name, b.Name)
	})
	out := make([]Merged, 0, len(names))
	for _, sn := range names {
		out = append(out, c.mergeLocked(sn, c.locals[sn]))
	}
	return out
}

func (c *Cache) mergeLocked(sn ServiceName, e *localEntry) Merged {
	var remotes []*schema.ClusterService
	if e.cfg.Global {
		byCluster := c.remotes[sn]
		remotes = make([]*schema.ClusterService, 0, len(byCluster))
		for _, rs := range byCluster {
			remotes = append(remotes, rs)
		}
	}
	return merge(c.local, e.cfg, &e.svc, remotes, c.unhealthy)
}
