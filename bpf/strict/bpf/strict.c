// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * strait strict mode: a TC egress classifier for the node's underlay device.
 *
 * An IPv4 packet whose destination lies inside one of the strict CIDRs (the
 * pod CIDRs of remote nodes) is dropped unless its skb mark says it was
 * produced by encryption (WireGuard's or IPsec's output mark). Encrypted
 * packets are addressed to node IPs, which are outside the strict CIDRs, so in
 * a correct setup the mark exemption only matters when node and pod ranges
 * overlap. Every other packet (non-IPv4, IPv6, ARP, IPv4 outside the CIDRs)
 * is passed on with TC_ACT_UNSPEC, so that filters of lower priority still
 * run; alone on the hook, UNSPEC lets the packet leave.
 *
 * Assumes an Ethernet device (the IPv4 header follows a 14-byte Ethernet
 * header). 802.1Q-tagged frames whose tag is in the packet data are passed as
 * "not IPv4": attach to the VLAN device instead.
 *
 * Verdicts are counted per reason in a per-CPU array (strict_counters); the
 * reason numbers are part of the Go API (reason.go), keep them in sync.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* Verdict reasons: indexes of strict_counters. */
enum strict_reason {
	REASON_DROP_STRICT = 0,    /* IPv4 to a strict CIDR, not encrypted */
	REASON_DROP_MALFORMED = 1, /* IPv4 ethertype, header unreadable or bad */
	REASON_PASS_NO_MATCH = 2,  /* IPv4 outside every strict CIDR */
	REASON_PASS_ENCRYPTED = 3, /* IPv4 to a strict CIDR, encryption mark */
	REASON_PASS_NOT_IPV4 = 4,  /* IPv6, ARP, anything else */
	REASON_MAX = 5,
};

/* Mark bits set on the packets WireGuard (0x1E00) and IPsec (0x0E00) emit:
 * both have 0xE in the 0x0F00 nibble. */
#define MARK_MAGIC_MASK 0x0F00
#define MARK_MAGIC_ENCRYPTED 0x0E00

/* Key of the LPM trie: prefix length in bits, then the IPv4 address in
 * network byte order (as the trie compares bytes most significant first). */
struct lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_key);
	__type(value, __u8);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} strict_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, REASON_MAX);
} strict_counters SEC(".maps");

static __always_inline int verdict(__u32 reason, int action)
{
	__u64 *count = bpf_map_lookup_elem(&strict_counters, &reason);

	if (count)
		*count += 1; /* per-CPU slot: no atomics needed */
	return action;
}

SEC("tc")
int strict_egress(struct __sk_buff *skb)
{
	struct lpm_key key = {};
	__u8 iph[20];

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return verdict(REASON_PASS_NOT_IPV4, TC_ACT_UNSPEC);

	/* bpf_skb_load_bytes also reads non-linear (paged) packet data. */
	if (bpf_skb_load_bytes(skb, ETH_HLEN, iph, sizeof(iph)) < 0)
		return verdict(REASON_DROP_MALFORMED, TC_ACT_SHOT);
	if ((iph[0] >> 4) != 4 || (iph[0] & 0x0f) < 5)
		return verdict(REASON_DROP_MALFORMED, TC_ACT_SHOT);

	key.prefixlen = 32;
	__builtin_memcpy(key.addr, &iph[16], 4); /* daddr */
	if (!bpf_map_lookup_elem(&strict_cidrs, &key))
		return verdict(REASON_PASS_NO_MATCH, TC_ACT_UNSPEC);

	if ((skb->mark & MARK_MAGIC_MASK) == MARK_MAGIC_ENCRYPTED)
		return verdict(REASON_PASS_ENCRYPTED, TC_ACT_UNSPEC);

	return verdict(REASON_DROP_STRICT, TC_ACT_SHOT);
}

char __license[] SEC("license") = "Dual BSD/GPL";
