package lab

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// BridgeName is the underlay bridge in the underlay namespace.
const BridgeName = "br0"

// upUnderlay creates the underlay namespace and its bridge.
func (l *Lab) upUnderlay(ctx context.Context) error {
	ul := UnderlayNetns(l.spec.Name)
	if err := l.rec.addNetns(ul); err != nil {
		return err
	}
	if err := createNetns(ctx, ul); err != nil {
		return err
	}
	return Do(ul, func() error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName, MTU: l.spec.UnderlayMTU}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("bridge %s: %w", BridgeName, err)
		}
		if err := netlink.LinkSetUp(br); err != nil {
			return fmt.Errorf("bridge %s up: %w", BridgeName, err)
		}
		return nil
	})
}

// upAttached creates namespace name with an eth0 on the underlay bridge
// (bridge port portName) holding addr/16.
func (l *Lab) upAttached(ctx context.Context, name, portName string, addr netip.Addr) error {
	if err := l.rec.addNetns(name); err != nil {
		return err
	}
	if err := createNetns(ctx, name); err != nil {
		return err
	}
	target, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	defer target.Close()
	mtu := l.spec.UnderlayMTU
	err = Do(UnderlayNetns(l.spec.Name), func() error {
		br, err := netlink.LinkByName(BridgeName)
		if err != nil {
			return fmt.Errorf("bridge %s: %w", BridgeName, err)
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: portName, MTU: mtu, MasterIndex: br.Attrs().Index},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(int(target)),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("veth %s: %w", portName, err)
		}
		port, err := netlink.LinkByName(portName)
		if err != nil {
			return fmt.Errorf("veth %s: %w", portName, err)
		}
		if err := netlink.LinkSetUp(port); err != nil {
			return fmt.Errorf("veth %s up: %w", portName, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return Do(name, func() error {
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return fmt.Errorf("netns %s: eth0: %w", name, err)
		}
		if err := netlink.LinkSetMTU(eth, mtu); err != nil {
			return fmt.Errorf("netns %s: eth0 mtu %d: %w", name, mtu, err)
		}
		a := &netlink.Addr{IPNet: netlink.NewIPNet(addr.AsSlice())}
		a.IPNet.Mask = netmask(underlayBits)
		if err := netlink.AddrAdd(eth, a); err != nil {
			return fmt.Errorf("netns %s: eth0 address %s: %w", name, addr, err)
		}
		if err := netlink.LinkSetUp(eth); err != nil {
			return fmt.Errorf("netns %s: eth0 up: %w", name, err)
		}
		return nil
	})
}

// nodeSysctls makes a node namespace route like a Kubernetes node.
func nodeSysctls(name string) error {
	return Do(name, func() error {
		for _, kv := range [][2]string{
			{"net/ipv4/ip_forward", "1"},
			{"net/ipv4/conf/all/rp_filter", "0"},
			{"net/ipv4/conf/default/rp_filter", "0"},
		} {
			if err := writeSysctl(kv[0], kv[1]); err != nil {
				return fmt.Errorf("netns %s: %w", name, err)
			}
		}
		return nil
	})
}

// underlayBits is the prefix length of the underlay 198.18.0.0/16.
const underlayBits = 16

// UnderlayNet is the underlay network of every lab (RFC 2544 benchmark
// range, used only inside the lab's namespaces).
func UnderlayNet() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, 0}), underlayBits)
}

func netmask(bits int) []byte {
	m := make([]byte, 4)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}
