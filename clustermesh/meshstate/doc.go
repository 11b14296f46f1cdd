// Package meshstate is the agent's validated, in-memory view of every
// remote cluster: nodes, ipcache entries, identities and services, read
// ONLY from the local etcd, where the cluster's strait-apiserver
// (KVStoreMesh) caches the remote clusters.
//
// # Who feeds it, who consumes it
//
// Fed by clustermesh/kvstore watches of the local etcd:
//
//	cilium/cluster-config/<remote>                  → which remotes exist (cached: true only)
//	cilium/synced/<remote>/cilium/cache/<kind>/v1   → canary: the copy of <kind> is complete
//	cilium/cache/nodes/v1/<remote>/<node>           → schema.Node
//	cilium/cache/ip/v1/<remote>/<ip>                → IPEntry (from schema.IPIdentityPair)
//	cilium/cache/identities/v1/<remote>/id/<id>     → identity.Labels
//	cilium/cache/services/v1/<remote>/<ns>/<svc>    → schema.ClusterService
//
// The canary key is CanaryKey(remote, kind) =
// schema.CanaryKey(remote, schema.StateToCachePrefix(<state prefix>)), the
// form Cilium's KVStoreMesh writes (the cache prefix without the cluster).
// Consumers (datapath desired-state computation, WireGuard and IPsec peers,
// global services, straitctl status) subscribe per kind or read lookups.
//
// # Validation
//
// A config is decoded with schema.DecodeClusterConfig against our Max; our
// own cluster's config is skipped; a config without "cached": true is not
// followed (agents only read KVStoreMesh copies). Every entry is decoded
// with the schema decoder under Origin{remote, remote's ID, our Max}, so an
// entry claiming another cluster (name or ID) is rejected; identities must
// lie in the remote's ID range and their labels parse (and name the remote
// if they carry the cluster label); ipcache identities must be reserved
// (1..255) or in the remote's range. A rejected entry is skipped, counted
// (strait_meshstate_invalid_entries_total, by reason) and logged with its
// key; if its key held a valid entry before, that entry is withdrawn. Nothing
// else is disturbed.
//
// # Lifecycle
//
//	           config (cached, valid)
//	absent ─────────────────────────────▶ connected ──all kinds listed──▶ ready
//	  ▲                                    │   ▲
//	  │ CacheTTL expired                   │   │ config back (within TTL):
//	  │ (state revoked, deletes sent)      │   │ re-list; entries missing from
//	  │                                    ▼   │ it deleted only after the list
//	  └──────────────────────────────── disconnected (watches stopped, state kept;
//	                                     CacheTTL 0 keeps it forever)
//
// New validates Options; Run(ctx) follows the configs until ctx ends, then
// stops every watch (state stays readable). In a session each kind waits for
// its canary (when the config advertises syncedCanaries), lists, then
// watches. kvstore's watch resumes after etcd restarts and sends exact
// differences, so nothing is deleted because of a partial view; after a
// re-join the entries the new list lacks are deleted only once that list
// is complete. A config whose ID changed revokes the cluster's state at
// once (every entry was checked against the old ID) and starts anew.
//
// Synced (all remotes configured at start, like Cilium's ClustersSynced /
// NodesSynced) and ClusterSynced (one remote) wait for initial syncs;
// subscribers also get an OpSynced event per cluster and kind.
//
// # Memory
//
// Values are compact: ipcache entries are netip.Prefix → IPEntry (64
// bytes, namespace interned), no raw JSON, no per-entry maps. See
// docs/benchmarks.md ("meshstate") for the measured heap per entry.
//
// # Errors
//
// ErrInvalidOptions from New; ErrAlreadyRunning from a second Run;
// kvstore.ErrClosed from Run when the client is closed; the Synced waits
// return ctx's error wrapped with what they waited for.
package meshstate
