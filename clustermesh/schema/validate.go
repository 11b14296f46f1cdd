package schema

import (
	"fmt"
	"strconv"

	"github.com/strait-net/strait/identity"
)

// MaxClusterNameLength is the longest cluster name Cilium accepts.
const MaxClusterNameLength = 32

// DefaultClusterName is the name of a cluster that is not in a mesh; a
// cluster with a non-zero ID must not use it.
const DefaultClusterName = "default"

// ValidateClusterName reports an error wrapping ErrInvalidClusterName unless
// name matches ^([a-z0-9][-a-z0-9]*)?[a-z0-9]$, has at most 32 characters,
// and is not "default" while id is non-zero.
func ValidateClusterName(name string, id identity.ClusterID) error {
	if err := checkClusterName(name); err != nil {
		return err
	}
	if name == DefaultClusterName && id != 0 {
		return fmt.Errorf("%w: %q is reserved for clusters without an ID, got ID %d", ErrInvalidClusterName, name, uint32(id))
	}
	return nil
}

// checkClusterName checks the syntax of a cluster name only.
func checkClusterName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidClusterName)
	case len(name) > MaxClusterNameLength:
		return fmt.Errorf("%w: %q is longer than %d characters", ErrInvalidClusterName, name, MaxClusterNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if alnum || c == '-' && i != 0 && i != len(name)-1 {
			continue
		}
		return fmt.Errorf("%w: %q must consist of lower case alphanumeric characters and '-', and start and end with an alphanumeric character", ErrInvalidClusterName, name)
	}
	return nil
}

// Origin says where a value came from: the remote cluster whose etcd (or
// whose KVStoreMesh cache) it was read from, and our own mesh setting.
//
//   - Cluster is the name of the cluster the connection belongs to.
//   - ClusterID is that cluster's ID, as learned from its cluster config.
//     Only DecodeClusterConfig accepts 0 here ("not known yet"); every other
//     decoder requires 1..Max.
//   - Max is OUR max-connected-clusters (255 or 511); IDs are checked
//     against it.
type Origin struct {
	Cluster   string
	ClusterID identity.ClusterID
	Max       identity.ClusterMax
}

// Validate reports an error wrapping ErrInvalidOrigin when o cannot describe
// a cluster of a mesh: invalid name, invalid max, or an ID outside 1..Max
// (an ID of 0 is accepted only when allowUnknownID is set).
func (o Origin) validate(allowUnknownID bool) error {
	if err := o.Max.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOrigin, err)
	}
	if o.ClusterID != 0 || !allowUnknownID {
		if err := o.ClusterID.Validate(o.Max); err != nil {
			return fmt.Errorf("%w: cluster %q: %w", ErrInvalidOrigin, o.Cluster, err)
		}
	}
	id := o.ClusterID
	if id == 0 {
		// "default" is never acceptable for a remote cluster: every
		// meshed cluster has an ID, even if we have not read it yet.
		id = 1
	}
	if err := ValidateClusterName(o.Cluster, id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOrigin, err)
	}
	return nil
}

// Validate reports an error wrapping ErrInvalidOrigin when o does not
// describe a meshed cluster: name invalid, Max not 255/511, ID not in 1..Max.
func (o Origin) Validate() error { return o.validate(false) }

// checkCluster verifies a cluster name found in key or value against the
// origin. field is "" when the name comes from the key itself.
func (o Origin) checkCluster(key, field, name string) error {
	if name == o.Cluster {
		return nil
	}
	return mismatch(key, field, ErrClusterMismatch, name, "cluster", o.Cluster, "connection")
}

// checkClusterID verifies a cluster ID found in a value against the origin.
func (o Origin) checkClusterID(key, field string, id int64) error {
	if id == int64(o.ClusterID) {
		return nil
	}
	return errField(key, field, ErrClusterMismatch,
		"value "+strconv.FormatInt(id, 10)+" does not match cluster ID "+strconv.FormatUint(uint64(o.ClusterID), 10)+" of the connection to "+strconv.Quote(o.Cluster))
}
