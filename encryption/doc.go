// Package encryption groups the transparent-encryption datapaths:
// wireguard/ (node key, WireGuard device in kernel or userspace mode via the
// strait-wireguard process, gap-free peer reconciler, and the wgfake twin for
// tests) and ipsec/ (key files, XFRM states and policies; being built with
// the IPsec issue).
package encryption
