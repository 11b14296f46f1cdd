package ipsec

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// XFRM constants of strait's layout.
const (
	// ReqID marks every state and policy template strait installs; the
	// reconciler owns (and may delete) exactly the ESP states and policy
	// templates with this reqid, plus its block policies.
	ReqID = 0x5354 // "ST"
	// ReplayWindow is the anti-replay window of every state (with ESN on).
	ReplayWindow = 1024
	// PolicyPriority is the priority of the OUT/IN/FWD policies; lower wins.
	PolicyPriority = 0x100
	// BlockPriority is the priority of the catch-all OUT block policies: a
	// worse (higher) value than PolicyPriority, so a specific policy wins and
	// the block only catches what no specific policy covers.
	BlockPriority = 0x200
)

// WireSPI is the ESP SPI on the wire for key index key sent by the node with
// ID sender: sender<<16 | key<<12 (e.g. node 5, key 3 = 0x00053000). It puts
// the sender's node ID where Cilium's XFRM mark carries it, because strait has
// no BPF datapath that marks packets: the kernel looks IN states up by
// (destination, SPI) only, so the SPI itself must differ per sender for
// per-node-pair keys to coexist on one receiver. Always > 255 (IANA reserved).
func WireSPI(key uint8, sender uint16) uint32 {
	return uint32(sender)<<16 | uint32(key&0xF)<<12
}

// SplitWireSPI undoes WireSPI; ok is false for SPIs not of that form.
func SplitWireSPI(spi uint32) (key uint8, sender uint16, ok bool) {
	key, sender = uint8(spi>>12&0xF), uint16(spi>>16)
	return key, sender, spi&0xFFF == 0 && key != 0 && sender != 0
}

// NodeRef is a node as the IPsec layer needs it.
type NodeRef struct {
	Cluster string
	Name    string
	// IP is the node's underlay address: the tunnel endpoint of its states.
	IP netip.Addr
	// BootID is /proc/sys/kernel/random/boot_id of the node (36 characters);
	// required for per-node-pair keys.
	BootID string
	// PodCIDRs are the node's pod CIDRs; only those of IP's family are used.
	PodCIDRs []netip.Prefix
	// EncryptionKey is the key index the node advertises (schema.Node's
	// EncryptionKey): it has IN states for that index for every peer it
	// knows. 0 = not advertised.
	EncryptionKey uint8
}

func (n NodeRef) key() NodeName { return NodeName{Cluster: n.Cluster, Name: n.Name} }

// Dir is a policy direction.
type Dir uint8

// Policy directions (the kernel's XFRM_POLICY_IN/OUT/FWD).
const (
	DirIn Dir = iota
	DirOut
	DirFwd
)

func (d Dir) String() string {
	switch d {
	case DirIn:
		return "in"
	case DirOut:
		return "out"
	case DirFwd:
		return "fwd"
	}
	return fmt.Sprintf("dir(%d)", uint8(d))
}

// State is one ESP tunnel-mode XFRM state (ESN on, ReplayWindow). Keys are
// strings of raw bytes so that State is comparable. Its kernel identity is
// (Dst, SPI).
type State struct {
	Src, Dst netip.Addr
	SPI      uint32 // wire SPI
	ReqID    uint32
	// AEAD
	Algo    string
	Key     string
	ICVBits int
	// legacy
	AuthAlgo      string
	AuthKey       string
	AuthTruncBits int
	EncAlgo       string
	EncKey        string
}

// String prints the state without key bytes.
func (s State) String() string {
	algo := s.Algo
	if algo == "" {
		algo = s.AuthAlgo + "+" + s.EncAlgo
	}
	return fmt.Sprintf("state %v->%v spi 0x%08x reqid 0x%x %s", s.Src, s.Dst, s.SPI, s.ReqID, algo)
}

