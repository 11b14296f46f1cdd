package datapath

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/strait-net/strait/clustermesh/schema"
)

// Node is what the datapath needs of a node.
type Node struct {
	Cluster string
	Name    string
	// IP is the node's IPv4 underlay address (the WireGuard endpoint);
	// invalid when the node published none.
	IP netip.Addr
	// PodCIDRs are the node's IPv4 pod CIDRs.
	PodCIDRs []netip.Prefix
	// PublicKey is the WireGuard public key as published (base64); "" if
	// none.
	PublicKey string
	// BootID and EncryptionKey (the advertised IPsec key index) matter in
	// IPsec mode only.
	BootID        string
	EncryptionKey uint8
}

// ID is "<cluster>/<name>", the form used in Problems and peer names.
func (n Node) ID() string { return n.Cluster + "/" + n.Name }

// FromSchema converts a published node: the first IPv4 InternalIP (else the
// first IPv4 address) and the IPv4 pod CIDRs.
func FromSchema(n *schema.Node) Node {
	out := Node{Cluster: n.Cluster, Name: n.Name, PublicKey: n.WireguardPubKey, BootID: n.BootID, EncryptionKey: n.EncryptionKey}
	for _, a := range n.IPAddresses {
		if a.IP.Is4() && a.Type == schema.AddressInternalIP {
			out.IP = a.IP
			break
		}
	}
	if !out.IP.IsValid() {
		for _, a := range n.IPAddresses {
			if a.IP.Is4() {
				out.IP = a.IP
				break
			}
		}
	}
	for _, p := range append([]netip.Prefix{n.IPv4AllocCIDR}, n.IPv4SecondaryAllocCIDRs...) {
		if p.IsValid() && p.Addr().Is4() {
			out.PodCIDRs = append(out.PodCIDRs, p.Masked())
		}
	}
	return out
}

// Endpoint is an ipcache host entry: an address and the node hosting it.
type Endpoint struct {
	// Cluster holds the entry (for Problems).
	Cluster string
	IP      netip.Addr
	HostIP  netip.Addr
}

// Input is everything the desired datapath depends on.
type Input struct {
	// Local is this node; its PublicKey is our own.
	Local Node
	// Nodes are every other node: of this cluster and of remote ones.
	// Entries equal to Local (same cluster and name) are skipped.
	Nodes []Node
	// Endpoints are the ipcache host entries (remote clusters').
	Endpoints []Endpoint
	// Accepted are the node IDs accepted by the previous computation
	// (Desired.Accepted); they win conflicts against newcomers.
	Accepted map[string]bool
	// Port is the WireGuard port of every node.
	Port uint16
	// IPsec computes for IPsec instead of WireGuard: nodes need no public
	// key, no Peers are produced, and Routes go via each node's address.
	IPsec bool
}

// Peer is one desired WireGuard peer.
type Peer struct {
	// Node is "<cluster>/<name>".
	Node      string
	PublicKey wgtypes.Key
	Endpoint  netip.AddrPort
	// AllowedIPs are canonical, sorted and without duplicates.
	AllowedIPs []netip.Prefix
}

// Route is one desired route into the WireGuard device.
type Route struct {
	Dst netip.Prefix
	// Via is the next hop in IPsec mode (the node's address); invalid for
	// WireGuard (the route goes into the device).
	Via netip.Addr
	// Node is the node the destination belongs to.
	Node string
}

// Problem is an entry refused, and why.
type Problem struct {
	// Node is "<cluster>/<name>" of the refused node (or, for an ipcache
	// entry, of its host).
	Node   string
	Reason string
}

// Desired is the datapath the node should have.
type Desired struct {
	Peers    []Peer    // sorted by Node; none in IPsec mode
	Nodes    []Node    // the accepted nodes, sorted by cluster and name
	Routes   []Route   // sorted by Dst
	Problems []Problem // sorted by Node, then Reason
	// Accepted are the IDs of the nodes that got a peer; pass them as the
	// next Input.Accepted.
	Accepted map[string]bool
}

// ErrZeroKey is returned by ParsePublicKey for the all-zero key (which
// is well-formed but no key).
var ErrZeroKey = errors.New("datapath: WireGuard public key is all zero")

