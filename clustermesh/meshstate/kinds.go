package meshstate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"time"
	"unique"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// Kind names one kind of remote state.
type Kind uint8

const (
	KindNodes Kind = iota
	KindIPCache
	KindIdentities
	KindServices
	numKinds
)

// Kinds lists every kind, in the order they are started.
var kinds = [numKinds]Kind{KindNodes, KindIPCache, KindIdentities, KindServices}

func (k Kind) String() string {
	switch k {
	case KindNodes:
		return "nodes"
	case KindIPCache:
		return "ip"
	case KindIdentities:
		return "identities"
	case KindServices:
		return "services"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// statePrefix is the Cilium state prefix whose KVStoreMesh copy holds k.
func (k Kind) statePrefix() string {
	switch k {
	case KindNodes:
		return schema.NodesPrefix
	case KindIPCache:
		return schema.IPPrefix
	case KindIdentities:
		return schema.IdentitiesPrefix
	default:
		return schema.ServicesPrefix
	}
}

// CanaryKey is the sync canary KVStoreMesh writes into the local etcd once
// its copy of kind k of cluster is complete:
//
//	cilium/synced/<cluster>/cilium/cache/<kind>/v1
//
// i.e. schema.CanaryKey(cluster, schema.StateToCachePrefix(<state prefix>)),
// as Cilium's KVStoreMesh does (reflector: WSSWithSyncedKeyOverride of the
// cache prefix without the cluster).
func CanaryKey(cluster string, k Kind) string {
	return schema.CanaryKey(cluster, schema.StateToCachePrefix(k.statePrefix()))
}

// WatchPrefix is the local etcd prefix holding kind k of cluster:
// cilium/cache/{nodes,ip,services}/v1/<cluster>/ and
// cilium/cache/identities/v1/<cluster>/id/.
func WatchPrefix(cluster string, k Kind) string {
	p := schema.StateToCachePrefix(k.statePrefix()) + "/" + cluster + "/"
	if k == KindIdentities {
		p += "id/"
	}
	return p
}

// ServiceName names a service inside its cluster.
type ServiceName struct {
	Namespace, Name string
}

func (n ServiceName) String() string { return n.Namespace + "/" + n.Name }

// IPEntry is what the mesh state keeps of a remote ipcache entry: what
// the datapath (identity, tunnel endpoint, IPsec key index) and flow logs
// (namespace, pod) need. The pod UID, service account and named ports of
// the wire format are dropped to keep a million entries small.
type IPEntry struct {
	// HostIP is the tunnel endpoint (hosting node); zero if none.
	HostIP netip.Addr
	ID     identity.NumericIdentity
	// EncryptionKey is the IPsec key index; 0 means none.
	EncryptionKey uint8
	// Namespace is interned: entries of one namespace share its bytes.
	Namespace string
	PodName   string
}

// Event types, one per kind.
type (
	// NodeEvent: Key is the node name.
	NodeEvent = Event[string, *schema.Node]
	// IPCacheEvent: Key is the address (full-length prefix) or CIDR.
	IPCacheEvent = Event[netip.Prefix, IPEntry]
	// IdentityEvent: Key is the numeric identity, Value its labels.
	IdentityEvent = Event[identity.NumericIdentity, identity.Labels]
	// ServiceEvent: Key is namespace/name.
	ServiceEvent = Event[ServiceName, *schema.ClusterService]
)

// errInvalidLabels marks an identity whose label string does not parse or
// names another cluster.
var errInvalidLabels = errors.New("meshstate: invalid identity labels")

// Invalid-entry reasons, the "reason" label of invalid_entries_total.
const (
	reasonInvalidKey      = "invalid-key"
	reasonInvalidValue    = "invalid-value"
	reasonKeyMismatch     = "key-mismatch"
	reasonClusterMismatch = "cluster-mismatch"
	reasonOutOfRange      = "identity-out-of-range"
	reasonInvalidLabels   = "invalid-labels"
	reasonNotCached       = "not-cached"
	reasonIncompatible    = "incompatible-config"
)

// reasonOf classifies a decode error.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, schema.ErrClusterMismatch):
		return reasonClusterMismatch
	case errors.Is(err, identity.ErrOutOfRange), errors.Is(err, identity.ErrNodeLocal),
		errors.Is(err, identity.ErrInvalidClusterID):
		return reasonOutOfRange
	case errors.Is(err, errInvalidLabels):
		return reasonInvalidLabels
	case errors.Is(err, schema.ErrKeyMismatch):
		return reasonKeyMismatch
	case errors.Is(err, schema.ErrIncompatibleConfig):
		return reasonIncompatible
	case errors.Is(err, schema.ErrInvalidKey), errors.Is(err, identity.ErrMalformedKey):
		return reasonInvalidKey
	}
	return reasonInvalidValue
}

