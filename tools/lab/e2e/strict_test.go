package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"
	"github.com/strait-net/strait/tools/lab"
	"github.com/strait-net/strait/tools/lab/capture"
	"github.com/vishvananda/netlink"
)

// TestStrictMode: with strict mode a pod packet that a (mis)route sends
// out of the node's underlay device unencrypted is dropped: a /32 route to
// a remote pod via the remote node's underlay address, more specific than
// the agent's pod-CIDR route into the tunnel, must not leak one plaintext
// packet; without it traffic flows encrypted again.
func TestStrictMode(t *testing.T) {
	needRoot(t)
	ctx := testkit.Context(t, 2*time.Minute)
	l := upLab(t, ctx, "s", lab.Spec{Clusters: 2, NodesPerCluster: 1, PodsPerNode: 1, Connect: true, StrictMode: true, WireGuardMode: "userspace"})
	marker := []byte(fmt.Sprintf("STRAIT-STRICT-MARKER-%d-%d", os.Getpid(), time.Now().UnixNano()))
	capt, err := capture.Start(ctx, testkit.Logger(t), l.Underlay(), l.CaptureConfig(marker))
	if err != nil {
		t.Fatal(err)
	}
	defer capt.Stop()
	src, dst := mustPod(t, l, 1, 1, 1), mustPod(t, l, 2, 1, 1)
	srv, err := lab.StartEchoServer(dst.Netns, echoPort)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := lab.Echo(ctx, src.Netns, netip.AddrPortFrom(dst.IP, echoPort), marker); err != nil {
		t.Fatalf("before the misroute: %v", err)
	}

	node, remote := l.NodeOf(src), l.NodeOf(dst)
	leak := &netlink.Route{
		Dst: &net.IPNet{IP: dst.IP.AsSlice(), Mask: net.CIDRMask(32, 32)},
		Gw:  remote.IP.AsSlice(),
	}
	err = lab.Do(node.Netns, func() error {
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		leak.LinkIndex = eth.Attrs().Index
		return netlink.RouteAdd(leak)
	})
	if err != nil {
		t.Fatalf("misroute on %s: %v", node.Key(), err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = lab.Echo(short, src.Netns, netip.AddrPortFrom(dst.IP, echoPort), marker)
	cancel()
	if err == nil {
		t.Error("TCP through an unencrypted route succeeded with strict mode on")
	}
	short, cancel = context.WithTimeout(ctx, 2*time.Second)
	err = lab.Ping(short, src.Netns, dst.IP, 0x7000, 1, marker)
	cancel()
	if err == nil {
		t.Error("ICMP through an unencrypted route succeeded with strict mode on")
	}
	if err := lab.Do(node.Netns, func() error { return netlink.RouteDel(leak) }); err != nil {
		t.Fatal(err)
	}
	if err := lab.Echo(ctx, src.Netns, netip.AddrPortFrom(dst.IP, echoPort), marker); err != nil {
		t.Fatalf("after the misroute is gone: %v", err)
	}
	s, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	checkCapture(t, s)
}
