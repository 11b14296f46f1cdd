package ipsec

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/strait-net/strait/internal/testkit"
	"github.com/vishvananda/netlink"
)

// policiesOnly is d without states: this host's kernel has XFRM policies but
// no ESP, and policies may name states that do not exist (yet).
func policiesOnly(d Desired) Desired { d.States = nil; return d }

// TestNetlinkPolicies runs the Reconciler's policy handling against the real
// kernel in a fresh network namespace: block first, idempotence, in-place
// template replacement, removal, foreign policies untouched.
func TestNetlinkPolicies(t *testing.T) {
	needRoot(t)
	ctx := testkit.Context(t, 0)
	n := newNS(t, "p")
	k := NewNetlinkKernel(n.h)
	rec := NewReconciler(k, testkit.Logger(t))
	r := NodeRef{Cluster: "cluster2", Name: "node1", IP: ipR, BootID: bootB, PodCIDRs: []netip.Prefix{cidR}, EncryptionKey: 3}
	q := NodeRef{Cluster: "cluster1", Name: "node2", IP: ipR2, BootID: bootR2, PodCIDRs: []netip.Prefix{cidQ}, EncryptionKey: 3}
	k3, k4 := gcmKey(3, true, 0x33), gcmKey(4, true, 0x44)

	foreign := &netlink.XfrmPolicy{Src: netOf(netip.MustParsePrefix("192.168.0.0/16")), Dst: netOf(netip.MustParsePrefix("192.168.1.0/24")),
		Dir: netlink.XFRM_DIR_OUT, Priority: 7, Tmpls: []netlink.XfrmPolicyTmpl{{Src: ipOf(ipL), Dst: ipOf(ipR), Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TUNNEL, Reqid: 1}}}
	if err := n.h.XfrmPolicyAdd(foreign); err != nil {
		t.Fatal(err)
	}
	owned := func() []Policy {
		t.Helper()
		all, err := k.Policies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []Policy
		for _, p := range all {
			if ownsPolicy(p) {
				out = append(out, p)
			}
		}
		sortPolicies(out)
		return out
	}
	eq := cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})
	steps := []struct {
		name string
		d    Desired
		want Stats
	}{
		{"two remotes", policiesOnly(desiredFor(t, []NodeRef{r, q}, []Key{k3}, 3)), Stats{PoliciesAdded: 8}},
		{"again", policiesOnly(desiredFor(t, []NodeRef{r, q}, []Key{k3}, 3)), Stats{}},
		{"peer r advertises 4", policiesOnly(desiredFor(t, []NodeRef{func() NodeRef { x := r; x.EncryptionKey = 4; return x }(), q}, []Key{k3, k4}, 4)), Stats{PoliciesUpdated: 1}},
		{"q gone", policiesOnly(desiredFor(t, []NodeRef{r}, []Key{k3}, 3)), Stats{PoliciesUpdated: 1, PoliciesRemoved: 3}},
		{"nothing", Desired{}, Stats{PoliciesRemoved: 5}},
	}
	for _, step := range steps {
		st, err := rec.Reconcile(ctx, step.d)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if st != step.want {
			t.Errorf("%s: stats %+v; want %+v", step.name, st, step.want)
		}
		if diff := cmp.Diff(step.d.Policies, owned(), eq, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: kernel policies (-want +got):\n%s", step.name, diff)
		}
	}
	all, _ := n.h.XfrmPolicyList(netlink.FAMILY_V4)
	if len(all) != 1 || all[0].Priority != 7 {
		t.Errorf("foreign policy not kept alone: %v", all)
	}
}

// TestNetlinkBlockPolicyDrops shows the catch-all block policy at work in the
// real kernel: a pod-sourced packet to the mesh with no specific policy is
// refused (EPERM), and goes out once the block is gone.
func TestNetlinkBlockPolicyDrops(t *testing.T) {
	needRoot(t)
	ctx := testkit.Context(t, 0)
	n := newNS(t, "b")
	m := newNS(t, "c")
	link(t, n, "sipb0", netip.MustParsePrefix("10.1.1.1/24"), m, "sipb1", netip.MustParsePrefix("10.1.1.254/24"))
	route(t, n, netip.MustParsePrefix("10.0.0.0/8"), netip.MustParseAddr("10.1.1.254"))
	rec := NewReconciler(NewNetlinkKernel(n.h), testkit.Logger(t))
	d := Desired{Policies: []Policy{{Dir: DirOut, Src: cidL, Dst: mesh, Priority: BlockPriority, Block: true}}}
	send := func() error {
		return n.do(func() error {
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 1, 1, 1)}, &net.UDPAddr{IP: net.IPv4(10, 9, 9, 9), Port: 9})
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("plaintext"))
			return err
		})
	}
	if _, err := rec.Reconcile(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := send(); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("send with block policy: %v; want EPERM", err)
	}
	if _, err := rec.Reconcile(ctx, Desired{}); err != nil {
		t.Fatal(err)
	}
	if err := send(); err != nil {
		t.Fatalf("send without block policy: %v", err)
	}
}

// TestCheckKernelInNetns runs the ESP probe in a fresh namespace. On a kernel
// without ESP it must say so (ErrNotSupported naming ESP); either way it must
// leave no state behind.
func TestCheckKernelInNetns(t *testing.T) {
	needRoot(t)
	n := newNS(t, "k")
	err := NewNetlinkKernel(n.h).Check()
	if err != nil {
		if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "ESP") {
			t.Fatalf("Check: %v; want ErrNotSupported naming ESP", err)
		}
		t.Logf("this kernel: %v", err)
	}
	states, lerr := n.h.XfrmStateList(netlink.FAMILY_ALL)
	if lerr != nil {
		t.Fatal(lerr)
	}
	if len(states) != 0 {
		t.Errorf("probe left %d states", len(states))
	}
	if hasESP(t) != (err == nil) {
		t.Errorf("Check() = %v but an ESP state add in another namespace says ESP=%v", err, hasESP(t))
	}
}

// hasESP tries, independently of Check, to add an ESP state with `ip xfrm`
// semantics through netlink in a scratch namespace.
func hasESP(t *testing.T) bool {
	t.Helper()
	n := newNS(t, "e")
	err := n.h.XfrmStateAdd(&netlink.XfrmState{Src: ipOf(ipL), Dst: ipOf(ipR), Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TUNNEL, Spi: 0x1000,
		Aead: &netlink.XfrmStateAlgo{Name: "rfc4106(gcm(aes))", Key: make([]byte, 20), ICVLen: 128}})
	return err == nil
}