// Policy is one XFRM policy: a selector (Src, Dst, Dir, Priority) and either
// a BLOCK action or one ESP tunnel template TmplSrc->TmplDst with ReqID and
// (OUT only) TmplSPI. Its kernel identity is (Dir, Src, Dst, Priority).
type Policy struct {
	Dir      Dir
	Src, Dst netip.Prefix
	Priority uint32
	Block    bool
	TmplSrc  netip.Addr
	TmplDst  netip.Addr
	TmplSPI  uint32 // 0 = any SPI (IN/FWD)
	ReqID    uint32
}

func (p Policy) String() string {
	if !p.Block && !p.TmplDst.IsValid() {
		return fmt.Sprintf("policy %s %v->%v prio %d allow", p.Dir, p.Src, p.Dst, p.Priority)
	}
	if p.Block {
		return fmt.Sprintf("policy %s %v->%v prio %d block", p.Dir, p.Src, p.Dst, p.Priority)
	}
	return fmt.Sprintf("policy %s %v->%v prio %d tmpl %v->%v spi 0x%08x reqid 0x%x", p.Dir, p.Src, p.Dst, p.Priority, p.TmplSrc, p.TmplDst, p.TmplSPI, p.ReqID)
}

type policyID struct {
	dir      Dir
	src, dst netip.Prefix
	priority uint32
}

func (p Policy) id() policyID { return policyID{p.Dir, p.Src, p.Dst, p.Priority} }

type stateID struct {
	dst netip.Addr
	spi uint32
}

func (s State) id() stateID { return stateID{s.Dst, s.SPI} }

// Skipped is a remote node left out of the desired state, with the reason.
type Skipped struct {
	Node   NodeName
	Reason string
}

// Desired is the XFRM configuration of one node: sorted states (by Dst, SPI)
// and policies (by Dir, Src, Dst, Priority), plus the remotes left out.
type Desired struct {
	States   []State
	Policies []Policy
	Skipped  []Skipped
	// OutSPI is the key index used towards each remote (by node name).
	OutSPI map[NodeName]uint8
	// NodeIDs are the IDs assigned (AssignNodeIDs) to the local and remote nodes.
	NodeIDs map[NodeName]uint16
}

// Input is what DesiredState needs.
type Input struct {
	Local   NodeRef
	Remotes []NodeRef
	// Keys are the live keys: the current one and, during a rotation, the
	// previous ones not yet retired. Every one gets IN and OUT states.
	Keys []Key
	// Current is the local node's current key index (must be in Keys).
	Current uint8
	// BlockCIDRs are the destinations of the catch-all OUT block policies
	// (one per local pod CIDR and block CIDR of the same family): pod
	// traffic to them that no specific policy encrypts is dropped, never
	// sent in plaintext. Empty: 0.0.0.0/0 (or ::/0), i.e. local pods reach
	// nothing outside their node except through an encrypted policy. The
	// agent passes the mesh's pod supernet(s).
	BlockCIDRs []netip.Prefix
}

