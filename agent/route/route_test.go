package route

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/strait-net/strait/internal/testkit"
)

func routes(ss ...string) []Route {
	var out []Route
	for _, p := range pfxs(ss...) {
		out = append(out, Route{Dst: p})
	}
	return out
}

func pfxs(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// foreignRoute is a route some other owner put into the table.
func foreignRoute(dst string, idx int) *netlink.Route {
	_, n, _ := net.ParseCIDR(dst)
	return &netlink.Route{LinkIndex: idx, Dst: n, Scope: netlink.SCOPE_LINK, Protocol: unix.RTPROT_BOOT, Table: unix.RT_TABLE_MAIN}
}

// step is one Set call and the table expected after it.
type step struct {
	name  string
	dsts  []Route
	dev   Device
	prune bool
	want  []string // "dst mtu M ours|foreign"
	stats Stats
	err   error
}

// render lists the routes of devs as "dst [via gw] mtu M proto P" lines
// (device indexes differ between the twin and a namespace, so they are
// left out; the kernel's own connected routes too).
func render(t *testing.T, nl Netlink, devs ...int) []string {
	t.Helper()
	rs, err := nl.RouteList()
	if err != nil {
		t.Fatal(err)
	}
	var keep []netlink.Route
	for _, r := range rs {
		for _, d := range devs {
			if r.LinkIndex == d && r.Dst != nil && r.Protocol != unix.RTPROT_KERNEL {
				keep = append(keep, r)
			}
		}
	}
	var out []string
	for _, r := range keep {
		dst, _ := dstOf(r)
		via := ""
		if gw, ok := netip.AddrFromSlice(r.Gw); ok {
			via = " via " + gw.Unmap().String()
		}
		out = append(out, fmt.Sprintf("%s%s mtu %d proto %d", dst, via, r.MTU, int(r.Protocol)))
	}
	slices.Sort(out)
	return out
}

// steps is the state sequence both the twin and the kernel go through. dev
// and dev2 are filled in by the caller.
func steps(dev, dev2 int) []step {
	d := Device{Index: dev, MTU: 1420}
	return []step{
		{name: "add two", dsts: routes("10.2.1.0/24", "10.2.2.0/24"), dev: d, prune: false,
			want:  []string{"10.2.1.0/24 mtu 1420 proto 200", "10.2.2.0/24 mtu 1420 proto 200", "10.9.0.0/16 mtu 0 proto 3"},
			stats: Stats{Added: 2}},
		{name: "same again: no write", dsts: routes("10.2.2.0/24", "10.2.1.0/24"), dev: d, prune: true,
			want:  []string{"10.2.1.0/24 mtu 1420 proto 200", "10.2.2.0/24 mtu 1420 proto 200", "10.9.0.0/16 mtu 0 proto 3"},
			stats: Stats{Unchanged: 2}},
		{name: "without prune nothing goes", dsts: routes("10.2.1.0/24"), dev: d, prune: false,
			want:  []string{"10.2.1.0/24 mtu 1420 proto 200", "10.2.2.0/24 mtu 1420 proto 200", "10.9.0.0/16 mtu 0 proto 3"},
			stats: Stats{Unchanged: 1}},
		{name: "prune, never the foreign route", dsts: routes("10.2.1.0/24"), dev: d, prune: true,
			want:  []string{"10.2.1.0/24 mtu 1420 proto 200", "10.9.0.0/16 mtu 0 proto 3"},
			stats: Stats{Unchanged: 1, Removed: 1}},
		{name: "MTU change replaces", dsts: routes("10.2.1.0/24", "10.3.0.0/16"), dev: Device{Index: dev, MTU: 1380}, prune: true,
			want:  []string{"10.2.1.0/24 mtu 1380 proto 200", "10.3.0.0/16 mtu 1380 proto 200", "10.9.0.0/16 mtu 0 proto 3"},
			stats: Stats{Replaced: 1, Added: 1}},
		{name: "device change replaces", dsts: routes("10.2.1.0/24", "10.3.0.0/16"), dev: Device{Index: dev2, MTU: 1380}, prune: true,
			want:  []string{"10.2.1.0/24 mtu 1380 proto 200", "10.3.0.0/16 mtu 1380 proto 200", "10.9.0.0/16 mtu 0 proto 3"},
			stats: Stats{Replaced: 2}},
		{name: "gateway replaces a direct route", dsts: []Route{{Dst: netip.MustParsePrefix("10.2.1.0/24"), Via: netip.MustParseAddr("198.18.9.2")}, {Dst: netip.MustParsePrefix("10.3.0.0/16")}}, dev: Device{Index: dev2, MTU: 1380}, prune: true,
			want:  []string{"10.2.1.0/24 via 198.18.9.2 mtu 1380 proto 200", "10.3.0.0/16 mtu 1380 proto 200", "10.9.0.0/16 mtu 0 proto 3"},
			stats: Stats{Replaced: 1, Unchanged: 1}},
		{name: "gateway kept", dsts: []Route{{Dst: netip.MustParsePrefix("10.2.1.0/24"), Via: netip.MustParseAddr("198.18.9.2")}, {Dst: netip.MustParsePrefix("10.3.0.0/16")}}, dev: Device{Index: dev2, MTU: 1380}, prune: true,
			want:  []string{"10.2.1.0/24 via 198.18.9.2 mtu 1380 proto 200", "10.3.0.0/16 mtu 1380 proto 200", "10.9.0.0/16 mtu 0 proto 3"},
			stats: Stats{Unchanged: 2}},
		{name: "foreign destination refused, others applied", dsts: routes("10.9.0.0/16", "10.4.4.4/32"), dev: Device{Index: dev2, MTU: 1380}, prune: true,
			want:  []string{"10.4.4.4/32 mtu 1380 proto 200", "10.9.0.0/16 mtu 0 proto 3"},
			stats: Stats{Added: 1, Removed: 2}, err: ErrForeign},
		{name: "empty with prune", dev: d, prune: true,
			want:  []string{"10.9.0.0/16 mtu 0 proto 3"},
			stats: Stats{Removed: 1}},
	}
}

func runSteps(t *testing.T, nl Netlink, ss []step, devs ...int) {
	ctx := testkit.Context(t, time.Minute)
	r := New(nl, testkit.Logger(t))
	for _, s := range ss {
		st, err := r.Set(ctx, s.dsts, s.dev, s.prune)
		if !errors.Is(err, s.err) || (s.err == nil) != (err == nil) {
			t.Fatalf("%s: Set error %v, want %v", s.name, err, s.err)
		}
		if st != s.stats {
			t.Errorf("%s: stats %+v, want %+v", s.name, st, s.stats)
		}
		if diff := cmp.Diff(s.want, render(t, nl, devs...)); diff != "" {
			t.Fatalf("%s: table (-want +got):\n%s", s.name, diff)
		}
	}
}

func TestSetTwin(t *testing.T) {
	tw := NewTwin()
	if err := tw.RouteReplace(foreignRoute("10.9.0.0/16", 7)); err != nil {
		t.Fatal(err)
	}
	runSteps(t, tw, steps(7, 8), 7, 8)
}

func TestSetTwinNoWriteWhenRight(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	tw := NewTwin()
	r := New(tw, testkit.Logger(t))
	dev := Device{Index: 3, MTU: 1420}
	if _, err := r.Set(ctx, routes("10.2.0.0/24", "10.3.0.0/24"), dev, true); err != nil {
		t.Fatal(err)
	}
	before := tw.Writes()
	// A new reconciler over the same table (an agent restart) adopts it.
	if st, err := New(tw, testkit.Logger(t)).Set(ctx, routes("10.3.0.0/24", "10.2.0.0/24"), dev, true); err != nil || st != (Stats{Unchanged: 2}) {
		t.Fatalf("restart Set: %+v, %v", st, err)
	}
	if tw.Writes() != before {
		t.Fatalf("%d writes for routes already right", tw.Writes()-before)
	}
}

// TestSetTwinRandomOrder applies random desired sets in random order:
// after each Set with prune the table holds exactly the desired routes.
func TestSetTwinRandomOrder(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	rng := rand.New(rand.NewPCG(3, 4))
	tw := NewTwin()
	r := New(tw, testkit.Logger(t))
	for i := range 300 {
		var dsts []Route
		for range rng.IntN(8) {
			dsts = append(dsts, Route{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(4)), 0}), 24)})
		}
		dev := Device{Index: 1 + rng.IntN(2), MTU: 1400 + rng.IntN(2)*20}
		if _, err := r.Set(ctx, dsts, dev, true); err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, d := range dsts {
			want[fmt.Sprintf("%s dev %d mtu %d proto 200", d.Dst, dev.Index, dev.MTU)] = true
		}
		got := map[string]bool{}
		for _, l := range strings.Split(tw.String(), "\n") {
			if l != "" {
				got[l] = true
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("step %d: (-want +got):\n%s", i, diff)
		}
	}
}

