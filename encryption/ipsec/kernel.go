package ipsec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kernel is the narrow door to the kernel's XFRM tables the Reconciler uses.
// NetlinkKernel is the real one; MemKernel an in-memory twin.
//
// States lists every ESP tunnel-mode state it can represent (no mark, no
// if_id); Policies every policy it can represent (at most one ESP tunnel
// template, no mark, no if_id). The Reconciler itself decides which it owns.
// AddState fails (errors.Is(err, os.ErrExist) / unix.EEXIST) when a state with
// the same (Dst, SPI) exists. UpdatePolicy adds a policy or atomically
// replaces the one with the same (Dir, Src, Dst, Priority). Deletes fail with
// unix.ENOENT when the object is absent.
type Kernel interface {
	States(ctx context.Context) ([]State, error)
	AddState(ctx context.Context, s State) error
	DeleteState(ctx context.Context, s State) error
	Policies(ctx context.Context) ([]Policy, error)
	UpdatePolicy(ctx context.Context, p Policy) error
	DeletePolicy(ctx context.Context, p Policy) error
}

// NetlinkKernel is Kernel over vishvananda/netlink, bound to one network
// namespace by its handle.
type NetlinkKernel struct {
	h *netlink.Handle
}

// NewNetlinkKernel uses h (netlink.NewHandleAt for another namespace); nil
// means the calling thread's network namespace.
func NewNetlinkKernel(h *netlink.Handle) *NetlinkKernel {
	if h == nil {
		h = &netlink.Handle{}
	}
	return &NetlinkKernel{h: h}
}

func ipOf(a netip.Addr) net.IP { return net.IP(a.Unmap().AsSlice()) }

func netOf(p netip.Prefix) *net.IPNet {
	a := p.Addr().Unmap()
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func prefixOf(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addrOf(n.IP), ones).Masked()
}

func toXfrmState(s State) *netlink.XfrmState {
	x := &netlink.XfrmState{
		Src: ipOf(s.Src), Dst: ipOf(s.Dst),
		Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TUNNEL,
		Spi: int(s.SPI), Reqid: int(s.ReqID),
		ReplayWindow: ReplayWindow, ESN: true,
	}
	if s.Algo != "" {
		x.Aead = &netlink.XfrmStateAlgo{Name: s.Algo, Key: []byte(s.Key), ICVLen: s.ICVBits}
	} else {
		x.Auth = &netlink.XfrmStateAlgo{Name: s.AuthAlgo, Key: []byte(s.AuthKey), TruncateLen: s.AuthTruncBits}
		x.Crypt = &netlink.XfrmStateAlgo{Name: s.EncAlgo, Key: []byte(s.EncKey)}
	}
	return x
}

func fromXfrmState(x netlink.XfrmState) (State, bool) {
	if x.Proto != netlink.XFRM_PROTO_ESP || x.Mode != netlink.XFRM_MODE_TUNNEL || x.Mark != nil || x.Ifid != 0 {
		return State{}, false
	}
	s := State{Src: addrOf(x.Src), Dst: addrOf(x.Dst), SPI: uint32(x.Spi), ReqID: uint32(x.Reqid)}
	if x.Aead != nil {
		s.Algo, s.Key, s.ICVBits = x.Aead.Name, string(x.Aead.Key), x.Aead.ICVLen
	}
	if x.Auth != nil {
		s.AuthAlgo, s.AuthKey, s.AuthTruncBits = x.Auth.Name, string(x.Auth.Key), x.Auth.TruncateLen
	}
	if x.Crypt != nil {
		s.EncAlgo, s.EncKey = x.Crypt.Name, string(x.Crypt.Key)
	}
	return s, true
}

func toXfrmPolicy(p Policy) *netlink.XfrmPolicy {
	x := &netlink.XfrmPolicy{
		Src: netOf(p.Src), Dst: netOf(p.Dst), Dir: netlink.Dir(p.Dir), Priority: int(p.Priority),
	}
	if p.Block {
		x.Action = netlink.XFRM_POLICY_BLOCK
		return x
	}
	if !p.TmplDst.IsValid() {
		return x // bypass: allow without transformation
	}
	x.Tmpls = []netlink.XfrmPolicyTmpl{{
		Src: ipOf(p.TmplSrc), Dst: ipOf(p.TmplDst),
		Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TUNNEL,
		Spi: int(p.TmplSPI), Reqid: int(p.ReqID),
	}}
	return x
}

func fromXfrmPolicy(x netlink.XfrmPolicy) (Policy, bool) {
	if x.Mark != nil || x.Ifid != 0 || x.Ifindex != 0 || x.Proto != 0 || x.SrcPort != 0 || x.DstPort != 0 || len(x.Tmpls) > 1 || x.Dir > netlink.XFRM_DIR_FWD {
		return Policy{}, false
	}
	p := Policy{Dir: Dir(x.Dir), Src: prefixOf(x.Src), Dst: prefixOf(x.Dst), Priority: uint32(x.Priority), Block: x.Action == netlink.XFRM_POLICY_BLOCK}
	if len(x.Tmpls) == 1 {
		t := x.Tmpls[0]
		if t.Proto != netlink.XFRM_PROTO_ESP || t.Mode != netlink.XFRM_MODE_TUNNEL || t.Optional != 0 {
			return Policy{}, false
		}
		p.TmplSrc, p.TmplDst, p.TmplSPI, p.ReqID = addrOf(t.Src), addrOf(t.Dst), uint32(t.Spi), uint32(t.Reqid)
	}
	return p, true
}

