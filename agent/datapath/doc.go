// Package datapath computes, with pure functions, the datapath a node
// should have: its WireGuard peers with their allowed IPs, the routes that
// send other nodes' pod traffic into the WireGuard device, and the problems
// found on the way (entries refused, each naming the node and the reason).
//
// # Who feeds it, who consumes it
//
// The agent (package agent) feeds Compute with the local node, every other
// node of the local cluster (read from cilium/state/nodes/v1/<cluster>/ in
// the local etcd), every remote cluster's nodes and ipcache host entries
// (clustermesh/meshstate), and the set of nodes accepted by the previous
// computation. The result goes to the reconcilers: Peers to
// encryption/wireguard.PeerReconciler, Routes to agent/route, Problems to
// the agent's status and log.
//
// Nothing here touches the kernel, the network, files or the clock: the
// same Input always gives the same Desired.
//
// # Rules
//
//   - A node without a public key, or with one that is not a base64 32-byte
//     non-zero key, is refused (Problem) and gets no peer and no route.
//   - A node carrying this node's own public key is refused.
//   - A node without an IPv4 node address is refused.
//   - Two nodes with one public key: one is kept, the other refused with a
//     Problem naming both. Two nodes whose node address or pod CIDRs
//     overlap (or that overlap this node's): one is kept, the other refused
//     naming both. The node kept is the one accepted by the previous
//     computation (Input.Accepted), so a bad newcomer never removes a working
//     peer; among newcomers, the one that sorts first by cluster, then name.
//   - Peer of an accepted node: endpoint nodeIP:Port, allowed IPs = node
//     IP/32, its IPv4 pod CIDRs, and the ipcache host entries (/32) whose
//     HostIP is that node's address and that lie outside its pod CIDRs,
//     unless they overlap another accepted node's addresses (refused with a
//     Problem) or this node's.
//   - Routes: every accepted node's pod CIDRs and extra ipcache host
//     entries, towards the WireGuard device.
//
// In IPsec mode (Input.IPsec) the key rules do not apply, no Peers are
// produced, Desired.Nodes lists the accepted nodes for the IPsec layer and
// Routes carry the node's address as next hop.
//
// Allowed IPs of different peers therefore never overlap, which WireGuard
// requires (an allowed IP belongs to exactly one peer).
package datapath
