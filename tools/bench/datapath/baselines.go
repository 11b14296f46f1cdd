package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/strait-net/strait/encryption/wireguard"
)

// baseline holds the namespaces and wireguard-go processes of one
// hand-built setup; close removes them.
type baseline struct {
	procs   []*exec.Cmd
	created []string
	// setsid starts each wireguard-go process in a session of its own,
	// as encryption/wireguard starts strait-wireguard. Under
	// CONFIG_SCHED_AUTOGROUP each session is a scheduling group of its
	// own; a wireguard-go sharing this program's session would share the
	// TCP sender's and receiver's group, an advantage strait's cannot
	// have (nor any wireguard-go on a real node, where the applications
	// run in cgroups of their own).
	setsid bool
}

// pids returns the wireguard-go processes' ids.
func (b *baseline) pids() []int {
	var out []int
	for _, c := range b.procs {
		out = append(out, c.Process.Pid)
	}
	return out
}

func (b *baseline) addNetns(ctx context.Context, ns string) error {
	if err := ipCmd(ctx, "netns", "add", ns); err != nil {
		return err
	}
	b.created = append(b.created, ns)
	return ipCmd(ctx, "-n", ns, "link", "set", "lo", "up")
}

// startDevice runs strait-wireguard (wireguard-go) for dev inside ns and
// waits for its UAPI socket.
func (b *baseline) startDevice(ctx context.Context, wg *wgctrl.Client, binDir, work, ns, dev string) error {
	logPath := filepath.Join(work, dev+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", ns, filepath.Join(binDir, "strait-wireguard"), "--log-level", "error", "--mtu", "1420", dev)
	cmd.Stdout, cmd.Stderr = logf, logf
	if b.setsid {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("strait-wireguard %s: %w", dev, err)
	}
	b.procs = append(b.procs, cmd)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := wg.Device(dev)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("device %s: %w (log %s)", dev, err, logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// peerUp configures two devices as each other's peer (port 51871, the
// given endpoints; allowed[i] are the prefixes behind device i) and sets
// fwmark on both when it is not 0.
func peerUp(wg *wgctrl.Client, devs [2]string, endpoints [2]netip.Addr, allowed [2][]netip.Prefix, fwmark int) error {
	var keys [2]wgtypes.Key
	for i := range keys {
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			return err
		}
		keys[i] = k
	}
	port := 51871
	for i := range devs {
		o := 1 - i
		var ips []net.IPNet
		for _, a := range allowed[o] {
			ips = append(ips, net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), 32)})
		}
		cfg := wgtypes.Config{
			PrivateKey: &keys[i],
			ListenPort: &port,
			Peers: []wgtypes.PeerConfig{{
				PublicKey:         keys[o].PublicKey(),
				Endpoint:          &net.UDPAddr{IP: endpoints[o].AsSlice(), Port: port},
				ReplaceAllowedIPs: true,
				AllowedIPs:        ips,
			}},
		}
		if fwmark != 0 {
			cfg.FirewallMark = &fwmark
		}
		if err := wg.ConfigureDevice(devs[i], cfg); err != nil {
			return fmt.Errorf("configure %s: %w", devs[i], err)
		}
	}
	return nil
}

func (b *baseline) close() {
	for _, c := range b.procs {
		c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.Process.Kill()
			<-done
		}
	}
	for i := len(b.created) - 1; i >= 0; i-- {
		ipCmd(context.Background(), "netns", "delete", b.created[i])
	}
}

// handPair is two namespaces joined by a veth (192.0.2.1/.2), each with a
// wireguard-go device (10.99.0.1/.2), configured through wgctrl: the
// baseline the issue names.
type handPair struct {
	baseline
	a, b       string
	vethB, wgB netip.Addr
}

