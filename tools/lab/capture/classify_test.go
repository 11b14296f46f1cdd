package capture

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// frame builds an Ethernet + IPv4 frame with a transport header.
func frame(src, dst string, proto uint8, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 14, 64+len(payload))
	binary.BigEndian.PutUint16(b[12:], etherIPv4)
	ip := make([]byte, 20)
	ip[0] = 0x45
	ip[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	var l4 []byte
	switch proto {
	case protoTCP:
		l4 = make([]byte, 20)
	case protoUDP:
		l4 = make([]byte, 8)
	default:
		l4 = make([]byte, 8)
	}
	if proto == protoTCP || proto == protoUDP {
		binary.BigEndian.PutUint16(l4[0:], sport)
		binary.BigEndian.PutUint16(l4[2:], dport)
	}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)+len(payload)))
	b = append(b, ip...)
	b = append(b, l4...)
	return append(b, payload...)
}

func arpFrame(sender, target string) []byte {
	b := make([]byte, 14+28)
	binary.BigEndian.PutUint16(b[12:], etherARP)
	a := b[14:]
	binary.BigEndian.PutUint16(a[0:], 1)
	binary.BigEndian.PutUint16(a[2:], etherIPv4)
	a[4], a[5] = 6, 4
	s, t := netip.MustParseAddr(sender).As4(), netip.MustParseAddr(target).As4()
	copy(a[14:], s[:])
	copy(a[24:], t[:])
	return b
}

func testConfig() Config {
	return Config{
		NodeAddrs: []netip.Addr{netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("198.18.2.11")},
		APIAddrs:  []netip.Addr{netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.2.1")},
		PodCIDRs:  []netip.Prefix{netip.MustParsePrefix("10.1.1.0/24"), netip.MustParsePrefix("10.2.1.0/24")},
		Marker:    []byte("MARK-1234"),
	}
}

func TestClassify(t *testing.T) {
	vlan := frame("10.1.1.2", "10.2.1.2", protoTCP, 1, 2, nil)
	vlan = append(append(append([]byte{}, vlan[:12]...), 0x81, 0x00, 0, 5), vlan[12:]...)
	frag := frame("198.18.1.11", "198.18.2.11", protoUDP, 0, 0, nil)
	binary.BigEndian.PutUint16(frag[14+6:], 100) // fragment offset 100
	tests := []struct {
		name  string
		frame []byte
		want  Class
	}{
		{name: "wireguard dst port", frame: frame("198.18.1.11", "198.18.2.11", protoUDP, 40000, 51871, nil), want: ClassWireGuard},
		{name: "wireguard src port", frame: frame("198.18.2.11", "198.18.1.11", protoUDP, 51871, 51871, nil), want: ClassWireGuard},
		{name: "udp 51871 to non-node", frame: frame("198.18.1.11", "198.18.9.9", protoUDP, 51871, 51871, nil), want: ClassOther},
		{name: "udp other port between nodes", frame: frame("198.18.1.11", "198.18.2.11", protoUDP, 53, 53, nil), want: ClassOther},
		{name: "esp", frame: frame("198.18.1.11", "198.18.2.11", protoESP, 0, 0, nil), want: ClassIPsec},
		{name: "tcp to apiserver", frame: frame("198.18.1.11", "198.18.1.1", protoTCP, 40000, 2379, nil), want: ClassControlPlane},
		{name: "tcp from apiserver", frame: frame("198.18.2.1", "198.18.1.1", protoTCP, 2379, 40000, nil), want: ClassControlPlane},
		{name: "tcp between nodes", frame: frame("198.18.1.11", "198.18.2.11", protoTCP, 1, 2, nil), want: ClassOther},
		{name: "plaintext pod tcp", frame: frame("10.1.1.2", "10.2.1.2", protoTCP, 1, 2, nil), want: ClassPlaintextPod},
		{name: "plaintext pod icmp dst only", frame: frame("198.18.1.11", "10.2.1.2", protoICMP, 0, 0, nil), want: ClassPlaintextPod},
		{name: "pod address on wireguard port", frame: frame("10.1.1.2", "198.18.2.11", protoUDP, 51871, 51871, nil), want: ClassPlaintextPod},
		{name: "vlan tagged pod", frame: vlan, want: ClassPlaintextPod},
		{name: "later fragment between nodes", frame: frag, want: ClassOther},
		{name: "arp", frame: arpFrame("198.18.1.11", "198.18.2.11"), want: ClassARP},
		{name: "ipv6", frame: append(make([]byte, 12), 0x86, 0xdd, 0x60, 0, 0, 0), want: ClassOther},
	}
	cfg := testConfig()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseFrame(tt.frame)
			if err != nil {
				t.Fatalf("ParseFrame: %v", err)
			}
			if got := cfg.Classify(p); got != tt.want {
				t.Errorf("Classify(%s) = %s, want %s", p, got, tt.want)
			}
		})
	}
}

