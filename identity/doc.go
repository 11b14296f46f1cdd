// Package identity holds strait's security identities: label sets and their
// Cilium-compatible kvstore form, the 24-bit numeric identity layout with
// its per-cluster ranges (255 or 511 clusters), the reserved and well-known
// identities, and the etcd-backed allocator that hands out cluster-scoped
// identities the way Cilium's kvstore allocation mode does.
//
// # Data and who uses it
//
// Label sets come from the agent's sources (pods and their namespaces);
// Labels.KVStoreString is the string Cilium writes ("k8s:app=web;...;"),
// and ParseLabels reads it back, refusing anything that would not round
// trip. ClusterMax.Range and ClusterMax.ClusterOf map clusters to identity
// ranges and back; ValidateRemote is what the remote-cluster watchers in
// clustermesh/ call on every identity a remote cluster publishes.
//
// The Allocator is fed by etcd through the Backend interface, which
// clustermesh/kvstore.Client implements (txn.go there). This package imports
// nothing from clustermesh/: dependencies point down. Its consumers are the
// agent's endpoint code (Allocate/Release) and policy and datapath code
// (LookupByID/LookupByLabels, answered from a watch-fed cache).
//
// # Lifecycle
//
// NewAllocator validates options; Run(ctx) must be running for the cache to
// fill and for Allocate to proceed (Allocate waits for the initial sync),
// and it stops, leaving etcd untouched, when ctx ends. Every successful
// Allocate takes a local reference; the last Release deletes this node's
// value key. A node's value keys carry its kvstore session lease, so a dead
// node's references expire with the lease; if the lease is lost while the
// node lives, Run writes them again under the next lease. CollectGarbage
// (or Run with GCInterval) deletes identities no node references once they
// stayed unreferenced for GCGrace. See Allocator for the etcd invariants.
//
// # Errors
//
// Label problems: ErrMalformedLabel, ErrNoSource, ErrDuplicateKey,
// ErrNotCanonical, ErrLabelsTooLarge, ErrNoLabels. Layout: ErrInvalidClusterMax,
// ErrInvalidClusterID, ErrOutOfRange (an identity outside its cluster's
// range), ErrNodeLocal (a node-local identity where a global one is needed).
// etcd content: ErrMalformedKey, ErrMalformedValue. Allocation: ErrRangeFull
// (naming cluster and range), ErrContention, ErrNotAllocated,
// ErrInvalidNode, ErrAlreadyRunning. Every error names the offending label
// string, key or value (abbreviated past 256 bytes).
package identity
