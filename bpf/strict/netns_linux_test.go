package strict

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The test topology, built fresh per test in namespaces named sbp<pid>t<n>a/b:
//
//	ns A ("node")                          ns B ("remote")
//	 vA 10.98.0.1/24  ===== veth =====  vB 10.98.0.2/24
//	 route 10.99.0.0/16 via 10.98.0.2       lo 10.99.1.1/32 (a "pod" in the strict CIDR)
//	 route 10.77.0.0/16 via 10.98.0.2       lo 10.77.1.1/32 (another "pod" range)
//	 strict filter on vA egress             UDP receiver on 0.0.0.0:51871
//
// The neighbour entry for 10.98.0.2 is permanent and IPv6 is off in both
// namespaces, so the only packets on vA are the ones a test sends.
var (
	nodeAddr   = netip.MustParseAddr("10.98.0.2") // the peer's own (node) address, outside the CIDRs
	podAddr    = netip.MustParseAddr("10.99.1.1")
	otherAddr  = netip.MustParseAddr("10.77.1.1")
	strictCIDR = netip.MustParsePrefix("10.99.0.0/16")
	otherCIDR  = netip.MustParsePrefix("10.77.0.0/16")
)

const udpPort = 51871 // WireGuard's port in strait

var topoSeq atomic.Int32

type topo struct {
	nsA, nsB string
	devA     string
	ifindex  int // of vA in ns A
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and loads BPF programs")
	}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newTopo(t *testing.T) *topo {
	t.Helper()
	requireRoot(t)
	base := fmt.Sprintf("sbp%dt%d", os.Getpid(), topoSeq.Add(1))
	tp := &topo{nsA: base + "a", nsB: base + "b", devA: base + "a"}
	devB := base + "b"
	for _, ns := range []string{tp.nsA, tp.nsB} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("delete netns %s: %v: %s", ns, err, out)
			}
		})
		tp.inNS(t, ns, func() error {
			for _, f := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
				if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
					return err
				}
			}
			return nil
		})
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", tp.devA, "netns", tp.nsA, "type", "veth", "peer", "name", devB, "netns", tp.nsB)
	run(t, "ip", "-n", tp.nsA, "addr", "add", "10.98.0.1/24", "dev", tp.devA)
	run(t, "ip", "-n", tp.nsB, "addr", "add", "10.98.0.2/24", "dev", devB)
	run(t, "ip", "-n", tp.nsB, "addr", "add", podAddr.String()+"/32", "dev", "lo")
	run(t, "ip", "-n", tp.nsB, "addr", "add", otherAddr.String()+"/32", "dev", "lo")
	run(t, "ip", "-n", tp.nsA, "link", "set", tp.devA, "up")
	run(t, "ip", "-n", tp.nsB, "link", "set", devB, "up")
	run(t, "ip", "-n", tp.nsA, "route", "add", strictCIDR.String(), "via", nodeAddr.String())
	run(t, "ip", "-n", tp.nsA, "route", "add", otherCIDR.String(), "via", nodeAddr.String())
	tp.inNS(t, tp.nsB, func() error {
		l, err := netlink.LinkByName(devB)
		if err != nil {
			return err
		}
		run(t, "ip", "-n", tp.nsA, "neigh", "replace", nodeAddr.String(), "lladdr", l.Attrs().HardwareAddr.String(), "dev", tp.devA, "nud", "permanent")
		return nil
	})
	tp.inNS(t, tp.nsA, func() error {
		l, err := netlink.LinkByName(tp.devA)
		if err != nil {
			return err
		}
		tp.ifindex = l.Attrs().Index
		return nil
	})
	return tp
}

// inNS runs fn on a fresh OS thread switched into namespace ns. The thread is
// never unlocked, so the runtime discards it afterwards instead of reusing a
// thread in the wrong namespace. Sockets and netlink handles created by fn stay
// in ns when used from other goroutines.
func (tp *topo) inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in netns %s: %v", ns, err)
	}
}

func (tp *topo) attach(t *testing.T, cidrs ...netip.Prefix) *Program {
	t.Helper()
	var p *Program
	tp.inNS(t, tp.nsA, func() (err error) {
		p, err = Attach(tp.ifindex, cidrs)
		return err
	})
	return p
}

// filters lists the egress filters on vA.
func (tp *topo) filters(t *testing.T) []netlink.Filter {
	t.Helper()
	var fs []netlink.Filter
	tp.inNS(t, tp.nsA, func() error {
		l, err := netlink.LinkByIndex(tp.ifindex)
		if err != nil {
			return err
		}
		fs, err = netlink.FilterList(l, netlink.HANDLE_MIN_EGRESS)
		return err
	})
	return fs
}

