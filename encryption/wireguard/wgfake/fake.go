package wgfake

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Call is one recorded ConfigureDevice call.
type Call struct {
	Device string
	Config wgtypes.Config // as passed (deep copy)
	After  wgtypes.Device // device state after the call
	Err    error          // what the call returned
}

// Step is the state after one elementary operation of a call, as
// wireguard-go applies them one UAPI line at a time: "remove" (a peer),
// "replace-allowed-ips" (the peer's IPs cleared), "allowed-ip" (one IP
// inserted), "peer" (a peer's other settings, or an UpdateOnly peer skipped).
type Step struct {
	Call   int                          // index into Calls
	Peer   wgtypes.Key                  // the peer being configured
	Op     string                       // see above
	Owners map[netip.Prefix]wgtypes.Key // owner of every allowed IP on the device
}

type peer struct {
	endpoint  *net.UDPAddr
	keepalive time.Duration
}

type device struct {
	name       string
	typ        wgtypes.DeviceType
	privateKey wgtypes.Key
	listenPort int
	mark       int
	peers      map[wgtypes.Key]*peer
	owners     map[netip.Prefix]wgtypes.Key
}

// Fake is an in-memory set of WireGuard devices.
type Fake struct {
	mu      sync.Mutex
	devices map[string]*device
	calls   []Call
	steps   []Step
	failErr error
}

// New returns a Fake without devices.
func New() *Fake { return &Fake{devices: make(map[string]*device)} }

// AddDevice creates (or replaces) a device from d's name, type, keys, port,
// mark and peers (with their endpoints, keepalives and allowed IPs; a later
// peer takes an allowed IP from an earlier one). Setting up a device is not
// recorded as a call.
func (f *Fake) AddDevice(d wgtypes.Device) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dev := &device{name: d.Name, typ: d.Type, privateKey: d.PrivateKey, listenPort: d.ListenPort, mark: d.FirewallMark,
		peers: make(map[wgtypes.Key]*peer), owners: make(map[netip.Prefix]wgtypes.Key)}
	if dev.typ == 0 {
		dev.typ = wgtypes.Userspace
	}
	for _, p := range d.Peers {
		dev.peers[p.PublicKey] = &peer{endpoint: cloneAddr(p.Endpoint), keepalive: p.PersistentKeepaliveInterval}
		for _, n := range p.AllowedIPs {
			if pfx, ok := toPrefix(n); ok {
				dev.owners[pfx] = p.PublicKey
			}
		}
	}
	f.devices[d.Name] = dev
}

// FailNext makes the next ConfigureDevice return err without applying anything.
func (f *Fake) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failErr = err
}

// Device returns a copy of the named device, or os.ErrNotExist.
func (f *Fake) Device(name string) (*wgtypes.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.devices[name]
	if !ok {
		return nil, fmt.Errorf("wgfake: device %s: %w", name, os.ErrNotExist)
	}
	out := d.snapshot()
	return &out, nil
}

// ConfigureDevice applies cfg to the named device step by step, like
// wireguard-go's UAPI set, recording the call and every step.
func (f *Fake) ConfigureDevice(name string, cfg wgtypes.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := Call{Device: name, Config: cloneConfig(cfg)}
	idx := len(f.calls)
	d, ok := f.devices[name]
	switch {
	case f.failErr != nil:
		call.Err, f.failErr = f.failErr, nil
	case !ok:
		call.Err = fmt.Errorf("wgfake: device %s: %w", name, os.ErrNotExist)
	default:
		call.Err = f.apply(idx, d, cfg)
		call.After = d.snapshot()
	}
	f.calls = append(f.calls, call)
	return call.Err
}

