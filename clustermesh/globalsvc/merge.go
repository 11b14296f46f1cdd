package globalsvc

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// BackendKey identifies one backend of the merged set: an L4 address of a
// cluster. The same address in two clusters is two backends.
type BackendKey struct {
	Cluster string
	Addr    netip.Addr
	L4      schema.L4Addr
}

// Backend is one L4 backend of a merged service.
type Backend struct {
	Cluster   string
	ClusterID identity.ClusterID
	Addr      netip.Addr
	L4        schema.L4Addr
	// PortNames are the service port names served by this L4 address,
	// sorted and without duplicates. Several names share one backend when
	// several service ports map to one targetPort (Cilium #45109).
	PortNames []string
	// State is the backend's state; remote backends are always active
	// (the wire format carries no state).
	State State
	// Unhealthy: the backend itself or a health mark (Cache.SetUnhealthy,
	// Input.Unhealthy) says it failed its health checks.
	Unhealthy bool
}

// Key returns b's BackendKey.
func (b *Backend) Key() BackendKey { return BackendKey{Cluster: b.Cluster, Addr: b.Addr, L4: b.L4} }

// Reason says why a backend is not selected. When several apply, the first
// in this order is reported: unhealthy, not active, affinity.
type Reason uint8

const (
	// ReasonUnhealthy: the backend failed its health checks.
	ReasonUnhealthy Reason = iota + 1
	// ReasonNotActive: the backend is terminating, quarantined or in
	// maintenance (see its State). Terminating backends may still drain
	// existing connections.
	ReasonNotActive
	// ReasonAffinity: the backend is usable, but the service's affinity
	// prefers the other side (local or remote), which has usable backends.
	ReasonAffinity
)

