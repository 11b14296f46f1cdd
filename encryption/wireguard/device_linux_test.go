package wireguard_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/strait-net/strait/encryption/wireguard"
	"github.com/strait-net/strait/internal/testkit"
)

// Topology of the tunnel tests (everything inside namespaces the test creates):
//
//	netns swg<pid>a                          netns swg<pid>b
//	  swg<pid>v 198.18.200.1/24 ---veth--- swg<pid>v 198.18.200.2/24
//	  swg<pid>a<n> (WireGuard) 10.200.0.1    swg<pid>b<n> (WireGuard) 10.200.0.2
//	  route 10.200.0.2/32 dev swg<pid>a<n>   route 10.200.0.1/32 dev swg<pid>b<n>
//
// The overlay addresses are reachable only through the WireGuard devices.

var seq atomic.Int32

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veth pairs and WireGuard devices")
	}
}

// uniq returns a short name unique to this test run: swg<pid><suffix><n>.
func uniq(suffix string) string {
	return fmt.Sprintf("swg%d%s%d", os.Getpid(), suffix, seq.Add(1))
}

// inNS runs fn on a new OS thread switched into ns and returns its error. The
// thread is never unlocked, so it dies with the goroutine instead of going
// back to the scheduler in a foreign namespace.
func inNS(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// newNS creates a named network namespace, deleted at cleanup, with lo up.
func newNS(t *testing.T, name string) netns.NsHandle {
	t.Helper()
	errc := make(chan error, 1)
	var ns netns.NsHandle
	go func() {
		runtime.LockOSThread() // the thread ends in the new namespace: never unlocked
		h, err := netns.NewNamed(name)
		if err != nil {
			errc <- err
			return
		}
		ns = h
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		if ns.IsOpen() {
			ns.Close()
			_ = netns.DeleteNamed(name)
		}
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	return ns
}

// node is one side of the tunnel.
type node struct {
	ns      netns.NsHandle
	cfg     wireguard.DeviceConfig
	underIP netip.Addr
	overIP  netip.Addr
	wg      *wgctrl.Client
}

func (n *node) ensure(ctx context.Context, t *testing.T) (*wireguard.Device, error) {
	var d *wireguard.Device
	err := inNS(n.ns, func() error {
		var err error
		d, err = wireguard.EnsureDevice(ctx, testkit.Logger(t), n.cfg)
		return err
	})
	return d, err
}

// ensureDeleted registers DeleteDevice at cleanup (before the netns goes).
func ensureDeleted(t *testing.T, ns netns.NsHandle, cfg wireguard.DeviceConfig) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := inNS(ns, func() error { return wireguard.DeleteDevice(ctx, testkit.Logger(t), cfg) }); err != nil {
			t.Errorf("DeleteDevice %s: %v", cfg.Name, err)
		}
	})
}