// ParsePublicKey parses a published WireGuard public key: standard base64
// of 32 bytes, not all zero.
func ParsePublicKey(s string) (wgtypes.Key, error) {
	var k wgtypes.Key
	if s == "" {
		return k, fmt.Errorf("no WireGuard public key")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return k, fmt.Errorf("WireGuard public key %q: not base64: %w", s, err)
	}
	if len(b) != len(k) {
		return k, fmt.Errorf("WireGuard public key %q: %d bytes, want %d", s, len(b), len(k))
	}
	copy(k[:], b)
	if k == (wgtypes.Key{}) {
		return k, fmt.Errorf("%w: %q", ErrZeroKey, s)
	}
	return k, nil
}

// owner is an entry of the disjoint address set: a prefix and who holds it.
type owner struct {
	p    netip.Prefix
	node string
}

// space is a set of disjoint prefixes, sorted by address, each with its
// holder.
type space []owner

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	bits := p.Bits()
	for i := range 4 {
		lo := i * 8
		if bits >= lo+8 {
			continue
		}
		keep := max(bits-lo, 0)
		a[i] |= byte(0xff >> keep)
	}
	return netip.AddrFrom4(a)
}

// conflict returns the holder of a prefix overlapping p, if any. Since the
// set is disjoint, only the entry before p's start and those starting
// inside p can overlap it.
func (s space) conflict(p netip.Prefix) (owner, bool) {
	p = p.Masked()
	i, _ := slices.BinarySearchFunc(s, p.Addr(), func(o owner, a netip.Addr) int { return o.p.Addr().Compare(a) })
	if i < len(s) && s[i].p.Addr().Compare(lastAddr(p)) <= 0 {
		return s[i], true
	}
	if i > 0 && s[i-1].p.Contains(p.Addr()) {
		return s[i-1], true
	}
	return owner{}, false
}

func (s *space) add(p netip.Prefix, node string) {
	p = p.Masked()
	i, _ := slices.BinarySearchFunc(*s, p.Addr(), func(o owner, a netip.Addr) int { return o.p.Addr().Compare(a) })
	*s = slices.Insert(*s, i, owner{p: p, node: node})
}

// candidate is a node whose key parsed, waiting for the conflict checks.
type candidate struct {
	n      Node
	key    wgtypes.Key
	claims []netip.Prefix // node /32 and pod CIDRs
}

