package guestcheck

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// GuestFlag is on the kernel command line of every vmtest guest.
const GuestFlag = "strait.vmtest=1"

// InGuest reports whether this process runs inside a vmtest guest.
func InGuest() bool {
	b, err := os.ReadFile("/proc/cmdline")
	return err == nil && hasGuestFlag(string(b))
}

// hasGuestFlag reports whether a kernel command line holds GuestFlag as a
// whole word.
func hasGuestFlag(cmdline string) bool {
	for _, f := range strings.Fields(cmdline) {
		if f == GuestFlag {
			return true
		}
	}
	return false
}

// Check is one named check.
type Check struct {
	Name string
	Run  func(*Env) error
}

// Env holds the namespaces the checks share; Close removes them.
type Env struct {
	NsA, NsB string // network namespace names (ip netns)
}

// NewEnv names the namespaces after prefix (e.g. "vmt-<pid>").
func NewEnv(prefix string) *Env {
	return &Env{NsA: prefix + "-a", NsB: prefix + "-b"}
}

// Close deletes the namespaces (and with them every link in them).
func (e *Env) Close() {
	for _, ns := range []string{e.NsA, e.NsB} {
		_ = exec.Command("/sbin/ip", "netns", "del", ns).Run()
	}
	for _, l := range []string{"vmt-wga", "vmt-wgb"} {
		if link, err := netlink.LinkByName(l); err == nil {
			_ = netlink.LinkDel(link)
		}
	}
}

// All returns the checks in the order they must run (later ones use the
// namespaces and veth pair the earlier ones built).
func All() []Check {
	return []Check{
		{"mounts", func(*Env) error { return Mounts() }},
		{"iproute2", func(*Env) error { return run("/sbin/ip", "-V") }},
		{"veth ping between namespaces", VethPing},
		{"kernel wireguard tunnel", WireGuardTunnel},
		{"esp rfc4106(gcm(aes)) transport", ESPTransport},
	}
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Mounts checks the filesystems the guest's init mounts, and /dev/net/tun.
func Mounts() error {
	for _, m := range []struct {
		path  string
		magic int64
	}{{"/proc", unix.PROC_SUPER_MAGIC}, {"/sys", unix.SYSFS_MAGIC}, {"/sys/fs/bpf", unix.BPF_FS_MAGIC}, {"/run", unix.TMPFS_MAGIC}, {"/sys/fs/cgroup", unix.CGROUP2_SUPER_MAGIC}} {
		var st unix.Statfs_t
		if err := unix.Statfs(m.path, &st); err != nil {
			return fmt.Errorf("%s: %w", m.path, err)
		}
		if int64(st.Type) != m.magic {
			return fmt.Errorf("%s: filesystem magic %#x, want %#x", m.path, st.Type, m.magic)
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return err
	}
	return nil
}

// VethPing builds NsA <-veth-> NsB (10.99.0.1/24, 10.99.0.2/24) with
// /sbin/ip and pings across with busybox ping.
func VethPing(e *Env) error {
	steps := [][]string{
		{"netns", "add", e.NsA}, {"netns", "add", e.NsB},
		{"link", "add", "vmt-va", "netns", e.NsA, "type", "veth", "peer", "name", "vmt-vb", "netns", e.NsB},
		{"-n", e.NsA, "addr", "add", "10.99.0.1/24", "dev", "vmt-va"},
		{"-n", e.NsB, "addr", "add", "10.99.0.2/24", "dev", "vmt-vb"},
		{"-n", e.NsA, "link", "set", "vmt-va", "up"}, {"-n", e.NsB, "link", "set", "vmt-vb", "up"},
		{"-n", e.NsA, "link", "set", "lo", "up"}, {"-n", e.NsB, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := run("/sbin/ip", s...); err != nil {
			return err
		}
	}
	return run("/sbin/ip", "netns", "exec", e.NsA, "ping", "-c", "1", "-W", "5", "10.99.0.2")
}

// WireGuardTunnel creates two kernel WireGuard links with netlink in the
// current namespace, configures them with wgctrl (their UDP sockets stay
// here, on loopback), moves one into each namespace and pings through the
// tunnel (10.98.0.1 → 10.98.0.2).
func WireGuardTunnel(e *Env) error {
	keyA, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return err
	}
	keyB, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return err
	}
	wg, err := wgctrl.New()
	if err != nil {
		return err
	}
	defer wg.Close()
	type end struct {
		name, ns, addr, peerAddr string
		key, peer                wgtypes.Key
		port, peerPort           int
	}
	ends := []end{
		{"vmt-wga", e.NsA, "10.98.0.1/24", "10.98.0.2/32", keyA, keyB.PublicKey(), 51001, 51002},
		{"vmt-wgb", e.NsB, "10.98.0.2/24", "10.98.0.1/32", keyB, keyA.PublicKey(), 51002, 51001},
	}
	for _, end := range ends {
		if err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: end.name}}); err != nil {
			return fmt.Errorf("netlink: add wireguard link %s: %w", end.name, err)
		}
		_, allowed, _ := net.ParseCIDR(end.peerAddr)
		port := end.port
		cfg := wgtypes.Config{PrivateKey: &end.key, ListenPort: &port, Peers: []wgtypes.PeerConfig{{
			PublicKey:  end.peer,
			Endpoint:   &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: end.peerPort},
			AllowedIPs: []net.IPNet{*allowed},
		}}}
		if err := wg.ConfigureDevice(end.name, cfg); err != nil {
			return fmt.Errorf("wgctrl: configure %s: %w", end.name, err)
		}
		dev, err := wg.Device(end.name)
		if err != nil {
			return fmt.Errorf("wgctrl: read %s: %w", end.name, err)
		}
		if dev.Type != wgtypes.LinuxKernel || dev.ListenPort != end.port || len(dev.Peers) != 1 {
			return fmt.Errorf("wgctrl: %s is %v port %d with %d peers", end.name, dev.Type, dev.ListenPort, len(dev.Peers))
		}
		for _, s := range [][]string{
			{"link", "set", end.name, "netns", end.ns},
			{"-n", end.ns, "addr", "add", end.addr, "dev", end.name},
			{"-n", end.ns, "link", "set", end.name, "up"},
		} {
			if err := run("/sbin/ip", s...); err != nil {
				return err
			}
		}
	}
	return run("/sbin/ip", "netns", "exec", e.NsA, "ping", "-c", "2", "-W", "5", "10.98.0.2")
}