// DesiredState computes the XFRM states and policies of in.Local. It is pure.
//
// For each remote R (same IP family as the local node L) and each live key k:
// an OUT state L->R with SPI WireSPI(k, id(L)) and key derived for (L, R),
// and an IN state R->L with SPI WireSPI(k, id(R)) and key derived for (R, L):
// 2 states per remote and live key, so 2 per remote normally and 4 during a
// rotation. For each local pod CIDR lc and remote pod CIDR rc: an OUT policy
// lc->rc with template L->R carrying the SPI of the key index OutKey chooses
// for R (none while R advertises no usable key index), an IN
// and a FWD policy rc->lc with template R->L (any SPI; required, so plaintext
// from a remote pod is refused). And per local pod CIDR and block CIDR one
// OUT BLOCK policy at BlockPriority.
//
// Remotes without an IP of L's family, without a valid boot ID (for a '+'
// key), listed twice, or whose pod CIDR another remote already claims, are
// left out and listed in Skipped. Errors: ErrNoKey (Current not in Keys),
// ErrNode/ErrBootID (the local node itself is unusable), ErrTooManyNodes.
func DesiredState(in Input) (Desired, error) {
	var d Desired
	local := in.Local
	if !local.IP.IsValid() {
		return d, fmt.Errorf("local node %s: no IP: %w", local.key(), ErrNode)
	}
	keys := slices.Clone(in.Keys)
	slices.SortFunc(keys, func(a, b Key) int { return cmp.Compare(a.SPI, b.SPI) })
	live := map[uint8]Key{}
	needBoot := false
	for _, k := range keys {
		live[k.SPI] = k
		needBoot = needBoot || k.PerNodePair
	}
	if _, ok := live[in.Current]; !ok {
		return d, fmt.Errorf("key index %d: %w", in.Current, ErrNoKey)
	}
	if needBoot && len(local.BootID) < BootIDLen {
		return d, fmt.Errorf("local node %s: boot ID %q: %w", local.key(), local.BootID, ErrBootID)
	}
	family := local.IP.Unmap().Is4()
	sameFamily := func(p netip.Prefix) bool { return p.IsValid() && p.Addr().Unmap().Is4() == family }

	names := []NodeName{local.key()}
	seen := map[NodeName]bool{local.key(): true}
	var remotes []NodeRef
	for _, r := range in.Remotes {
		switch {
		case seen[r.key()]:
			d.Skipped = append(d.Skipped, Skipped{r.key(), "listed twice (or same name as the local node)"})
			continue
		case !r.IP.IsValid() || r.IP.Unmap().Is4() != family:
			d.Skipped = append(d.Skipped, Skipped{r.key(), fmt.Sprintf("no IP of the local node's family (IP %v)", r.IP)})
			continue
		case r.IP.Unmap() == local.IP.Unmap():
			d.Skipped = append(d.Skipped, Skipped{r.key(), fmt.Sprintf("same IP %v as the local node", r.IP)})
			continue
		case needBoot && len(r.BootID) < BootIDLen:
			d.Skipped = append(d.Skipped, Skipped{r.key(), fmt.Sprintf("boot ID %q shorter than %d characters", r.BootID, BootIDLen)})
			continue
		}
		seen[r.key()] = true
		names = append(names, r.key())
		remotes = append(remotes, r)
	}
	ids, err := AssignNodeIDs(names)
	if err != nil {
		return d, err
	}
	d.NodeIDs = ids
	d.OutSPI = map[NodeName]uint8{}
	slices.SortFunc(remotes, func(a, b NodeRef) int {
		return cmp.Or(cmp.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Name, b.Name))
	})

	var localCIDRs []netip.Prefix
	for _, c := range local.PodCIDRs {
		if sameFamily(c) {
			localCIDRs = append(localCIDRs, c.Masked())
		}
	}
	lip := local.IP.Unmap()
	lid := ids[local.key()]
	claimed := map[netip.Prefix]NodeName{}
	for _, c := range localCIDRs {
		claimed[c] = local.key()
	}
	for _, r := range remotes {
		rip := r.IP.Unmap()
		rid := ids[r.key()]
		var cidrs []netip.Prefix
		var conflict string
		for _, c := range r.PodCIDRs {
			if !sameFamily(c) {
				continue
			}
			c = c.Masked()
			if owner, taken := claimed[c]; taken {
				conflict = fmt.Sprintf("pod CIDR %v already belongs to %s", c, owner)
				break
			}
			cidrs = append(cidrs, c)
		}
		if conflict != "" {
			d.Skipped = append(d.Skipped, Skipped{r.key(), conflict})
			continue
		}
		for _, c := range cidrs {
			claimed[c] = r.key()
		}
		var states []State
		var keyErr error
		for _, k := range keys {
			out, err := pairKey(k, lip, rip, local.BootID, r.BootID)
			if err != nil {
				keyErr = err
				break
			}
			inKey, err := pairKey(k, rip, lip, r.BootID, local.BootID)
			if err != nil {
				keyErr = err
				break
			}
			states = append(states, newState(lip, rip, WireSPI(k.SPI, lid), out), newState(rip, lip, WireSPI(k.SPI, rid), inKey))
		}
		if keyErr != nil {
			d.Skipped = append(d.Skipped, Skipped{r.key(), keyErr.Error()})
			continue
		}
		d.States = append(d.States, states...)
		outSPI := OutKey(in.Current, live, r.EncryptionKey)
		d.OutSPI[r.key()] = outSPI
		for _, lc := range localCIDRs {
			for _, rc := range cidrs {
				if outSPI != 0 {
					d.Policies = append(d.Policies,
						Policy{Dir: DirOut, Src: lc, Dst: rc, Priority: PolicyPriority, TmplSrc: lip, TmplDst: rip, TmplSPI: WireSPI(outSPI, lid), ReqID: ReqID})
				}
				d.Policies = append(d.Policies,
					Policy{Dir: DirIn, Src: rc, Dst: lc, Priority: PolicyPriority, TmplSrc: rip, TmplDst: lip, ReqID: ReqID},
					Policy{Dir: DirFwd, Src: rc, Dst: lc, Priority: PolicyPriority, TmplSrc: rip, TmplDst: lip, ReqID: ReqID},
				)
			}
		}
	}
	// Bypass: pod traffic that stays on this node (pod to pod, node to its
	// pods, ICMP errors from the node's gateway address) is not for IPsec
	// and must not hit the block policy.
	for _, lc := range localCIDRs {
		for _, lc2 := range localCIDRs {
			d.Policies = append(d.Policies, Policy{Dir: DirOut, Src: lc, Dst: lc2, Priority: PolicyPriority})
		}
	}
	block := in.BlockCIDRs
	if len(block) == 0 {
		block = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	for _, lc := range localCIDRs {
		for _, b := range block {
			if sameFamily(b) {
				d.Policies = append(d.Policies, Policy{Dir: DirOut, Src: lc, Dst: b.Masked(), Priority: BlockPriority, Block: true})
			}
		}
	}
	sortStates(d.States)
	sortPolicies(d.Policies)
	d.Policies = slices.CompactFunc(d.Policies, func(a, b Policy) bool { return a == b })
	return d, nil
}

