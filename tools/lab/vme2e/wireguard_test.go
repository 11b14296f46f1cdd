package vme2e

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"
	"github.com/strait-net/strait/tools/lab"
	"github.com/strait-net/strait/tools/lab/capture"
	"github.com/vishvananda/netlink"
)

// TestVMKernelWireGuard is issue 6's end-to-end test with kernel
// WireGuard: 2 clusters × 2 nodes × 1 pod, full reachability with only
// WireGuard on the underlay, then a TCP stream across an agent kill and
// restart on both of its ends.
func TestVMKernelWireGuard(t *testing.T) {
	needKernel(t, "WireGuard", probeWireGuard)
	ctx := testkit.Context(t, 12*time.Minute)
	l := upLab(t, ctx, "w", lab.Spec{Clusters: 2, NodesPerCluster: 2, PodsPerNode: 1, Connect: true,
		WireGuardMode: "kernel", BinDir: binDir(t)})

	t.Run("kernel device", func(t *testing.T) {
		for _, n := range l.Nodes() {
			st, err := status(ctx, l, n)
			if err != nil {
				t.Fatalf("%s: %v", n.Key(), err)
			}
			if st.Encryption != "wireguard" || st.DeviceType != "kernel" || st.Device != "strait-wg0" {
				t.Errorf("%s: encryption %q device %q type %q, want wireguard strait-wg0 kernel", n.Key(), st.Encryption, st.Device, st.DeviceType)
			}
			var typ string
			if err := lab.Do(n.Netns, func() error {
				link, err := netlink.LinkByName("strait-wg0")
				if err != nil {
					return err
				}
				typ = link.Type()
				return nil
			}); err != nil {
				t.Fatalf("%s: %v", n.Key(), err)
			}
			if typ != "wireguard" {
				t.Errorf("%s: strait-wg0 is a %q link, want the kernel's wireguard", n.Key(), typ)
			}
			if _, err := os.Stat(filepath.Join(n.StateDir, "strait-wireguard.pid")); err == nil {
				t.Errorf("%s: a userspace strait-wireguard runs next to the kernel device", n.Key())
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	marker := newMarker("WG")
	capt, err := capture.Start(ctx, testkit.Logger(t), l.Underlay(), l.CaptureConfig(marker))
	if err != nil {
		t.Fatal(err)
	}
	defer capt.Stop()
	startEchoServers(t, l)

	t.Run("reachability", func(t *testing.T) {
		reachAll(t, ctx, l, marker)
		checkCapture(t, capt.Stats(), capture.ClassWireGuard)
	})
	if t.Failed() {
		t.FailNow()
	}

	src, dst := mustPod(t, l, 1, 1, 1), mustPod(t, l, 2, 1, 1)
	s := startStream(t, ctx, src, dst, streamPort, marker)
	s.progress(t, ctx, "stream starts", 50)

	t.Run("agent killed and restarted", func(t *testing.T) {
		for _, n := range []lab.Node{l.NodeOf(src), l.NodeOf(dst)} {
			if err := l.AgentStop(ctx, n, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			s.progress(t, ctx, "stream with the agent of "+n.Key()+" dead", 100)
			if err := l.AgentStart(ctx, n); err != nil {
				t.Fatal(err)
			}
			if err := l.WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
			s.progress(t, ctx, "stream after the restart of "+n.Key(), 100)
		}
	})
	s.finish(t, ctx)
	// New connections after the restarts, too.
	reachAll(t, ctx, l, marker)
	st, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	checkCapture(t, st, capture.ClassWireGuard)
}