// newNetns creates a network namespace named sag-<pid>-<name>, without
// switching the test's threads into it, and deletes it at cleanup.
func newNetns(t *testing.T, name string) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	full := fmt.Sprintf("sag-%d-%s", os.Getpid(), name)
	ch := make(chan error, 1)
	var ns netns.NsHandle
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- err
			return
		}
		defer orig.Close()
		ns, err = netns.NewNamed(full)
		if serr := netns.Set(orig); serr != nil {
			// The thread is stuck in the new namespace: let it die with
			// the goroutine (still locked).
			ch <- errors.Join(err, serr)
			return
		}
		runtime.UnlockOSThread()
		ch <- err
	}()
	if err := <-ch; err != nil {
		t.Fatalf("create netns %s: %v", full, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(full); err != nil {
			t.Errorf("delete netns %s: %v", full, err)
		}
	})
	return ns
}

// TestSetKernel runs the same steps against the kernel's main table in a
// network namespace of its own, with a veth pair as two devices and a foreign route.
func TestSetKernel(t *testing.T) {
	ns := newNetns(t, "rt")
	k, err := NewKernelAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	h := k.Handle()
	var idx [2]int
	// A veth pair: two devices (this kernel has no dummy module).
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "sag-d0", MTU: 1500}, PeerName: "sag-d1"}); err != nil {
		t.Fatalf("add veth sag-d0: %v", err)
	}
	for i, name := range []string{"sag-d0", "sag-d1"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		idx[i] = l.Attrs().Index
	}
	if err := h.RouteAdd(foreignRoute("10.9.0.0/16", idx[0])); err != nil {
		t.Fatalf("foreign route: %v", err)
	}
	// The gateway of the IPsec-style steps is on sag-d1's subnet.
	l1, err := h.LinkByIndex(idx[1])
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("198.18.9.1/24")
	if err := h.AddrAdd(l1, addr); err != nil {
		t.Fatal(err)
	}
	runSteps(t, k, steps(idx[0], idx[1]), idx[0], idx[1])

	// Idempotence on the real table: a second identical Set writes
	// nothing (its stats say so, and the routes keep their identity).
	ctx := testkit.Context(t, time.Minute)
	r := New(k, testkit.Logger(t))
	d := Device{Index: idx[0], MTU: 1420}
	if _, err := r.Set(ctx, routes("10.5.0.0/24"), d, true); err != nil {
		t.Fatal(err)
	}
	if st, err := New(k, testkit.Logger(t)).Set(ctx, routes("10.5.0.0/24"), d, true); err != nil || st != (Stats{Unchanged: 1}) {
		t.Fatalf("second Set: %+v, %v", st, err)
	}
	got, err := List(k)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pfxs("10.5.0.0/24"), got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}
