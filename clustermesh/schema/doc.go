// Package schema holds the Cilium ClusterMesh v1 etcd schema: the key
// layout, the value types, and their validation, so that strait and Cilium
// clusters read each other's etcd.
//
// # What it holds
//
//   - Key prefixes and builders (keys.go): NodeKey, IPKey, IPPrefixKey,
//     ServiceKey, ServiceExportKey, ClusterConfigKey, CanaryKey,
//     HeartbeatKey, and the KVStoreMesh cache forms under cilium/cache/
//     (StateToCachePrefix, StateToCacheKey, CacheToStateKey). ParseKey
//     parses any of them into a Key; Key.String builds it back.
//     Identity keys (identities/v1/id/<id>, value/<labels>/<node>) are
//     recognised and mapped to the cache, but their content is package
//     identity's business.
//   - Value types with the exact JSON Cilium writes: Node
//     (pkg/node/types.Node), IPIdentityPair (pkg/identity.IPIdentityPair),
//     ClusterService (pkg/clustermesh/store.ClusterService), ServiceExport
//     (MCSAPIServiceSpec), ClusterConfig (CiliumClusterConfig) and Canary
//     (an RFC 3339 timestamp). The Go API uses netip.Addr and netip.Prefix;
//     on the wire they become net.IP strings ("" for none) and cidr.CIDR
//     objects ({"IP":"10.0.0.0","Mask":"////AA=="}, null for none). Each
//     type has Marshal (byte-for-byte Cilium's encoding/json output, map
//     keys sorted) and Key (its state key).
//   - Decoders, one per value type: DecodeNode, DecodeIPIdentityPair,
//     DecodeClusterService, DecodeServiceExport, DecodeClusterConfig,
//     DecodeCanary. Each takes the key the value was stored under and the
//     Origin it arrived from, and validates the value against both: cluster
//     name and ID inside the value must match the key and the connection,
//     names must match the key, addresses, masks, ports and enums must be
//     well-formed. Unknown JSON fields are ignored, as Cilium does, so
//     values from newer Cilium versions still decode.
//   - ValidateClusterName and Origin.Validate: cluster names match
//     ^([a-z0-9][-a-z0-9]*)?[a-z0-9]$, have at most 32 characters and are
//     not "default" with a non-zero ID; cluster IDs lie in 1..max;
//     max-connected-clusters is 255 or 511 (identity.ClusterMax).
//
// # Who feeds it, who consumes it
//
// Publishers (agent, strait-apiserver) build values and write
// v.Key() → v.Marshal() through clustermesh/kvstore. Remote-cluster
// watchers and the apiserver cache read key/value events from
// kvstore.ListAndWatch and call the Decode function for the key's Kind
// (ParseKey tells it), with the Origin of the connection. The package is
// pure: no I/O, no goroutines, no state; every function is safe for
// concurrent use.
//
// # Errors
//
// Every decoder and parser error is an *Error naming the key and, where
// one is at fault, the JSON field, e.g.
//
//	cilium/state/nodes/v1/c1/n1: field "Cluster": value "c2" does not match cluster "c1" of the key
//
// Its kind is one of the sentinels, tested with errors.Is:
//
//   - ErrInvalidKey: not a well-formed key of the expected kind.
//   - ErrInvalidValue: bad JSON, or a field with a value the schema forbids.
//   - ErrKeyMismatch: a name or address in the value differs from the key.
//   - ErrClusterMismatch: a cluster name or ID differs from the key or the
//     connection.
//   - ErrInvalidClusterName: a cluster name breaks the naming rules.
//   - ErrIncompatibleConfig: a remote cluster config cannot join our mesh.
//   - ErrInvalidOrigin: the caller passed an invalid Origin.
//
// Underlying causes (identity.ErrInvalidClusterID,
// identity.ErrInvalidClusterMax, JSON errors) match errors.Is as well.
// A consumer skips an entry that fails to decode, logs the error (it names
// the key) and goes on with the rest.
package schema