func newHandPair(ctx context.Context, binDir, work string) (p *handPair, err error) {
	id := os.Getpid() % 100000
	p = &handPair{
		baseline: baseline{setsid: true},
		a:        fmt.Sprintf("sl-bd%d-a", id), b: fmt.Sprintf("sl-bd%d-b", id),
		vethB: netip.MustParseAddr("192.0.2.2"), wgB: netip.MustParseAddr("10.99.0.2"),
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	devs := [2]string{fmt.Sprintf("sbd%da", id), fmt.Sprintf("sbd%db", id)}
	nss := [2]string{p.a, p.b}
	for _, ns := range nss {
		if err := p.addNetns(ctx, ns); err != nil {
			return p, err
		}
	}
	if err := ipCmd(ctx, "-n", p.a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", p.b); err != nil {
		return p, err
	}
	wg, err := wgctrl.New()
	if err != nil {
		return p, fmt.Errorf("wgctrl: %w", err)
	}
	defer wg.Close()
	for i, ns := range nss {
		if err := ipScript(ctx, ns,
			fmt.Sprintf("addr add 192.0.2.%d/24 dev eth0", i+1),
			"link set eth0 up"); err != nil {
			return p, err
		}
		if err := p.startDevice(ctx, wg, binDir, work, ns, devs[i]); err != nil {
			return p, err
		}
	}
	err = peerUp(wg, devs,
		[2]netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")},
		[2][]netip.Prefix{{netip.MustParsePrefix("10.99.0.1/32")}, {netip.MustParsePrefix("10.99.0.2/32")}}, 0)
	if err != nil {
		return p, err
	}
	for i, ns := range nss {
		if err := ipScript(ctx, ns,
			fmt.Sprintf("addr add 10.99.0.%d/24 dev %s", i+1, devs[i]),
			"link set "+devs[i]+" up"); err != nil {
			return p, err
		}
	}
	return p, nil
}

// routedVariant says in which of strait's ways a routedPair differs from
// the plain hand-built topology; the zero value is the plain one. Each
// field is one difference between strait's datapath and the hand copy, so
// that its cost can be measured on its own (-differences).
type routedVariant struct {
	// tag makes namespace and device names unique among the variants of
	// one run (one lower-case letter or digit; "" for the plain one).
	tag string
	// sharedSession runs wireguard-go in this program's own session (so
	// under CONFIG_SCHED_AUTOGROUP in the scheduling group of the TCP
	// sender and receiver) instead of a session of its own, as the agent
	// starts strait-wireguard and every other baseline is started.
	sharedSession bool
	// fwmark sets strait's fwmark (0x1E00) on both devices.
	fwmark bool
	// nodeIP adds the remote node's /32 to the peer's allowed IPs.
	nodeIP bool
	// routeMTU gives the pod-CIDR route strait's attributes: mtu 1420 and
	// protocol 0xC8.
	routeMTU bool
	// cniPods builds the pods the way strait-cni does: pod address /32,
	// 169.254.1.1 link route and default gateway with a permanent
	// neighbour entry, the host veth without an address and a /32 host
	// route to the pod.
	cniPods bool
	// noIPv6 disables IPv6 in every namespace, as tools/lab does.
	noIPv6 bool
	// noqueue replaces the WireGuard devices' default qdisc (pfifo_fast)
	// with noqueue: not one of strait's differences, a candidate
	// improvement.
	noqueue bool
	// plaintext routes the pod CIDRs over the underlay instead of through
	// wireguard-go (no encryption): the cost of the topology alone.
	plaintext bool
}

// routedPair is strait's topology built by hand: pod A —veth— node A
// (wireguard-go) —veth— bridge —veth— node B (wireguard-go) —veth— pod B,
// pods 10.1.1.2 and 10.2.1.2 behind routing nodes, MTU 1420 in pods and
// tunnel. It separates the cost of the topology (pod veth hop, forwarding,
// bridge) from the cost of strait itself.
type routedPair struct {
	baseline
	podA, podB string
	dst        netip.Addr
}

func newRoutedPair(ctx context.Context, binDir, work string, v routedVariant) (p *routedPair, err error) {
	id := os.Getpid() % 100000
	pre := fmt.Sprintf("sl-br%d%s-", id, v.tag)
	p = &routedPair{podA: pre + "pa", podB: pre + "pb", dst: netip.MustParseAddr("10.2.1.2")}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	p.setsid = !v.sharedSession
	ul, nodes, pods := pre+"u", [2]string{pre + "na", pre + "nb"}, [2]string{p.podA, p.podB}
	for _, ns := range []string{ul, nodes[0], nodes[1], pods[0], pods[1]} {
		if err := p.addNetns(ctx, ns); err != nil {
			return p, err
		}
		if v.noIPv6 {
			for _, k := range []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"} {
				if err := ipCmd(ctx, "netns", "exec", ns, "sysctl", "-qw", k); err != nil {
					return p, err
				}
			}
		}
	}
	if err := ipScript(ctx, ul, "link add br0 type bridge", "link set br0 up"); err != nil {
		return p, err
	}
	wg, err := wgctrl.New()
	if err != nil {
		return p, fmt.Errorf("wgctrl: %w", err)
	}
	defer wg.Close()
	devs := [2]string{fmt.Sprintf("sbr%d%sa", id, v.tag), fmt.Sprintf("sbr%d%sb", id, v.tag)}
	for i := range nodes {
		c := i + 1
		if err := ipScript(ctx, ul,
			fmt.Sprintf("link add n%d type veth peer name eth0 netns %s", c, nodes[i]),
			fmt.Sprintf("link set n%d master br0 up", c)); err != nil {
			return p, err
		}
		if err := ipScript(ctx, nodes[i],
			fmt.Sprintf("link add lxc0 type veth peer name eth0 netns %s", pods[i]),
			fmt.Sprintf("addr add 198.18.%d.11/16 dev eth0", c),
			"link set eth0 up"); err != nil {
			return p, err
		}
		if v.cniPods {
			mac := fmt.Sprintf("02:00:00:00:%02x:01", c)
			err = ipScript(ctx, nodes[i],
				"link set lxc0 address "+mac,
				"link set lxc0 mtu 1420",
				"link set lxc0 up",
				fmt.Sprintf("route add 10.%d.1.2/32 dev lxc0 scope link", c))
			if err == nil {
				err = ipScript(ctx, pods[i],
					fmt.Sprintf("addr add 10.%d.1.2/32 dev eth0", c),
					"link set eth0 mtu 1420",
					"link set eth0 up",
					"route add 169.254.1.1 dev eth0 scope link",
					"route add default via 169.254.1.1 dev eth0",
					"neigh add 169.254.1.1 lladdr "+mac+" dev eth0 nud permanent")
			}
		} else {
			err = ipScript(ctx, nodes[i],
				fmt.Sprintf("addr add 10.%d.1.1/24 dev lxc0", c),
				"link set lxc0 mtu 1420",
				"link set lxc0 up")
			if err == nil {
				err = ipScript(ctx, pods[i],
					fmt.Sprintf("addr add 10.%d.1.2/24 dev eth0", c),
					"link set eth0 mtu 1420",
					"link set eth0 up",
					fmt.Sprintf("route add default via 10.%d.1.1", c))
			}
		}
		if err != nil {
			return p, err
		}
		for _, k := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"} {
			if err := ipCmd(ctx, "netns", "exec", nodes[i], "sysctl", "-qw", k); err != nil {
				return p, err
			}
		}
		if v.plaintext {
			continue
		}
		if err := p.startDevice(ctx, wg, binDir, work, nodes[i], devs[i]); err != nil {
			return p, err
		}
	}
	if v.plaintext {
		for i := range nodes {
			if err := ipScript(ctx, nodes[i], fmt.Sprintf("route add 10.%d.1.0/24 via 198.18.%d.11 dev eth0", 2-i, 2-i)); err != nil {
				return p, err
			}
		}
		return p, nil
	}
	nodeIPs := [2]netip.Addr{netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("198.18.2.11")}
	allowed := [2][]netip.Prefix{{netip.MustParsePrefix("10.1.1.0/24")}, {netip.MustParsePrefix("10.2.1.0/24")}}
	if v.nodeIP {
		for i := range allowed {
			allowed[i] = append(allowed[i], netip.PrefixFrom(nodeIPs[i], 32))
		}
	}
	mark := 0
	if v.fwmark {
		mark = wireguard.FirewallMark
	}
	if err := peerUp(wg, devs, nodeIPs, allowed, mark); err != nil {
		return p, err
	}
	for i := range nodes {
		route := fmt.Sprintf("route add 10.%d.1.0/24 dev %s", 2-i, devs[i])
		if v.routeMTU {
			route += " proto 200 mtu 1420"
		}
		if err := ipScript(ctx, nodes[i], "link set "+devs[i]+" up", route); err != nil {
			return p, err
		}
		if v.noqueue {
			if err := exec.CommandContext(ctx, "tc", "-n", nodes[i], "qdisc", "replace", "dev", devs[i], "root", "noqueue").Run(); err != nil {
				return p, fmt.Errorf("tc qdisc noqueue on %s: %w", devs[i], err)
			}
		}
	}
	return p, nil
}

// ipScript runs `ip -n ns <line>` for each line.
func ipScript(ctx context.Context, ns string, lines ...string) error {
	for _, l := range lines {
		if err := ipCmd(ctx, append([]string{"-n", ns}, strings.Fields(l)...)...); err != nil {
			return err
		}
	}
	return nil
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
