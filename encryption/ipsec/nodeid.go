package ipsec

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
)

// NodeName identifies a node in the mesh: its cluster and its name.
type NodeName struct {
	Cluster string
	Name    string
}

func (n NodeName) String() string { return n.Cluster + "/" + n.Name }

// MaxNodes is the most nodes a mesh can hold: node IDs are 16 bits and 0 is
// not used.
const MaxNodes = 65535

// AssignNodeIDs gives every node a 16-bit ID (1..65535) that every node of
// the mesh computes alike from the same set of names, without coordination:
//
//  1. the preferred ID is FNV-1a(32) of "cluster/name" folded to 16 bits
//     (high ^ low), 0 mapped to 1;
//  2. nodes are taken in (cluster, name) order; a node whose preferred ID is
//     taken gets the next free ID upwards (wrapping 65535 -> 1).
//
// The result depends only on the set of names. Nodes that see different sets
// (a node has joined and not every agent has seen it yet) agree on every ID
// except along a collision chain involving the newcomer; that heals when the
// views converge. With N nodes a newcomer collides with probability about
// N/65535 (1.5% at 1,000 nodes). Error: ErrTooManyNodes above 65,535 nodes,
// ErrNode for duplicate names.
func AssignNodeIDs(nodes []NodeName) (map[NodeName]uint16, error) {
	if len(nodes) > MaxNodes {
		return nil, fmt.Errorf("%d nodes: %w", len(nodes), ErrTooManyNodes)
	}
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b NodeName) int {
		return cmp.Or(cmp.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Name, b.Name))
	})
	ids := make(map[NodeName]uint16, len(nodes))
	taken := make(map[uint16]bool, len(nodes))
	for _, n := range sorted {
		if _, dup := ids[n]; dup {
			return nil, fmt.Errorf("node %s listed twice: %w", n, ErrNode)
		}
		id := PreferredNodeID(n)
		for taken[id] {
			id++
			if id == 0 {
				id = 1
			}
		}
		taken[id] = true
		ids[n] = id
	}
	return ids, nil
}

// PreferredNodeID is the ID a node gets when no other node claims it first
// (see AssignNodeIDs).
func PreferredNodeID(n NodeName) uint16 {
	h := fnv.New32a()
	h.Write([]byte(n.Cluster))
	h.Write([]byte{'/'})
	h.Write([]byte(n.Name))
	s := h.Sum32()
	id := uint16(s>>16) ^ uint16(s)
	if id == 0 {
		id = 1
	}
	return id
}