// OutKey is the key index a node uses towards a peer that advertises
// advertised, given its own current index and its live keys; 0 means "send
// nothing yet" (no OUT policy: the block policy drops the traffic).
//
//   - the peer advertises a live key: that key (the peer advertises an index
//     only once it has IN states for it, so this never sends with an SPI the
//     peer cannot decrypt);
//   - the peer is one rotation ahead (advertises NextSPI(current), a key this
//     node has not loaded yet): current, which the peer keeps as a live key
//     for its rotation delay;
//   - the peer advertises nothing (0) or anything else: 0.
func OutKey(current uint8, live map[uint8]Key, advertised uint8) uint8 {
	if advertised == 0 {
		return 0
	}
	if _, ok := live[advertised]; ok {
		return advertised
	}
	if NextSPI(current) == advertised {
		return current
	}
	return 0
}

func newState(src, dst netip.Addr, spi uint32, k Key) State {
	s := State{Src: src, Dst: dst, SPI: spi, ReqID: ReqID}
	if k.AEAD() {
		s.Algo, s.Key, s.ICVBits = k.Algo, string(k.Key), k.ICVBits
	} else {
		s.AuthAlgo, s.AuthKey, s.AuthTruncBits = k.AuthAlgo, string(k.AuthKey), AuthTruncBits(k.AuthAlgo)
		s.EncAlgo, s.EncKey = k.EncAlgo, string(k.EncKey)
	}
	return s
}

func sortStates(s []State) {
	slices.SortFunc(s, func(a, b State) int {
		return cmp.Or(a.Dst.Compare(b.Dst), cmp.Compare(a.SPI, b.SPI))
	})
}

func comparePolicy(a, b Policy) int {
	return cmp.Or(cmp.Compare(a.Dir, b.Dir), a.Src.Addr().Compare(b.Src.Addr()), cmp.Compare(a.Src.Bits(), b.Src.Bits()),
		a.Dst.Addr().Compare(b.Dst.Addr()), cmp.Compare(a.Dst.Bits(), b.Dst.Bits()), cmp.Compare(a.Priority, b.Priority))
}

func sortPolicies(p []Policy) { slices.SortFunc(p, comparePolicy) }
