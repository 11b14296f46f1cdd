package identity

// Reserved identities (Cilium pkg/identity/numericidentity.go and
// pkg/datapath/types): fixed in every cluster, never allocated, never
// published to etcd.
const (
	IdentityUnknown       NumericIdentity = 0 // wildcard in policy maps
	ReservedHost          NumericIdentity = 1
	ReservedWorld         NumericIdentity = 2
	ReservedUnmanaged     NumericIdentity = 3
	ReservedHealth        NumericIdentity = 4
	ReservedInit          NumericIdentity = 5
	ReservedRemoteNode    NumericIdentity = 6 // every node except the local one
	ReservedKubeAPIServer NumericIdentity = 7
	ReservedIngress       NumericIdentity = 8
	ReservedWorldIPv4     NumericIdentity = 9
	ReservedWorldIPv6     NumericIdentity = 10
	// 11–14 are datapath aggregates, never assigned to an endpoint.
	ReservedAggregateCluster     NumericIdentity = 11
	ReservedAggregateClusterMesh NumericIdentity = 12
	ReservedAggregateWorld       NumericIdentity = 13
	ReservedAggregateRemoteNode  NumericIdentity = 14

	// MaxReservedIdentity is the highest fixed reserved identity.
	MaxReservedIdentity NumericIdentity = 14
)

// Well-known identities 100–115: fixed IDs for cluster components so they
// can talk before the allocator runs. Their label sets include the cluster
// label; the second of each pair adds the namespace-name label.
const (
	WellKnownETCDOperator NumericIdentity = 100 + iota
	WellKnownCiliumKVStore
	WellKnownKubeDNS
	WellKnownEKSKubeDNS
	WellKnownCoreDNS
	WellKnownCiliumOperator
	WellKnownEKSCoreDNS
	WellKnownCiliumEtcdOperator
	WellKnownETCDOperator2
	WellKnownCiliumKVStore2
	WellKnownKubeDNS2
	WellKnownEKSKubeDNS2
	WellKnownCoreDNS2
	WellKnownCiliumOperator2
	WellKnownEKSCoreDNS2
	WellKnownCiliumEtcdOperator2

	// MinWellKnown and MaxWellKnown bound the well-known block.
	MinWellKnown = WellKnownETCDOperator
	MaxWellKnown = WellKnownCiliumEtcdOperator2
)

const (
	// UserReservedNumericIdentity is the first ID users may reserve
	// statically (128); IDs up to MinAllocatable-1 stay unallocated.
	UserReservedNumericIdentity NumericIdentity = 128
	// MinAllocatable is the first ID the allocator of cluster 0 hands out.
	MinAllocatable NumericIdentity = 256
)

// reservedNames maps reserved identities to their reserved:<name> label key.
var reservedNames = [...]string{
	IdentityUnknown:              "unknown",
	ReservedHost:                 "host",
	ReservedWorld:                "world",
	ReservedUnmanaged:            "unmanaged",
	ReservedHealth:               "health",
	ReservedInit:                 "init",
	ReservedRemoteNode:           "remote-node",
	ReservedKubeAPIServer:        "kube-apiserver",
	ReservedIngress:              "ingress",
	ReservedWorldIPv4:            "world-ipv4",
	ReservedWorldIPv6:            "world-ipv6",
	ReservedAggregateCluster:     "cluster",
	ReservedAggregateClusterMesh: "clustermesh",
	ReservedAggregateWorld:       "world-aggregate",
	ReservedAggregateRemoteNode:  "remote-node-aggregate",
}

// IsReserved reports whether id is a fixed reserved identity (0–14).
func (id NumericIdentity) IsReserved() bool { return id <= MaxReservedIdentity }

// IsWellKnown reports whether id lies in the well-known block (100–115).
func (id NumericIdentity) IsWellKnown() bool { return id >= MinWellKnown && id <= MaxWellKnown }

// ReservedName returns the name of a reserved identity ("host", "world", ...).
func (id NumericIdentity) ReservedName() (string, bool) {
	if !id.IsReserved() {
		return "", false
	}
	return reservedNames[id], true
}

// LookupReserved returns the reserved identity of a label set consisting of
// exactly one reserved:<name> label (identities 1–10), which never goes
// through the allocator.
func LookupReserved(ls Labels) (NumericIdentity, bool) {
	if len(ls) != 1 || ls[0].Source != SourceReserved || ls[0].Value != "" {
		return 0, false
	}
	for id := ReservedHost; id <= ReservedWorldIPv6; id++ {
		if reservedNames[id] == ls[0].Key {
			return id, true
		}
	}
	return 0, false
}