func TestParseFrame(t *testing.T) {
	tests := []struct {
		name    string
		frame   []byte
		want    Packet
		wantErr error
	}{
		{name: "udp", frame: frame("198.18.1.11", "198.18.2.11", protoUDP, 1000, 51871, []byte("x")),
			want: Packet{EtherType: etherIPv4, Src: netip.MustParseAddr("198.18.1.11"), Dst: netip.MustParseAddr("198.18.2.11"), Proto: protoUDP, SrcPort: 1000, DstPort: 51871, Len: 14 + 20 + 8 + 1}},
		{name: "arp", frame: arpFrame("198.18.1.11", "198.18.1.1"),
			want: Packet{EtherType: etherARP, Src: netip.MustParseAddr("198.18.1.11"), Dst: netip.MustParseAddr("198.18.1.1"), Len: 42}},
		{name: "short ethernet", frame: make([]byte, 13), wantErr: ErrShort},
		{name: "short ipv4", frame: frame("1.1.1.1", "2.2.2.2", protoUDP, 1, 2, nil)[:30], wantErr: ErrShort},
		{name: "short ports", frame: frame("1.1.1.1", "2.2.2.2", protoUDP, 1, 2, nil)[:36], wantErr: ErrShort},
		{name: "bad version", frame: func() []byte { f := frame("1.1.1.1", "2.2.2.2", protoUDP, 1, 2, nil); f[14] = 0x65; return f }(), wantErr: ErrBadHeader},
		{name: "bad ihl", frame: func() []byte { f := frame("1.1.1.1", "2.2.2.2", protoUDP, 1, 2, nil); f[14] = 0x44; return f }(), wantErr: ErrBadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFrame(tt.frame)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			if d := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Errorf("ParseFrame (-want +got):\n%s", d)
			}
		})
	}
}

func TestAddStats(t *testing.T) {
	c := &Capture{cfg: testConfig()}
	t0 := time.Unix(100, 0)
	c.add(arpFrame("198.18.1.11", "198.18.1.1"), t0)
	c.add(frame("198.18.1.11", "198.18.2.11", protoUDP, 1, 51871, nil), t0.Add(time.Second))
	c.add(frame("198.18.1.11", "198.18.2.11", protoUDP, 1, 51871, nil), t0.Add(2*time.Second))
	c.add(frame("10.1.1.2", "10.2.1.2", protoTCP, 1, 2, []byte("..MARK-1234..")), t0.Add(3*time.Second))
	c.add(make([]byte, 5), t0)
	s := c.Stats()
	if s.Count(ClassARP) != 1 || s.Count(ClassWireGuard) != 2 || s.Count(ClassPlaintextPod) != 1 || s.Count(ClassOther) != 1 {
		t.Errorf("counts: %s", s.String())
	}
	if !s.FirstEncrypted.Equal(t0.Add(time.Second)) || s.EncryptedBytes != 2*(14+20+8) {
		t.Errorf("first encrypted %v, bytes %d", s.FirstEncrypted, s.EncryptedBytes)
	}
	if s.MarkerHits != 1 || s.ParseErrors != 1 || len(s.Samples[ClassPlaintextPod]) != 1 {
		t.Errorf("marker %d, parse errors %d, samples %v", s.MarkerHits, s.ParseErrors, s.Samples)
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add(frame("198.18.1.11", "198.18.2.11", protoUDP, 1000, 51871, []byte("x")))
	f.Add(arpFrame("198.18.1.11", "198.18.1.1"))
	f.Add([]byte{0, 1, 2})
	cfg := testConfig()
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseFrame(b)
		if err != nil {
			return
		}
		if p.Len != len(b) {
			t.Fatalf("Len %d of %d bytes", p.Len, len(b))
		}
		_ = cfg.Classify(p)
		_ = p.String()
	})
}
