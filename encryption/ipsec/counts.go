package ipsec

import (
	"fmt"
	"net/netip"
)

// Footprint is how many XFRM objects a node holds.
type Footprint struct {
	Remotes  int
	States   int
	Policies int
}

// MeasureFootprint builds a mesh of remotes+1 IPv4 nodes, one /24 pod CIDR
// each, and counts the states and policies DesiredState gives one node: with
// one live key, or two during a rotation. It is computed, not a formula, so
// docs and benchmarks show what the code does.
func MeasureFootprint(remotes int, rotating bool) (Footprint, error) {
	if remotes < 0 || remotes >= MaxNodes {
		return Footprint{}, fmt.Errorf("%d remotes: %w", remotes, ErrTooManyNodes)
	}
	node := func(i int) NodeRef {
		return NodeRef{
			Cluster:  fmt.Sprintf("cluster%d", i/250+1),
			Name:     fmt.Sprintf("node%d", i),
			IP:       netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}),
			BootID:   fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			PodCIDRs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)},
		}
	}
	keys := []Key{{SPI: 1, PerNodePair: true, Algo: "rfc4106(gcm(aes))", Key: make([]byte, 20), ICVBits: 128}}
	current := uint8(1)
	if rotating {
		keys = append(keys, Key{SPI: 2, PerNodePair: true, Algo: "rfc4106(gcm(aes))", Key: make([]byte, 20), ICVBits: 128})
		current = 2
	}
	in := Input{Local: node(0), Keys: keys, Current: current, BlockCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for i := 1; i <= remotes; i++ {
		r := node(i)
		r.EncryptionKey = current
		in.Remotes = append(in.Remotes, r)
	}
	d, err := DesiredState(in)
	if err != nil {
		return Footprint{}, err
	}
	if len(d.Skipped) > 0 {
		return Footprint{}, fmt.Errorf("measure footprint: node %s left out: %s", d.Skipped[0].Node, d.Skipped[0].Reason)
	}
	return Footprint{Remotes: remotes, States: len(d.States), Policies: len(d.Policies)}, nil
}