// spec is one kind's decoding: keyOf parses a cache key of cluster (for
// deletes and before decoding), decode validates a value.
type spec[K comparable, V any] struct {
	kind   Kind
	table  *table[K, V]
	keyOf  func(key, cluster string) (K, error)
	decode func(key string, value []byte, from schema.Origin) (V, error)
}

// runner is a spec with its type parameters hidden, so a session can run
// all kinds.
type runner interface {
	run(ctx context.Context, s *State, sess *session)
	drop(cluster string)
	len(cluster string) int
}

func (sp *spec[K, V]) drop(cluster string)    { sp.table.drop(cluster) }
func (sp *spec[K, V]) len(cluster string) int { return sp.table.len(cluster) }

// run follows kind sp.kind of sess's cluster until ctx ends: it waits for
// the canary (when the config advertises syncedCanaries), lists and
// watches the cache prefix and applies every valid entry. Entries held
// from an earlier session that the new list does not contain are deleted
// only once that list is complete.
func (sp *spec[K, V]) run(ctx context.Context, s *State, sess *session) {
	cluster := sess.origin.Cluster
	log := s.log.With(logCluster, cluster, logKind, sp.kind.String())
	if sess.canaries {
		if err := s.client.WaitForCanary(ctx, cluster, schema.StateToCachePrefix(sp.kind.statePrefix())); err != nil {
			return // ctx ended or client closed
		}
		log.Debug("Sync canary present, watching")
	}
	m := s.metrics
	gauge := m.entries.WithLabelValues(cluster, sp.kind.String())
	hist := m.processing.WithLabelValues(sp.kind.String())
	var keep map[K]struct{}
	if sp.table.len(cluster) > 0 {
		keep = make(map[K]struct{})
	}
	for ev := range s.client.ListAndWatch(ctx, WatchPrefix(cluster, sp.kind)) {
		start := time.Now()
		switch ev.Kind {
		case kvstore.EventUpsert:
			k, err := sp.keyOf(ev.Key, cluster)
			if err != nil {
				s.invalid(log, cluster, sp.kind, ev.Key, err)
				continue
			}
			v, err := sp.decode(ev.Key, ev.Value, sess.origin)
			if err != nil {
				s.invalid(log, cluster, sp.kind, ev.Key, err)
				// The key no longer holds a valid value: whatever it
				// held before is withdrawn.
				gauge.Set(float64(sp.table.delete(cluster, k)))
				continue
			}
			if keep != nil {
				keep[k] = struct{}{}
			}
			gauge.Set(float64(sp.table.upsert(cluster, k, v)))
		case kvstore.EventDelete:
			k, err := sp.keyOf(ev.Key, cluster)
			if err != nil {
				continue // never stored
			}
			gauge.Set(float64(sp.table.delete(cluster, k)))
		case kvstore.EventListDone:
			if keep != nil {
				gauge.Set(float64(sp.table.sweep(cluster, keep)))
				keep = nil
			}
			sp.table.markSynced(cluster)
			close(sess.synced[sp.kind])
			log.Info("Initial sync done", logCount, sp.table.len(cluster))
			s.updateClusterGauges()
			continue
		}
		hist.Observe(time.Since(start).Seconds())
	}
}

// cacheKey parses a cache key of cluster of the given kind.
func cacheKey(key, cluster string, kind schema.Kind) (schema.Key, error) {
	k, err := schema.ParseKey(key)
	if err != nil {
		return k, err
	}
	if k.Kind != kind || !k.Cached {
		return k, fmt.Errorf("%w: %s: not a cached %s key", schema.ErrInvalidKey, key, kind)
	}
	if k.Cluster != cluster {
		return k, fmt.Errorf("%w: %s: key names cluster %q, watched as %q", schema.ErrClusterMismatch, key, k.Cluster, cluster)
	}
	return k, nil
}

