package kvstoremesh

import (
	"errors"
	"fmt"
	"strings"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// Kind is one of the five prefixes a Mesh mirrors from every remote cluster.
type Kind uint8

// The mirrored kinds, in the order they are started and reported.
const (
	KindNodes Kind = iota
	KindServices
	KindServiceExports
	KindIdentities
	KindIP
	numKinds
)

// kindNames are the kinds' names in keys and metric labels.
var kindNames = [numKinds]string{"nodes", "services", "serviceexports", "identities", "ip"}

// String is the kind's name as it appears in keys and metric labels.
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// AllKinds returns every mirrored kind in order.
func AllKinds() []Kind {
	return []Kind{KindNodes, KindServices, KindServiceExports, KindIdentities, KindIP}
}

// StatePrefix is the remote prefix of the kind, as named in the remote's
// sync canary: cilium/synced/<remote>/<StatePrefix>.
func (k Kind) StatePrefix() string {
	switch k {
	case KindNodes:
		return schema.NodesPrefix
	case KindServices:
		return schema.ServicesPrefix
	case KindServiceExports:
		return schema.ServiceExportsPrefix
	case KindIdentities:
		return schema.IdentitiesPrefix
	case KindIP:
		return schema.IPPrefix
	}
	return ""
}

// CachePrefix is the local prefix of the kind's copies, without the cluster:
// cilium/cache/<kind>/v1. The local canary is
// cilium/synced/<remote>/<CachePrefix>, as Cilium's KVStoreMesh writes it.
func (k Kind) CachePrefix() string { return schema.StateToCachePrefix(k.StatePrefix()) }

// WatchPrefix is the remote prefix a Mesh watches for cluster, with a
// trailing slash so that cluster "b" does not match "b2":
//
//	nodes, services, serviceexports: cilium/state/<kind>/v1/<cluster>/
//	identities:                      cilium/state/identities/v1/id/
//	ip:                              cilium/state/ip/v1/default/
//
// Identity value/<labels>/<node> keys (kvstore-mode per-node references) are
// not mirrored: consumers of a remote cluster need id → labels only.
func (k Kind) WatchPrefix(cluster string) string {
	switch k {
	case KindIdentities:
		return schema.IdentitiesPrefix + "/id/"
	case KindIP:
		return schema.IPPrefix + "/" + schema.AddressSpace + "/"
	}
	return k.StatePrefix() + "/" + cluster + "/"
}

// storePrefix is the local prefix owned by the kind's SyncStore for
// cluster: cilium/cache/<kind>/v1/<cluster> (no trailing slash).
func (k Kind) storePrefix(cluster string) string { return k.CachePrefix() + "/" + cluster }

// identityKeys parses remote identities/v1/id/<id> keys.
var identityKeys = identity.Keys{Prefix: schema.IdentitiesPrefix}

// validateEntry decodes and validates the remote entry key → value of kind
// k read from the cluster described by from, and returns the name of its
// copy below k.storePrefix(from.Cluster). The value itself is copied
// unchanged; decoding only decides whether it may be copied. Errors name the
// key and wrap schema's or identity's sentinels:
//
//   - nodes, services, serviceexports: the schema decoders (cluster name and
//     ID must be the connection's);
//   - ip: schema.DecodeIPIdentityPair, and the identity must be reserved
//     (below 256) or inside from.ClusterID's identity range;
//   - identities: an id/<id> key with the ID inside from.ClusterID's range
//     and a label string whose cluster label, if any, names from.Cluster.
func validateEntry(k Kind, key string, value []byte, from schema.Origin) (name string, err error) {
	cacheKey, err := schema.StateToCacheKey(from.Cluster, key)
	if err != nil {
		return "", err
	}
	switch k {
	case KindNodes:
		_, err = schema.DecodeNode(key, value, from)
	case KindServices:
		_, err = schema.DecodeClusterService(key, value, from)
	case KindServiceExports:
		_, err = schema.DecodeServiceExport(key, value, from)
	case KindIP:
		var p *schema.IPIdentityPair
		if p, err = schema.DecodeIPIdentityPair(key, value, from); err == nil && p.ID >= identity.MinAllocatable {
			if rerr := identity.ValidateRemote(from.Max, from.ClusterID, p.ID); rerr != nil {
				err = fmt.Errorf("%s: field \"ID\": %w", key, rerr)
			}
		}
	case KindIdentities:
		err = validateIdentity(key, value, from)
	default:
		err = fmt.Errorf("%s: %w", key, errUnknownKind)
	}
	if err != nil {
		return "", err
	}
	prefix := k.storePrefix(from.Cluster) + "/"
	name, ok := strings.CutPrefix(cacheKey, prefix)
	if !ok || name == "" {
		return "", fmt.Errorf("%s: cache key %s is not below %s: %w", key, cacheKey, prefix, schema.ErrInvalidKey)
	}
	return name, nil
}

var errUnknownKind = errors.New("kvstoremesh: unknown kind")

// validateIdentity checks an identities/v1/id/<id> entry of from.Cluster.
func validateIdentity(key string, value []byte, from schema.Origin) error {
	id, err := identityKeys.ParseIDKey(key)
	if err != nil {
		return err
	}
	if err := identity.ValidateRemote(from.Max, from.ClusterID, id); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	labels, err := identity.ParseLabels(string(value))
	if err != nil {
		return fmt.Errorf("%s: labels: %w", key, err)
	}
	if c, ok := labels.Cluster(); ok && c != from.Cluster {
		return fmt.Errorf("%s: cluster label %q does not match cluster %q of the connection: %w", key, c, from.Cluster, schema.ErrClusterMismatch)
	}
	return nil
}
