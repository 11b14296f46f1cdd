package ipsec

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"net/netip"
)

// BootIDLen is how many characters of a boot ID enter key derivation (a
// UUID's text form, as /proc/sys/kernel/random/boot_id prints it).
const BootIDLen = 36

// DeriveNodePairKey returns the key that traffic from src to dst uses:
//
//	H(global ‖ srcIP ‖ dstIP ‖ srcBootID[:36] ‖ dstBootID[:36])[:len(global)]
//
// H is SHA-256 when global is at most 32 bytes, else SHA-512; IPv4 addresses
// enter as 4 bytes (IPv4-mapped IPv6 is unmapped first), IPv6 as 16, boot IDs
// as their text. The inputs mirror, so node A's OUT key towards B equals B's
// IN key from A, and a reboot (new boot ID) changes every key of the node.
//
// GCM salt: for rfc4106 the 4-byte salt is the tail of the key material
// (20/28/36 bytes = AES key + salt). The whole material, salt included, is
// hashed and the output is cut to the same length, so the derived key's last 4
// bytes are a derived salt: every pair gets its own salt, nothing of the
// global salt is reused as is. Legacy keys derive the auth and encryption keys
// separately with the same inputs.
//
// Errors: ErrBootID if a boot ID is shorter than 36 characters; ErrNode if an
// address is invalid.
func DeriveNodePairKey(global []byte, srcIP, dstIP netip.Addr, srcBootID, dstBootID string) ([]byte, error) {
	if !srcIP.IsValid() || !dstIP.IsValid() {
		return nil, fmt.Errorf("derive key for %v -> %v: %w", srcIP, dstIP, ErrNode)
	}
	if len(srcBootID) < BootIDLen {
		return nil, fmt.Errorf("derive key for %v -> %v: source boot ID %q: %w", srcIP, dstIP, srcBootID, ErrBootID)
	}
	if len(dstBootID) < BootIDLen {
		return nil, fmt.Errorf("derive key for %v -> %v: destination boot ID %q: %w", srcIP, dstIP, dstBootID, ErrBootID)
	}
	src, dst := srcIP.Unmap().AsSlice(), dstIP.Unmap().AsSlice()
	in := make([]byte, 0, len(global)+len(src)+len(dst)+2*BootIDLen)
	in = append(in, global...)
	in = append(in, src...)
	in = append(in, dst...)
	in = append(in, srcBootID[:BootIDLen]...)
	in = append(in, dstBootID[:BootIDLen]...)
	var sum []byte
	if len(global) <= sha256.Size {
		h := sha256.Sum256(in)
		sum = h[:]
	} else {
		h := sha512.Sum512(in)
		sum = h[:]
	}
	out := make([]byte, len(global))
	copy(out, sum)
	return out, nil
}

// pairKey returns k with its key bytes derived for traffic src -> dst, or k
// unchanged when it is a global key (no '+').
func pairKey(k Key, srcIP, dstIP netip.Addr, srcBoot, dstBoot string) (Key, error) {
	if !k.PerNodePair {
		return k, nil
	}
	var err error
	if k.AEAD() {
		k.Key, err = DeriveNodePairKey(k.Key, srcIP, dstIP, srcBoot, dstBoot)
		return k, err
	}
	if k.AuthKey, err = DeriveNodePairKey(k.AuthKey, srcIP, dstIP, srcBoot, dstBoot); err != nil {
		return k, err
	}
	k.EncKey, err = DeriveNodePairKey(k.EncKey, srcIP, dstIP, srcBoot, dstBoot)
	return k, err
}
