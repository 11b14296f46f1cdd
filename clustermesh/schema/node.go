package schema

import (
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"strconv"

	"github.com/strait-net/strait/identity"
)

// AddressType is the type of a node address, as in Kubernetes' NodeAddress.
type AddressType string

// Address types Cilium writes. Others (Hostname, ExternalDNS, InternalDNS)
// exist in Kubernetes and are carried through unchanged.
const (
	AddressInternalIP       AddressType = "InternalIP"
	AddressExternalIP       AddressType = "ExternalIP"
	AddressCiliumInternalIP AddressType = "CiliumInternalIP"
)

// Address is one address of a node.
type Address struct {
	Type AddressType
	IP   netip.Addr
}

// Node is a node of a cluster, stored at cilium/state/nodes/v1/<cluster>/<name>
// as Cilium's pkg/node/types.Node JSON. Zero netip values are "absent":
// they encode as "" (addresses) or null (CIDRs), as Cilium's nil net.IP and
// nil *cidr.CIDR do.
type Node struct {
	Name    string
	Cluster string

	IPAddresses []Address

	IPv4AllocCIDR           netip.Prefix
	IPv4SecondaryAllocCIDRs []netip.Prefix
	IPv6AllocCIDR           netip.Prefix
	IPv6SecondaryAllocCIDRs []netip.Prefix

	IPv4HealthIP  netip.Addr
	IPv6HealthIP  netip.Addr
	IPv4IngressIP netip.Addr
	IPv6IngressIP netip.Addr

	ClusterID identity.ClusterID
	// Source is where the node came from ("custom-resource", "kvstore", ...).
	Source string
	// EncryptionKey is the IPsec key index; 0 means no encryption.
	EncryptionKey uint8

	Labels      map[string]string
	Annotations map[string]string

	// WireguardPubKey is the node's WireGuard public key, base64; "" if none.
	WireguardPubKey string
	BootID          string
}

// wireNode is the exact JSON layout Cilium writes, fields in its order.
type wireNode struct {
	Name                    string            `json:"Name"`
	Cluster                 string            `json:"Cluster"`
	IPAddresses             []wireAddress     `json:"IPAddresses"`
	IPv4AllocCIDR           *wireCIDR         `json:"IPv4AllocCIDR"`
	IPv4SecondaryAllocCIDRs []*wireCIDR       `json:"IPv4SecondaryAllocCIDRs"`
	IPv6AllocCIDR           *wireCIDR         `json:"IPv6AllocCIDR"`
	IPv6SecondaryAllocCIDRs []*wireCIDR       `json:"IPv6SecondaryAllocCIDRs"`
	IPv4HealthIP            string            `json:"IPv4HealthIP"`
	IPv6HealthIP            string            `json:"IPv6HealthIP"`
	IPv4IngressIP           string            `json:"IPv4IngressIP"`
	IPv6IngressIP           string            `json:"IPv6IngressIP"`
	ClusterID               int64             `json:"ClusterID"`
	Source                  string            `json:"Source"`
	EncryptionKey           uint8             `json:"EncryptionKey"`
	Labels                  map[string]string `json:"Labels"`
	Annotations             map[string]string `json:"Annotations"`
	WireguardPubKey         string            `json:"WireguardPubKey"`
	BootID                  string            `json:"BootID"`
}

type wireAddress struct {
	Type string `json:"Type"`
	IP   string `json:"IP"`
}

// Key is the state key of n: cilium/state/nodes/v1/<Cluster>/<Name>.
func (n *Node) Key() string { return NodeKey(n.Cluster, n.Name) }

// Marshal encodes n exactly as Cilium does.
func (n *Node) Marshal() ([]byte, error) {
	w := wireNode{
		Name:                    n.Name,
		Cluster:                 n.Cluster,
		IPv4AllocCIDR:           toWireCIDR(n.IPv4AllocCIDR),
		IPv4SecondaryAllocCIDRs: toWireCIDRs(n.IPv4SecondaryAllocCIDRs),
		IPv6AllocCIDR:           toWireCIDR(n.IPv6AllocCIDR),
		IPv6SecondaryAllocCIDRs: toWireCIDRs(n.IPv6SecondaryAllocCIDRs),
		IPv4HealthIP:            addrString(n.IPv4HealthIP),
		IPv6HealthIP:            addrString(n.IPv6HealthIP),
		IPv4IngressIP:           addrString(n.IPv4IngressIP),
		IPv6IngressIP:           addrString(n.IPv6IngressIP),
		ClusterID:               int64(n.ClusterID),
		Source:                  n.Source,
		EncryptionKey:           n.EncryptionKey,
		Labels:                  n.Labels,
		Annotations:             n.Annotations,
		WireguardPubKey:         n.WireguardPubKey,
		BootID:                  n.BootID,
	}
	if n.IPAddresses != nil {
		w.IPAddresses = make([]wireAddress, len(n.IPAddresses))
		for i, a := range n.IPAddresses {
			w.IPAddresses[i] = wireAddress{Type: string(a.Type), IP: addrString(a.IP)}
		}
	}
	return json.Marshal(&w)
}