func (f *Fake) apply(idx int, d *device, cfg wgtypes.Config) error {
	if cfg.PrivateKey != nil {
		d.privateKey = *cfg.PrivateKey
	}
	if cfg.ListenPort != nil {
		if *cfg.ListenPort < 0 || *cfg.ListenPort > 65535 {
			return fmt.Errorf("wgfake: listen port %d", *cfg.ListenPort)
		}
		d.listenPort = *cfg.ListenPort
	}
	if cfg.FirewallMark != nil {
		d.mark = *cfg.FirewallMark
	}
	if cfg.ReplacePeers {
		d.peers = make(map[wgtypes.Key]*peer)
		d.owners = make(map[netip.Prefix]wgtypes.Key)
	}
	own := d.privateKey.PublicKey()
	for _, pc := range cfg.Peers {
		if d.privateKey != (wgtypes.Key{}) && pc.PublicKey == own {
			continue // wireguard-go and the kernel ignore a peer with the device's own key
		}
		step := func(op string) {
			f.steps = append(f.steps, Step{Call: idx, Peer: pc.PublicKey, Op: op, Owners: cloneOwners(d.owners)})
		}
		p, exists := d.peers[pc.PublicKey]
		switch {
		case pc.Remove:
			if exists {
				delete(d.peers, pc.PublicKey)
				d.dropOwner(pc.PublicKey)
			}
			step("remove")
		case !exists && pc.UpdateOnly:
			step("peer")
		default:
			if !exists {
				p = &peer{}
				d.peers[pc.PublicKey] = p
			}
			if pc.Endpoint != nil {
				p.endpoint = cloneAddr(pc.Endpoint)
			}
			if pc.PersistentKeepaliveInterval != nil {
				p.keepalive = *pc.PersistentKeepaliveInterval
			}
			step("peer")
			if pc.ReplaceAllowedIPs {
				d.dropOwner(pc.PublicKey)
				step("replace-allowed-ips")
			}
			for _, n := range pc.AllowedIPs {
				pfx, ok := toPrefix(n)
				if !ok {
					return fmt.Errorf("wgfake: peer %s: bad allowed IP %v", pc.PublicKey, n)
				}
				d.owners[pfx] = pc.PublicKey
				step("allowed-ip")
			}
		}
	}
	return nil
}

// Calls returns the recorded ConfigureDevice calls, oldest first.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Steps returns the recorded elementary steps, oldest first.
func (f *Fake) Steps() []Step {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.steps)
}

// Reset forgets recorded calls and steps (devices stay).
func (f *Fake) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls, f.steps = nil, nil
}

// Owners returns the owner of every allowed IP on the named device.
func (f *Fake) Owners(name string) map[netip.Prefix]wgtypes.Key {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.devices[name]
	if !ok {
		return nil
	}
	return cloneOwners(d.owners)
}

func (d *device) dropOwner(k wgtypes.Key) {
	for pfx, o := range d.owners {
		if o == k {
			delete(d.owners, pfx)
		}
	}
}

// snapshot renders the device as wgctrl would, peers sorted by public key
// and allowed IPs by address.
func (d *device) snapshot() wgtypes.Device {
	out := wgtypes.Device{Name: d.name, Type: d.typ, PrivateKey: d.privateKey, ListenPort: d.listenPort, FirewallMark: d.mark}
	if d.privateKey != (wgtypes.Key{}) {
		out.PublicKey = d.privateKey.PublicKey()
	}
	ips := make(map[wgtypes.Key][]netip.Prefix)
	for pfx, k := range d.owners {
		ips[k] = append(ips[k], pfx)
	}
	for k, p := range d.peers {
		wp := wgtypes.Peer{PublicKey: k, Endpoint: cloneAddr(p.endpoint), PersistentKeepaliveInterval: p.keepalive, ProtocolVersion: 1}
		pfxs := ips[k]
		slices.SortFunc(pfxs, func(a, b netip.Prefix) int {
			if c := a.Addr().Compare(b.Addr()); c != 0 {
				return c
			}
			return cmp.Compare(a.Bits(), b.Bits())
		})
		for _, pfx := range pfxs {
			wp.AllowedIPs = append(wp.AllowedIPs, net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())})
		}
		out.Peers = append(out.Peers, wp)
	}
	slices.SortFunc(out.Peers, func(a, b wgtypes.Peer) int { return cmp.Compare(a.PublicKey.String(), b.PublicKey.String()) })
	return out
}

func toPrefix(n net.IPNet) (netip.Prefix, bool) {
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
	if addr.BitLen() != bits {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(addr, ones).Masked(), true
}

func cloneAddr(a *net.UDPAddr) *net.UDPAddr {
	if a == nil {
		return nil
	}
	c := *a
	c.IP = slices.Clone(a.IP)
	return &c
}

func cloneOwners(m map[netip.Prefix]wgtypes.Key) map[netip.Prefix]wgtypes.Key {
	out := make(map[netip.Prefix]wgtypes.Key, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneConfig(cfg wgtypes.Config) wgtypes.Config {
	out := cfg
	out.Peers = make([]wgtypes.PeerConfig, len(cfg.Peers))
	for i, pc := range cfg.Peers {
		pc.Endpoint = cloneAddr(pc.Endpoint)
		pc.AllowedIPs = slices.Clone(pc.AllowedIPs)
		out.Peers[i] = pc
	}
	return out
}