// requireOneFilter checks that vA's egress hook holds exactly strait's filter
// running program id (0: any id) and returns that id.
func (tp *topo) requireOneFilter(t *testing.T, id int) int {
	t.Helper()
	fs := tp.filters(t)
	if len(fs) != 1 {
		t.Fatalf("%d egress filters on %s, want 1: %v", len(fs), tp.devA, fs)
	}
	bf, ok := fs[0].(*netlink.BpfFilter)
	if !ok || bf.Name != FilterName || bf.Priority != FilterPriority || bf.Handle != FilterHandle || !bf.DirectAction {
		t.Fatalf("egress filter %+v is not strait's", fs[0])
	}
	if id != 0 && bf.Id != id {
		t.Fatalf("egress filter runs program %d, want %d", bf.Id, id)
	}
	return bf.Id
}

// sender is a UDP socket in ns A.
type sender struct{ fd int }

func (tp *topo) sender(t *testing.T, mark int) *sender {
	t.Helper()
	s := &sender{fd: -1}
	tp.inNS(t, tp.nsA, func() (err error) {
		s.fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if mark != 0 {
			return unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_MARK, mark)
		}
		return nil
	})
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

// send sends payload to dst:udpPort. The tc egress hook runs inside sendto
// (veth has no queue), so counters are final when send returns. A packet
// dropped by tc makes sendto fail with ENOBUFS or succeed silently; neither is
// an error here.
func (s *sender) send(dst netip.Addr, payload []byte) error {
	err := unix.Sendto(s.fd, payload, 0, &unix.SockaddrInet4{Port: udpPort, Addr: dst.As4()})
	if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EPERM) {
		return nil
	}
	return err
}

// receiver is a UDP socket on 0.0.0.0:udpPort in ns B.
type receiver struct{ conn *net.UDPConn }

func (tp *topo) receiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	tp.inNS(t, tp.nsB, func() (err error) {
		r.conn, err = net.ListenUDP("udp4", &net.UDPAddr{Port: udpPort})
		return err
	})
	t.Cleanup(func() { r.conn.Close() })
	return r
}

// drain reads datagrams until one with payload sentinel arrives and returns
// how many arrived for each destination address before it. The sender pins
// itself to one CPU, so packets reach B's socket in the order they were sent:
// everything sent before the sentinel has arrived when it does. The deadline
// only turns a lost sentinel into a failure instead of a hang.
func (r *receiver) drain(t *testing.T, sentinel []byte) map[netip.Addr]int {
	t.Helper()
	got, err := r.drainErr(sentinel)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (r *receiver) drainErr(sentinel []byte) (map[netip.Addr]int, error) {
	got := map[netip.Addr]int{}
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	if err := r.conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, err
	}
	for {
		n, oobn, _, _, err := r.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			return nil, fmt.Errorf("receive: %w (sentinel not seen; got %v)", err, got)
		}
		if bytes.Equal(buf[:n], sentinel) {
			return got, nil
		}
		dst, err := dstFromOOB(oob[:oobn])
		if err != nil {
			return nil, err
		}
		got[dst]++
	}
}

// enableDst asks for each datagram's destination address (IP_PKTINFO).
func (r *receiver) enableDst(t *testing.T) {
	t.Helper()
	raw, err := r.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
}

func dstFromOOB(oob []byte) (netip.Addr, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("parse control message: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
			var a [4]byte
			copy(a[:], m.Data[8:12]) // in_pktinfo.ipi_addr: the header's destination
			return netip.AddrFrom4(a), nil
		}
	}
	return netip.Addr{}, errors.New("no IP_PKTINFO in control message")
}

// pinToOneCPU keeps the calling goroutine on one OS thread and that thread on
// one CPU, so a veth's receive side (per-CPU backlog) keeps the send order. The
// caller must not unlock the thread.
func pinToOneCPU() error {
	runtime.LockOSThread()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return err
	}
	for cpu := 0; cpu < 1024; cpu++ {
		if set.IsSet(cpu) {
			var one unix.CPUSet
			one.Set(cpu)
			return unix.SchedSetaffinity(0, &one)
		}
	}
	return errors.New("no CPU in affinity mask")
}

// rawFrame sends one Ethernet frame with the given ethertype and payload out
// of vA through a packet socket (which, like any sender, passes tc egress).
func (tp *topo) rawFrame(t *testing.T, ethertype uint16, payload []byte) {
	t.Helper()
	tp.inNS(t, tp.nsA, func() error {
		proto := int(ethertype>>8 | ethertype<<8) // htons
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		l, err := netlink.LinkByIndex(tp.ifindex)
		if err != nil {
			return err
		}
		frame := make([]byte, 0, 14+len(payload))
		frame = append(frame, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		frame = append(frame, l.Attrs().HardwareAddr...)
		frame = append(frame, byte(ethertype>>8), byte(ethertype))
		frame = append(frame, payload...)
		err = unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: tp.ifindex})
		if errors.Is(err, unix.ENOBUFS) {
			return nil
		}
		return err
	})
}
