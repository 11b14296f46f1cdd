package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// Gateway is the link-local address every pod routes through: it is not
// configured anywhere; the pod's permanent neighbour entry maps it to the
// host veth's MAC, so the node answers for it.
var Gateway = netip.MustParseAddr("169.254.1.1")

// HostVethName is the node-side name of a pod's veth: "lxc" and the first
// 11 hex characters of sha256(containerID + "/" + ifName).
func HostVethName(containerID, ifName string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + ifName))
	return "lxc" + hex.EncodeToString(sum[:])[:11]
}

// podLink is what setupPod made.
type podLink struct {
	hostName  string
	hostMAC   net.HardwareAddr
	hostIndex int
	podMAC    net.HardwareAddr
	podIndex  int
}

func prefix32(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// setupPod creates (or, when this container's veth is already there, takes
// over) the veth pair and configures both sides. It runs in the node's
// network namespace (the plugin's own); podNS is the pod's.
func setupPod(podNS ns.NetNS, ifName, hostName string, addr netip.Addr, mtu int) (*podLink, error) {
	var pl podLink
	// Is this container's veth already there (ADD repeated)?
	existing := false
	err := podNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifName)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("pod interface %s: %w", ifName, err)
		}
		if _, ok := l.(*netlink.Veth); !ok {
			return fmt.Errorf("pod interface %s already exists and is a %s, not strait's veth", ifName, l.Type())
		}
		pl.podIndex = l.Attrs().Index
		pl.podMAC = l.Attrs().HardwareAddr
		existing = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if existing {
		h, err := netlink.LinkByName(hostName)
		if err != nil || h.Attrs().ParentIndex != pl.podIndex {
			return nil, fmt.Errorf("pod interface %s already exists and its peer is not %s", ifName, hostName)
		}
	} else {
		// A host veth of this name without its pod side is a leftover.
		if h, err := netlink.LinkByName(hostName); err == nil {
			if _, ok := h.(*netlink.Veth); !ok {
				return nil, fmt.Errorf("host interface %s exists and is a %s, not a veth", hostName, h.Type())
			}
			if err := netlink.LinkDel(h); err != nil {
				return nil, fmt.Errorf("removing stale host veth %s: %w", hostName, err)
			}
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: hostName, MTU: mtu},
			PeerName:      ifName,
			PeerNamespace: netlink.NsFd(int(podNS.Fd())),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			return nil, fmt.Errorf("creating veth %s (pod side %s): %w", hostName, ifName, err)
		}
		err = podNS.Do(func(ns.NetNS) error {
			l, err := netlink.LinkByName(ifName)
			if err != nil {
				return fmt.Errorf("pod interface %s: %w", ifName, err)
			}
			pl.podIndex, pl.podMAC = l.Attrs().Index, l.Attrs().HardwareAddr
			return nil
		})
		if err != nil {
			return nil, err
		}
	}

	// Node side: up, MTU, /32 route to the pod.
	h, err := netlink.LinkByName(hostName)
	if err != nil {
		return nil, fmt.Errorf("host veth %s: %w", hostName, err)
	}
	pl.hostName, pl.hostIndex, pl.hostMAC = hostName, h.Attrs().Index, h.Attrs().HardwareAddr
	if h.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(h, mtu); err != nil {
			return nil, fmt.Errorf("host veth %s: mtu %d: %w", hostName, mtu, err)
		}
	}
	if err := netlink.LinkSetUp(h); err != nil {
		return nil, fmt.Errorf("host veth %s: up: %w", hostName, err)
	}
	hostRoute := &netlink.Route{LinkIndex: pl.hostIndex, Dst: prefix32(addr), Scope: netlink.SCOPE_LINK}
	if err := netlink.RouteReplace(hostRoute); err != nil {
		return nil, fmt.Errorf("host route %s/32 dev %s: %w", addr, hostName, err)
	}

	// Pod side: MTU, address, gateway route, default route, neighbour.
	err = podNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifName)
		if err != nil {
			return fmt.Errorf("pod interface %s: %w", ifName, err)
		}
		if l.Attrs().MTU != mtu {
			if err := netlink.LinkSetMTU(l, mtu); err != nil {
				return fmt.Errorf("pod interface %s: mtu %d: %w", ifName, mtu, err)
			}
		}
		if err := netlink.AddrReplace(l, &netlink.Addr{IPNet: prefix32(addr)}); err != nil {
			return fmt.Errorf("pod interface %s: address %s/32: %w", ifName, addr, err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("pod interface %s: up: %w", ifName, err)
		}
		gw := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefix32(Gateway), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(gw); err != nil {
			return fmt.Errorf("pod route %s dev %s scope link: %w", Gateway, ifName, err)
		}
		def := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: Gateway.AsSlice()}
		if err := netlink.RouteReplace(def); err != nil {
			return fmt.Errorf("pod default route via %s dev %s: %w", Gateway, ifName, err)
		}
		neigh := &netlink.Neigh{
			LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: Gateway.AsSlice(), HardwareAddr: pl.hostMAC,
		}
		if err := netlink.NeighSet(neigh); err != nil {
			return fmt.Errorf("pod neighbour %s lladdr %s dev %s: %w", Gateway, pl.hostMAC, ifName, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &pl, nil
}

// deleteHostVeth removes the node side of a pod's veth (the kernel removes
// the pod side with it). A missing link is not an error; a link of that
// name that is not a veth is left alone and reported.
func deleteHostVeth(hostName string) (bool, error) {
	l, err := netlink.LinkByName(hostName)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("host veth %s: %w", hostName, err)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return false, fmt.Errorf("host interface %s is a %s, not a veth: left alone", hostName, l.Type())
	}
	if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
		return false, fmt.Errorf("deleting host veth %s: %w", hostName, err)
	}
	return true, nil
}

