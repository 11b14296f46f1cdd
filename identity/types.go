package identity

import (
	"errors"
	"fmt"
)

// NumericIdentity is a security identity as carried on the wire: 24 bits for
// identities shared across the mesh, with higher values for node-local ones.
type NumericIdentity uint32

// ClusterID identifies a cluster in the mesh. 0 means "not in a mesh"; a
// meshed cluster has an ID in 1..ClusterMax.
type ClusterID uint32

// ClusterMax is the configured max-connected-clusters: 255 (default) or 511.
// It must be equal in every cluster of a mesh.
type ClusterMax uint32

const (
	// ClusterMax255 is the default: 8 bits of cluster ID, 65535 identities per cluster.
	ClusterMax255 ClusterMax = 255
	// ClusterMax511 is the extended mode: 9 bits of cluster ID, 32767 identities per cluster.
	ClusterMax511 ClusterMax = 511
)

var (
	// ErrInvalidClusterMax is returned for a max-connected-clusters other than 255 or 511.
	ErrInvalidClusterMax = errors.New("identity: max-connected-clusters must be 255 or 511")
	// ErrInvalidClusterID is returned for a cluster ID outside 1..max.
	ErrInvalidClusterID = errors.New("identity: cluster ID out of range")
)

// Validate reports ErrInvalidClusterMax unless m is 255 or 511.
func (m ClusterMax) Validate() error {
	if m != ClusterMax255 && m != ClusterMax511 {
		return fmt.Errorf("%w: got %d", ErrInvalidClusterMax, uint32(m))
	}
	return nil
}

// Validate reports an error wrapping ErrInvalidClusterID unless c lies in
// 1..max, or ErrInvalidClusterMax if max itself is invalid.
func (c ClusterID) Validate(max ClusterMax) error {
	if err := max.Validate(); err != nil {
		return err
	}
	if c < 1 || uint32(c) > uint32(max) {
		return fmt.Errorf("%w: %d is not in 1..%d", ErrInvalidClusterID, uint32(c), uint32(max))
	}
	return nil
}
