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
)

// baseline holds the namespaces and wireguard-go processes of one
// hand-built setup; close removes them.
type baseline struct {
	procs   []*exec.Cmd
	created []string
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
// given endpoints and allowed prefixes).
func peerUp(wg *wgctrl.Client, devs [2]string, endpoints [2]netip.Addr, allowed [2]netip.Prefix) error {
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
		a := allowed[o]
		cfg := wgtypes.Config{
			PrivateKey: &keys[i],
			ListenPort: &port,
			Peers: []wgtypes.PeerConfig{{
				PublicKey:         keys[o].PublicKey(),
				Endpoint:          &net.UDPAddr{IP: endpoints[o].AsSlice(), Port: port},
				ReplaceAllowedIPs: true,
				AllowedIPs:        []net.IPNet{{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), 32)}},
			}},
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
		a: fmt.Sprintf("sl-bd%d-a", id), b: fmt.Sprintf("sl-bd%d-b", id),
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
		[2]netip.Prefix{netip.MustParsePrefix("10.99.0.1/32"), netip.MustParsePrefix("10.99.0.2/32")})
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

func newRoutedPair(ctx context.Context, binDir, work string) (p *routedPair, err error) {
	id := os.Getpid() % 100000
	pre := fmt.Sprintf("sl-br%d-", id)
	p = &routedPair{podA: pre + "pa", podB: pre + "pb", dst: netip.MustParseAddr("10.2.1.2")}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	ul, nodes, pods := pre+"u", [2]string{pre + "na", pre + "nb"}, [2]string{p.podA, p.podB}
	for _, ns := range []string{ul, nodes[0], nodes[1], pods[0], pods[1]} {
		if err := p.addNetns(ctx, ns); err != nil {
			return p, err
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
	devs := [2]string{fmt.Sprintf("sbr%da", id), fmt.Sprintf("sbr%db", id)}
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
			"link set eth0 up",
			fmt.Sprintf("addr add 10.%d.1.1/24 dev lxc0", c),
			"link set lxc0 mtu 1420",
			"link set lxc0 up"); err != nil {
			return p, err
		}
		if err := ipScript(ctx, pods[i],
			fmt.Sprintf("addr add 10.%d.1.2/24 dev eth0", c),
			"link set eth0 mtu 1420",
			"link set eth0 up",
			fmt.Sprintf("route add default via 10.%d.1.1", c)); err != nil {
			return p, err
		}
		if err := ipCmd(ctx, "netns", "exec", nodes[i], "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
			return p, err
		}
		if err := p.startDevice(ctx, wg, binDir, work, nodes[i], devs[i]); err != nil {
			return p, err
		}
	}
	err = peerUp(wg, devs,
		[2]netip.Addr{netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("198.18.2.11")},
		[2]netip.Prefix{netip.MustParsePrefix("10.1.1.0/24"), netip.MustParsePrefix("10.2.1.0/24")})
	if err != nil {
		return p, err
	}
	for i := range nodes {
		if err := ipScript(ctx, nodes[i],
			"link set "+devs[i]+" up",
			fmt.Sprintf("route add 10.%d.1.0/24 dev %s", 2-i, devs[i])); err != nil {
			return p, err
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
