package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/internal/testkit"
	"github.com/strait-net/strait/tools/lab"
	"github.com/strait-net/strait/tools/lab/capture"
	"github.com/vishvananda/netlink"
)

// upLab builds a lab for the test and removes it at cleanup.
func upLab(t *testing.T, ctx context.Context, suffix string, spec lab.Spec) *lab.Lab {
	t.Helper()
	spec.Name = fmt.Sprintf("e%d%s", os.Getpid()%100000, suffix)
	spec.BinDir = binDir
	spec.WorkDir = t.TempDir()
	if keep := os.Getenv("STRAIT_E2E_KEEP"); keep != "" {
		// Keep the work dir (agent, apiserver and wireguard logs) for a
		// post-mortem: STRAIT_E2E_KEEP names a directory to put it in.
		dir, err := os.MkdirTemp(keep, spec.Name+"-")
		if err != nil {
			t.Fatal(err)
		}
		spec.WorkDir = dir
		t.Logf("work dir kept in %s", dir)
	}
	log := testkit.Logger(t)
	start := time.Now()
	l, err := lab.Up(ctx, log, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab %s up in %v", spec.Name, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.Close(cctx); err != nil {
			t.Errorf("lab close: %v", err)
		}
		if left, _ := os.ReadDir(lab.NetnsDir); slices.ContainsFunc(left, func(e os.DirEntry) bool {
			return strings.HasPrefix(e.Name(), lab.Prefix+spec.Name+"-")
		}) {
			t.Errorf("namespaces of lab %s left after Close", spec.Name)
		}
	})
	return l
}

// checkCapture fails the test unless the underlay carried only WireGuard,
// control-plane TCP and ARP, some WireGuard at all, and never the marker.
func checkCapture(t *testing.T, s capture.Stats) {
	t.Helper()
	t.Logf("underlay capture: %s", s.String())
	if n := s.Count(capture.ClassPlaintextPod); n != 0 {
		t.Errorf("%d plaintext pod packets on the underlay, e.g. %v", n, s.Samples[capture.ClassPlaintextPod])
	}
	if s.MarkerHits != 0 {
		t.Errorf("the payload marker crossed the underlay %d times, e.g. %v", s.MarkerHits, s.MarkerSamples)
	}
	if n := s.Count(capture.ClassOther); n != 0 {
		t.Errorf("%d other packets on the underlay, e.g. %v", n, s.Samples[capture.ClassOther])
	}
	if n := s.Count(capture.ClassIPsec); n != 0 {
		t.Errorf("%d ESP packets in a WireGuard lab", n)
	}
	if s.Count(capture.ClassWireGuard) == 0 || s.FirstEncrypted.IsZero() {
		t.Errorf("no WireGuard packets on the underlay")
	}
}

// status returns node n's agent status.
func status(ctx context.Context, l *lab.Lab, n lab.Node) (endpointapi.Status, error) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return l.Agent(n).Status(sctx)
}

// waitUntil polls cond until it holds or ctx ends (the test then fails with
// cond's last description).
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for {
		ok, desc := cond()
		if ok {
			return
		}
		last = desc
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v; last: %s", what, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// peer finds the peer for node key in a status.
func peer(st endpointapi.Status, key string) (endpointapi.PeerStatus, bool) {
	i := slices.IndexFunc(st.Peers, func(p endpointapi.PeerStatus) bool { return p.Node == key })
	if i < 0 {
		return endpointapi.PeerStatus{}, false
	}
	return st.Peers[i], true
}

// routesTo lists the routes to dst in node n's namespace.
func routesTo(n lab.Node, dst netip.Prefix) ([]netlink.Route, error) {
	var out []netlink.Route
	err := lab.Do(n.Netns, func() error {
		rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Dst != nil && r.Dst.String() == dst.String() {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

// linkMTU returns the MTU of link name in namespace ns.
func linkMTU(ns, name string) (int, error) {
	var mtu int
	err := lab.Do(ns, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		mtu = l.Attrs().MTU
		return nil
	})
	return mtu, err
}
