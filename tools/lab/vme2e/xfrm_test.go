package vme2e

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/strait-net/strait/encryption/ipsec"
	"github.com/strait-net/strait/tools/lab"
	"github.com/vishvananda/netlink"
)

// saID names one XFRM state.
type saID struct {
	Src, Dst netip.Addr
	SPI      uint32
}

func (s saID) String() string { return fmt.Sprintf("%s>%s spi 0x%08x", s.Src, s.Dst, s.SPI) }

// keyIndex is the strait key index (the key file's SPI) in the wire SPI.
func (s saID) keyIndex() uint8 {
	k, _, _ := ipsec.SplitWireSPI(s.SPI)
	return k
}

// nodeXfrm is one node's strait XFRM states (with their AEAD keys) and OUT
// policy templates.
type nodeXfrm struct {
	States map[saID][]byte
	// OutSPIs are the template SPIs of the OUT policies, by remote pod
	// CIDR.
	OutSPIs map[netip.Prefix]uint32
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// readXfrm lists node n's states and policies that carry strait's reqid.
func readXfrm(n lab.Node) (nodeXfrm, error) {
	x := nodeXfrm{States: map[saID][]byte{}, OutSPIs: map[netip.Prefix]uint32{}}
	err := lab.Do(n.Netns, func() error {
		states, err := netlink.XfrmStateList(netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("xfrm states: %w", err)
		}
		for _, s := range states {
			if s.Reqid != ipsec.ReqID {
				continue
			}
			var key []byte
			if s.Aead != nil {
				key = bytes.Clone(s.Aead.Key)
			}
			x.States[saID{addrOf(s.Src), addrOf(s.Dst), uint32(s.Spi)}] = key
		}
		pols, err := netlink.XfrmPolicyList(netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("xfrm policies: %w", err)
		}
		for _, p := range pols {
			if p.Dir != netlink.XFRM_DIR_OUT || len(p.Tmpls) != 1 || p.Tmpls[0].Reqid != ipsec.ReqID || p.Dst == nil {
				continue
			}
			ones, _ := p.Dst.Mask.Size()
			x.OutSPIs[netip.PrefixFrom(addrOf(p.Dst.IP), ones)] = uint32(p.Tmpls[0].Spi)
		}
		return nil
	})
	if err != nil {
		return x, fmt.Errorf("%s: %w", n.Key(), err)
	}
	return x, nil
}

// readAllXfrm reads every node's XFRM state, by node key.
func readAllXfrm(nodes []lab.Node) (map[string]nodeXfrm, error) {
	out := map[string]nodeXfrm{}
	for _, n := range nodes {
		x, err := readXfrm(n)
		if err != nil {
			return nil, err
		}
		out[n.Key()] = x
	}
	return out, nil
}

// settled reports whether every node holds exactly the layout of one live
// key: 2 states per other node (OUT and IN, with key index key, between
// the two node addresses) and an OUT policy to each other node's pod CIDR
// using key; the IN state on one end of a pair has the same key as the
// OUT state on the other. The description says what is not so.
func settled(nodes []lab.Node, all map[string]nodeXfrm, key uint8) (bool, string) {
	byIP := map[netip.Addr]lab.Node{}
	for _, n := range nodes {
		byIP[n.IP] = n
	}
	var problems []string
	for _, n := range nodes {
		x := all[n.Key()]
		if len(x.States) != 2*(len(nodes)-1) {
			problems = append(problems, fmt.Sprintf("%s: %d states, want %d (%s)", n.Key(), len(x.States), 2*(len(nodes)-1), describeStates(x)))
		}
		for id, k := range x.States {
			if id.keyIndex() != key {
				problems = append(problems, fmt.Sprintf("%s: state %s has key index %d, want %d", n.Key(), id, id.keyIndex(), key))
			}
			peer, ok := byIP[id.Dst]
			if id.Src == n.IP {
				peer, ok = byIP[id.Dst]
			} else if id.Dst == n.IP {
				peer, ok = byIP[id.Src]
			} else {
				ok = false
			}
			if !ok || peer.Netns == n.Netns {
				problems = append(problems, fmt.Sprintf("%s: state %s is not between its address and another node's", n.Key(), id))
				continue
			}
			if pk, has := all[peer.Key()].States[id]; !has || !bytes.Equal(pk, k) {
				problems = append(problems, fmt.Sprintf("%s: state %s has no twin with the same key on %s", n.Key(), id, peer.Key()))
			}
		}
		for _, o := range nodes {
			if o.Netns == n.Netns {
				continue
			}
			spi, ok := x.OutSPIs[o.PodCIDR]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: no OUT policy to %s", n.Key(), o.PodCIDR))
			} else if k, _, _ := ipsec.SplitWireSPI(spi); k != key {
				problems = append(problems, fmt.Sprintf("%s: OUT policy to %s uses key index %d, want %d", n.Key(), o.PodCIDR, k, key))
			}
		}
	}
	sort.Strings(problems)
	return len(problems) == 0, strings.Join(problems, "; ")
}

func describeStates(x nodeXfrm) string {
	var ids []string
	for id := range x.States {
		ids = append(ids, id.String())
	}
	sort.Strings(ids)
	return strings.Join(ids, ", ")
}
