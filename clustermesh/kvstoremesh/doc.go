// Package kvstoremesh is strait's remote-cluster cache, the equivalent of
// Cilium's KVStoreMesh: strait-apiserver connects once to each remote
// cluster's etcd and mirrors its state into the local etcd, so the local
// agents read every cluster from their own etcd and the remote etcd's load
// does not grow with the number of nodes in the mesh.
//
// # Who feeds it, who consumes it
//
// A remoteconfig.Watcher (one file per remote cluster, the etcd client
// config of the remote's "remote" user) drives a Mesh through the
// remoteconfig.Handler methods Add, Update, Invalid and Remove. The Mesh
// reads each remote with a kvstore.Client and writes through the local
// kvstore.Client it was given (strait-apiserver's own). Local agents
// consume what it writes, as the local-<cluster> user (read-only on
// cilium/cache/, cilium/synced/ and cilium/cluster-config/). Status and
// Metrics serve `straitctl status` and Prometheus.
//
// # Keys
//
// Read from remote cluster R (every read is allowed to Cilium's "remote"
// role):
//
//	cilium/cluster-config/R                 its config (single key, watched)
//	cilium/synced/R/cilium/state/<kind>/v1  its sync canaries (prefix watched)
//	cilium/state/nodes/v1/R/...             nodes
//	cilium/state/services/v1/R/...          services
//	cilium/state/serviceexports/v1/R/...    service exports
//	cilium/state/identities/v1/id/...       identities (id → labels only)
//	cilium/state/ip/v1/default/...          ipcache
//	cilium/.heartbeat                       read by the connectivity probe
//
// Written (and owned) in the local etcd, all attached to the local client's
// session lease:
//
//	cilium/cache/<kind>/v1/R/...            copies, raw bytes, one SyncStore per kind
//	cilium/synced/R/cilium/cache/<kind>/v1  local canary: this kind's copy is complete
//	cilium/cluster-config/R                 R's config with cached:true, syncedCanaries:true
//
// Identity value/<labels>/<node> keys (per-node references of Cilium's
// kvstore allocation mode) are not mirrored; Cilium's KVStoreMesh copies the
// whole identities/v1 prefix, but consumers of a remote cluster resolve
// id → labels only, and schema has no cache form for references.
//
// Every remote entry is validated before it is copied (schema decoders with
// the remote's name and ID as Origin; identities and ipcache identities must
// lie in the remote's identity range, identity labels must not name another
// cluster). An invalid entry is skipped (its earlier valid copy deleted),
// logged with its key, counted in Metrics.Failures{reason="invalid_entry"}
// and Status.InvalidEntries; the rest goes on.
//
// # State machine of one remote cluster
//
//	           Add
//	            │
//	            ▼
//	     ┌─► connecting ──connect error (retry 2s…32s)──┐
//	     │      │ connected                ▲           │
//	     │      ▼                          └───────────┘
//	     │  reading config ◄──────────────────────────┐
//	     │      │ config missing/invalid, ID clash:   │
//	     │      │   status error, nothing mirrored,   │ config changed:
//	     │      │   wait for the key to change        │ stop mirrors,
//	     │      │   (or an ID to be released)         │ re-validate
//	     │      ▼ valid, ID claimed                   │
//	     │  mirroring ────────────────────────────────┘
//	     │      │   local cluster-config written; per kind (below)
//	     │      │   remote unreachable: Connected=false, data kept,
//	     │      │   watches resume when it is back
//	  Update    │
//	(reconnect) │ Remove
//	     │      ▼
//	     │  draining: local cluster-config deleted at once;
//	     │      │     cached data deleted after RemovalGrace (3 min)
//	     └──────┤     with retries (2s…32s)
//	       Add  │ grace over, data deleted
//	            ▼
//	         (gone)
//
// Per kind, while mirroring:
//
//	stopped ──start──► waiting-canary ──remote canary present──► syncing
//	                   (only with           ▲                      │ listed, written,
//	                    syncedCanaries)     │ remote canary gone:  │ stale pruned,
//	                                        │ pause, delete local  ▼ local canary written
//	                                        └────canary, keep data── synced
//
// Without syncedCanaries every kind starts in syncing at once. Each
// (re)start of a kind deletes its local canary first, then a fresh
// kvstore.SyncStore lists the cached keys it finds and prunes those the
// remote no longer has only after the remote prefix has been listed
// completely: so the local canary exists only while the current copy is
// complete, a half-populated remote (canary not yet rewritten) is never
// taken as complete, and nothing is pruned before the re-sync — neither
// after a canary loss nor after a restart of the Mesh on the same etcd.
//
// # Lifecycle
//
// New builds a Mesh; Add/Update/Remove may be called before Run (they take
// effect when Run starts) and while it runs. Run returns when its ctx ends,
// after every remote goroutine has stopped; it leaves every key in place
// (they expire with the local session lease if the process dies, or are
// pruned by the next Mesh's initial sync). The Mesh never closes the local
// client. A removal's grace period is abandoned when Run ends.
//
// # Errors
//
// New: ErrOptions naming the field. Run: ErrRunning on a second call.
// Failures of remote clusters are not returned but reported in Status
// (Reason, LastError) and Metrics.Failures by Reason: connect_error,
// unreachable, missing_config, invalid_config, config_clash (wrapping
// ErrClash: same ID as the local cluster or a connected remote; the first
// remote to claim an ID keeps it, and a refused one is retried when an ID
// is released or its config changes), invalid_entry, invalid_config_file,
// local_write (retried).
package kvstoremesh
