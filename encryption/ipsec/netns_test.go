package ipsec

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Test network namespaces and interfaces are named "sip" + pid + a suffix,
// created by the test and deleted in t.Cleanup.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and XFRM policies")
	}
}

type testNS struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
}

func newNS(t *testing.T, suffix string) *testNS {
	t.Helper()
	name := fmt.Sprintf("sip%d%s", os.Getpid(), suffix)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	named := true
	ns, err := netns.NewNamed(name)
	if err != nil {
		// No writable /run/netns (the kernel VM's minimal root): an unnamed
		// namespace, which disappears with its last handle.
		t.Logf("named netns %s: %v; using an unnamed one", name, err)
		named = false
		ns, err = netns.New()
	}
	if setErr := netns.Set(orig); setErr != nil {
		panic(fmt.Sprintf("cannot return to the original netns: %v", setErr))
	}
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if named {
			if err := netns.DeleteNamed(name); err != nil {
				t.Errorf("delete netns %s: %v", name, err)
			}
		}
	})
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return &testNS{name: name, ns: ns, h: h}
}

// do runs fn on an OS thread inside the namespace. Sockets fn opens stay in
// that namespace after it returns.
func (n *testNS) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(n.ns); err != nil {
			errc <- err
			return
		}
		err = fn()
		if setErr := netns.Set(orig); setErr != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- errors.Join(err, setErr)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// link creates a veth pair a (in n, address addrA) <-> b (in m, address addrB), both up.
func link(t *testing.T, n *testNS, a string, addrA netip.Prefix, m *testNS, b string, addrB netip.Prefix) {
	t.Helper()
	va := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b, PeerNamespace: netlink.NsFd(int(m.ns))}
	if err := n.h.LinkAdd(va); err != nil {
		t.Fatalf("add veth %s/%s: %v", a, b, err)
	}
	for _, side := range []struct {
		ns   *testNS
		name string
		addr netip.Prefix
	}{{n, a, addrA}, {m, b, addrB}} {
		l, err := side.ns.h.LinkByName(side.name)
		if err != nil {
			t.Fatal(err)
		}
		if side.addr.IsValid() {
			if err := side.ns.h.AddrAdd(l, &netlink.Addr{IPNet: netOf(side.addr)}); err != nil {
				t.Fatalf("address %v on %s: %v", side.addr, side.name, err)
			}
		}
		if err := side.ns.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

func route(t *testing.T, n *testNS, dst netip.Prefix, via netip.Addr) {
	t.Helper()
	if err := n.h.RouteAdd(&netlink.Route{Dst: netOf(dst), Gw: net.IP(via.AsSlice())}); err != nil {
		t.Fatalf("route %v via %v in %s: %v", dst, via, n.name, err)
	}
}

func sysctl(t *testing.T, n *testNS, path, value string) {
	t.Helper()
	if err := n.do(func() error { return os.WriteFile(path, []byte(value), 0o644) }); err != nil {
		t.Fatalf("%s in %s: %v", path, n.name, err)
	}
}
