package wireguard

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Peer is one desired WireGuard peer: a remote node.
type Peer struct {
	// PublicKey identifies the peer; the all-zero key is invalid.
	PublicKey wgtypes.Key
	// Endpoint is where the peer's device listens (nodeIP:DefaultPort). The
	// zero value means unknown: the device's current endpoint is left alone.
	Endpoint netip.AddrPort
	// AllowedIPs are the addresses routed to (and accepted from) the peer:
	// its node IPs and pod addresses or CIDRs. Reconcile canonicalises them
	// (masked, sorted, duplicates dropped).
	AllowedIPs []netip.Prefix
	// Keepalive is the persistent keepalive interval in whole seconds; 0 is off.
	Keepalive time.Duration
}

// Client is the subset of *wgctrl.Client the reconciler uses, so tests can
// use the in-memory twin in package wgfake.
type Client interface {
	Device(name string) (*wgtypes.Device, error)
	ConfigureDevice(name string, cfg wgtypes.Config) error
}

// ReconcileStats counts what one Reconcile did, by peer.
type ReconcileStats struct{ Added, Updated, Removed, Unchanged int }

// PeerReconciler makes the peers of one device equal to a desired set.
// It keeps no state between calls: every Reconcile reads the device first,
// so it is safe to use on a device another process configured before
// (agent restart) and to call again after an error.
type PeerReconciler struct {
	c      Client
	device string
	log    *slog.Logger
}

// NewPeerReconciler returns a reconciler for the device named device, using c
// (usually a *wgctrl.Client created in the device's network namespace).
func NewPeerReconciler(c Client, device string, log *slog.Logger) *PeerReconciler {
	return &PeerReconciler{c: c, device: device, log: log}
}

// removalKey is the public key of the transient peer that absorbs allowed IPs
// a peer loses without another peer gaining them (WireGuard has no "remove
// this one allowed IP" in wgctrl): the IPs are moved onto it and it is
// removed, in the same ConfigureDevice call. The all-zero key is never a
// desired peer (Reconcile rejects it).
var removalKey = wgtypes.Key{}

