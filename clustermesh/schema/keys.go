package schema

import (
	"net/netip"
	"strconv"
	"strings"
)

// Key prefixes of the Cilium ClusterMesh v1 layout. Every key lives under
// "cilium/". See ../shared/reference/clustermesh.md §1.
const (
	// Root is the prefix of every key strait or Cilium writes.
	Root = "cilium/"
	// StatePrefix holds the state a cluster publishes about itself.
	StatePrefix = "cilium/state/"
	// NodesPrefix: cilium/state/nodes/v1/<cluster>/<node> → Node.
	NodesPrefix = "cilium/state/nodes/v1"
	// IdentitiesPrefix: .../id/<id> → labels, .../value/<labels>/<node> → id.
	IdentitiesPrefix = "cilium/state/identities/v1"
	// IPPrefix: cilium/state/ip/v1/default/<ip> → IPIdentityPair.
	IPPrefix = "cilium/state/ip/v1"
	// ServicesPrefix: cilium/state/services/v1/<cluster>/<ns>/<svc> → ClusterService.
	ServicesPrefix = "cilium/state/services/v1"
	// ServiceExportsPrefix: cilium/state/serviceexports/v1/<cluster>/<ns>/<svc> → ServiceExport.
	ServiceExportsPrefix = "cilium/state/serviceexports/v1"
	// ClusterConfigPrefix: cilium/cluster-config/<cluster> → ClusterConfig.
	ClusterConfigPrefix = "cilium/cluster-config/"
	// SyncedPrefix: cilium/synced/<cluster>/<prefix> → RFC3339 timestamp.
	SyncedPrefix = "cilium/synced/"
	// CachePrefix holds KVStoreMesh's copies of remote clusters' state.
	CachePrefix = "cilium/cache/"
	// HeartbeatKey is rewritten with the current time every minute.
	HeartbeatKey = "cilium/.heartbeat"
	// AddressSpace is the only ipcache address space Cilium writes.
	AddressSpace = "default"
)

// Cache prefixes: KVStoreMesh's copies of a remote cluster's state, each
// followed by /<cluster>/... (see StateToCacheKey).
const (
	// CacheNodesPrefix: cilium/cache/nodes/v1/<cluster>/<node>.
	CacheNodesPrefix = "cilium/cache/nodes/v1"
	// CacheIdentitiesPrefix: cilium/cache/identities/v1/<cluster>/id/<id>.
	CacheIdentitiesPrefix = "cilium/cache/identities/v1"
	// CacheIPPrefix: cilium/cache/ip/v1/<cluster>/<ip>.
	CacheIPPrefix = "cilium/cache/ip/v1"
	// CacheServicesPrefix: cilium/cache/services/v1/<cluster>/<ns>/<svc>.
	CacheServicesPrefix = "cilium/cache/services/v1"
	// CacheServiceExportsPrefix: cilium/cache/serviceexports/v1/<cluster>/<ns>/<svc>.
	CacheServiceExportsPrefix = "cilium/cache/serviceexports/v1"
)

// CanaryKey is the sync canary of prefix in cluster, written once the
// initial sync of prefix is complete, e.g.
// CanaryKey("c1", NodesPrefix) = "cilium/synced/c1/cilium/state/nodes/v1".
func CanaryKey(cluster, prefix string) string {
	return SyncedPrefix + cluster + "/" + strings.TrimSuffix(prefix, "/")
}

// ClusterConfigKey is the key of cluster's CiliumClusterConfig.
func ClusterConfigKey(cluster string) string {
	return ClusterConfigPrefix + cluster
}

// NodeKey is the key of node in cluster: cilium/state/nodes/v1/<cluster>/<node>.
func NodeKey(cluster, node string) string {
	return NodesPrefix + "/" + cluster + "/" + node
}

// ServiceKey is the key of a ClusterService:
// cilium/state/services/v1/<cluster>/<namespace>/<name>.
func ServiceKey(cluster, namespace, name string) string {
	return ServicesPrefix + "/" + cluster + "/" + namespace + "/" + name
}

// ServiceExportKey is the key of an MCS-API ServiceExport:
// cilium/state/serviceexports/v1/<cluster>/<namespace>/<name>.
func ServiceExportKey(cluster, namespace, name string) string {
	return ServiceExportsPrefix + "/" + cluster + "/" + namespace + "/" + name
}

