package schema

import "strings"

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