// Reconcile reads the device and makes its peers equal to desired, touching
// only peers that differ, in at most one ConfigureDevice call (none when
// nothing differs).
//
// A peer on the device but not in desired is removed only when prune is true
// (the agent passes false until local and mesh state have synced). Allowed IPs
// are changed without gaps: a peer that gains IPs gets them appended (never
// ReplaceAllowedIPs, which would briefly empty the peer), so an IP moving from
// peer A to peer B is taken over by B in one step; IPs a peer loses to no one
// are moved onto a transient all-zero-key peer that is then removed. The
// order inside the call is: gains (adds and updates), then removal of lost
// IPs, then pruning.
//
// Errors: desired is validated first (zero key, duplicate key, an allowed IP
// claimed by two peers, bad endpoint, negative keepalive) and nothing is
// applied if it is invalid (wrapping ErrInvalidPeer); reading or configuring
// the device fails with the wgctrl error wrapped with the device name.
func (r *PeerReconciler) Reconcile(ctx context.Context, desired []Peer, prune bool) (ReconcileStats, error) {
	var stats ReconcileStats
	if err := ctx.Err(); err != nil {
		return stats, fmt.Errorf("reconcile peers of %s: %w", r.device, err)
	}
	want, err := canonicalPeers(desired)
	if err != nil {
		return stats, fmt.Errorf("reconcile peers of %s: %w", r.device, err)
	}
	dev, err := r.c.Device(r.device)
	if err != nil {
		return stats, fmt.Errorf("reconcile peers of %s: read device: %w", r.device, err)
	}
	have := make(map[wgtypes.Key]Peer, len(dev.Peers))
	for _, p := range dev.Peers {
		have[p.PublicKey] = devicePeer(p)
	}
	wantOwner := make(map[netip.Prefix]wgtypes.Key)
	for _, p := range want {
		for _, ip := range p.AllowedIPs {
			wantOwner[ip] = p.PublicKey
		}
	}

	var gains, prunes []wgtypes.PeerConfig
	var lost []net.IPNet
	for _, p := range want {
		cur, ok := have[p.PublicKey]
		if !ok {
			pc := wgtypes.PeerConfig{PublicKey: p.PublicKey, AllowedIPs: ipNets(p.AllowedIPs)}
			if p.Endpoint.IsValid() {
				pc.Endpoint = net.UDPAddrFromAddrPort(p.Endpoint)
			}
			if p.Keepalive > 0 {
				pc.PersistentKeepaliveInterval = &p.Keepalive
			}
			gains = append(gains, pc)
			stats.Added++
			r.log.Debug("wireguard peer add", "device", r.device, "peer", p.PublicKey, "endpoint", p.Endpoint, "allowed_ips", p.AllowedIPs)
			continue
		}
		pc := wgtypes.PeerConfig{PublicKey: p.PublicKey, UpdateOnly: true}
		changed := false
		if p.Endpoint.IsValid() && p.Endpoint != cur.Endpoint {
			pc.Endpoint = net.UDPAddrFromAddrPort(p.Endpoint)
			changed = true
		}
		if p.Keepalive != cur.Keepalive {
			ka := p.Keepalive
			pc.PersistentKeepaliveInterval = &ka
			changed = true
		}
		gained, gone := diffPrefixes(cur.AllowedIPs, p.AllowedIPs)
		if len(gained) > 0 {
			pc.AllowedIPs = ipNets(gained)
			changed = true
		}
		for _, ip := range gone {
			changed = true
			if _, taken := wantOwner[ip]; !taken {
				lost = append(lost, ipNet(ip))
			}
		}
		if !changed {
			stats.Unchanged++
			continue
		}
		if len(pc.AllowedIPs) > 0 || pc.Endpoint != nil || pc.PersistentKeepaliveInterval != nil {
			gains = append(gains, pc)
		}
		stats.Updated++
		r.log.Debug("wireguard peer update", "device", r.device, "peer", p.PublicKey,
			"endpoint", p.Endpoint, "gained", gained, "lost", gone)
	}
	wanted := make(map[wgtypes.Key]bool, len(want))
	for _, p := range want {
		wanted[p.PublicKey] = true
	}
	var stale []wgtypes.Key
	for k := range have {
		if !wanted[k] {
			stale = append(stale, k)
		}
	}
	slices.SortFunc(stale, func(a, b wgtypes.Key) int { return cmp.Compare(a.String(), b.String()) })
	for _, k := range stale {
		if !prune {
			r.log.Debug("wireguard peer stale, kept until synced", "device", r.device, "peer", k)
			continue
		}
		prunes = append(prunes, wgtypes.PeerConfig{PublicKey: k, Remove: true})
		stats.Removed++
		r.log.Debug("wireguard peer remove", "device", r.device, "peer", k)
	}

	cfg := wgtypes.Config{Peers: gains}
	if len(lost) > 0 {
		cfg.Peers = append(cfg.Peers,
			wgtypes.PeerConfig{PublicKey: removalKey, AllowedIPs: lost},
			wgtypes.PeerConfig{PublicKey: removalKey, Remove: true})
	}
	cfg.Peers = append(cfg.Peers, prunes...)
	if len(cfg.Peers) == 0 {
		return stats, nil
	}
	if err := ctx.Err(); err != nil {
		return ReconcileStats{}, fmt.Errorf("reconcile peers of %s: %w", r.device, err)
	}
	if err := r.c.ConfigureDevice(r.device, cfg); err != nil {
		return ReconcileStats{}, fmt.Errorf("reconcile peers of %s: configure device: %w", r.device, err)
	}
	r.log.Info("wireguard peers reconciled", "device", r.device,
		"added", stats.Added, "updated", stats.Updated, "removed", stats.Removed, "unchanged", stats.Unchanged)
	return stats, nil
}

