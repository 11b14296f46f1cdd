package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/strait-net/strait/agent/route"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/encryption/ipsec"
	"github.com/strait-net/strait/encryption/wireguard"
	"github.com/strait-net/strait/identity"
)

var (
	// ErrInvalidConfig is returned by New for a bad Config or Deps; the
	// error names the field.
	ErrInvalidConfig = errors.New("agent: invalid config")
)

// Encryption modes.
const (
	EncryptionWireGuard = "wireguard"
	EncryptionIPsec     = "ipsec"
	EncryptionNone      = "none"
)

// EndpointsFile is the endpoint state file inside Config.StateDir.
const EndpointsFile = "endpoints.json"

// Config describes the node the agent runs for.
type Config struct {
	Cluster   string
	ClusterID identity.ClusterID
	Max       identity.ClusterMax
	NodeName  string
	// NodeIP is the node's IPv4 underlay address: its InternalIP and the
	// WireGuard endpoint of its peers.
	NodeIP netip.Addr
	// PodCIDR is this node's IPv4 pod CIDR.
	PodCIDR netip.Prefix
	// StateDir holds endpoints.json (and, for cmd/strait-agent, the key).
	StateDir string
	// BootID is /proc/sys/kernel/random/boot_id, published in the node.
	BootID string
	// Encryption is EncryptionWireGuard or EncryptionNone.
	Encryption string
	// UnderlayMTU is the MTU of the underlay device: the pod MTU without
	// encryption.
	UnderlayMTU int
	// Resync is how often the datapath is reconciled without a change
	// (repairing drift); default 30s.
	Resync time.Duration
}

// IPsecOverhead is what IPsec (ESP tunnel mode: outer IP header, ESP
// header, IV, padding, ICV) takes off the underlay MTU for pod traffic;
// rounded up like WireGuard's.
const IPsecOverhead = 80

// IPsec is the IPsec engine the agent feeds: encryption/ipsec.Manager.
// SetNodes gives the local node and every accepted remote node (called only
// after the local nodes are listed and the mesh has synced, so a partial
// view never removes XFRM states); Run runs it until ctx ends.
type IPsec interface {
	SetNodes(local ipsec.NodeRef, remotes []ipsec.NodeRef)
	Run(ctx context.Context) error
}

// WireGuard is the encryption device the agent configures.
type WireGuard struct {
	// Client reads and configures the device: *wgctrl.Client, or a
	// wgfake.Fake in tests.
	Client wireguard.Client
	// Device is the link name; Type "kernel" or "userspace".
	Device, Type string
	// Index is the link index and MTU its MTU (routes use both).
	Index, MTU int
	// PublicKey is the device's public key (published in the node).
	PublicKey wgtypes.Key
	// Port is the UDP port of every node's device (DefaultPort).
	Port int
}

// Deps are the parts New does not build itself.
type Deps struct {
	// KV is the client of this cluster's etcd (strait-apiserver).
	KV *kvstore.Client
	// WireGuard is the device with Encryption wireguard; nil otherwise.
	WireGuard *WireGuard
	// Routes is the node's routing table: route.Kernel, or route.Twin in
	// tests. Required with WireGuard.
	Routes route.Netlink
	// IPsec is the IPsec engine with Encryption ipsec; nil otherwise.
	IPsec IPsec
	// IPsecAdvertised is the key index the node publishes from its start
	// (the IPsec engine's resumed advertisement); 0: none yet.
	IPsecAdvertised uint8
	// Underlay is the underlay device (index and MTU): with IPsec, routes
	// to other nodes' pod CIDRs go through it via the node's address.
	Underlay route.Device
	// Registry, when not nil, receives the agent's, the mesh state's and
	// the publishers' metrics.
	Registry prometheus.Registerer
}

func (c *Config) validate(d Deps) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if err := (schema.Origin{Cluster: c.Cluster, ClusterID: c.ClusterID, Max: c.Max}).Validate(); err != nil {
		return bad("cluster: %v", err)
	}
	if c.NodeName == "" || len(c.NodeName) > 253 || containsAny(c.NodeName, "/ \t\n") {
		return bad("node name %q: must be 1-253 characters without '/' or blanks", c.NodeName)
	}
	if !c.NodeIP.Is4() {
		return bad("node IP %v: not an IPv4 address", c.NodeIP)
	}
	if !c.PodCIDR.IsValid() || !c.PodCIDR.Addr().Is4() || c.PodCIDR != c.PodCIDR.Masked() || c.PodCIDR.Bits() > 30 {
		return bad("pod CIDR %v: want a canonical IPv4 prefix of at most /30", c.PodCIDR)
	}
	if c.PodCIDR.Contains(c.NodeIP) {
		return bad("pod CIDR %v contains the node IP %v", c.PodCIDR, c.NodeIP)
	}
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		return bad("state dir %q: must be an absolute path", c.StateDir)
	}
	if c.Resync < 0 {
		return bad("resync %v: negative", c.Resync)
	}
	if d.KV == nil {
		return bad("deps: no kvstore client")
	}
	switch c.Encryption {
	case EncryptionWireGuard:
		w := d.WireGuard
		if w == nil || w.Client == nil || w.Device == "" || w.Index <= 0 || w.MTU < 1280 || w.Port <= 0 || w.Port > 65535 {
			return bad("wireguard: device, client, index, MTU (>= 1280) and port are required, got %+v", w)
		}
		if w.PublicKey == (wgtypes.Key{}) {
			return bad("wireguard: zero public key")
		}
		if d.Routes == nil {
			return bad("deps: no route table")
		}
	case EncryptionNone:
		if d.WireGuard != nil {
			return bad("encryption none with a WireGuard device")
		}
		if c.UnderlayMTU < 576 {
			return bad("underlay MTU %d: too small", c.UnderlayMTU)
		}
	case EncryptionIPsec:
		if d.IPsec == nil || d.Routes == nil || d.WireGuard != nil {
			return bad("ipsec: needs deps IPsec and Routes, and no WireGuard device")
		}
		if d.Underlay.Index <= 0 || d.Underlay.MTU-IPsecOverhead < 1280 {
			return bad("ipsec: underlay device index %d, MTU %d: want a device with MTU >= %d", d.Underlay.Index, d.Underlay.MTU, 1280+IPsecOverhead)
		}
		if c.BootID == "" {
			return bad("ipsec: boot ID required (per-node-pair keys)")
		}
	default:
		return bad("encryption %q: want wireguard, ipsec or none", c.Encryption)
	}
	return nil
}

func containsAny(s, chars string) bool {
	for _, c := range s {
		for _, d := range chars {
			if c == d {
				return true
			}
		}
	}
	return false
}