// ESPTransport adds ESP transport-mode states (rfc4106(gcm(aes)), 128-bit
// ICV) and ICMP policies between the veth addresses with netlink in both
// namespaces, pings, and checks that the outbound state counted packets.
func ESPTransport(e *Env) error {
	a, b := net.ParseIP("10.99.0.1").To4(), net.ParseIP("10.99.0.2").To4()
	key := bytes.Repeat([]byte{0x42}, 36) // 32-byte AES key + 4-byte salt
	for _, side := range []struct {
		ns         string
		self, peer net.IP
	}{{e.NsA, a, b}, {e.NsB, b, a}} {
		if err := addESP(side.ns, side.self, side.peer, key); err != nil {
			return err
		}
	}
	if err := run("/sbin/ip", "netns", "exec", e.NsA, "ping", "-c", "2", "-W", "5", "10.99.0.2"); err != nil {
		return err
	}
	h, err := handleIn(e.NsA)
	if err != nil {
		return err
	}
	defer h.Close()
	st, err := h.XfrmStateGet(&netlink.XfrmState{Src: a, Dst: b, Proto: netlink.XFRM_PROTO_ESP, Spi: spiFor(a)})
	if err != nil {
		return fmt.Errorf("xfrm state get: %w", err)
	}
	if st.Statistics.Packets == 0 {
		return errors.New("outbound ESP state counted no packets: the ping was not encrypted")
	}
	return nil
}

func addESP(ns string, self, peer net.IP, key []byte) error {
	h, err := handleIn(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	for _, dir := range []struct {
		src, dst net.IP
		pdir     netlink.Dir
	}{{self, peer, netlink.XFRM_DIR_OUT}, {peer, self, netlink.XFRM_DIR_IN}} {
		st := &netlink.XfrmState{
			Src: dir.src, Dst: dir.dst, Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TRANSPORT,
			Spi: spiFor(dir.src), Reqid: 7, ReplayWindow: 32,
			Aead: &netlink.XfrmStateAlgo{Name: "rfc4106(gcm(aes))", Key: key, ICVLen: 128},
		}
		if err := h.XfrmStateAdd(st); err != nil {
			return fmt.Errorf("%s: xfrm state add spi %#x: %w", ns, st.Spi, err)
		}
		pol := &netlink.XfrmPolicy{
			Src: &net.IPNet{IP: dir.src, Mask: net.CIDRMask(32, 32)}, Dst: &net.IPNet{IP: dir.dst, Mask: net.CIDRMask(32, 32)},
			Proto: unix.IPPROTO_ICMP, Dir: dir.pdir,
			Tmpls: []netlink.XfrmPolicyTmpl{{Src: dir.src, Dst: dir.dst, Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TRANSPORT, Reqid: 7}},
		}
		if err := h.XfrmPolicyAdd(pol); err != nil {
			return fmt.Errorf("%s: xfrm policy add: %w", ns, err)
		}
	}
	return nil
}

func spiFor(src net.IP) int { return 0x100 + int(src[3]) }

func handleIn(name string) (*netlink.Handle, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	return h, nil
}
