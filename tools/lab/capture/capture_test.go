package capture_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"
	"github.com/strait-net/strait/tools/lab"
	"github.com/strait-net/strait/tools/lab/capture"
)

func ip(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// TestCaptureUnderlay builds a bridge namespace with two attached
// namespaces, sends UDP (marked) and TCP between them and checks that the
// capture classified each frame once.
func TestCaptureUnderlay(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and an AF_PACKET socket")
	}
	p := fmt.Sprintf("sl-cap%d", os.Getpid()%100000)
	ul, a, b := p+"-ul", p+"-a", p+"-b"
	for _, ns := range []string{ul, a, b} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
		ip(t, "-n", ns, "link", "set", "lo", "up")
		exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1").Run()
	}
	ip(t, "-n", ul, "link", "add", "br0", "type", "bridge")
	ip(t, "-n", ul, "link", "set", "br0", "up")
	for i, ns := range []string{a, b} {
		port := fmt.Sprintf("p%d", i)
		ip(t, "-n", ul, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ip(t, "-n", ul, "link", "set", port, "master", "br0", "up")
		ip(t, "-n", ns, "addr", "add", fmt.Sprintf("198.18.%d.11/16", i+1), "dev", "eth0")
		ip(t, "-n", ns, "link", "set", "eth0", "up")
	}
	marker := []byte("capture-test-marker-" + p)
	cfg := capture.Config{
		NodeAddrs: []netip.Addr{netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("198.18.2.11")},
		PodCIDRs:  []netip.Prefix{netip.MustParsePrefix("10.1.1.0/24")},
		Marker:    marker,
	}
	ctx := testkit.Context(t, time.Minute)
	c, err := capture.Start(ctx, testkit.Logger(t), ul, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	var srv net.PacketConn
	if err := lab.Do(b, func() error {
		var err error
		srv, err = net.ListenPacket("udp4", "198.18.2.11:51871")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const n = 5
	conn, err := lab.DialIn(ctx, a, "udp4", "198.18.2.11:51871")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 2000)
	for i := 0; i < n; i++ {
		if _, err := conn.Write(bytes.Repeat(marker, 2)); err != nil {
			t.Fatal(err)
		}
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := srv.ReadFrom(buf); err != nil {
			t.Fatal(err)
		}
	}
	// A TCP attempt to a closed port: SYN and RST, class other.
	if c2, err := lab.DialIn(ctx, a, "tcp4", "198.18.2.11:9"); err == nil {
		c2.Close()
	}
	// The reader runs asynchronously: wait until it saw the last frames.
	for ctx.Err() == nil {
		if s := c.Stats(); s.Count(capture.ClassWireGuard) >= n && s.Count(capture.ClassOther) >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats: %s samples %v", s.String(), s.Samples)
	if s.Count(capture.ClassWireGuard) != n {
		t.Errorf("wireguard-class frames = %d, want %d (each frame once)", s.Count(capture.ClassWireGuard), n)
	}
	if s.MarkerHits != n {
		t.Errorf("marker hits = %d, want %d", s.MarkerHits, n)
	}
	if s.Count(capture.ClassARP) == 0 || s.Count(capture.ClassOther) < 2 || s.Count(capture.ClassPlaintextPod) != 0 {
		t.Errorf("counts: %s", s.String())
	}
	if s.FirstEncrypted.IsZero() || s.EncryptedBytes < int64(n*(14+20+8+2*len(marker))) {
		t.Errorf("first encrypted %v, bytes %d", s.FirstEncrypted, s.EncryptedBytes)
	}
}
