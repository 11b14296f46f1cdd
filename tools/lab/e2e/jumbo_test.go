package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"
	"github.com/strait-net/strait/tools/lab"
	"github.com/strait-net/strait/tools/lab/capture"
)

// TestJumboUnderlay: on a 9000-byte underlay the device and pod MTU is 8920 and a
// large TCP transfer between clusters arrives intact, encrypted.
func TestJumboUnderlay(t *testing.T) {
	needRoot(t)
	ctx := testkit.Context(t, 3*time.Minute)
	l := upLab(t, ctx, "j", lab.Spec{Clusters: 2, NodesPerCluster: 1, PodsPerNode: 1, UnderlayMTU: 9000, Connect: true, WireGuardMode: "userspace"})
	for _, n := range l.Nodes() {
		mtu, err := linkMTU(n.Netns, "strait-wg0")
		if err != nil {
			t.Fatalf("%s: %v", n.Key(), err)
		}
		if mtu != 9000-80 {
			t.Errorf("%s: strait-wg0 MTU %d, want %d", n.Key(), mtu, 9000-80)
		}
	}
	for _, p := range l.Pods() {
		mtu, err := linkMTU(p.Netns, p.IfName)
		if err != nil {
			t.Fatalf("pod %s: %v", p.Name, err)
		}
		if mtu != 9000-80 {
			t.Errorf("pod %s: %s MTU %d, want %d", p.Name, p.IfName, mtu, 9000-80)
		}
	}
	marker := []byte(fmt.Sprintf("STRAIT-JUMBO-MARKER-%d-%d", os.Getpid(), time.Now().UnixNano()))
	capt, err := capture.Start(ctx, testkit.Logger(t), l.Underlay(), l.CaptureConfig(marker))
	if err != nil {
		t.Fatal(err)
	}
	defer capt.Stop()
	src, dst := mustPod(t, l, 1, 1, 1), mustPod(t, l, 2, 1, 1)
	const blocks = 8000 // 8000 × 8 KiB = 64 MiB
	cfg := lab.StreamConfig{BlockSize: 8192, Blocks: blocks, Marker: marker}
	srv, err := lab.StartStreamServer(dst.Netns, streamPort, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	start := time.Now()
	st, err := lab.StartStream(ctx, src.Netns, netip.AddrPortFrom(dst.IP, streamPort), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	select {
	case <-st.Done():
	case <-ctx.Done():
		t.Fatalf("transfer: %v after %d blocks", ctx.Err(), st.Sent())
	}
	sent, err := st.Stop()
	if err != nil {
		t.Fatal(err)
	}
	res, err := srv.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err != nil || sent != blocks || res.Blocks != blocks {
		t.Fatalf("sent %d of %d blocks, verified %d, error %v", sent, blocks, res.Blocks, res.Err)
	}
	t.Logf("%d MiB transferred and verified in %v", res.Bytes>>20, time.Since(start).Round(time.Millisecond))
	// Big ICMP echoes too (beyond 1500 bytes).
	if err := lab.Ping(ctx, src.Netns, dst.IP, 0x6000, 1, make([]byte, 8000)); err != nil {
		t.Errorf("8000-byte ICMP echo: %v", err)
	}
	s, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	checkCapture(t, s)
	if s.EncryptedBytes < res.Bytes {
		t.Errorf("encrypted bytes on the underlay %d < %d transferred", s.EncryptedBytes, res.Bytes)
	}
}