// DecodeNode decodes and validates the Node stored at key (a state or cache
// nodes key) and read from the cluster described by from. It checks that:
// the key is a nodes key of from.Cluster; "Cluster" and "Name" match the
// key; "ClusterID" is from.ClusterID; every address, CIDR and the WireGuard
// key are well-formed and of the right family. Errors are *Error naming key
// and field: ErrInvalidKey, ErrInvalidValue, ErrKeyMismatch,
// ErrClusterMismatch; ErrInvalidOrigin for a bad from.
func DecodeNode(key string, value []byte, from Origin) (*Node, error) {
	if err := from.Validate(); err != nil {
		return nil, originErr(key, err)
	}
	k, err := ParseKey(key)
	if err != nil {
		return nil, err
	}
	if k.Kind != KindNode {
		return nil, errKey(key, "not a nodes key")
	}
	if err := from.checkCluster(key, "", k.Cluster); err != nil {
		return nil, err
	}
	var w wireNode
	if err := decodeJSON(key, value, &w); err != nil {
		return nil, err
	}
	if w.Cluster != k.Cluster {
		return nil, mismatch(key, "Cluster", ErrClusterMismatch, w.Cluster, "cluster", k.Cluster, "key")
	}
	if w.Name != k.Name {
		return nil, mismatch(key, "Name", ErrKeyMismatch, w.Name, "node name", k.Name, "key")
	}
	if err := from.checkClusterID(key, "ClusterID", w.ClusterID); err != nil {
		return nil, err
	}
	n := &Node{
		Name:            w.Name,
		Cluster:         w.Cluster,
		ClusterID:       identity.ClusterID(w.ClusterID),
		Source:          w.Source,
		EncryptionKey:   w.EncryptionKey,
		Labels:          w.Labels,
		Annotations:     w.Annotations,
		WireguardPubKey: w.WireguardPubKey,
		BootID:          w.BootID,
	}
	if w.IPAddresses != nil {
		n.IPAddresses = make([]Address, len(w.IPAddresses))
		for i, a := range w.IPAddresses {
			f := "IPAddresses[" + strconv.Itoa(i) + "]"
			if a.Type == "" {
				return nil, errField(key, f+".Type", ErrInvalidValue, "must not be empty")
			}
			ip, err := addrField(key, f+".IP", a.IP)
			if err != nil {
				return nil, err
			}
			if !ip.IsValid() {
				return nil, errField(key, f+".IP", ErrInvalidValue, "must not be empty")
			}
			n.IPAddresses[i] = Address{Type: AddressType(a.Type), IP: ip}
		}
	}
	if n.IPv4AllocCIDR, err = cidrField(key, "IPv4AllocCIDR", w.IPv4AllocCIDR, true); err != nil {
		return nil, err
	}
	if n.IPv4SecondaryAllocCIDRs, err = cidrsField(key, "IPv4SecondaryAllocCIDRs", w.IPv4SecondaryAllocCIDRs, true); err != nil {
		return nil, err
	}
	if n.IPv6AllocCIDR, err = cidrField(key, "IPv6AllocCIDR", w.IPv6AllocCIDR, false); err != nil {
		return nil, err
	}
	if n.IPv6SecondaryAllocCIDRs, err = cidrsField(key, "IPv6SecondaryAllocCIDRs", w.IPv6SecondaryAllocCIDRs, false); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name  string
		s     string
		want4 bool
		dst   *netip.Addr
	}{
		{"IPv4HealthIP", w.IPv4HealthIP, true, &n.IPv4HealthIP},
		{"IPv6HealthIP", w.IPv6HealthIP, false, &n.IPv6HealthIP},
		{"IPv4IngressIP", w.IPv4IngressIP, true, &n.IPv4IngressIP},
		{"IPv6IngressIP", w.IPv6IngressIP, false, &n.IPv6IngressIP},
	} {
		if *f.dst, err = familyAddrField(key, f.name, f.s, f.want4); err != nil {
			return nil, err
		}
	}
	if w.WireguardPubKey != "" {
		raw, err := base64.StdEncoding.Strict().DecodeString(w.WireguardPubKey)
		if err != nil || len(raw) != 32 {
			return nil, errField(key, "WireguardPubKey", ErrInvalidValue, "value "+strconv.Quote(w.WireguardPubKey)+" is not a base64 WireGuard key of 32 bytes")
		}
	}
	return n, nil
}