// IPKey is the key of the ipcache entry of a single address:
// cilium/state/ip/v1/default/<ip>.
func IPKey(ip netip.Addr) string {
	return IPPrefix + "/" + AddressSpace + "/" + ip.String()
}

// IPPrefixKey is the key of the ipcache entry of a CIDR (an entry with a
// Mask): cilium/state/ip/v1/default/<ip>/<bits>. The address is written as
// given, not masked, like Cilium does.
func IPPrefixKey(p netip.Prefix) string {
	return IPPrefix + "/" + AddressSpace + "/" + p.Addr().String() + "/" + strconv.Itoa(p.Bits())
}

// StateToCachePrefix maps a state prefix to KVStoreMesh's cache prefix:
// "cilium/state/nodes/v1" → "cilium/cache/nodes/v1". Other strings are
// returned unchanged.
func StateToCachePrefix(prefix string) string {
	if rest, ok := strings.CutPrefix(prefix, StatePrefix); ok {
		return CachePrefix + rest
	}
	return prefix
}

// Kind tells what a key holds.
type Kind uint8

// Kinds of keys. The zero Kind is never returned by ParseKey.
const (
	KindUnknown       Kind = iota
	KindNode               // nodes/v1
	KindIPIdentity         // ip/v1
	KindService            // services/v1
	KindServiceExport      // serviceexports/v1
	KindIdentity           // identities/v1 (opaque here; see package identity)
	KindClusterConfig      // cluster-config
	KindCanary             // synced
	KindHeartbeat          // .heartbeat
)

