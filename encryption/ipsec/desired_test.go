package ipsec

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestAssignNodeIDs(t *testing.T) {
	tests := []struct {
		name  string
		nodes []NodeName
		want  map[NodeName]uint16
	}{
		// Preferred IDs computed outside Go: FNV-1a 32 folded (hi ^ lo).
		{name: "no collision", nodes: []NodeName{{"cluster2", "node1"}, {"cluster1", "node1"}},
			want: map[NodeName]uint16{{"cluster1", "node1"}: 0xe965, {"cluster2", "node1"}: 0xf8e8}},
		// c/n176 and c/n334 both prefer 0x768a; c/n176 sorts first and keeps it.
		{name: "collision probes upward in name order", nodes: []NodeName{{"c", "n334"}, {"c", "n176"}},
			want: map[NodeName]uint16{{"c", "n176"}: 0x768a, {"c", "n334"}: 0x768b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AssignNodeIDs(tt.nodes)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := AssignNodeIDs([]NodeName{{"a", "b"}, {"a", "b"}}); !errors.Is(err, ErrNode) {
		t.Errorf("duplicate: %v", err)
	}
}

// The IDs of 65,535 nodes are all distinct and non-zero; one more is refused.
func TestAssignNodeIDsFull(t *testing.T) {
	nodes := make([]NodeName, MaxNodes)
	for i := range nodes {
		nodes[i] = NodeName{"c", string(rune('a'+i%26)) + itoa(i)}
	}
	ids, err := AssignNodeIDs(nodes)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint16]bool{}
	for _, id := range ids {
		if id == 0 || seen[id] {
			t.Fatalf("id %d zero or repeated", id)
		}
		seen[id] = true
	}
	if _, err := AssignNodeIDs(append(nodes, NodeName{"c", "one-more"})); !errors.Is(err, ErrTooManyNodes) {
		t.Errorf("65,536 nodes: %v", err)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}

func TestWireSPI(t *testing.T) {
	if got := WireSPI(3, 5); got != 0x00053000 {
		t.Errorf("WireSPI(3, 5) = %#x", got)
	}
	k, n, ok := SplitWireSPI(0xfaac1000)
	if !ok || k != 1 || n != 0xfaac {
		t.Errorf("SplitWireSPI = %d %#x %v", k, n, ok)
	}
	if _, _, ok := SplitWireSPI(0x1001); ok {
		t.Error("0x1001 accepted")
	}
}

var (
	ipL  = netip.MustParseAddr("198.18.1.11")
	ipR  = netip.MustParseAddr("198.18.2.11")
	ipR2 = netip.MustParseAddr("198.18.1.12")
	cidL = netip.MustParsePrefix("10.1.1.0/24")
	cidR = netip.MustParsePrefix("10.2.1.0/24")
	cidQ = netip.MustParsePrefix("10.1.2.0/24")
	mesh = netip.MustParsePrefix("10.0.0.0/8")
)

const (
	idL    = 0xe965 // cluster1/node1
	idR    = 0xf8e8 // cluster2/node1
	idR2   = 0xfaac // cluster1/node2
	bootR2 = "11111111-2222-4333-8444-555555555555"
)

func gcmKey(spi uint8, plus bool, fill byte) Key {
	return Key{SPI: spi, PerNodePair: plus, Algo: "rfc4106(gcm(aes))", Key: mustHex(20, fill), ICVBits: 128}
}

func derived(t *testing.T, k Key, src, dst netip.Addr, sb, db string) string {
	t.Helper()
	if !k.PerNodePair {
		return string(k.Key)
	}
	b, err := DeriveNodePairKey(k.Key, src, dst, sb, db)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func gcmState(src, dst netip.Addr, spi uint32, key string) State {
	return State{Src: src, Dst: dst, SPI: spi, ReqID: ReqID, Algo: "rfc4106(gcm(aes))", Key: key, ICVBits: 128}
}

func TestDesiredState(t *testing.T) {
	local := NodeRef{Cluster: "cluster1", Name: "node1", IP: ipL, BootID: bootA, PodCIDRs: []netip.Prefix{cidL, netip.MustParsePrefix("fd00::/64")}}
	remote := NodeRef{Cluster: "cluster2", Name: "node1", IP: ipR, BootID: bootB, PodCIDRs: []netip.Prefix{cidR}, EncryptionKey: 3}
	k3, k4 := gcmKey(3, true, 0x33), gcmKey(4, true, 0x44)
	block := Policy{Dir: DirOut, Src: cidL, Dst: mesh, Priority: BlockPriority, Block: true}
	pols := func(outKey uint8) []Policy {
		return []Policy{
			{Dir: DirIn, Src: cidR, Dst: cidL, Priority: PolicyPriority, TmplSrc: ipR, TmplDst: ipL, ReqID: ReqID},
			{Dir: DirOut, Src: cidL, Dst: mesh, Priority: BlockPriority, Block: true},
			{Dir: DirOut, Src: cidL, Dst: cidL, Priority: PolicyPriority},
			{Dir: DirOut, Src: cidL, Dst: cidR, Priority: PolicyPriority, TmplSrc: ipL, TmplDst: ipR, TmplSPI: WireSPI(outKey, idL), ReqID: ReqID},
			{Dir: DirFwd, Src: cidR, Dst: cidL, Priority: PolicyPriority, TmplSrc: ipR, TmplDst: ipL, ReqID: ReqID},
		}
	}
	statesFor := func(k Key) []State {
		return []State{
			gcmState(ipR, ipL, WireSPI(k.SPI, idR), derived(t, k, ipR, ipL, bootB, bootA)),
			gcmState(ipL, ipR, WireSPI(k.SPI, idL), derived(t, k, ipL, ipR, bootA, bootB)),
		}
	}
	withAdv := func(n NodeRef, spi uint8) NodeRef { n.EncryptionKey = spi; return n }
	tests := []struct {
		name    string
		in      Input
		want    Desired
		wantErr error
	}{
		{name: "one remote one key",
			in:   Input{Local: local, Remotes: []NodeRef{remote}, Keys: []Key{k3}, Current: 3, BlockCIDRs: []netip.Prefix{mesh}},
			want: Desired{States: statesFor(k3), Policies: pols(3), OutSPI: map[NodeName]uint8{{"cluster2", "node1"}: 3}}},
		{name: "rotation, peer still advertises old key",
			in: Input{Local: local, Remotes: []NodeRef{remote}, Keys: []Key{k4, k3}, Current: 4, BlockCIDRs: []netip.Prefix{mesh}},
			want: Desired{States: []State{statesFor(k3)[0], statesFor(k4)[0], statesFor(k3)[1], statesFor(k4)[1]},
				Policies: pols(3), OutSPI: map[NodeName]uint8{{"cluster2", "node1"}: 3}}},
		{name: "rotation, peer advertises new key",
			in: Input{Local: local, Remotes: []NodeRef{withAdv(remote, 4)}, Keys: []Key{k3, k4}, Current: 4, BlockCIDRs: []netip.Prefix{mesh}},
			want: Desired{States: []State{statesFor(k3)[0], statesFor(k4)[0], statesFor(k3)[1], statesFor(k4)[1]},
				Policies: pols(4), OutSPI: map[NodeName]uint8{{"cluster2", "node1"}: 4}}},
		{name: "peer one rotation ahead: current",
			in:   Input{Local: local, Remotes: []NodeRef{withAdv(remote, 4)}, Keys: []Key{k3}, Current: 3, BlockCIDRs: []netip.Prefix{mesh}},
			want: Desired{States: statesFor(k3), Policies: pols(3), OutSPI: map[NodeName]uint8{{"cluster2", "node1"}: 3}}},
		{name: "peer advertises an unknown key: no OUT policy",
			in:   Input{Local: local, Remotes: []NodeRef{withAdv(remote, 9)}, Keys: []Key{k3}, Current: 3, BlockCIDRs: []netip.Prefix{mesh}},
			want: Desired{States: statesFor(k3), Policies: slices.Delete(pols(3), 3, 4), OutSPI: map[NodeName]uint8{{"cluster2", "node1"}: 0}}},
		{name: "peer advertises nothing yet: no OUT policy",
			in:   Input{Local: local, Remotes: []NodeRef{withAdv(remote, 0)}, Keys: []Key{k3}, Current: 3, BlockCIDRs: []netip.Prefix{mesh}},
			want: Desired{States: statesFor(k3), Policies: slices.Delete(pols(3), 3, 4), OutSPI: map[NodeName]uint8{{"cluster2", "node1"}: 0}}},
		{name: "global key needs no boot IDs",
			in: Input{Local: NodeRef{Cluster: "cluster1", Name: "node1", IP: ipL, PodCIDRs: []netip.Prefix{cidL}},
				Remotes: []NodeRef{{Cluster: "cluster2", Name: "node1", IP: ipR, PodCIDRs: []netip.Prefix{cidR}, EncryptionKey: 1}},
				Keys:    []Key{gcmKey(1, false, 0x11)}, Current: 1},
			want: Desired{
				States: []State{gcmState(ipR, ipL, WireSPI(1, idR), string(mustHex(20, 0x11))), gcmState(ipL, ipR, WireSPI(1, idL), string(mustHex(20, 0x11)))},
				Policies: []Policy{
					{Dir: DirIn, Src: cidR, Dst: cidL, Priority: PolicyPriority, TmplSrc: ipR, TmplDst: ipL, ReqID: ReqID},
					{Dir: DirOut, Src: cidL, Dst: netip.MustParsePrefix("0.0.0.0/0"), Priority: BlockPriority, Block: true},
					{Dir: DirOut, Src: cidL, Dst: cidL, Priority: PolicyPriority},
					{Dir: DirOut, Src: cidL, Dst: cidR, Priority: PolicyPriority, TmplSrc: ipL, TmplDst: ipR, TmplSPI: WireSPI(1, idL), ReqID: ReqID},
					{Dir: DirFwd, Src: cidR, Dst: cidL, Priority: PolicyPriority, TmplSrc: ipR, TmplDst: ipL, ReqID: ReqID},
				},
				OutSPI: map[NodeName]uint8{{"cluster2", "node1"}: 1}}},
		{name: "bad remotes are skipped",
			in: Input{Local: local, Keys: []Key{k3}, Current: 3, BlockCIDRs: []netip.Prefix{mesh}, Remotes: []NodeRef{
				remote,
				{Cluster: "cluster3", Name: "noboot", IP: netip.MustParseAddr("198.18.3.11"), PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.3.1.0/24")}},
				{Cluster: "cluster3", Name: "v6", IP: netip.MustParseAddr("fd00::3"), BootID: bootB},
				{Cluster: "cluster3", Name: "overlap", IP: netip.MustParseAddr("198.18.3.12"), BootID: bootB, PodCIDRs: []netip.Prefix{cidR}},
				remote,
			}},
			want: Desired{States: statesFor(k3), Policies: pols(3), OutSPI: map[NodeName]uint8{{"cluster2", "node1"}: 3}, Skipped: []Skipped{
				{NodeName{"cluster3", "noboot"}, `boot ID "" shorter than 36 characters`},
				{NodeName{"cluster3", "v6"}, "no IP of the local node's family (IP fd00::3)"},
				{NodeName{"cluster2", "node1"}, "listed twice (or same name as the local node)"},
				{NodeName{"cluster3", "overlap"}, "pod CIDR 10.2.1.0/24 already belongs to cluster2/node1"},
			}}},
		{name: "two remotes",
			in: Input{Local: local, Remotes: []NodeRef{remote, {Cluster: "cluster1", Name: "node2", IP: ipR2, BootID: bootR2, PodCIDRs: []netip.Prefix{cidQ}, EncryptionKey: 3}},
				Keys: []Key{k3}, Current: 3, BlockCIDRs: []netip.Prefix{mesh}},
			want: Desired{
				States: []State{
					gcmState(ipR, ipL, WireSPI(3, idR), derived(t, k3, ipR, ipL, bootB, bootA)),
					gcmState(ipR2, ipL, WireSPI(3, idR2), derived(t, k3, ipR2, ipL, bootR2, bootA)),
					gcmState(ipL, ipR2, WireSPI(3, idL), derived(t, k3, ipL, ipR2, bootA, bootR2)),
					gcmState(ipL, ipR, WireSPI(3, idL), derived(t, k3, ipL, ipR, bootA, bootB)),
				},
				Policies: []Policy{
					{Dir: DirIn, Src: cidQ, Dst: cidL, Priority: PolicyPriority, TmplSrc: ipR2, TmplDst: ipL, ReqID: ReqID},
					{Dir: DirIn, Src: cidR, Dst: cidL, Priority: PolicyPriority, TmplSrc: ipR, TmplDst: ipL, ReqID: ReqID},
					block,
					{Dir: DirOut, Src: cidL, Dst: cidL, Priority: PolicyPriority},
					{Dir: DirOut, Src: cidL, Dst: cidQ, Priority: PolicyPriority, TmplSrc: ipL, TmplDst: ipR2, TmplSPI: WireSPI(3, idL), ReqID: ReqID},
					{Dir: DirOut, Src: cidL, Dst: cidR, Priority: PolicyPriority, TmplSrc: ipL, TmplDst: ipR, TmplSPI: WireSPI(3, idL), ReqID: ReqID},
					{Dir: DirFwd, Src: cidQ, Dst: cidL, Priority: PolicyPriority, TmplSrc: ipR2, TmplDst: ipL, ReqID: ReqID},
					{Dir: DirFwd, Src: cidR, Dst: cidL, Priority: PolicyPriority, TmplSrc: ipR, TmplDst: ipL, ReqID: ReqID},
				},
				OutSPI: map[NodeName]uint8{{"cluster2", "node1"}: 3, {"cluster1", "node2"}: 3}}},
		{name: "current key missing", in: Input{Local: local, Keys: []Key{k3}, Current: 4}, wantErr: ErrNoKey},
		{name: "local without boot ID", in: Input{Local: NodeRef{Cluster: "c", Name: "n", IP: ipL}, Keys: []Key{k3}, Current: 3}, wantErr: ErrBootID},
		{name: "local without IP", in: Input{Local: NodeRef{Cluster: "c", Name: "n"}, Keys: []Key{k3}, Current: 3}, wantErr: ErrNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DesiredState(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v; want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Desired{}, "NodeIDs"), cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
				t.Errorf("desired (-want +got):\n%s", diff)
			}
		})
	}
}

// A's OUT states are B's IN states and the other way round, for every key.
func TestDesiredStateMirrors(t *testing.T) {
	a := NodeRef{Cluster: "cluster1", Name: "node1", IP: ipL, BootID: bootA, PodCIDRs: []netip.Prefix{cidL}}
	b := NodeRef{Cluster: "cluster2", Name: "node1", IP: ipR, BootID: bootB, PodCIDRs: []netip.Prefix{cidR}}
	keys := []Key{gcmKey(3, true, 0x33), {SPI: 4, PerNodePair: true, AuthAlgo: "hmac(sha256)", AuthKey: mustHex(32, 1), EncAlgo: "cbc(aes)", EncKey: mustHex(16, 2)}}
	da, err := DesiredState(Input{Local: a, Remotes: []NodeRef{b}, Keys: keys, Current: 4})
	if err != nil {
		t.Fatal(err)
	}
	db, err := DesiredState(Input{Local: b, Remotes: []NodeRef{a}, Keys: keys, Current: 4})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(da.States, db.States, cmpopts.SortSlices(func(x, y State) bool { return x.SPI < y.SPI }), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("A and B disagree on the pair's states:\n%s", diff)
	}
	b.BootID = "0f0e0d0c-0b0a-4908-8706-050403020100"
	da2, _ := DesiredState(Input{Local: a, Remotes: []NodeRef{b}, Keys: keys, Current: 4})
	for i := range da.States {
		if da.States[i].Key == da2.States[i].Key && da.States[i].AuthKey == da2.States[i].AuthKey {
			t.Errorf("state %v kept its key after B rebooted", da.States[i])
		}
	}
}

func TestMeasureFootprint(t *testing.T) {
	for _, n := range []int{0, 1, 3, 10} {
		fp, err := MeasureFootprint(n, false)
		if err != nil {
			t.Fatal(err)
		}
		rot, err := MeasureFootprint(n, true)
		if err != nil {
			t.Fatal(err)
		}
		// Documented: 2 states per remote (4 in rotation); 3 policies per remote + 1 block + 1 bypass.
		if fp.States != 2*n || rot.States != 4*n || fp.Policies != 3*n+2 || rot.Policies != fp.Policies {
			t.Errorf("n=%d: %+v rotating %+v", n, fp, rot)
		}
	}
}