func newKey(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// twoNodes builds the topology above and creates both devices in mode.
func twoNodes(ctx context.Context, t *testing.T, mode wireguard.Mode) (a, b *node) {
	t.Helper()
	pid := os.Getpid()
	nsA := newNS(t, fmt.Sprintf("swg%da", pid))
	nsB := newNS(t, fmt.Sprintf("swg%db", pid))
	veth := fmt.Sprintf("swg%dv", pid)
	err := inNS(nsA, func() error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: veth}, PeerName: veth, PeerNamespace: netlink.NsFd(int(nsB))})
	})
	if err != nil {
		t.Fatalf("create veth: %v", err)
	}
	n := seq.Add(1)
	a = &node{ns: nsA, underIP: netip.MustParseAddr("198.18.200.1"), overIP: netip.MustParseAddr("10.200.0.1")}
	b = &node{ns: nsB, underIP: netip.MustParseAddr("198.18.200.2"), overIP: netip.MustParseAddr("10.200.0.2")}
	for side, nd := range map[string]*node{"a": a, "b": b} {
		nd.cfg = wireguard.DeviceConfig{
			Name:            fmt.Sprintf("swg%d%s%d", pid, side, n),
			MTU:             1420,
			PrivateKey:      newKey(t),
			Mode:            mode,
			UserspaceBinary: "",
			StateDir:        t.TempDir(),
		}
		if mode != wireguard.ModeKernel {
			nd.cfg.UserspaceBinary = userspaceBinary(t)
		}
		err := inNS(nd.ns, func() error {
			l, err := netlink.LinkByName(veth)
			if err != nil {
				return err
			}
			if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(nd.underIP, 24))}); err != nil {
				return err
			}
			return netlink.LinkSetUp(l)
		})
		if err != nil {
			t.Fatalf("underlay of %s: %v", side, err)
		}
	}
	for _, nd := range []*node{a, b} {
		ensureDeleted(t, nd.ns, nd.cfg)
		if _, err := nd.ensure(ctx, t); err != nil {
			t.Fatalf("EnsureDevice %s: %v", nd.cfg.Name, err)
		}
		err := inNS(nd.ns, func() error {
			c, err := wgctrl.New()
			nd.wg = c
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.wg.Close() })
	}
	// Overlay addresses and routes through the devices.
	for _, pair := range [][2]*node{{a, b}, {b, a}} {
		self, peer := pair[0], pair[1]
		err := inNS(self.ns, func() error {
			l, err := netlink.LinkByName(self.cfg.Name)
			if err != nil {
				return err
			}
			if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(self.overIP, 32))}); err != nil {
				return fmt.Errorf("address: %w", err)
			}
			return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(netip.PrefixFrom(peer.overIP, 32)), Scope: netlink.SCOPE_LINK})
		})
		if err != nil {
			t.Fatalf("overlay of %s: %v", self.cfg.Name, err)
		}
	}
	return a, b
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// desiredPeer is the Peer that describes n to the other node, plus extra
// allowed IPs.
func desiredPeer(n *node, extra ...netip.Prefix) wireguard.Peer {
	return wireguard.Peer{
		PublicKey:  n.cfg.PrivateKey.PublicKey(),
		Endpoint:   netip.AddrPortFrom(n.underIP, wireguard.DefaultPort),
		AllowedIPs: append([]netip.Prefix{netip.PrefixFrom(n.overIP, 32), netip.PrefixFrom(n.underIP, 32)}, extra...),
	}
}

// peers configures each node with the other as its peer, through the
// reconciler on a real wgctrl client.
func peers(ctx context.Context, t *testing.T, a, b *node) {
	t.Helper()
	for _, pair := range [][2]*node{{a, b}, {b, a}} {
		self, peer := pair[0], pair[1]
		r := wireguard.NewPeerReconciler(self.wg, self.cfg.Name, testkit.Logger(t))
		desired := []wireguard.Peer{desiredPeer(peer)}
		stats, err := r.Reconcile(ctx, desired, true)
		if err != nil {
			t.Fatal(err)
		}
		if stats != (wireguard.ReconcileStats{Added: 1}) {
			t.Fatalf("first Reconcile on %s: %+v, want 1 added", self.cfg.Name, stats)
		}
		// Against the real device too, an unchanged desired state is a no-op.
		if stats, err = r.Reconcile(ctx, desired, true); err != nil || stats != (wireguard.ReconcileStats{Unchanged: 1}) {
			t.Fatalf("second Reconcile on %s: %+v, %v; want 1 unchanged", self.cfg.Name, stats, err)
		}
	}
}

// peerIPs renders the device's peers as key -> allowed IPs.
func peerIPs(t *testing.T, n *node) map[wgtypes.Key][]string {
	t.Helper()
	d, err := n.wg.Device(n.cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[wgtypes.Key][]string)
	for _, p := range d.Peers {
		ips := []string{}
		for _, ip := range p.AllowedIPs {
			ips = append(ips, ip.String())
		}
		slices.Sort(ips)
		out[p.PublicKey] = ips
	}
	return out
}