// Compute returns the desired datapath for in. See the package
// documentation for the rules.
func Compute(in Input) Desired {
	d := Desired{Accepted: make(map[string]bool)}
	localID := in.Local.ID()
	localKey, localKeyErr := ParsePublicKey(in.Local.PublicKey)
	problem := func(node, format string, args ...any) {
		d.Problems = append(d.Problems, Problem{Node: node, Reason: fmt.Sprintf(format, args...)})
	}

	var taken space
	claim := func(p netip.Prefix, node string) {
		if _, busy := taken.conflict(p); !busy {
			taken.add(p, node)
		}
	}
	if in.Local.IP.IsValid() {
		claim(netip.PrefixFrom(in.Local.IP, 32), localID)
	}
	for _, p := range in.Local.PodCIDRs {
		claim(p, localID)
	}

	seen := make(map[string]bool)
	var cands []candidate
	for _, n := range in.Nodes {
		id := n.ID()
		if id == localID || seen[id] {
			continue
		}
		seen[id] = true
		if in.IPsec {
			if !n.IP.Is4() {
				problem(id, "no IPv4 node address")
				continue
			}
			c := candidate{n: n, claims: []netip.Prefix{netip.PrefixFrom(n.IP, 32)}}
			for _, p := range n.PodCIDRs {
				c.claims = append(c.claims, p.Masked())
			}
			cands = append(cands, c)
			continue
		}
		k, err := ParsePublicKey(n.PublicKey)
		switch {
		case err != nil:
			problem(id, "%v", err)
			continue
		case localKeyErr == nil && k == localKey:
			problem(id, "WireGuard public key %s is this node's (%s) own", n.PublicKey, localID)
			continue
		case !n.IP.Is4():
			problem(id, "no IPv4 node address")
			continue
		}
		c := candidate{n: n, key: k, claims: []netip.Prefix{netip.PrefixFrom(n.IP, 32)}}
		for _, p := range n.PodCIDRs {
			c.claims = append(c.claims, p.Masked())
		}
		cands = append(cands, c)
	}
	// Incumbents first, then cluster/name order.
	slices.SortFunc(cands, func(a, b candidate) int {
		ia, ib := in.Accepted[a.n.ID()], in.Accepted[b.n.ID()]
		if ia != ib {
			if ia {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.n.Cluster, b.n.Cluster), cmp.Compare(a.n.Name, b.n.Name))
	})

	keys := make(map[wgtypes.Key]string)
	byIP := make(map[netip.Addr]int) // node IP → index in d.Peers
	var accepted []candidate
	for _, c := range cands {
		id := c.n.ID()
		if holder, dup := keys[c.key]; dup && !in.IPsec {
			problem(id, "duplicate WireGuard public key %s: already used by node %s", c.n.PublicKey, holder)
			continue
		}
		var clash string
		for _, p := range c.claims {
			if o, busy := taken.conflict(p); busy {
				clash = fmt.Sprintf("%s overlaps %s of node %s", p, o.p, o.node)
				break
			}
		}
		if clash == "" {
			// A node's own prefixes may not overlap each other either.
			for i, p := range c.claims {
				for _, q := range c.claims[:i] {
					if p.Overlaps(q) {
						clash = fmt.Sprintf("%s overlaps its own %s", p, q)
					}
				}
			}
		}
		if clash != "" {
			problem(id, "address conflict: %s", clash)
			continue
		}
		for _, p := range c.claims {
			taken.add(p, id)
		}
		keys[c.key] = id
		accepted = append(accepted, c)
	}
	slices.SortFunc(accepted, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.n.Cluster, b.n.Cluster), cmp.Compare(a.n.Name, b.n.Name))
	})
	for _, c := range accepted {
		id := c.n.ID()
		d.Accepted[id] = true
		d.Nodes = append(d.Nodes, c.n)
		var via netip.Addr
		if in.IPsec {
			via = c.n.IP
		}
		for _, p := range c.claims[1:] {
			d.Routes = append(d.Routes, Route{Dst: p, Via: via, Node: id})
		}
		if in.IPsec {
			continue
		}
		byIP[c.n.IP] = len(d.Peers)
		d.Peers = append(d.Peers, Peer{
			Node:       id,
			PublicKey:  c.key,
			Endpoint:   netip.AddrPortFrom(c.n.IP, in.Port),
			AllowedIPs: slices.Clone(c.claims),
		})
	}

	// Extra ipcache host entries, in a fixed order so that conflicts
	// between them resolve the same way every time.
	eps := slices.Clone(in.Endpoints)
	slices.SortFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(a.IP.Compare(b.IP), a.HostIP.Compare(b.HostIP), cmp.Compare(a.Cluster, b.Cluster))
	})
	for _, e := range eps {
		if !e.IP.Is4() {
			continue
		}
		i, ok := byIP[e.HostIP]
		if !ok {
			continue // hosted here, or by a node without a peer
		}
		peer := &d.Peers[i]
		p := netip.PrefixFrom(e.IP, 32)
		o, busy := taken.conflict(p)
		switch {
		case !busy:
			taken.add(p, peer.Node)
			peer.AllowedIPs = append(peer.AllowedIPs, p)
			d.Routes = append(d.Routes, Route{Dst: p, Node: peer.Node})
		case o.node == peer.Node:
			// Inside its own pod CIDR (or a duplicate): already allowed.
		default:
			problem(peer.Node, "ipcache entry %s of cluster %s (host %s) lies in %s of node %s", e.IP, e.Cluster, e.HostIP, o.p, o.node)
		}
	}
	for i := range d.Peers {
		slices.SortFunc(d.Peers[i].AllowedIPs, comparePrefix)
	}
	slices.SortFunc(d.Routes, func(a, b Route) int { return comparePrefix(a.Dst, b.Dst) })
	slices.SortFunc(d.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Reason, b.Reason))
	})
	return d
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}
