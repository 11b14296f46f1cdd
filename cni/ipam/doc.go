// Package ipam hands out the IPv4 addresses of pods on one node, from the
// node's pod CIDR, for the CNI plugin (cmd/strait-cni via cni/plugin).
//
// State lives on disk so that it survives the plugin process, which lives
// for one CNI command only. A Store is a directory (ipamDataDir/<network>):
//
//	lock          empty file; every operation holds an exclusive flock(2) on it
//	10.1.1.2      one file per allocated address, holding its owner record
//	last_reserved the last address handed out, so allocation goes round the
//	              CIDR instead of reusing a just-released address at once
//
// A record is two lines, "<containerID>\n<ifName>\n" (ParseRecord); it is
// written to a temporary file, synced, and linked to its address name, so an
// address file is either absent or complete. Allocation persists the record
// before the address is used anywhere: a plugin that crashes between
// allocating and replying leaves the address owned by that container, a
// retried ADD of the same container+interface gets the same address back,
// and no other container can get it until DEL (Release) removes it.
//
// The network address, the broadcast address and the first host address
// (.1, kept for the node side) are never handed out.
//
// Errors: ErrExhausted (no free address; the message names the CIDR),
// ErrNoUsableAddress (the CIDR is too small or not IPv4), ErrBadRecord (a
// state file that does not parse; the message names the file), ErrOutsideCIDR
// (the owner already holds an address outside the CIDR, e.g. after the node's
// CIDR changed). All are wrapped with the file or CIDR they concern.
package ipam