func newNodeSpec() *spec[string, *schema.Node] {
	return &spec[string, *schema.Node]{
		kind:  KindNodes,
		table: newTable[string](KindNodes, func(a, b *schema.Node) bool { return reflect.DeepEqual(a, b) }),
		keyOf: func(key, cluster string) (string, error) {
			k, err := cacheKey(key, cluster, schema.KindNode)
			return k.Name, err
		},
		decode: schema.DecodeNode,
	}
}

func newServiceSpec() *spec[ServiceName, *schema.ClusterService] {
	return &spec[ServiceName, *schema.ClusterService]{
		kind:  KindServices,
		table: newTable[ServiceName](KindServices, func(a, b *schema.ClusterService) bool { return reflect.DeepEqual(a, b) }),
		keyOf: func(key, cluster string) (ServiceName, error) {
			k, err := cacheKey(key, cluster, schema.KindService)
			return ServiceName{Namespace: k.Namespace, Name: k.Name}, err
		},
		decode: schema.DecodeClusterService,
	}
}

func newIPSpec() *spec[netip.Prefix, IPEntry] {
	return &spec[netip.Prefix, IPEntry]{
		kind:   KindIPCache,
		table:  newTable[netip.Prefix](KindIPCache, func(a, b IPEntry) bool { return a == b }),
		keyOf:  ipKeyOf,
		decode: decodeIPEntry,
	}
}

// ipKeyOf maps an ipcache cache key to its prefix. A host entry and a
// full-length CIDR entry of the same address share the key.
func ipKeyOf(key, cluster string) (netip.Prefix, error) {
	k, err := cacheKey(key, cluster, schema.KindIPIdentity)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p, err := netip.ParsePrefix(k.IP); err == nil {
		return p, nil
	}
	a, err := netip.ParseAddr(k.IP)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %s: %w", schema.ErrInvalidKey, key, err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// decodeIPEntry validates an ipcache value: schema.DecodeIPIdentityPair,
// then the identity must be reserved (1..255, e.g. health) or in the
// remote cluster's range.
func decodeIPEntry(key string, value []byte, from schema.Origin) (IPEntry, error) {
	p, err := schema.DecodeIPIdentityPair(key, value, from)
	if err != nil {
		return IPEntry{}, err
	}
	if !(p.ID < identity.MinAllocatable) {
		if err := identity.ValidateRemote(from.Max, from.ClusterID, p.ID); err != nil {
			return IPEntry{}, fmt.Errorf("%s: field \"ID\": %w", key, err)
		}
	}
	e := IPEntry{HostIP: p.HostIP, ID: p.ID, EncryptionKey: p.EncryptionKey, PodName: p.K8sPodName}
	if p.K8sNamespace != "" {
		e.Namespace = unique.Make(p.K8sNamespace).Value()
	}
	return e, nil
}

func newIdentitySpec() *spec[identity.NumericIdentity, identity.Labels] {
	return &spec[identity.NumericIdentity, identity.Labels]{
		kind:  KindIdentities,
		table: newTable[identity.NumericIdentity](KindIdentities, func(a, b identity.Labels) bool { return a.Equal(b) }),
		keyOf: func(key, cluster string) (identity.NumericIdentity, error) {
			return identity.Keys{Prefix: schema.CacheIdentitiesPrefix + "/" + cluster}.ParseIDKey(key)
		},
		decode: decodeIdentity,
	}
}

// decodeIdentity validates an identity of the remote cluster: its ID must
// lie in the cluster's range, its labels must parse and, when they carry
// the cluster label, name the remote cluster.
func decodeIdentity(key string, value []byte, from schema.Origin) (identity.Labels, error) {
	id, err := identity.Keys{Prefix: schema.CacheIdentitiesPrefix + "/" + from.Cluster}.ParseIDKey(key)
	if err != nil {
		return nil, err
	}
	if err := identity.ValidateRemote(from.Max, from.ClusterID, id); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	ls, err := identity.ParseLabels(string(value))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errInvalidLabels, key, err)
	}
	if c, ok := ls.Cluster(); ok && c != from.Cluster {
		return nil, fmt.Errorf("%w: %s: cluster label %q, expected %q", schema.ErrClusterMismatch, key, c, from.Cluster)
	}
	return ls, nil
}