var kindNames = [...]string{"unknown", "node", "ip", "service", "serviceexport", "identity", "cluster-config", "canary", "heartbeat"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Key is a parsed v1 key. Which fields are set depends on Kind:
//
//	Node:          Cluster, Name (node name)
//	IPIdentity:    IP (canonical address or address/bits); Cluster only when Cached
//	Service:       Cluster, Namespace, Name
//	ServiceExport: Cluster, Namespace, Name
//	Identity:      Rest (everything after identities/v1/[<cluster>/]); Cluster only when Cached
//	ClusterConfig: Cluster
//	Canary:        Cluster, Prefix (the synced prefix, e.g. cilium/state/nodes/v1)
//	Heartbeat:     nothing
//
// Cached is set for keys under cilium/cache/ (KVStoreMesh copies).
type Key struct {
	Kind      Kind
	Cached    bool
	Cluster   string
	Namespace string
	Name      string
	IP        string
	Rest      string
	Prefix    string
}

// String builds the key back; ParseKey(k.String()) returns k.
func (k Key) String() string {
	base := func(state, cache string) string {
		if k.Cached {
			return cache
		}
		return state
	}
	switch k.Kind {
	case KindNode:
		return base(NodesPrefix, CacheNodesPrefix) + "/" + k.Cluster + "/" + k.Name
	case KindService:
		return base(ServicesPrefix, CacheServicesPrefix) + "/" + k.Cluster + "/" + k.Namespace + "/" + k.Name
	case KindServiceExport:
		return base(ServiceExportsPrefix, CacheServiceExportsPrefix) + "/" + k.Cluster + "/" + k.Namespace + "/" + k.Name
	case KindIPIdentity:
		if k.Cached {
			return CacheIPPrefix + "/" + k.Cluster + "/" + k.IP
		}
		return IPPrefix + "/" + AddressSpace + "/" + k.IP
	case KindIdentity:
		if k.Cached {
			return CacheIdentitiesPrefix + "/" + k.Cluster + "/" + k.Rest
		}
		return IdentitiesPrefix + "/" + k.Rest
	case KindClusterConfig:
		return ClusterConfigKey(k.Cluster)
	case KindCanary:
		return CanaryKey(k.Cluster, k.Prefix)
	case KindHeartbeat:
		return HeartbeatKey
	}
	return ""
}

// ParseKey parses any v1 key strait reads. Errors are *Error wrapping
// ErrInvalidKey and name the key. Names are checked for shape only: cluster
// names against the naming rules, node/namespace/service names for being
// non-empty without '/', IPs for being canonical addresses or prefixes.
func ParseKey(key string) (Key, error) {
	if key == HeartbeatKey {
		return Key{Kind: KindHeartbeat}, nil
	}
	if rest, ok := strings.CutPrefix(key, ClusterConfigPrefix); ok {
		if err := checkClusterName(rest); err != nil {
			return Key{}, &Error{Key: key, Reason: err.Error(), Kind: ErrInvalidKey, Cause: err}
		}
		return Key{Kind: KindClusterConfig, Cluster: rest}, nil
	}
	if rest, ok := strings.CutPrefix(key, SyncedPrefix); ok {
		return parseCanaryKey(key, rest)
	}
	cached := false
	var rest string
	if r, ok := strings.CutPrefix(key, StatePrefix); ok {
		rest = r
	} else if r, ok := strings.CutPrefix(key, CachePrefix); ok {
		rest, cached = r, true
	} else {
		return Key{}, errKey(key, "not a ClusterMesh v1 key")
	}
	kind, tail, ok := strings.Cut(rest, "/v1/")
	if !ok {
		return Key{}, errKey(key, "missing /v1/ after the kind")
	}
	k := Key{Cached: cached}
	switch kind {
	case "nodes":
		k.Kind = KindNode
		return k, parseClusterNames(key, tail, &k.Cluster, &k.Name)
	case "services":
		k.Kind = KindService
		return k, parseClusterNames(key, tail, &k.Cluster, &k.Namespace, &k.Name)
	case "serviceexports":
		k.Kind = KindServiceExport
		return k, parseClusterNames(key, tail, &k.Cluster, &k.Namespace, &k.Name)
	case "ip":
		k.Kind = KindIPIdentity
		space, ip, ok := strings.Cut(tail, "/")
		if !ok {
			return Key{}, errKey(key, "missing address")
		}
		if cached {
			if err := checkClusterName(space); err != nil {
				return Key{}, &Error{Key: key, Reason: err.Error(), Kind: ErrInvalidKey, Cause: err}
			}
			k.Cluster = space
		} else if space != AddressSpace {
			return Key{}, errKey(key, "address space "+strconv.Quote(space)+" is not "+strconv.Quote(AddressSpace))
		}
		if _, _, err := parseIPKeySuffix(ip); err != nil {
			return Key{}, errKey(key, err.Error())
		}
		k.IP = ip
		return k, nil
	case "identities":
		k.Kind = KindIdentity
		if cached {
			cluster, r, ok := strings.Cut(tail, "/")
			if !ok {
				return Key{}, errKey(key, "missing identity after the cluster")
			}
			if err := checkClusterName(cluster); err != nil {
				return Key{}, &Error{Key: key, Reason: err.Error(), Kind: ErrInvalidKey, Cause: err}
			}
			k.Cluster, tail = cluster, r
			if !strings.HasPrefix(tail, "id/") {
				return Key{}, errKey(key, "cached identities are only id/<id>")
			}
		}
		if !(strings.HasPrefix(tail, "id/") && len(tail) > len("id/")) && !(strings.HasPrefix(tail, "value/") && len(tail) > len("value/")) {
			return Key{}, errKey(key, "identity key must be id/<id> or value/<labels>/<node>")
		}
		k.Rest = tail
		return k, nil
	}
	return Key{}, errKey(key, "unknown kind "+strconv.Quote(kind))
}

// parseClusterNames splits tail into exactly len(dst) '/'-separated
// non-empty parts, the first being a cluster name.
func parseClusterNames(key, tail string, dst ...*string) error {
	parts := strings.Split(tail, "/")
	if len(parts) != len(dst) {
		return errKey(key, "want "+strconv.Itoa(len(dst))+" path elements after the prefix, got "+strconv.Itoa(len(parts)))
	}
	if err := checkClusterName(parts[0]); err != nil {
		return &Error{Key: key, Reason: err.Error(), Kind: ErrInvalidKey, Cause: err}
	}
	for i, p := range parts {
		if p == "" {
			return errKey(key, "empty path element")
		}
		*dst[i] = p
	}
	return nil
}

func parseCanaryKey(key, rest string) (Key, error) {
	cluster, prefix, ok := strings.Cut(rest, "/")
	if !ok {
		return Key{}, errKey(key, "missing prefix after the cluster")
	}
	if err := checkClusterName(cluster); err != nil {
		return Key{}, &Error{Key: key, Reason: err.Error(), Kind: ErrInvalidKey, Cause: err}
	}
	if !strings.HasPrefix(prefix, StatePrefix) && !strings.HasPrefix(prefix, CachePrefix) {
		return Key{}, errKey(key, "synced prefix "+strconv.Quote(prefix)+" is not under "+StatePrefix+" or "+CachePrefix)
	}
	if strings.HasSuffix(prefix, "/") || strings.Contains(prefix, "//") {
		return Key{}, errKey(key, "synced prefix "+strconv.Quote(prefix)+" has an empty path element")
	}
	return Key{Kind: KindCanary, Cluster: cluster, Prefix: prefix}, nil
}

// parseIPKeySuffix parses the <ip> or <ip>/<bits> part of an ipcache key.
// It requires the canonical form Cilium writes.
func parseIPKeySuffix(s string) (addr netip.Addr, bits int, err error) {
	ipStr, bitsStr, hasBits := strings.Cut(s, "/")
	addr, err = netip.ParseAddr(ipStr)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	if addr.Zone() != "" || addr.Is4In6() || addr.String() != ipStr {
		return netip.Addr{}, 0, errorString("address " + strconv.Quote(ipStr) + " is not in canonical form")
	}
	bits = -1
	if hasBits {
		n, err := strconv.Atoi(bitsStr)
		if err != nil || n < 0 || n > addr.BitLen() || strconv.Itoa(n) != bitsStr {
			return netip.Addr{}, 0, errorString("prefix length " + strconv.Quote(bitsStr) + " is not in 0.." + strconv.Itoa(addr.BitLen()))
		}
		bits = n
	}
	return addr, bits, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

// StateToCacheKey maps the key of a remote cluster's state entry to the key
// KVStoreMesh stores its copy under:
//
//	cilium/state/nodes/v1/c1/n1              → cilium/cache/nodes/v1/c1/n1
//	cilium/state/services/v1/c1/ns/svc       → cilium/cache/services/v1/c1/ns/svc
//	cilium/state/serviceexports/v1/c1/ns/svc → cilium/cache/serviceexports/v1/c1/ns/svc
//	cilium/state/ip/v1/default/10.0.0.1      → cilium/cache/ip/v1/c1/10.0.0.1
//	cilium/state/identities/v1/id/196609     → cilium/cache/identities/v1/c1/id/196609
//
// cluster is the cluster the key was read from; keys that carry a cluster
// name must carry this one (ErrClusterMismatch). Other keys, including
// identities/v1/value/..., give ErrInvalidKey.
func StateToCacheKey(cluster, stateKey string) (string, error) {
	k, err := ParseKey(stateKey)
	if err != nil {
		return "", err
	}
	if k.Cached {
		return "", errKey(stateKey, "already a cache key")
	}
	switch k.Kind {
	case KindNode, KindService, KindServiceExport:
		if k.Cluster != cluster {
			return "", mismatch(stateKey, "", ErrClusterMismatch, k.Cluster, "cluster", cluster, "connection")
		}
	case KindIPIdentity:
	case KindIdentity:
		if !strings.HasPrefix(k.Rest, "id/") {
			return "", errKey(stateKey, "only identities/v1/id/<id> keys are cached")
		}
	default:
		return "", errKey(stateKey, "a "+k.Kind.String()+" key has no cache form")
	}
	if err := checkClusterName(cluster); err != nil {
		return "", &Error{Key: stateKey, Reason: err.Error(), Kind: ErrInvalidClusterName, Cause: err}
	}
	k.Cached = true
	k.Cluster = cluster
	return k.String(), nil
}

// CacheToStateKey is the inverse of StateToCacheKey: it returns the cluster
// a cache key belongs to and the state key the entry had in that cluster.
func CacheToStateKey(cacheKey string) (cluster, stateKey string, err error) {
	k, err := ParseKey(cacheKey)
	if err != nil {
		return "", "", err
	}
	if !k.Cached {
		return "", "", errKey(cacheKey, "not a cache key")
	}
	cluster = k.Cluster
	k.Cached = false
	if k.Kind == KindIPIdentity || k.Kind == KindIdentity {
		k.Cluster = ""
	}
	return cluster, k.String(), nil
}
