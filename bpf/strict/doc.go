// Package strict is strait's strict mode (cf. Cilium's
// encryption.strictMode): a tc egress classifier on the node's underlay
// device that drops IPv4 packets to a remote pod CIDR that would leave the
// node unencrypted, including before the agent knows the remote peer.
//
// # Datapath
//
// bpf/strict.c (compiled by bpf2go into strict_bpfel.o / strict_bpfeb.o, see
// gen.go) reads the IPv4 destination of each packet leaving the device and
// looks it up in an LPM trie of strict CIDRs (strict_cidrs). A match is
// dropped unless the packet carries the encryption mark (skb mark &
// 0x0F00 == 0x0E00: WireGuard's 0x1E00 and IPsec's 0x0E00 output mark).
// Encrypted packets are addressed to node IPs, outside the pod CIDRs, so the
// mark only matters when node and pod ranges overlap. Everything else passes:
// IPv4 outside the CIDRs, IPv6 (strict mode is IPv4 only, as in Cilium), ARP.
// An IPv4-typed frame too short for an IPv4 header is dropped. Each verdict
// is counted per Reason in a per-CPU array (strict_counters). The device must
// be Ethernet; on a VLAN, attach to the VLAN device.
//
// # Attachment and lifecycle
//
// Attach adds a clsact qdisc if needed and installs a cls_bpf filter (direct
// action) on the egress hook with a fixed priority and handle (FilterPriority,
// FilterHandle, named FilterName). A tc filter holds its own reference to the
// program and maps, so the filter — and strict mode — outlives the agent
// process without pinning to bpffs; a TCX link (kernel 6.6+) would be
// detached when its last file descriptor closed unless pinned, which needs a
// bpffs mount in the node's namespace. Hence tc.
//
// The agent calls Attach at start and Update when the CIDR set changes (new
// prefixes are added before old ones are removed). It does not call Close on
// shutdown: the filter stays while no agent runs, and the next agent's Attach
// replaces it in place — cls_bpf swaps the program atomically and the new one
// is complete (map filled) before the swap, so a restart never opens a gap.
// The new program takes over its predecessor's counter map when the layout
// matches (found through the old filter's program ID), so counts carry on
// across restarts, including what was dropped while no agent ran. Release drops the Program's file
// descriptors and leaves the filter; Close detaches it if it is still this
// Program's; Detach(ifindex) removes strait's filter whoever attached it
// (teardown). All netlink calls act in the network namespace of the thread
// that called Attach or Detach.
//
// # Errors
//
// ErrInvalidCIDR and ErrTooManyCIDRs reject a CIDR set before anything
// changes (IPv4 only, canonical, not /0, no duplicates, at most MaxCIDRs).
// ErrNotEthernet: the link has no Ethernet header. ErrFilterConflict: a
// foreign filter holds strait's priority and handle; it is not replaced.
// ErrClosed: the Program was closed or released. Kernel errors are wrapped
// with the step and the device name.
package strict
