package strict

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// Return codes of a direct-action tc program (linux/pkt_cls.h).
const (
	tcActUnspec = ^uint32(0) // -1
	tcActShot   = 2
)

// skbContext is the head of struct __sk_buff up to mark: BPF_PROG_TEST_RUN
// accepts a partial context and copies mark into the test skb.
type skbContext struct {
	Len, PktType, Mark uint32
}

// loadForTestRun loads the committed object without attaching it and fills its
// CIDR map.
func loadForTestRun(tb testing.TB, cidrs []netip.Prefix) *strictObjects {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: loads BPF programs")
	}
	var objs strictObjects
	if err := loadStrictObjects(&objs, nil); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { objs.Close() })
	for _, c := range cidrs {
		if err := objs.StrictCidrs.Put(lpmKey(c), uint8(1)); err != nil {
			tb.Fatal(err)
		}
	}
	return &objs
}

// frame builds an Ethernet frame of the given ethertype; for IPv4 it carries a
// 20-byte header (version ihl) to dst.
func frame(ethertype uint16, versionIHL byte, dst netip.Addr, ipLen int) []byte {
	f := make([]byte, 14+ipLen)
	copy(f[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(f[6:12], []byte{2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:14], ethertype)
	if ipLen >= 20 {
		f[14] = versionIHL
		binary.BigEndian.PutUint16(f[16:18], uint16(ipLen))
		f[14+8] = 64 // TTL
		f[14+9] = unix.IPPROTO_UDP
		copy(f[14+12:14+16], []byte{10, 98, 0, 1})
		copy(f[14+16:14+20], dst.AsSlice())
	}
	return f
}

// TestProgramTestRun runs the committed program on single packets through
// BPF_PROG_TEST_RUN and checks its return code and counters: the unit test of
// the C code, next to the namespace tests of the attached filter.
func TestProgramTestRun(t *testing.T) {
	objs := loadForTestRun(t, prefixes("10.99.0.0/16", "10.77.1.0/24", "192.0.2.7/32"))
	pod := netip.MustParseAddr("10.99.200.3")
	tests := []struct {
		name   string
		data   []byte
		mark   uint32
		want   uint32
		reason Reason
	}{
		{name: "pod /16", data: frame(unix.ETH_P_IP, 0x45, pod, 28), want: tcActShot, reason: ReasonDropStrict},
		{name: "pod /24", data: frame(unix.ETH_P_IP, 0x45, netip.MustParseAddr("10.77.1.255"), 28), want: tcActShot, reason: ReasonDropStrict},
		{name: "host /32", data: frame(unix.ETH_P_IP, 0x45, netip.MustParseAddr("192.0.2.7"), 28), want: tcActShot, reason: ReasonDropStrict},
		{name: "next to the /32", data: frame(unix.ETH_P_IP, 0x45, netip.MustParseAddr("192.0.2.8"), 28), want: tcActUnspec, reason: ReasonPassNoMatch},
		{name: "just outside the /24", data: frame(unix.ETH_P_IP, 0x45, netip.MustParseAddr("10.77.2.0"), 28), want: tcActUnspec, reason: ReasonPassNoMatch},
		{name: "node address", data: frame(unix.ETH_P_IP, 0x45, netip.MustParseAddr("10.98.0.2"), 28), want: tcActUnspec, reason: ReasonPassNoMatch},
		{name: "ip options", data: frame(unix.ETH_P_IP, 0x46, pod, 28), want: tcActShot, reason: ReasonDropStrict},
		{name: "wireguard mark", data: frame(unix.ETH_P_IP, 0x45, pod, 28), mark: 0x1E00, want: tcActUnspec, reason: ReasonPassEncrypted},
		{name: "ipsec mark with node id", data: frame(unix.ETH_P_IP, 0x45, pod, 28), mark: 0x00030E00, want: tcActUnspec, reason: ReasonPassEncrypted},
		{name: "decrypt mark", data: frame(unix.ETH_P_IP, 0x45, pod, 28), mark: 0x0D00, want: tcActShot, reason: ReasonDropStrict},
		{name: "ihl below 5", data: frame(unix.ETH_P_IP, 0x44, pod, 28), want: tcActShot, reason: ReasonDropMalformed},
		{name: "version 6 in ipv4 frame", data: frame(unix.ETH_P_IP, 0x65, pod, 28), want: tcActShot, reason: ReasonDropMalformed},
		// A truncated IPv4 header cannot be fed through BPF_PROG_TEST_RUN (the
		// kernel rejects it); TestVerdicts sends one through a packet socket.
		{name: "ipv6", data: frame(unix.ETH_P_IPV6, 0, pod, 40), want: tcActUnspec, reason: ReasonPassNotIPv4},
		{name: "arp", data: frame(unix.ETH_P_ARP, 0, pod, 28), want: tcActUnspec, reason: ReasonPassNotIPv4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := readCounters(t, objs)
			ret, err := objs.StrictEgress.Run(&ebpf.RunOptions{Data: tt.data, Context: skbContext{Mark: tt.mark}})
			if err != nil {
				t.Fatal(err)
			}
			if ret != tt.want {
				t.Errorf("return code %d, want %d", int32(ret), int32(tt.want))
			}
			want := before
			want[tt.reason]++
			if diff := cmp.Diff(want, readCounters(t, objs)); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
		})
	}
}

func readCounters(tb testing.TB, objs *strictObjects) Counters {
	tb.Helper()
	var c Counters
	var perCPU []uint64
	for _, r := range Reasons() {
		if err := objs.StrictCounters.Lookup(uint32(r), &perCPU); err != nil {
			tb.Fatal(err)
		}
		for _, v := range perCPU {
			c[r] += v
		}
	}
	return c
}

// BenchmarkProgram measures the program per packet in the kernel
// (BPF_PROG_TEST_RUN) against a baseline program that only returns, in the
// same run, and reports the ratio ("x-baseline") next to ns/pkt. The CIDR set
// is MaxCIDRs /24s or one /16.
func BenchmarkProgram(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: loads BPF programs")
	}
	baseline, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer baseline.Close()
	full := make([]netip.Prefix, MaxCIDRs)
	for i := range full {
		full[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
	}
	sets := []struct {
		name  string
		cidrs []netip.Prefix
	}{
		{name: "1cidr", cidrs: prefixes("10.99.0.0/16")},
		{name: "4096cidrs", cidrs: full},
	}
	packets := []struct {
		name string
		data []byte
	}{
		{name: "match", data: frame(unix.ETH_P_IP, 0x45, netip.MustParseAddr("10.99.1.1"), 28)},
		{name: "nomatch", data: frame(unix.ETH_P_IP, 0x45, netip.MustParseAddr("192.0.2.1"), 28)},
	}
	for _, set := range sets {
		objs := loadForTestRun(b, set.cidrs)
		for _, pkt := range packets {
			b.Run(set.name+"/"+pkt.name, func(b *testing.B) {
				_, base, err := baseline.Benchmark(pkt.data, b.N, nil)
				if err != nil {
					b.Fatal(err)
				}
				_, prog, err := objs.StrictEgress.Benchmark(pkt.data, b.N, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(prog.Nanoseconds()), "ns/pkt")
				b.ReportMetric(float64(base.Nanoseconds()), "baseline-ns/pkt")
				if base > 0 {
					b.ReportMetric(float64(prog)/float64(base), "x-baseline")
				}
			})
		}
	}
}