// States implements Kernel.
func (k *NetlinkKernel) States(ctx context.Context) ([]State, error) {
	xs, err := k.h.XfrmStateList(netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list xfrm states: %w", err)
	}
	var out []State
	for _, x := range xs {
		if s, ok := fromXfrmState(x); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// AddState implements Kernel.
func (k *NetlinkKernel) AddState(ctx context.Context, s State) error {
	if err := k.h.XfrmStateAdd(toXfrmState(s)); err != nil {
		return fmt.Errorf("add %s: %w", s, err)
	}
	return nil
}

// DeleteState implements Kernel.
func (k *NetlinkKernel) DeleteState(ctx context.Context, s State) error {
	x := &netlink.XfrmState{Src: ipOf(s.Src), Dst: ipOf(s.Dst), Proto: netlink.XFRM_PROTO_ESP, Spi: int(s.SPI)}
	if err := k.h.XfrmStateDel(x); err != nil {
		return fmt.Errorf("delete %s: %w", s, err)
	}
	return nil
}

// Policies implements Kernel.
func (k *NetlinkKernel) Policies(ctx context.Context) ([]Policy, error) {
	var out []Policy
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		xs, err := k.h.XfrmPolicyList(fam)
		if err != nil {
			return nil, fmt.Errorf("list xfrm policies: %w", err)
		}
		for _, x := range xs {
			if p, ok := fromXfrmPolicy(x); ok {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// UpdatePolicy implements Kernel (XFRM_MSG_UPDPOLICY: add or replace in place).
func (k *NetlinkKernel) UpdatePolicy(ctx context.Context, p Policy) error {
	if err := k.h.XfrmPolicyUpdate(toXfrmPolicy(p)); err != nil {
		return fmt.Errorf("update %s: %w", p, err)
	}
	return nil
}

// DeletePolicy implements Kernel.
func (k *NetlinkKernel) DeletePolicy(ctx context.Context, p Policy) error {
	if err := k.h.XfrmPolicyDel(toXfrmPolicy(p)); err != nil {
		return fmt.Errorf("delete %s: %w", p, err)
	}
	return nil
}

// checkState is the throw-away state CheckKernel adds: TEST-NET-1 addresses
// and a mark no packet carries, so it can never match traffic.
func checkState() *netlink.XfrmState {
	return &netlink.XfrmState{
		Src: net.IPv4(192, 0, 2, 254).To4(), Dst: net.IPv4(192, 0, 2, 255).To4(),
		Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TUNNEL,
		Spi: 0x5354FFFF, Reqid: ReqID, ReplayWindow: ReplayWindow, ESN: true,
		Mark: &netlink.XfrmMark{Value: 0x5354FFFF, Mask: 0xFFFFFFFF},
		Aead: &netlink.XfrmStateAlgo{Name: "rfc4106(gcm(aes))", Key: make([]byte, 20), ICVLen: 128},
	}
}

// Check adds and deletes a throw-away ESP state with rfc4106(gcm(aes)) in
// the handle's namespace; see CheckKernel.
func (k *NetlinkKernel) Check() error {
	if _, err := k.h.XfrmPolicyList(netlink.FAMILY_V4); err != nil {
		return fmt.Errorf("%w: xfrm netlink: %w", ErrNotSupported, err)
	}
	st := checkState()
	if err := k.h.XfrmStateAdd(st); err != nil {
		if errors.Is(err, unix.EEXIST) {
			// Left over by a crashed check: delete it and try once more.
			_ = k.h.XfrmStateDel(st)
			err = k.h.XfrmStateAdd(st)
		}
		if err != nil {
			return fmt.Errorf("%w: add an ESP state with rfc4106(gcm(aes)): %w (kernel without ESP/AEAD: CONFIG_INET_ESP, CONFIG_CRYPTO_GCM?)", ErrNotSupported, err)
		}
	}
	if err := k.h.XfrmStateDel(st); err != nil {
		return fmt.Errorf("delete the probe ESP state: %w", err)
	}
	return nil
}

// CheckKernel reports whether the kernel of the calling thread's network
// namespace can do strait's IPsec: XFRM netlink answers and an ESP state
// with rfc4106(gcm(aes)) can be added (it adds and deletes one throw-away
// state that no packet can match). Error: ErrNotSupported with the kernel's
// answer; the agent must then refuse --encryption=ipsec before configuring
// anything.
func CheckKernel() error { return NewNetlinkKernel(nil).Check() }
