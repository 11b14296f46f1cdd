package schema

import (
	"encoding/json"
	"net"
	"net/netip"
	"strconv"

	"github.com/strait-net/strait/identity"
)

// MaxNumericIdentity is the largest identity that travels between nodes:
// 24 bits. Larger values are node-local and never published.
const MaxNumericIdentity = 1<<24 - 1

// NamedPort maps a port name of a pod to its number and protocol.
type NamedPort struct {
	Name     string `json:"Name"`
	Port     uint16 `json:"Port"`
	Protocol string `json:"Protocol"`
}

// IPIdentityPair is an ipcache entry: which security identity an address (or
// a CIDR) has and which node hosts it. Stored at
// cilium/state/ip/v1/default/<ip> (or <ip>/<bits> for a CIDR) as Cilium's
// pkg/identity.IPIdentityPair JSON.
type IPIdentityPair struct {
	IP netip.Addr
	// HasMask marks a CIDR entry: IP/MaskBits, written with a "Mask". A
	// host entry (HasMask false) carries no mask at all, which Cilium
	// distinguishes from a full-length mask.
	HasMask  bool
	MaskBits int
	// HostIP is the tunnel endpoint (the hosting node's IP); zero if none.
	HostIP netip.Addr
	ID     identity.NumericIdentity
	// EncryptionKey is the IPsec key index ("Key" on the wire); 0 means none.
	EncryptionKey     uint8
	Metadata          string
	K8sNamespace      string
	K8sPodName        string
	K8sPodUID         string
	K8sServiceAccount string
	NamedPorts        []NamedPort
}

type wireIPIdentityPair struct {
	IP                string      `json:"IP"`
	Mask              []byte      `json:"Mask,omitempty"`
	HostIP            string      `json:"HostIP"`
	ID                uint32      `json:"ID"`
	Key               uint8       `json:"Key"`
	Metadata          string      `json:"Metadata"`
	K8sNamespace      string      `json:"K8sNamespace,omitempty"`
	K8sPodName        string      `json:"K8sPodName,omitempty"`
	K8sPodUID         string      `json:"K8sPodUID,omitempty"`
	K8sServiceAccount string      `json:"K8sServiceAccount,omitempty"`
	NamedPorts        []NamedPort `json:"NamedPorts,omitempty"`
}

// Prefix is the entry as a prefix: IP/MaskBits, or the full-length prefix
// of IP for a host entry.
func (p *IPIdentityPair) Prefix() netip.Prefix {
	if p.HasMask {
		return netip.PrefixFrom(p.IP, p.MaskBits)
	}
	return netip.PrefixFrom(p.IP, p.IP.BitLen())
}

// keySuffix is what Cilium's PrefixString returns: "<ip>" or "<ip>/<bits>".
func (p *IPIdentityPair) keySuffix() string {
	if p.HasMask {
		return p.IP.String() + "/" + strconv.Itoa(p.MaskBits)
	}
	return p.IP.String()
}

// Key is the state key of p: cilium/state/ip/v1/default/<ip>[/<bits>].
func (p *IPIdentityPair) Key() string {
	return IPPrefix + "/" + AddressSpace + "/" + p.keySuffix()
}

// Marshal encodes p exactly as Cilium does.
func (p *IPIdentityPair) Marshal() ([]byte, error) {
	w := wireIPIdentityPair{
		IP:                addrString(p.IP),
		HostIP:            addrString(p.HostIP),
		ID:                uint32(p.ID),
		Key:               p.EncryptionKey,
		Metadata:          p.Metadata,
		K8sNamespace:      p.K8sNamespace,
		K8sPodName:        p.K8sPodName,
		K8sPodUID:         p.K8sPodUID,
		K8sServiceAccount: p.K8sServiceAccount,
		NamedPorts:        p.NamedPorts,
	}
	if p.HasMask && p.IP.IsValid() {
		w.Mask = net.CIDRMask(p.MaskBits, p.IP.BitLen())
	}
	return json.Marshal(&w)
}

// DecodeIPIdentityPair decodes and validates the ipcache entry stored at key
// (cilium/state/ip/v1/default/<ip> or KVStoreMesh's
// cilium/cache/ip/v1/<cluster>/<ip>) read from the cluster from. It checks
// that "IP" (with "Mask", if any) is what the key names, that "Mask" fits
// the address family, that "HostIP" is a valid address when present, that
// "ID" is a non-zero 24-bit identity, and that every named port has a name
// and a non-zero port. Whether ID lies in the range of from's cluster is
// left to the identity package. Errors are *Error as for DecodeNode.
func DecodeIPIdentityPair(key string, value []byte, from Origin) (*IPIdentityPair, error) {
	if err := from.Validate(); err != nil {
		return nil, originErr(key, err)
	}
	k, err := ParseKey(key)
	if err != nil {
		return nil, err
	}
	if k.Kind != KindIPIdentity {
		return nil, errKey(key, "not an ip key")
	}
	if k.Cached {
		if err := from.checkCluster(key, "", k.Cluster); err != nil {
			return nil, err
		}
	}
	var w wireIPIdentityPair
	if err := decodeJSON(key, value, &w); err != nil {
		return nil, err
	}
	ip, err := addrField(key, "IP", w.IP)
	if err != nil {
		return nil, err
	}
	if !ip.IsValid() {
		return nil, errField(key, "IP", ErrInvalidValue, "must not be empty")
	}
	p := &IPIdentityPair{
		IP:                ip,
		ID:                identity.NumericIdentity(w.ID),
		EncryptionKey:     w.Key,
		Metadata:          w.Metadata,
		K8sNamespace:      w.K8sNamespace,
		K8sPodName:        w.K8sPodName,
		K8sPodUID:         w.K8sPodUID,
		K8sServiceAccount: w.K8sServiceAccount,
		NamedPorts:        w.NamedPorts,
	}
	if w.Mask != nil {
		bits, err := maskBits(w.Mask, ip)
		if err != nil {
			return nil, errCause(key, "Mask", ErrInvalidValue, err, err.Error())
		}
		p.HasMask, p.MaskBits = true, bits
	}
	if got := p.keySuffix(); got != k.IP {
		return nil, mismatch(key, "IP", ErrKeyMismatch, got, "address", k.IP, "key")
	}
	if p.HostIP, err = addrField(key, "HostIP", w.HostIP); err != nil {
		return nil, err
	}
	if w.ID == 0 || w.ID > MaxNumericIdentity {
		return nil, errField(key, "ID", ErrInvalidValue, "identity "+strconv.FormatUint(uint64(w.ID), 10)+" is not in 1.."+strconv.Itoa(MaxNumericIdentity))
	}
	for i, np := range w.NamedPorts {
		f := "NamedPorts[" + strconv.Itoa(i) + "]"
		if np.Name == "" {
			return nil, errField(key, f+".Name", ErrInvalidValue, "must not be empty")
		}
		if np.Port == 0 {
			return nil, errField(key, f+".Port", ErrInvalidValue, "must not be 0")
		}
	}
	return p, nil
}
