// Package encryption groups the transparent-encryption datapaths:
// wireguard/ (node key, WireGuard device in kernel or userspace mode via the
// strait-wireguard process, gap-free peer reconciler, and the wgfake twin for
// tests) and ipsec/ (Cilium's key file format, per-node-pair keys, XFRM
// states and policies behind a catch-all block policy, and key rotation in
// which no node sends with a key its peer cannot yet receive). The agent
// (agent/, cmd/strait-agent) picks one with --encryption.
package encryption