// String returns the lowercase name of r.
func (r Reason) String() string {
	switch r {
	case ReasonUnhealthy:
		return "unhealthy"
	case ReasonNotActive:
		return "not-active"
	case ReasonAffinity:
		return "affinity"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Exclusion is a known backend that is not selected, and why.
type Exclusion struct {
	Backend Backend
	Reason  Reason
}

// Merged is the load-balancing view of one local service: its frontends
// and the backends of every cluster that take new connections.
type Merged struct {
	Namespace, Name string
	// Config is the effective annotation config (fallbacks applied).
	Config Config
	// Frontends are the local service's frontends (a copy).
	Frontends map[netip.Addr]schema.PortConfiguration
	// Backends take new connections: active, healthy, on a side the
	// affinity selects. Sorted by cluster, address, protocol, port.
	Backends []Backend
	// Excluded are the other known backends, sorted the same way. Remote
	// backends appear only for global services.
	Excluded []Exclusion
}

// Input is what Merge merges for one service.
type Input struct {
	// Cluster is the local cluster.
	Cluster Cluster
	// Local is the local service. A service that does not exist locally
	// has no merged form (the Service must exist in each cluster).
	Local LocalService
	// Remote holds the ClusterService of each remote cluster for this
	// service, by cluster name; the map key is taken as the cluster's
	// name. Entries for the local cluster's name, with another
	// namespace/name, or with Shared false are ignored.
	Remote map[string]*schema.ClusterService
	// Unhealthy marks backends that failed health checks, local or remote
	// (true = unhealthy). A local backend is unhealthy when either this
	// map or its own Unhealthy field says so.
	Unhealthy map[BackendKey]bool
}

// Merge merges the local service with the remote clusters' entries. It is
// pure and deterministic: the same Input gives the same Merged, in any map
// iteration order. The error is ErrInvalidService for a local service
// without namespace or name (Merged is then empty), or the joined
// *AnnotationErrors of ParseAnnotations (Merged follows the fallbacks).
//
// Selection, with "usable" meaning active and healthy:
//
//   - not global: local backends only; remote entries are not looked at.
//   - affinity none: local and remote backends.
//   - affinity local: local backends; remote ones only while no local
//     backend is usable.
//   - affinity remote: the mirror image.
//
// Only usable backends of the selected sides are in Merged.Backends; every
// other backend is in Merged.Excluded with its Reason.
func Merge(in Input) (Merged, error) {
	if err := in.Local.validate(); err != nil {
		return Merged{}, err
	}
	cfg, err := ParseAnnotations(in.Local.Namespace, in.Local.Name, in.Local.Annotations)
	var remotes []*schema.ClusterService
	if cfg.Global {
		remotes = make([]*schema.ClusterService, 0, len(in.Remote))
		for cluster, rs := range in.Remote {
			if rs == nil || cluster == in.Cluster.Name || !rs.Shared ||
				rs.Namespace != in.Local.Namespace || rs.Name != in.Local.Name {
				continue
			}
			if rs.Cluster != cluster {
				c := *rs
				c.Cluster = cluster
				rs = &c
			}
			remotes = append(remotes, rs)
		}
	}
	return merge(in.Cluster, cfg, &in.Local, remotes, in.Unhealthy), err
}

// portEntry is one (backend L4 address, port name) pair before grouping.
type portEntry struct {
	b     Backend // PortNames unset
	name  string
	local bool
}

// merge does the work of Merge on a parsed config and the remote entries
// that count (shared, other clusters, same service, in any order).
func merge(local Cluster, cfg Config, svc *LocalService, remotes []*schema.ClusterService, unhealthy map[BackendKey]bool) Merged {
	m := Merged{
		Namespace: svc.Namespace,
		Name:      svc.Name,
		Config:    cfg,
	}
	if svc.Frontends != nil {
		m.Frontends = make(map[netip.Addr]schema.PortConfiguration, len(svc.Frontends))
		for addr, pc := range svc.Frontends {
			m.Frontends[addr] = copyPorts(pc)
		}
	}
	if !cfg.Global {
		remotes = nil
	}

	n := 0
	for _, b := range svc.Backends {
		n += len(b.Ports)
	}
	for _, rs := range remotes {
		for _, pc := range rs.Backends {
			n += len(pc)
		}
	}
	if n == 0 {
		return m
	}

	// Collect every (backend, port name), sort by backend key then name,
	// and note which sides have a usable backend.
	entries := make([]portEntry, 0, n)
	add := func(cluster string, id identity.ClusterID, addr netip.Addr, ports schema.PortConfiguration, st State, bad, isLocal bool) {
		for name, l4 := range ports {
			e := portEntry{b: Backend{Cluster: cluster, ClusterID: id, Addr: addr, L4: l4, State: st}, name: name, local: isLocal}
			e.b.Unhealthy = bad || (len(unhealthy) > 0 && unhealthy[e.b.Key()])
			entries = append(entries, e)
		}
	}
	for addr, lb := range svc.Backends {
		add(local.Name, local.ID, addr, lb.Ports, lb.State, lb.Unhealthy, true)
	}
	for _, rs := range remotes {
		for addr, pc := range rs.Backends {
			add(rs.Cluster, rs.ClusterID, addr, pc, StateActive, false, false)
		}
	}
	slices.SortFunc(entries, func(a, b portEntry) int {
		if c := compareBackends(&a.b, &b.b); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	localUsable, remoteUsable := false, false
	groups := 0
	for i := range entries {
		e := &entries[i]
		if e.b.State == StateActive && !e.b.Unhealthy {
			if e.local {
				localUsable = true
			} else {
				remoteUsable = true
			}
		}
		if i == 0 || compareBackends(&entries[i-1].b, &e.b) != 0 {
			groups++
		}
	}

	useLocal, useRemote := true, false
	if cfg.Global {
		switch cfg.Affinity {
		case AffinityLocal:
			useRemote = !localUsable
		case AffinityRemote:
			useRemote = true
			useLocal = !remoteUsable
		default:
			useRemote = true
		}
	}

	// Group entries into backends. All port names share one backing
	// array; each backend's slice is capped so appends cannot overlap.
	names := make([]string, 0, len(entries))
	var selected []Backend
	var excluded []Exclusion
	for i := 0; i < len(entries); {
		start := len(names)
		j := i
		for ; j < len(entries) && compareBackends(&entries[i].b, &entries[j].b) == 0; j++ {
			if j == i || entries[j].name != entries[j-1].name {
				names = append(names, entries[j].name)
			}
		}
		b := entries[i].b
		b.PortNames = names[start:len(names):len(names)]
		use := useRemote
		if entries[i].local {
			use = useLocal
		}
		switch {
		case b.Unhealthy:
			excluded = appendExclusion(excluded, groups, b, ReasonUnhealthy)
		case b.State != StateActive:
			excluded = appendExclusion(excluded, groups, b, ReasonNotActive)
		case !use:
			excluded = appendExclusion(excluded, groups, b, ReasonAffinity)
		default:
			if selected == nil {
				selected = make([]Backend, 0, groups)
			}
			selected = append(selected, b)
		}
		i = j
	}
	m.Backends, m.Excluded = selected, excluded
	return m
}

func appendExclusion(ex []Exclusion, groups int, b Backend, r Reason) []Exclusion {
	if ex == nil {
		ex = make([]Exclusion, 0, groups)
	}
	return append(ex, Exclusion{Backend: b, Reason: r})
}

func compareBackends(a, b *Backend) int {
	if c := cmp.Compare(a.Cluster, b.Cluster); c != 0 {
		return c
	}
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if c := cmp.Compare(a.L4.Protocol, b.L4.Protocol); c != 0 {
		return c
	}
	return cmp.Compare(a.L4.Port, b.L4.Port)
}