// canonicalPeers validates desired and returns a copy with canonical allowed
// IPs and endpoints, sorted by public key.
func canonicalPeers(desired []Peer) ([]Peer, error) {
	out := make([]Peer, 0, len(desired))
	seen := make(map[wgtypes.Key]bool, len(desired))
	owner := make(map[netip.Prefix]wgtypes.Key)
	for i, p := range desired {
		if p.PublicKey == (wgtypes.Key{}) {
			return nil, fmt.Errorf("%w: peer %d: all-zero public key", ErrInvalidPeer, i)
		}
		if seen[p.PublicKey] {
			return nil, fmt.Errorf("%w: peer %s: duplicate public key", ErrInvalidPeer, p.PublicKey)
		}
		seen[p.PublicKey] = true
		if p.Endpoint.IsValid() {
			if p.Endpoint.Port() == 0 || p.Endpoint.Addr().IsUnspecified() {
				return nil, fmt.Errorf("%w: peer %s: endpoint %s has no address or port", ErrInvalidPeer, p.PublicKey, p.Endpoint)
			}
			p.Endpoint = netip.AddrPortFrom(p.Endpoint.Addr().Unmap().WithZone(""), p.Endpoint.Port())
		}
		if p.Keepalive < 0 || p.Keepalive > 65535*time.Second {
			return nil, fmt.Errorf("%w: peer %s: keepalive %s outside 0..65535s", ErrInvalidPeer, p.PublicKey, p.Keepalive)
		}
		p.Keepalive = p.Keepalive.Truncate(time.Second)
		ips := make([]netip.Prefix, 0, len(p.AllowedIPs))
		for _, ip := range p.AllowedIPs {
			if !ip.IsValid() {
				return nil, fmt.Errorf("%w: peer %s: invalid allowed IP", ErrInvalidPeer, p.PublicKey)
			}
			ips = append(ips, canonicalPrefix(ip))
		}
		p.AllowedIPs = sortPrefixes(ips)
		for _, ip := range p.AllowedIPs {
			if o, ok := owner[ip]; ok {
				return nil, fmt.Errorf("%w: allowed IP %s claimed by peers %s and %s", ErrInvalidPeer, ip, o, p.PublicKey)
			}
			owner[ip] = p.PublicKey
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return cmp.Compare(a.PublicKey.String(), b.PublicKey.String()) })
	return out, nil
}

// devicePeer converts what wgctrl reports into a canonical Peer.
func devicePeer(p wgtypes.Peer) Peer {
	out := Peer{PublicKey: p.PublicKey, Keepalive: p.PersistentKeepaliveInterval.Truncate(time.Second)}
	if p.Endpoint != nil {
		ap := p.Endpoint.AddrPort()
		out.Endpoint = netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
	}
	for _, n := range p.AllowedIPs {
		if pfx, ok := prefixOf(n); ok {
			out.AllowedIPs = append(out.AllowedIPs, pfx)
		}
	}
	out.AllowedIPs = sortPrefixes(out.AllowedIPs)
	return out
}

func canonicalPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return netip.PrefixFrom(p.Addr().WithZone(""), p.Bits()).Masked()
}

func prefixOf(n net.IPNet) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if addr.Is4In6() && bits == 32 {
		addr = addr.Unmap()
	}
	return canonicalPrefix(netip.PrefixFrom(addr, ones)), true
}

func ipNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func ipNets(ps []netip.Prefix) []net.IPNet {
	out := make([]net.IPNet, len(ps))
	for i, p := range ps {
		out[i] = ipNet(p)
	}
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, comparePrefix)
	return slices.Compact(ps)
}

// diffPrefixes returns what is in want but not in have (gained) and what is
// in have but not in want (gone); both inputs sorted and compact.
func diffPrefixes(have, want []netip.Prefix) (gained, gone []netip.Prefix) {
	i, j := 0, 0
	for i < len(have) || j < len(want) {
		switch {
		case j == len(want) || (i < len(have) && comparePrefix(have[i], want[j]) < 0):
			gone = append(gone, have[i])
			i++
		case i == len(have) || comparePrefix(have[i], want[j]) > 0:
			gained = append(gained, want[j])
			j++
		default:
			i++
			j++
		}
	}
	return gained, gone
}
