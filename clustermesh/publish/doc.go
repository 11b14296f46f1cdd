// Package publish writes a cluster's own state to its etcd in the Cilium
// ClusterMesh v1 layout (package schema), so that every other cluster (strait
// or Cilium) can read it:
//
//   - NodePublisher: schema.Node at cilium/state/nodes/v1/<cluster>/<node>
//     (addresses, pod CIDRs, cluster ID, WireGuard public key, IPsec key
//     index, boot ID);
//   - IPCachePublisher: schema.IPIdentityPair at
//     cilium/state/ip/v1/default/<ip> (pod IP, identity, host IP, key index,
//     namespace and pod name);
//   - ServicePublisher: schema.ClusterService at
//     cilium/state/services/v1/<cluster>/<ns>/<svc> (frontends, backends per
//     port, includeExternal, shared).
//
// Identities are not published here: identity.Allocator writes
// cilium/state/identities/v1/... itself when an endpoint's label set is
// allocated, and nothing in this package duplicates that.
//
// # Who feeds it, who consumes it
//
// Each publisher is its own small source interface: a source (the agent's
// own node, the CNI plugin's ADD/DEL, Kubernetes informers in the apiserver,
// tests) calls Upsert and Delete for every change and Synced once it has
// upserted everything that exists now. Upsert validates the entry first —
// it encodes it and decodes it back with the schema decoder under this
// cluster's Origin, so a published entry is exactly one a remote consumer
// accepts, plus the identity range check for ipcache entries — and refuses a
// bad entry with an error wrapping ErrInvalidEntry that names it; other
// entries are not affected. Consumers are remote clusters' KVStoreMesh (via
// their etcd client) and this cluster's apiserver.
//
// # Lifecycle and guarantees
//
// New* validates options; Run(ctx) must be running for anything to be
// written, and returns when ctx ends. Writes go through kvstore.SyncStore:
// every entry is attached to the client's session lease and written again
// under a new lease after the old one is lost; entries an earlier run left
// behind are deleted only after Synced, and then the sync canary
// cilium/synced/<cluster>/<state prefix> is written (e.g.
// cilium/synced/c1/cilium/state/ip/v1), as Cilium does.
//
// Several writers per prefix: every agent publishes its own node and its
// endpoints' ipcache entries into the cluster's shared prefixes. Each sets
// Options.Owns (OwnedByNode, OwnedByHostIP) so that its stale-key pruning
// at start touches only its own keys, and Options.PersistentCanary so the
// canary is not tied to one agent's lease.
//
// Ordering for WireGuard: IPCacheOptions.After takes a channel (normally
// NodePublisher.Published) and IPCachePublisher.Run writes no ipcache entry
// before that channel is closed. NodePublisher.Published closes once the
// node store's initial sync is done, i.e. every node upserted before Synced
// (the agent's own node, with its public key) is in etcd. Nodes first
// upserted after that initial sync, and re-writes after a lease loss, are
// not ordered against ipcache entries.
//
// # Errors
//
// ErrInvalidEntry: an entry refused by validation (the error names the key
// and the field at fault and wraps the schema or identity error).
// ErrInvalidOptions: bad options to a constructor.
package publish
