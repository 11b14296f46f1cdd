package datapath

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/strait-net/strait/clustermesh/schema"
)

var cmpOpts = gocmp.Options{
	gocmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	gocmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	gocmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

// key returns a distinct test key for i (1-based).
func key(i byte) wgtypes.Key {
	var k wgtypes.Key
	k[0], k[31] = i, 0x5a
	return k
}

func b64(k wgtypes.Key) string { return base64.StdEncoding.EncodeToString(k[:]) }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func node(cluster, name, addr string, k byte, cidrs ...string) Node {
	n := Node{Cluster: cluster, Name: name, IP: ip(addr)}
	if k != 0 {
		n.PublicKey = b64(key(k))
	}
	for _, c := range cidrs {
		n.PodCIDRs = append(n.PodCIDRs, pfx(c))
	}
	return n
}

func peer(id, addr string, k byte, allowed ...string) Peer {
	p := Peer{Node: id, PublicKey: key(k), Endpoint: netip.AddrPortFrom(ip(addr), 51871)}
	for _, a := range allowed {
		p.AllowedIPs = append(p.AllowedIPs, pfx(a))
	}
	return p
}

func routes(pairs ...string) []Route {
	var rs []Route
	for i := 0; i < len(pairs); i += 2 {
		rs = append(rs, Route{Dst: pfx(pairs[i]), Node: pairs[i+1]})
	}
	return rs
}

func accepted(ids ...string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

var local = node("c1", "n1", "198.18.1.11", 1, "10.1.1.0/24")

func TestCompute(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want Desired
	}{
		{
			name: "no other nodes",
			in:   Input{Local: local, Port: 51871},
			want: Desired{Accepted: accepted()},
		},
		{
			name: "local and remote nodes",
			in: Input{Local: local, Port: 51871, Nodes: []Node{
				local, // itself: skipped
				node("c2", "n1", "198.18.2.11", 3, "10.2.1.0/24"),
				node("c1", "n2", "198.18.1.12", 2, "10.1.2.0/24"),
			}},
			want: Desired{
				Peers: []Peer{
					peer("c1/n2", "198.18.1.12", 2, "10.1.2.0/24", "198.18.1.12/32"),
					peer("c2/n1", "198.18.2.11", 3, "10.2.1.0/24", "198.18.2.11/32"),
				},
				Routes:   routes("10.1.2.0/24", "c1/n2", "10.2.1.0/24", "c2/n1"),
				Accepted: accepted("c1/n2", "c2/n1"),
			},
		},
		{
			name: "secondary pod CIDRs and no pod CIDR",
			in: Input{Local: local, Port: 51871, Nodes: []Node{
				node("c2", "n1", "198.18.2.11", 3, "10.2.1.0/24", "10.2.101.0/25"),
				node("c2", "n2", "198.18.2.12", 4),
			}},
			want: Desired{
				Peers: []Peer{
					peer("c2/n1", "198.18.2.11", 3, "10.2.1.0/24", "10.2.101.0/25", "198.18.2.11/32"),
					peer("c2/n2", "198.18.2.12", 4, "198.18.2.12/32"),
				},
				Routes:   routes("10.2.1.0/24", "c2/n1", "10.2.101.0/25", "c2/n1"),
				Accepted: accepted("c2/n1", "c2/n2"),
			},
		},
		{
			name: "node without key, malformed key, zero key, own key, no address",
			in: Input{Local: local, Port: 51871, Nodes: []Node{
				node("c2", "nokey", "198.18.2.11", 0, "10.2.1.0/24"),
				{Cluster: "c2", Name: "bad", IP: ip("198.18.2.12"), PublicKey: "not-a-key", PodCIDRs: []netip.Prefix{pfx("10.2.2.0/24")}},
				{Cluster: "c2", Name: "short", IP: ip("198.18.2.13"), PublicKey: base64.StdEncoding.EncodeToString([]byte("short")), PodCIDRs: []netip.Prefix{pfx("10.2.3.0/24")}},
				{Cluster: "c2", Name: "zero", IP: ip("198.18.2.14"), PublicKey: b64(wgtypes.Key{})},
				node("c2", "mine", "198.18.2.15", 1, "10.2.5.0/24"),
				{Cluster: "c2", Name: "noip", PublicKey: b64(key(9))},
				node("c2", "good", "198.18.2.16", 6, "10.2.6.0/24"),
			}},
			want: Desired{
				Peers:  []Peer{peer("c2/good", "198.18.2.16", 6, "10.2.6.0/24", "198.18.2.16/32")},
				Routes: routes("10.2.6.0/24", "c2/good"),
				Problems: []Problem{
					{Node: "c2/bad", Reason: `WireGuard public key "not-a-key": not base64: illegal base64 data at input byte 3`},
					{Node: "c2/mine", Reason: "WireGuard public key " + b64(key(1)) + " is this node's (c1/n1) own"},
					{Node: "c2/noip", Reason: "no IPv4 node address"},
					{Node: "c2/nokey", Reason: "no WireGuard public key"},
					{Node: "c2/short", Reason: `WireGuard public key "c2hvcnQ=": 5 bytes, want 32`},
					{Node: "c2/zero", Reason: `datapath: WireGuard public key is all zero: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`},
				},
				Accepted: accepted("c2/good"),
			},
		},
		{
			name: "duplicate key: the node sorting first is kept",
			in: Input{Local: local, Port: 51871, Nodes: []Node{
				node("c3", "a", "198.18.3.11", 7, "10.3.1.0/24"),
				node("c2", "z", "198.18.2.11", 7, "10.2.1.0/24"),
			}},
			want: Desired{
				Peers:    []Peer{peer("c2/z", "198.18.2.11", 7, "10.2.1.0/24", "198.18.2.11/32")},
				Routes:   routes("10.2.1.0/24", "c2/z"),
				Problems: []Problem{{Node: "c3/a", Reason: "duplicate WireGuard public key " + b64(key(7)) + ": already used by node c2/z"}},
				Accepted: accepted("c2/z"),
			},
		},
		{
			name: "duplicate key: a working peer is kept against a newcomer",
			in: Input{Local: local, Port: 51871, Accepted: accepted("c3/a"), Nodes: []Node{
				node("c3", "a", "198.18.3.11", 7, "10.3.1.0/24"),
				node("c2", "z", "198.18.2.11", 7, "10.2.1.0/24"),
			}},
			want: Desired{
				Peers:    []Peer{peer("c3/a", "198.18.3.11", 7, "10.3.1.0/24", "198.18.3.11/32")},
				Routes:   routes("10.3.1.0/24", "c3/a"),
				Problems: []Problem{{Node: "c2/z", Reason: "duplicate WireGuard public key " + b64(key(7)) + ": already used by node c3/a"}},
				Accepted: accepted("c3/a"),
			},
		},
		{
			name: "pod CIDR overlapping another cluster's",
			in: Input{Local: local, Port: 51871, Nodes: []Node{
				node("c2", "n1", "198.18.2.11", 3, "10.9.0.0/16"),
				node("c3", "n1", "198.18.3.11", 4, "10.9.4.0/24"),
			}},
			want: Desired{
				Peers:    []Peer{peer("c2/n1", "198.18.2.11", 3, "10.9.0.0/16", "198.18.2.11/32")},
				Routes:   routes("10.9.0.0/16", "c2/n1"),
				Problems: []Problem{{Node: "c3/n1", Reason: "address conflict: 10.9.4.0/24 overlaps 10.9.0.0/16 of node c2/n1"}},
				Accepted: accepted("c2/n1"),
			},
		},
		{
			name: "pod CIDR overlapping the local node's; node address in use",
			in: Input{Local: local, Port: 51871, Nodes: []Node{
				node("c2", "n1", "198.18.2.11", 3, "10.1.0.0/16"),
				node("c2", "n2", "198.18.1.11", 4, "10.2.2.0/24"),
				node("c2", "n3", "198.18.2.13", 5, "10.2.3.0/24", "10.2.3.128/25"),
			}},
			want: Desired{
				Problems: []Problem{
					{Node: "c2/n1", Reason: "address conflict: 10.1.0.0/16 overlaps 10.1.1.0/24 of node c1/n1"},
					{Node: "c2/n2", Reason: "address conflict: 198.18.1.11/32 overlaps 198.18.1.11/32 of node c1/n1"},
					{Node: "c2/n3", Reason: "address conflict: 10.2.3.128/25 overlaps its own 10.2.3.0/24"},
				},
				Accepted: accepted(),
			},
		},
		{
			name: "overlap: the working peer is kept against a newcomer sorting first",
			in: Input{Local: local, Port: 51871, Accepted: accepted("c3/n1"), Nodes: []Node{
				node("c2", "n1", "198.18.2.11", 3, "10.9.0.0/16"),
				node("c3", "n1", "198.18.3.11", 4, "10.9.4.0/24"),
			}},
			want: Desired{
				Peers:    []Peer{peer("c3/n1", "198.18.3.11", 4, "10.9.4.0/24", "198.18.3.11/32")},
				Routes:   routes("10.9.4.0/24", "c3/n1"),
				Problems: []Problem{{Node: "c2/n1", Reason: "address conflict: 10.9.0.0/16 overlaps 10.9.4.0/24 of node c3/n1"}},
				Accepted: accepted("c3/n1"),
			},
		},
		{
			name: "ipcache host entries outside the pod CIDR",
			in: Input{Local: local, Port: 51871,
				Nodes: []Node{
					node("c2", "n1", "198.18.2.11", 3, "10.2.1.0/24"),
					node("c2", "n2", "198.18.2.12", 4, "10.2.2.0/24"),
				},
				Endpoints: []Endpoint{
					{Cluster: "c2", IP: ip("10.2.1.5"), HostIP: ip("198.18.2.11")},  // inside its CIDR
					{Cluster: "c2", IP: ip("10.77.0.1"), HostIP: ip("198.18.2.11")}, // extra
					{Cluster: "c2", IP: ip("10.2.2.9"), HostIP: ip("198.18.2.11")},  // in n2's CIDR
					{Cluster: "c2", IP: ip("10.1.1.9"), HostIP: ip("198.18.2.12")},  // in ours
					{Cluster: "c2", IP: ip("10.88.0.1"), HostIP: ip("198.18.9.9")},  // unknown host
					{Cluster: "c2", IP: ip("10.77.0.1"), HostIP: ip("198.18.2.12")}, // taken by n1
					{Cluster: "c1", IP: ip("10.1.1.7"), HostIP: ip("198.18.1.11")},  // ours
				},
			},
			want: Desired{
				Peers: []Peer{
					peer("c2/n1", "198.18.2.11", 3, "10.2.1.0/24", "10.77.0.1/32", "198.18.2.11/32"),
					peer("c2/n2", "198.18.2.12", 4, "10.2.2.0/24", "198.18.2.12/32"),
				},
				Routes: routes("10.2.1.0/24", "c2/n1", "10.2.2.0/24", "c2/n2", "10.77.0.1/32", "c2/n1"),
				Problems: []Problem{
					{Node: "c2/n1", Reason: "ipcache entry 10.2.2.9 of cluster c2 (host 198.18.2.11) lies in 10.2.2.0/24 of node c2/n2"},
					{Node: "c2/n2", Reason: "ipcache entry 10.1.1.9 of cluster c2 (host 198.18.2.12) lies in 10.1.1.0/24 of node c1/n1"},
					{Node: "c2/n2", Reason: "ipcache entry 10.77.0.1 of cluster c2 (host 198.18.2.12) lies in 10.77.0.1/32 of node c2/n1"},
				},
				Accepted: accepted("c2/n1", "c2/n2"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compute(tt.in)
			if diff := gocmp.Diff(tt.want, got, cmpOpts, ignoreNodes); diff != "" {
				t.Errorf("Compute (-want +got):\n%s", diff)
			}
			checkNodes(t, got)
		})
	}
}

// ignoreNodes leaves Desired.Nodes to checkNodes.
var ignoreNodes = cmpopts.IgnoreFields(Desired{}, "Nodes")

// checkNodes: Nodes are exactly the accepted nodes, in order.
func checkNodes(t *testing.T, d Desired) {
	t.Helper()
	var ids, acc []string
	for _, n := range d.Nodes {
		ids = append(ids, n.ID())
	}
	for id := range d.Accepted {
		acc = append(acc, id)
	}
	slices.Sort(acc)
	if diff := gocmp.Diff(acc, ids, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Nodes vs Accepted (-accepted +nodes):\n%s", diff)
	}
}

func TestComputeIPsec(t *testing.T) {
	in := Input{Local: local, IPsec: true, Nodes: []Node{
		node("c2", "nokey", "198.18.2.11", 0, "10.2.1.0/24"),
		node("c2", "dupkey1", "198.18.2.12", 5, "10.2.2.0/24"),
		node("c2", "dupkey2", "198.18.2.13", 5, "10.2.3.0/24"),
		node("c2", "overlap", "198.18.2.14", 0, "10.2.3.128/25"),
		{Cluster: "c2", Name: "noip"},
	}, Endpoints: []Endpoint{{Cluster: "c2", IP: ip("10.77.0.1"), HostIP: ip("198.18.2.11")}}}
	want := Desired{
		Routes: []Route{
			{Dst: pfx("10.2.1.0/24"), Via: ip("198.18.2.11"), Node: "c2/nokey"},
			{Dst: pfx("10.2.2.0/24"), Via: ip("198.18.2.12"), Node: "c2/dupkey1"},
			{Dst: pfx("10.2.3.0/24"), Via: ip("198.18.2.13"), Node: "c2/dupkey2"},
		},
		Problems: []Problem{
			{Node: "c2/noip", Reason: "no IPv4 node address"},
			{Node: "c2/overlap", Reason: "address conflict: 10.2.3.128/25 overlaps 10.2.3.0/24 of node c2/dupkey2"},
		},
		Accepted: accepted("c2/nokey", "c2/dupkey1", "c2/dupkey2"),
	}
	got := Compute(in)
	if diff := gocmp.Diff(want, got, cmpOpts, ignoreNodes); diff != "" {
		t.Errorf("Compute (-want +got):\n%s", diff)
	}
	checkNodes(t, got)
	if got.Nodes[0].BootID != "" || got.Nodes[0].IP != ip("198.18.2.12") {
		t.Errorf("Nodes[0] = %+v", got.Nodes[0])
	}
}

func TestFromSchema(t *testing.T) {
	tests := []struct {
		name string
		in   *schema.Node
		want Node
	}{
		{
			name: "internal IP preferred",
			in: &schema.Node{Cluster: "c1", Name: "n1", WireguardPubKey: "k", BootID: "b", EncryptionKey: 3,
				IPAddresses: []schema.Address{
					{Type: schema.AddressExternalIP, IP: ip("203.0.113.1")},
					{Type: schema.AddressInternalIP, IP: ip("fd00::1")},
					{Type: schema.AddressInternalIP, IP: ip("198.18.1.11")},
				},
				IPv4AllocCIDR:           pfx("10.1.1.0/24"),
				IPv4SecondaryAllocCIDRs: []netip.Prefix{pfx("10.1.201.0/24")},
				IPv6AllocCIDR:           pfx("fd01::/64"),
			},
			want: Node{Cluster: "c1", Name: "n1", PublicKey: "k", IP: ip("198.18.1.11"), PodCIDRs: []netip.Prefix{pfx("10.1.1.0/24"), pfx("10.1.201.0/24")}, BootID: "b", EncryptionKey: 3},
		},
		{
			name: "any IPv4 address without an internal one",
			in: &schema.Node{Cluster: "c1", Name: "n1",
				IPAddresses: []schema.Address{{Type: schema.AddressExternalIP, IP: ip("203.0.113.1")}}},
			want: Node{Cluster: "c1", Name: "n1", IP: ip("203.0.113.1")},
		},
		{
			name: "nothing",
			in:   &schema.Node{Cluster: "c1", Name: "n1"},
			want: Node{Cluster: "c1", Name: "n1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := gocmp.Diff(tt.want, FromSchema(tt.in), cmpOpts); diff != "" {
				t.Errorf("FromSchema (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLastAddr(t *testing.T) {
	for _, tt := range []struct{ p, want string }{
		{"10.1.2.0/24", "10.1.2.255"}, {"10.0.0.0/8", "10.255.255.255"}, {"10.1.2.3/32", "10.1.2.3"},
		{"0.0.0.0/0", "255.255.255.255"}, {"10.1.2.128/25", "10.1.2.255"}, {"10.1.0.0/13", "10.7.255.255"},
	} {
		t.Run(tt.p, func(t *testing.T) {
			if got := lastAddr(pfx(tt.p)); got != ip(tt.want) {
				t.Errorf("lastAddr(%s) = %s, want %s", tt.p, got, tt.want)
			}
		})
	}
}

// reference is Compute written the slow, obvious way: every pair of
// prefixes compared with Overlaps.
func reference(in Input) Desired {
	d := Desired{Accepted: map[string]bool{}}
	type held struct {
		p    netip.Prefix
		node string
	}
	var all []held
	find := func(p netip.Prefix) (held, bool) {
		for _, h := range all {
			if h.p.Overlaps(p) {
				return h, true
			}
		}
		return held{}, false
	}
	localID := in.Local.ID()
	lk, lerr := ParsePublicKey(in.Local.PublicKey)
	for _, p := range append([]netip.Prefix{netip.PrefixFrom(in.Local.IP, 32)}, in.Local.PodCIDRs...) {
		if _, ok := find(p); !ok && p.IsValid() {
			all = append(all, held{p.Masked(), localID})
		}
	}
	nodes := slices.Clone(in.Nodes)
	slices.SortStableFunc(nodes, func(a, b Node) int {
		ia, ib := in.Accepted[a.ID()], in.Accepted[b.ID()]
		if ia != ib {
			if ia {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID(), b.ID())
	})
	keyHolder := map[wgtypes.Key]string{}
	done := map[string]bool{}
	var peers []Peer
	for _, n := range nodes {
		id := n.ID()
		if id == localID || done[id] {
			continue
		}
		done[id] = true
		k, err := ParsePublicKey(n.PublicKey)
		if err != nil {
			d.Problems = append(d.Problems, Problem{id, err.Error()})
			continue
		}
		if lerr == nil && k == lk {
			d.Problems = append(d.Problems, Problem{id, "own key"})
			continue
		}
		if !n.IP.Is4() {
			d.Problems = append(d.Problems, Problem{id, "no IPv4 node address"})
			continue
		}
		if h, ok := keyHolder[k]; ok {
			d.Problems = append(d.Problems, Problem{id, "duplicate " + h})
			continue
		}
		claims := append([]netip.Prefix{netip.PrefixFrom(n.IP, 32)}, n.PodCIDRs...)
		bad := false
		for i, p := range claims {
			if _, ok := find(p); ok {
				bad = true
			}
			for _, q := range claims[:i] {
				if p.Overlaps(q) {
					bad = true
				}
			}
		}
		if bad {
			d.Problems = append(d.Problems, Problem{id, "conflict"})
			continue
		}
		for _, p := range claims {
			all = append(all, held{p.Masked(), id})
		}
		keyHolder[k] = id
		d.Accepted[id] = true
		peers = append(peers, Peer{Node: id, PublicKey: k, Endpoint: netip.AddrPortFrom(n.IP, in.Port), AllowedIPs: claims})
		for _, p := range n.PodCIDRs {
			d.Routes = append(d.Routes, Route{Dst: p.Masked(), Node: id})
		}
	}
	eps := slices.Clone(in.Endpoints)
	slices.SortFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(a.IP.Compare(b.IP), a.HostIP.Compare(b.HostIP), strings.Compare(a.Cluster, b.Cluster))
	})
	for _, e := range eps {
		for i := range peers {
			if peers[i].Endpoint.Addr() != e.HostIP {
				continue
			}
			p := netip.PrefixFrom(e.IP, 32)
			h, ok := find(p)
			switch {
			case !ok:
				all = append(all, held{p, peers[i].Node})
				peers[i].AllowedIPs = append(peers[i].AllowedIPs, p)
				d.Routes = append(d.Routes, Route{Dst: p, Node: peers[i].Node})
			case h.node != peers[i].Node:
				d.Problems = append(d.Problems, Problem{peers[i].Node, "ipcache"})
			}
		}
	}
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Node, b.Node) })
	for i := range peers {
		slices.SortFunc(peers[i].AllowedIPs, comparePrefix)
	}
	d.Peers = peers
	slices.SortFunc(d.Routes, func(a, b Route) int { return comparePrefix(a.Dst, b.Dst) })
	return d
}

// TestComputeRandom checks Compute against reference on random meshes
// full of collisions (shared keys, overlapping CIDRs, shared addresses),
// and the invariants WireGuard needs.
func TestComputeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randPrefix := func() netip.Prefix {
		bits := 16 + rng.IntN(17)
		a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(8)), byte(rng.IntN(256))})
		return netip.PrefixFrom(a, bits).Masked()
	}
	randIP := func() netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(rng.IntN(3)), byte(rng.IntN(12))}) }
	for iter := range 2000 {
		in := Input{Port: 51871, Local: Node{Cluster: "c1", Name: "n0", IP: randIP(), PodCIDRs: []netip.Prefix{randPrefix()}, PublicKey: b64(key(1))}}
		for i := range rng.IntN(12) {
			n := Node{Cluster: fmt.Sprintf("c%d", 1+rng.IntN(3)), Name: fmt.Sprintf("n%d", rng.IntN(6)), IP: randIP()}
			switch rng.IntN(10) {
			case 0:
			case 1:
				n.PublicKey = "bad"
			default:
				n.PublicKey = b64(key(byte(1 + rng.IntN(10))))
			}
			for range rng.IntN(3) {
				n.PodCIDRs = append(n.PodCIDRs, randPrefix())
			}
			_ = i
			in.Nodes = append(in.Nodes, n)
		}
		for range rng.IntN(10) {
			in.Endpoints = append(in.Endpoints, Endpoint{Cluster: "c2", IP: netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(8)), byte(rng.IntN(256))}), HostIP: randIP()})
		}
		in.Accepted = map[string]bool{}
		for _, n := range in.Nodes {
			if rng.IntN(3) == 0 {
				in.Accepted[n.ID()] = true
			}
		}
		// Duplicated IDs: the reference takes the first of each; so does
		// Compute; keep only first occurrences to compare like with like.
		got, want := Compute(in), reference(in)
		opts := append(cmpOpts, cmpopts.IgnoreFields(Desired{}, "Problems", "Nodes"))
		checkNodes(t, got)
		if diff := gocmp.Diff(want, got, opts); diff != "" {
			t.Fatalf("iteration %d: input %+v\nCompute vs reference (-ref +got):\n%s", iter, in, diff)
		}
		probNodes := func(ps []Problem) []string {
			var s []string
			for _, p := range ps {
				s = append(s, p.Node)
			}
			slices.Sort(s)
			return s
		}
		if diff := gocmp.Diff(probNodes(want.Problems), probNodes(got.Problems)); diff != "" {
			t.Fatalf("iteration %d: problem nodes (-ref +got):\n%s", iter, diff)
		}
		// Invariants: no allowed IP on two peers, none on the local node's.
		for i, p := range got.Peers {
			for _, a := range p.AllowedIPs {
				for _, q := range got.Peers[i+1:] {
					for _, b := range q.AllowedIPs {
						if a.Overlaps(b) {
							t.Fatalf("iteration %d: %s of %s overlaps %s of %s", iter, a, p.Node, b, q.Node)
						}
					}
				}
				for _, l := range in.Local.PodCIDRs {
					if a.Overlaps(l) {
						t.Fatalf("iteration %d: %s of %s overlaps the local pod CIDR %s", iter, a, p.Node, l)
					}
				}
			}
		}
	}
}
