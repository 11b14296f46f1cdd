// Package agent wires strait-agent, the node agent, following the data flow
// of DESIGN.md:
//
//	sources ──▶ publishers ──▶ local etcd ──▶ mesh state ──▶ datapath.Compute ──▶ reconcilers
//	(own node,    (node,          (strait-      (local nodes:       (pure)            (WireGuard peers,
//	 CNI ADD/DEL)  ipcache,        apiserver)    localNodes;                            routes)
//	               identities)                   remote: meshstate)
//
// # What it holds
//
//   - Agent: publishes this node (schema.Node with its WireGuard public key
//     and boot ID) before any ipcache entry; follows the nodes of its own
//     cluster (cilium/state/nodes/v1/<cluster>/, validated with
//     schema.DecodeNode) and every remote cluster (clustermesh/meshstate);
//     computes the desired peers and routes (agent/datapath) and reconciles
//     them (encryption/wireguard.PeerReconciler, agent/route) after every
//     change and every Config.Resync.
//   - In IPsec mode (Deps.IPsec, normally encryption/ipsec.Manager) the
//     accepted nodes go to the manager instead of WireGuard peers (only once
//     synced), routes point via each node's address on the underlay, and
//     AdvertiseIPsecKey republishes the node with the key index.
//   - The endpoint API backend (agent/endpointapi.Backend): identities
//     (identity.Allocator) and ipcache entries (publish.IPCachePublisher)
//     of the node's pods, persisted in <state-dir>/endpoints.json so a
//     restarted agent re-publishes them without the CNI plugin.
//   - Status and Prometheus metrics.
//
// Everything that touches the kernel comes in through Deps (a WireGuard
// client, a route table, the device's index and MTU), so tests run the
// whole agent against wgfake and route.Twin with a real etcd, and
// cmd/strait-agent hands it wgctrl and netlink.
//
// # Lifecycle
//
// New validates Config and Deps. Run(ctx) runs every part until ctx ends
// and returns nil then; it leaves the datapath (device, peers, routes) as
// it is, so traffic keeps flowing while no agent runs, and a restarted
// agent adopts it: peers and routes already right are not written. Stale
// peers and routes are removed only after the local nodes have been listed
// and meshstate.Synced (every remote cluster configured at start has
// synced its nodes and ipcache). Until then the view is partial, so a peer
// keeps the allowed IPs it has on the device, no peer takes an address
// another device peer holds, and the nodes whose key and address are
// already device peers win every conflict (after a restart the device is
// the only memory of who was working).
//
// # Problems
//
// Entries the agent refuses (a node without a key or with a malformed or
// duplicate key, a pod CIDR overlapping another node's, a local node entry
// that does not decode) are Problems: listed in Status, counted in
// strait_agent_problems, logged once when they appear, naming the node and
// the reason. They never disturb other peers, and a node already working
// wins every conflict against a newcomer (see agent/datapath).
//
// # Errors
//
// ErrInvalidConfig from New (naming the field); Run returns
// kvstore.ErrClosed when the etcd client is closed under it. Endpoint API
// errors are *endpointapi.BadRequest for bad input (IP outside the pod
// CIDR, an IP held by another endpoint, labels that do not form an
// identity) and plain errors when etcd cannot be reached in time.
package agent