// checkPod verifies what setupPod made: the error names the first missing
// or wrong piece.
func checkPod(podNS ns.NetNS, ifName, hostName string, addr netip.Addr) error {
	h, err := netlink.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("host veth %s: %w", hostName, err)
	}
	if _, ok := h.(*netlink.Veth); !ok {
		return fmt.Errorf("host interface %s is a %s, not a veth", hostName, h.Type())
	}
	if h.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("host veth %s is down", hostName)
	}
	routes, err := retry2(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: h.Attrs().Index, Dst: prefix32(addr)}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_DST)
	})
	if err != nil {
		return fmt.Errorf("host routes of %s: %w", hostName, err)
	}
	if len(routes) == 0 {
		return fmt.Errorf("host route %s/32 dev %s: missing", addr, hostName)
	}
	hostMAC, hostIndex := h.Attrs().HardwareAddr, h.Attrs().Index
	return podNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifName)
		if err != nil {
			return fmt.Errorf("pod interface %s: %w", ifName, err)
		}
		if _, ok := l.(*netlink.Veth); !ok {
			return fmt.Errorf("pod interface %s is a %s, not a veth", ifName, l.Type())
		}
		if l.Attrs().ParentIndex != hostIndex {
			return fmt.Errorf("pod interface %s: peer is not host veth %s", ifName, hostName)
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("pod interface %s is down", ifName)
		}
		addrs, err := retry2(func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_V4) })
		if err != nil {
			return fmt.Errorf("pod interface %s: addresses: %w", ifName, err)
		}
		found := false
		for _, a := range addrs {
			ones, _ := a.Mask.Size()
			if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == addr && ones == 32 {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("pod interface %s: address %s/32 missing", ifName, addr)
		}
		routes, err := retry2(func() ([]netlink.Route, error) { return netlink.RouteList(l, netlink.FAMILY_V4) })
		if err != nil {
			return fmt.Errorf("pod interface %s: routes: %w", ifName, err)
		}
		var gwRoute, defRoute bool
		for _, r := range routes {
			switch {
			case r.Dst != nil && r.Dst.String() == Gateway.String()+"/32" && r.Scope == netlink.SCOPE_LINK && r.Gw == nil:
				gwRoute = true
			case (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw != nil && r.Gw.Equal(Gateway.AsSlice()):
				defRoute = true
			}
		}
		if !gwRoute {
			return fmt.Errorf("pod route %s/32 dev %s scope link: missing", Gateway, ifName)
		}
		if !defRoute {
			return fmt.Errorf("pod default route via %s dev %s: missing", Gateway, ifName)
		}
		neighs, err := retry2(func() ([]netlink.Neigh, error) { return netlink.NeighList(l.Attrs().Index, netlink.FAMILY_V4) })
		if err != nil {
			return fmt.Errorf("pod interface %s: neighbours: %w", ifName, err)
		}
		for _, n := range neighs {
			if n.IP.Equal(Gateway.AsSlice()) {
				if n.State&netlink.NUD_PERMANENT == 0 || n.HardwareAddr.String() != hostMAC.String() {
					return fmt.Errorf("pod neighbour %s dev %s: %s state %#x, want permanent %s", Gateway, ifName, n.HardwareAddr, n.State, hostMAC)
				}
				return nil
			}
		}
		return fmt.Errorf("pod neighbour %s lladdr %s dev %s: missing", Gateway, hostMAC, ifName)
	})
}

// retry2 repeats a netlink dump that the kernel interrupted (the table
// changed meanwhile), so a result is never a partial one.
func retry2[T any](f func() ([]T, error)) ([]T, error) {
	for range 5 {
		v, err := f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return f()
}
