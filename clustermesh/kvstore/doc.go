// Package kvstore is strait's etcd v3 client layer: one connection to one
// etcd cluster (local or remote), speaking the Cilium ClusterMesh v1 key
// layout of package schema.
//
// What it holds:
//   - Client (New): TLS from files, connection with capped exponential
//     backoff and jitter, a session lease kept alive and granted anew after
//     it is lost (LeaseID, Lease), plain and leased reads and writes.
//   - Watch / ListAndWatch: list-then-watch of a prefix that resumes from the
//     last revision after a watch failure or etcd restart and re-lists after
//     compaction, sending only the real differences, so consumers converge.
//   - Sync canaries (WriteCanary, WaitForCanary, WatchSynced) and the
//     heartbeat (RunHeartbeat).
//   - SyncStore: a writer that owns a prefix, keeps a desired set of leased
//     entries written (re-writing them under a new lease), and prunes what
//     an earlier run left behind only after its own initial sync.
//   - Cache: a watch-fed key → value read cache with a synced signal.
//
// Who feeds it and who consumes it: publishers (nodes, identities, ipcache,
// services) write through SyncStore; the remote-cluster watcher, the
// apiserver cache and agents read through Watch/WatchSynced and Cache; the
// identity allocator runs transactions on Etcd() with LeaseID(). It carries
// bytes only: decoding and validating values is the consumer's business, so
// a corrupt entry is skipped by the consumer and every other one goes on.
//
// Lifecycle: New connects (or fails with ctx); watches and stores run until
// their ctx ends and close their channels; Close revokes the lease under a
// fresh 5s context (deleting every leased key of this client) and closes
// the connection. A client whose process dies without Close leaves its
// leased keys until the lease expires (LeaseTTL, about 2×TTL in the worst
// case on etcd's side).
//
// Errors: ErrConfig for a bad Config (naming the field or endpoint);
// connection failures name the endpoint and the reason of the last attempt
// ("connection refused", "x509: certificate signed by unknown authority",
// "tls: certificate required") and wrap ctx.Err(); ErrClosed after Close.
// Other errors wrap etcd's, with the key or prefix named.
package kvstore