// reconcileMoves drives a's real device through an allowed IP moving from a
// third peer to b's peer, then losing it to no one (the transient removal
// peer), then pruning: the device must end exactly as desired.
func reconcileMoves(ctx context.Context, t *testing.T, a, b *node) {
	t.Helper()
	r := wireguard.NewPeerReconciler(a.wg, a.cfg.Name, testkit.Logger(t))
	c := newKey(t).PublicKey()
	extra := netip.MustParsePrefix("10.200.9.0/24")
	bKey := b.cfg.PrivateKey.PublicKey()
	steps := []struct {
		name    string
		desired []wireguard.Peer
		prune   bool
		stats   wireguard.ReconcileStats
		want    map[wgtypes.Key][]string
	}{
		{"third peer owns the extra prefix", []wireguard.Peer{desiredPeer(b), {PublicKey: c, AllowedIPs: []netip.Prefix{extra}}}, false,
			wireguard.ReconcileStats{Added: 1, Unchanged: 1},
			map[wgtypes.Key][]string{bKey: {"10.200.0.2/32", "198.18.200.2/32"}, c: {"10.200.9.0/24"}}},
		{"prefix moves to b", []wireguard.Peer{desiredPeer(b, extra), {PublicKey: c}}, false,
			wireguard.ReconcileStats{Updated: 2},
			map[wgtypes.Key][]string{bKey: {"10.200.0.2/32", "10.200.9.0/24", "198.18.200.2/32"}, c: {}}},
		{"b loses it to no one, c pruned", []wireguard.Peer{desiredPeer(b)}, true,
			wireguard.ReconcileStats{Updated: 1, Removed: 1},
			map[wgtypes.Key][]string{bKey: {"10.200.0.2/32", "198.18.200.2/32"}}},
	}
	for _, s := range steps {
		stats, err := r.Reconcile(ctx, s.desired, s.prune)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if stats != s.stats {
			t.Errorf("%s: stats %+v, want %+v", s.name, stats, s.stats)
		}
		if diff := cmp.Diff(s.want, peerIPs(t, a)); diff != "" {
			t.Errorf("%s: peers of %s (-want +got):\n%s", s.name, a.cfg.Name, diff)
		}
	}
}

// echoServer listens on addr:7777 in ns and echoes lines until cleanup,
// which closes the listener and every accepted connection.
func echoServer(t *testing.T, ns netns.NsHandle, addr netip.Addr) {
	t.Helper()
	var ln net.Listener
	err := inNS(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 7777).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				c.Close()
			}
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
}

