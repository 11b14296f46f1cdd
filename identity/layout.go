package identity

import (
	"errors"
	"fmt"
	"math/bits"
)

// The 24-bit identity layout. Global identities fit in NumericIdentityBits
// (they travel in the VXLAN/Geneve VNI); the top byte of the 32-bit value
// is a scope, and scopes other than 0 are node-local:
//
//	 31      24 23                  shift  shift-1              0
//	+----------+------------------------+-------------------------+
//	|  scope   |  cluster ID (8 or 9 b) | cluster-local identity  |
//	+----------+------------------------+-------------------------+
//	scope 0x00 global/reserved, 0x01 local CIDR, 0x02 remote node
//
// With max 255 the cluster ID takes bits 16–23 (shift 16); with 511, bits
// 15–23 (shift 15). Cluster c > 0 allocates in [c<<shift, (c+1)<<shift-1];
// cluster 0 (no mesh) allocates in [256, 1<<shift-1], keeping the reserved
// and well-known IDs below 256 free. Cilium starts cluster c > 0 at
// c<<shift exactly (GetMinimalAllocationIdentity), so its range has no
// hole: the low IDs of every other cluster are ordinary identities.
const (
	NumericIdentityBits = 24
	// MaxGlobalIdentity is the highest identity that may be published.
	MaxGlobalIdentity NumericIdentity = 1<<NumericIdentityBits - 1

	// ScopeMask selects the scope byte.
	ScopeMask NumericIdentity = 0xFF << NumericIdentityBits
	// ScopeGlobal holds reserved and cluster-allocated identities.
	ScopeGlobal NumericIdentity = 0
	// ScopeLocal holds node-local CIDR identities (2^24+1 ...).
	ScopeLocal NumericIdentity = 0x01 << NumericIdentityBits
	// ScopeRemoteNode holds node-local remote-node identities.
	ScopeRemoteNode NumericIdentity = 0x02 << NumericIdentityBits
)

var (
	// ErrNodeLocal is returned where a global identity is required but the
	// value carries a node-local scope (≥ 2^24).
	ErrNodeLocal = errors.New("identity: node-local identity is never published")
	// ErrOutOfRange is returned for an identity outside the range of the
	// cluster it claims to belong to.
	ErrOutOfRange = errors.New("identity: identity outside its cluster's range")
)

// Scope returns the scope byte of id (ScopeGlobal, ScopeLocal, ScopeRemoteNode, ...).
func (id NumericIdentity) Scope() NumericIdentity { return id & ScopeMask }

// IsNodeLocal reports whether id has a non-global scope; such identities
// are never exchanged between nodes.
func (id NumericIdentity) IsNodeLocal() bool { return id.Scope() != ScopeGlobal }

// ClusterIDBits is log2(max+1): 8 for 255, 9 for 511. m must be valid.
func (m ClusterMax) ClusterIDBits() uint32 { return uint32(bits.Len32(uint32(m))) }

// Shift is the number of cluster-local identity bits: 24 − ClusterIDBits.
func (m ClusterMax) Shift() uint32 { return NumericIdentityBits - m.ClusterIDBits() }

// Range returns the first and last identity cluster c allocates. Errors:
// ErrInvalidClusterMax, or ErrInvalidClusterID when c > max (0 is allowed:
// a cluster outside any mesh).
func (m ClusterMax) Range(c ClusterID) (first, last NumericIdentity, err error) {
	if err := m.Validate(); err != nil {
		return 0, 0, err
	}
	if uint32(c) > uint32(m) {
		return 0, 0, fmt.Errorf("%w: %d is not in 0..%d", ErrInvalidClusterID, uint32(c), uint32(m))
	}
	s := m.Shift()
	first = NumericIdentity(c) << s
	last = (NumericIdentity(c)+1)<<s - 1
	if c == 0 {
		first = MinAllocatable
	}
	return first, last, nil
}

// ClusterOf returns the cluster whose bits id carries. Identities below 256
// (reserved, well-known) report cluster 0. Errors: ErrInvalidClusterMax,
// ErrNodeLocal for id ≥ 2^24.
func (m ClusterMax) ClusterOf(id NumericIdentity) (ClusterID, error) {
	if err := m.Validate(); err != nil {
		return 0, err
	}
	if id.IsNodeLocal() {
		return 0, fmt.Errorf("%w: %d (scope %#x)", ErrNodeLocal, uint32(id), uint32(id.Scope())>>NumericIdentityBits)
	}
	return ClusterID(id >> m.Shift()), nil
}

// ValidateRemote checks an identity read from remote cluster c: it must lie
// inside c's allocation range. A remote cluster never publishes reserved,
// well-known or node-local identities, nor identities of another cluster;
// any of those is rejected with an error wrapping ErrOutOfRange (or
// ErrNodeLocal, ErrInvalidClusterID, ErrInvalidClusterMax).
func ValidateRemote(m ClusterMax, c ClusterID, id NumericIdentity) error {
	if err := c.Validate(m); err != nil {
		return err
	}
	return m.validateIn(c, id)
}

// validateIn checks id lies in cluster c's range (c may be 0).
func (m ClusterMax) validateIn(c ClusterID, id NumericIdentity) error {
	if id.IsNodeLocal() {
		return fmt.Errorf("%w: %d from cluster %d", ErrNodeLocal, uint32(id), uint32(c))
	}
	first, last, err := m.Range(c)
	if err != nil {
		return err
	}
	if id < first || id > last {
		return fmt.Errorf("%w: %d is not in cluster %d's range [%d, %d]", ErrOutOfRange, uint32(id), uint32(c), uint32(first), uint32(last))
	}
	return nil
}
