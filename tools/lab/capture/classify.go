package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Class is what a frame is, as far as the encryption checks care.
type Class int

const (
	ClassOther Class = iota
	ClassARP
	ClassWireGuard
	ClassIPsec
	ClassControlPlane
	ClassPlaintextPod
	numClasses
)

func (c Class) String() string {
	switch c {
	case ClassARP:
		return "arp"
	case ClassWireGuard:
		return "wireguard"
	case ClassIPsec:
		return "ipsec"
	case ClassControlPlane:
		return "control-plane"
	case ClassPlaintextPod:
		return "PLAINTEXT-POD"
	case ClassOther:
		return "other"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// IP protocol numbers and EtherTypes the parser knows.
const (
	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
	protoESP  = 50

	etherIPv4 = 0x0800
	etherARP  = 0x0806
	etherVLAN = 0x8100
	etherIPv6 = 0x86DD
)

// DefaultWireGuardPort is strait's WireGuard UDP port.
const DefaultWireGuardPort = 51871

var (
	// ErrShort: the frame ends inside a header.
	ErrShort = errors.New("capture: frame too short")
	// ErrBadHeader: an IPv4 header with an impossible version or length.
	ErrBadHeader = errors.New("capture: bad IPv4 header")
)

// Packet is a parsed frame.
type Packet struct {
	EtherType uint16
	// Src and Dst are set for IPv4 (and ARP: sender and target).
	Src, Dst netip.Addr
	// Proto is the IPv4 protocol; ports are set for TCP and UDP.
	Proto            uint8
	SrcPort, DstPort uint16
	// Fragment: a non-first IPv4 fragment (no transport header).
	Fragment bool
	// Len is the frame's length.
	Len int
}

func (p Packet) String() string {
	switch p.EtherType {
	case etherARP:
		return fmt.Sprintf("arp %s > %s", p.Src, p.Dst)
	case etherIPv4:
		switch p.Proto {
		case protoTCP, protoUDP:
			name := "tcp"
			if p.Proto == protoUDP {
				name = "udp"
			}
			return fmt.Sprintf("%s %s > %s len %d", name, netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort), p.Len)
		default:
			return fmt.Sprintf("ip proto %d %s > %s len %d", p.Proto, p.Src, p.Dst, p.Len)
		}
	}
	return fmt.Sprintf("ethertype %#04x len %d", p.EtherType, p.Len)
}

// ParseFrame parses an Ethernet frame as far as classification needs.
func ParseFrame(b []byte) (Packet, error) {
	p := Packet{Len: len(b)}
	if len(b) < 14 {
		return p, fmt.Errorf("ethernet header: %w", ErrShort)
	}
	p.EtherType = binary.BigEndian.Uint16(b[12:14])
	b = b[14:]
	for p.EtherType == etherVLAN {
		if len(b) < 4 {
			return p, fmt.Errorf("802.1Q header: %w", ErrShort)
		}
		p.EtherType = binary.BigEndian.Uint16(b[2:4])
		b = b[4:]
	}
	switch p.EtherType {
	case etherARP:
		// htype(2) ptype(2) hlen(1) plen(1) op(2) sha spa tha tpa
		if len(b) < 8 {
			return p, fmt.Errorf("arp header: %w", ErrShort)
		}
		hlen, plen := int(b[4]), int(b[5])
		if plen != 4 || len(b) < 8+2*hlen+2*plen {
			return p, nil
		}
		p.Src = netip.AddrFrom4([4]byte(b[8+hlen : 8+hlen+4]))
		p.Dst = netip.AddrFrom4([4]byte(b[8+2*hlen+4 : 8+2*hlen+8]))
		return p, nil
	case etherIPv4:
		return parseIPv4(p, b)
	}
	return p, nil
}

func parseIPv4(p Packet, b []byte) (Packet, error) {
	if len(b) < 20 {
		return p, fmt.Errorf("ipv4 header: %w", ErrShort)
	}
	if b[0]>>4 != 4 {
		return p, fmt.Errorf("ipv4 version %d: %w", b[0]>>4, ErrBadHeader)
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return p, fmt.Errorf("ipv4 header length %d: %w", ihl, ErrBadHeader)
	}
	if len(b) < ihl {
		return p, fmt.Errorf("ipv4 options: %w", ErrShort)
	}
	p.Proto = b[9]
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		p.Fragment = true
		return p, nil
	}
	l4 := b[ihl:]
	switch p.Proto {
	case protoTCP, protoUDP:
		if len(l4) < 4 {
			return p, fmt.Errorf("ports: %w", ErrShort)
		}
		p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		p.DstPort = binary.BigEndian.Uint16(l4[2:4])
	}
	return p, nil
}

// Config tells the classifier the lab's addresses.
type Config struct {
	// NodeAddrs are the nodes' underlay addresses (WireGuard endpoints).
	NodeAddrs []netip.Addr
	// APIAddrs are the apiservers' addresses (control-plane TCP).
	APIAddrs []netip.Addr
	// PodCIDRs are every node's pod CIDR.
	PodCIDRs []netip.Prefix
	// WireGuardPort defaults to DefaultWireGuardPort.
	WireGuardPort uint16
	// Marker, when not empty, is searched for in every raw frame.
	Marker []byte
}

// Classify sorts a parsed frame into its class.
func (c *Config) Classify(p Packet) Class {
	switch p.EtherType {
	case etherARP:
		return ClassARP
	case etherIPv4:
	default:
		return ClassOther
	}
	for _, pfx := range c.PodCIDRs {
		if pfx.Contains(p.Src) || pfx.Contains(p.Dst) {
			return ClassPlaintextPod
		}
	}
	port := c.WireGuardPort
	if port == 0 {
		port = DefaultWireGuardPort
	}
	switch {
	case p.Proto == protoUDP && (p.SrcPort == port || p.DstPort == port) &&
		contains(c.NodeAddrs, p.Src) && contains(c.NodeAddrs, p.Dst):
		return ClassWireGuard
	case p.Proto == protoESP && contains(c.NodeAddrs, p.Src) && contains(c.NodeAddrs, p.Dst):
		return ClassIPsec
	case p.Proto == protoTCP && (contains(c.APIAddrs, p.Src) || contains(c.APIAddrs, p.Dst)):
		return ClassControlPlane
	}
	return ClassOther
}

func contains(addrs []netip.Addr, a netip.Addr) bool {
	for _, x := range addrs {
		if x == a {
			return true
		}
	}
	return false
}
