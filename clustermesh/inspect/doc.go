// Package inspect lists and validates the entries of one cluster's etcd,
// as `cilium-dbg node list`, `ipcache list`, `identity list` and
// `service list` do for Cilium: the library behind `straitctl inspect`.
//
// What it reads (Read, through a Getter such as EtcdGetter over the
// admin client of the cluster's strait-apiserver):
//
//	nodes       cilium/state/nodes/v1/        + cilium/cache/nodes/v1/<remote>/
//	ipcache     cilium/state/ip/v1/           + cilium/cache/ip/v1/<remote>/
//	identities  cilium/state/identities/v1/id/ + cilium/cache/identities/v1/<remote>/id/
//	services    cilium/state/services/v1/     + cilium/cache/services/v1/<remote>/
//	clusters    cilium/cluster-config/        + cilium/synced/
//
// Decode (pure) checks each entry with the clustermesh/schema decoder of
// its kind under the right Origin: local entries ("state") under the
// inspected cluster's own name, ID and max; cached entries ("cache") under
// the remote cluster named in the key, with the ID from
// cilium/cluster-config/<remote> in the same etcd (an entry whose cluster has
// no config there cannot be checked and is invalid). On top of the schema:
// ipcache identities ≥ 256 and identities must lie in their cluster's
// range, identity labels must parse and name their own cluster.
//
// Output: a Report with the valid Entries (Value is the entry re-encoded
// from its decoded form, byte-for-byte Cilium's wire JSON, so an entry
// Cilium wrote and one strait wrote look alike) and the Invalid ones with
// the decoder's reason. Its JSON is the stable schema of `straitctl inspect
// -o json` (cmd/straitctl/README.md); WriteTable renders the table form.
//
// Errors: ErrKind for an unknown kind, ErrRead when etcd cannot be listed;
// bad entries are never errors, they are listed in Invalid.
package inspect