// dial connects from ns to addr:7777 (bounded by ctx).
func dial(ctx context.Context, t *testing.T, ns netns.NsHandle, addr netip.Addr) net.Conn {
	t.Helper()
	var c net.Conn
	err := inNS(ns, func() error {
		var err error
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, 7777).String())
		return err
	})
	if err != nil {
		t.Fatalf("dial %s through the tunnel: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	return c
}

func roundTrip(c net.Conn, r *bufio.Reader, msg string) error {
	if _, err := fmt.Fprintln(c, msg); err != nil {
		return err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// deviceView is what adoption must not change.
type deviceView struct {
	Index, MTU   int
	Up           bool
	RPFilter     string
	ListenPort   int
	FirewallMark int
	PublicKey    wgtypes.Key
	Peers        []string
}

func view(t *testing.T, n *node) deviceView {
	t.Helper()
	var v deviceView
	err := inNS(n.ns, func() error {
		l, err := netlink.LinkByName(n.cfg.Name)
		if err != nil {
			return err
		}
		v.Index, v.MTU, v.Up = l.Attrs().Index, l.Attrs().MTU, l.Attrs().Flags&net.FlagUp != 0
		rp, err := os.ReadFile(filepath.Join("/proc/sys/net/ipv4/conf", n.cfg.Name, "rp_filter"))
		v.RPFilter = strings.TrimSpace(string(rp))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.wg.Device(n.cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	v.ListenPort, v.FirewallMark, v.PublicKey = d.ListenPort, d.FirewallMark, d.PublicKey
	for _, p := range d.Peers {
		v.Peers = append(v.Peers, fmt.Sprintf("%s %v %v", p.PublicKey, p.Endpoint, p.AllowedIPs))
	}
	return v
}

func TestUserspaceTunnel(t *testing.T) {
	needRoot(t)
	testTunnel(t, wireguard.ModeUserspace)
}

func TestKernelTunnel(t *testing.T) {
	needRoot(t)
	if !kernelHasWireGuard(t) {
		t.Skip("kernel has no wireguard module; runs in the kernel VM (make test-vm)")
	}
	testTunnel(t, wireguard.ModeKernel)
}

func testTunnel(t *testing.T, mode wireguard.Mode) {
	ctx := testkit.Context(t, 2*time.Minute)
	a, b := twoNodes(ctx, t, mode)

	for _, n := range []*node{a, b} {
		v := view(t, n)
		want := deviceView{Index: v.Index, MTU: 1420, Up: true, RPFilter: "0", ListenPort: wireguard.DefaultPort,
			FirewallMark: wireguard.FirewallMark, PublicKey: n.cfg.PrivateKey.PublicKey()}
		if diff := cmp.Diff(want, v); diff != "" {
			t.Errorf("new device %s (-want +got):\n%s", n.cfg.Name, diff)
		}
	}

	peers(ctx, t, a, b)
	echoServer(t, b.ns, b.overIP)
	conn := dial(ctx, t, a.ns, b.overIP)
	rd := bufio.NewReader(conn)
	if err := roundTrip(conn, rd, "hello through the tunnel"); err != nil {
		t.Fatal(err)
	}
	// The bytes really went through WireGuard: the peer saw a handshake and traffic.
	d, err := a.wg.Device(a.cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Peers) != 1 || d.Peers[0].LastHandshakeTime.IsZero() || d.Peers[0].TransmitBytes == 0 || d.Peers[0].ReceiveBytes == 0 {
		t.Fatalf("peer of %s after traffic: %+v; want a handshake and bytes both ways", a.cfg.Name, d.Peers)
	}

	reconcileMoves(ctx, t, a, b)
	if err := roundTrip(conn, rd, "after peer changes"); err != nil {
		t.Fatal(err)
	}

	before := map[*node]deviceView{a: view(t, a), b: view(t, b)}
	var beforePid map[*node]int
	if mode == wireguard.ModeUserspace {
		beforePid = map[*node]int{a: pidOf(t, a), b: pidOf(t, b)}
		for n, pid := range beforePid {
			if sid, err := unix.Getsid(pid); err != nil || sid != pid {
				t.Errorf("%s: process %d has session %d (%v); want its own session", n.cfg.Name, pid, sid, err)
			}
		}
	}

	// Traffic keeps flowing while both sides adopt their devices (what an
	// agent restart does).
	stop := make(chan struct{})
	var trips atomic.Int64
	trafficErr := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				trafficErr <- nil
				return
			default:
			}
			if err := roundTrip(conn, rd, fmt.Sprintf("during adoption %d", i)); err != nil {
				trafficErr <- err
				return
			}
			trips.Add(1)
		}
	}()
	for _, n := range []*node{a, b} {
		dev, err := n.ensure(ctx, t)
		if err != nil {
			t.Fatalf("adopt %s: %v", n.cfg.Name, err)
		}
		if dev.Type() != string(mode) || dev.Index() != before[n].Index || dev.Name() != n.cfg.Name {
			t.Errorf("adopted device %s: type %s index %d, want %s %d", dev.Name(), dev.Type(), dev.Index(), mode, before[n].Index)
		}
		if mode == wireguard.ModeUserspace && dev.Pid() != beforePid[n] {
			t.Errorf("adopted %s served by pid %d, want the original %d", n.cfg.Name, dev.Pid(), beforePid[n])
		}
	}
	close(stop)
	if err := <-trafficErr; err != nil {
		t.Fatalf("traffic during adoption: %v", err)
	}
	t.Logf("%d round trips while both devices were adopted", trips.Load())
	for i := range 3 {
		if err := roundTrip(conn, rd, fmt.Sprintf("after adoption %d", i)); err != nil {
			t.Fatalf("traffic after adoption: %v", err)
		}
	}
	for _, n := range []*node{a, b} {
		if mode == wireguard.ModeUserspace {
			// A new state dir (as after a reinstall) gets the adopted pid.
			n.cfg.StateDir = t.TempDir()
			if _, err := n.ensure(ctx, t); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(before[n], view(t, n)); diff != "" {
			t.Errorf("adoption changed %s (-before +after):\n%s", n.cfg.Name, diff)
		}
		if mode == wireguard.ModeUserspace && pidOf(t, n) != beforePid[n] {
			t.Errorf("%s: process changed", n.cfg.Name)
		}
	}

	// A drifted setting is repaired on adoption, and only that one.
	err = inNS(a.ns, func() error {
		l, err := netlink.LinkByName(a.cfg.Name)
		if err != nil {
			return err
		}
		return netlink.LinkSetMTU(l, 1300)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ensure(ctx, t); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before[a], view(t, a)); diff != "" {
		t.Errorf("after repairing the MTU of %s (-want +got):\n%s", a.cfg.Name, diff)
	}
	if err := roundTrip(conn, rd, "after repair"); err != nil {
		t.Fatal(err)
	}

	// DeleteDevice removes link and process.
	conn.Close()
	err = inNS(a.ns, func() error {
		if err := wireguard.DeleteDevice(ctx, testkit.Logger(t), a.cfg); err != nil {
			return err
		}
		if _, err := netlink.LinkByName(a.cfg.Name); err == nil {
			return errors.New("link still there after DeleteDevice")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if mode == wireguard.ModeUserspace {
		if pid := beforePid[a]; unix.Kill(pid, 0) == nil && !isZombie(pid) {
			t.Errorf("process %d still running after DeleteDevice", pid)
		}
		if _, err := os.Stat(filepath.Join(wireguard.SocketDir, a.cfg.Name+".sock")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("UAPI socket of %s left behind: %v", a.cfg.Name, err)
		}
		if _, err := os.Stat(filepath.Join(a.cfg.StateDir, wireguard.PidFileName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pid file left behind: %v", err)
		}
	}
}

func pidOf(t *testing.T, n *node) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.cfg.StateDir, wireguard.PidFileName))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// kernelHasWireGuard tries a kernel wireguard link in a scratch namespace.
func kernelHasWireGuard(t *testing.T) bool {
	t.Helper()
	ns := newNS(t, uniq("k"))
	err := inNS(ns, func() error {
		return netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: "swgprobe0"}})
	})
	if err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("probe kernel wireguard: %v", err)
	}
	return err == nil
}

func TestKernelModeWithoutModule(t *testing.T) {
	needRoot(t)
	if kernelHasWireGuard(t) {
		t.Skip("kernel has wireguard: ErrNoKernelSupport cannot happen here (runs on hosts without the module)")
	}
	ns := newNS(t, uniq("n"))
	cfg := wireguard.DeviceConfig{Name: uniq("n"), MTU: 1420, PrivateKey: newKey(t), Mode: wireguard.ModeKernel, StateDir: t.TempDir()}
	ensureDeleted(t, ns, cfg)
	err := inNS(ns, func() error {
		_, err := wireguard.EnsureDevice(testkit.Context(t, time.Minute), testkit.Logger(t), cfg)
		return err
	})
	if !errors.Is(err, wireguard.ErrNoKernelSupport) {
		t.Fatalf("EnsureDevice(kernel) = %v, want ErrNoKernelSupport", err)
	}
}

func TestPortInUse(t *testing.T) {
	needRoot(t)
	testPortInUse(t, wireguard.ModeUserspace)
}

func TestKernelPortInUse(t *testing.T) {
	needRoot(t)
	if !kernelHasWireGuard(t) {
		t.Skip("kernel has no wireguard module; runs in the kernel VM (make test-vm)")
	}
	testPortInUse(t, wireguard.ModeKernel)
}

func testPortInUse(t *testing.T, mode wireguard.Mode) {
	ns := newNS(t, uniq("p"))
	const port = 51999
	var pc net.PacketConn
	err := inNS(ns, func() error {
		var err error
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	cfg := wireguard.DeviceConfig{Name: uniq("p"), ListenPort: port, MTU: 1420, PrivateKey: newKey(t), Mode: mode, StateDir: t.TempDir()}
	if mode == wireguard.ModeUserspace {
		cfg.UserspaceBinary = userspaceBinary(t)
	}
	ensureDeleted(t, ns, cfg)
	err = inNS(ns, func() error {
		_, err := wireguard.EnsureDevice(testkit.Context(t, time.Minute), testkit.Logger(t), cfg)
		t.Logf("EnsureDevice with the port bound: %v", err)
		if !errors.Is(err, wireguard.ErrPortInUse) || !strings.Contains(err.Error(), fmt.Sprint(port)) {
			return fmt.Errorf("EnsureDevice = %v, want ErrPortInUse naming port %d", err, port)
		}
		// The half-made device was rolled back.
		if _, err := netlink.LinkByName(cfg.Name); err == nil {
			return errors.New("link left behind after the failed EnsureDevice")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, wireguard.PidFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left behind: %v", err)
	}
	// The same port in another namespace is free: ports are per namespace.
	ns2 := newNS(t, uniq("p"))
	cfg.Name = uniq("p")
	ensureDeleted(t, ns2, cfg)
	err = inNS(ns2, func() error {
		_, err := wireguard.EnsureDevice(testkit.Context(t, time.Minute), testkit.Logger(t), cfg)
		return err
	})
	if err != nil {
		t.Fatalf("EnsureDevice with port %d in a fresh namespace: %v", port, err)
	}
}

// inPrivateDevNet runs fn on a thread in ns and in a private mount namespace
// whose /dev/net is an empty tmpfs (no /dev/net/tun). The thread is never
// unlocked, so the mount namespace dies with it.
func inPrivateDevNet(ns netns.NsHandle, fn func() error) error {
	return inNS(ns, func() error {
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("unshare mount namespace: %w", err)
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make mounts private: %w", err)
		}
		if err := unix.Mount("swg-nodev", "/dev/net", "tmpfs", 0, "size=16k"); err != nil {
			return fmt.Errorf("mount tmpfs on /dev/net: %w", err)
		}
		return fn()
	})
}

func TestNoTUN(t *testing.T) {
	needRoot(t)
	bin := userspaceBinary(t)
	ns := newNS(t, uniq("t"))
	cfg := wireguard.DeviceConfig{Name: uniq("t"), MTU: 1420, PrivateKey: newKey(t),
		Mode: wireguard.ModeUserspace, UserspaceBinary: bin, StateDir: t.TempDir()}
	ensureDeleted(t, ns, cfg)
	var ensureErr error
	var out []byte
	var code int
	err := inPrivateDevNet(ns, func() error {
		if _, err := os.Stat("/dev/net/tun"); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("/dev/net/tun still visible: %v", err)
		}
		_, ensureErr = wireguard.EnsureDevice(testkit.Context(t, time.Minute), testkit.Logger(t), cfg)
		// The binary itself, run directly.
		cmd := exec.Command(bin, uniq("t"))
		out, _ = cmd.CombinedOutput()
		code = cmd.ProcessState.ExitCode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("EnsureDevice without /dev/net/tun: %v", ensureErr)
	t.Logf("strait-wireguard without /dev/net/tun: exit %d: %s", code, out)
	if !errors.Is(ensureErr, wireguard.ErrNoTUN) || !strings.Contains(ensureErr.Error(), "/dev/net/tun") {
		t.Errorf("EnsureDevice without /dev/net/tun = %v; want ErrNoTUN", ensureErr)
	}
	if code != wireguard.ExitNoTUN || !strings.HasPrefix(string(out), "strait-wireguard: /dev/net/tun: ") {
		t.Errorf("strait-wireguard without /dev/net/tun: exit %d, output %q; want exit %d and a message naming /dev/net/tun",
			code, out, wireguard.ExitNoTUN)
	}
	// The host's /dev/net/tun was not touched.
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Fatalf("/dev/net/tun in the test's own mount namespace: %v", err)
	}
}

func TestAdoptRefusesForeignLink(t *testing.T) {
	needRoot(t)
	ns := newNS(t, uniq("f"))
	cfg := wireguard.DeviceConfig{Name: uniq("f"), MTU: 1420, PrivateKey: newKey(t),
		Mode: wireguard.ModeUserspace, UserspaceBinary: userspaceBinary(t), StateDir: t.TempDir()}
	err := inNS(ns, func() error {
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: cfg.Name}}); err != nil {
			return err
		}
		_, err := wireguard.EnsureDevice(testkit.Context(t, time.Minute), testkit.Logger(t), cfg)
		if !errors.Is(err, wireguard.ErrNotWireGuard) || !strings.Contains(err.Error(), `"bridge"`) {
			return fmt.Errorf("EnsureDevice over a bridge link = %v; want ErrNotWireGuard naming its type", err)
		}
		if _, err := netlink.LinkByName(cfg.Name); err != nil {
			return fmt.Errorf("the foreign link was removed: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A same-named userspace device in another namespace must not be adopted
// (the UAPI socket directory is shared by all namespaces).
func TestAdoptRefusesOtherNamespace(t *testing.T) {
	needRoot(t)
	nsA, nsB := newNS(t, uniq("o")), newNS(t, uniq("o"))
	cfg := wireguard.DeviceConfig{Name: uniq("o"), MTU: 1420, PrivateKey: newKey(t),
		Mode: wireguard.ModeUserspace, UserspaceBinary: userspaceBinary(t), StateDir: t.TempDir()}
	ensureDeleted(t, nsA, cfg)
	if err := inNS(nsA, func() error {
		_, err := wireguard.EnsureDevice(testkit.Context(t, time.Minute), testkit.Logger(t), cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cfgB := cfg
	cfgB.StateDir = t.TempDir()
	err := inNS(nsB, func() error {
		// A TUN of that name in B, not served by anyone in B.
		if err := netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: cfg.Name}, Mode: netlink.TUNTAP_MODE_TUN,
			Flags: netlink.TUNTAP_DEFAULTS | netlink.TUNTAP_NO_PI}); err != nil {
			return err
		}
		_, err := wireguard.EnsureDevice(testkit.Context(t, time.Minute), testkit.Logger(t), cfgB)
		if !errors.Is(err, wireguard.ErrNotWireGuard) || !strings.Contains(err.Error(), "another network namespace") {
			return fmt.Errorf("EnsureDevice = %v; want ErrNotWireGuard about another network namespace", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Auto mode uses the kernel when it has WireGuard, else userspace.
func TestAutoMode(t *testing.T) {
	needRoot(t)
	want := "userspace"
	if kernelHasWireGuard(t) {
		want = "kernel"
	}
	ns := newNS(t, uniq("m"))
	cfg := wireguard.DeviceConfig{Name: uniq("m"), MTU: 1420, PrivateKey: newKey(t), Mode: wireguard.ModeAuto,
		UserspaceBinary: userspaceBinary(t), StateDir: t.TempDir()}
	ensureDeleted(t, ns, cfg)
	var dev *wireguard.Device
	err := inNS(ns, func() error {
		var err error
		dev, err = wireguard.EnsureDevice(testkit.Context(t, time.Minute), testkit.Logger(t), cfg)
		return err
	})
	if err != nil || dev.Type() != want {
		t.Fatalf("EnsureDevice(auto) = %v, %v; want a %s device", dev, err, want)
	}
}
