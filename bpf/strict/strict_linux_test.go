package strict

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary attach and exit (see TestMain): an agent
// that stops without detaching.
const helperEnv = "STRAIT_STRICT_HELPER_ATTACH"

func TestMain(m *testing.M) {
	if v := os.Getenv(helperEnv); v != "" {
		os.Exit(helperAttach(v))
	}
	os.Exit(m.Run())
}

// helperAttach parses "IFINDEX CIDR[,CIDR]", attaches, prints the program ID
// and exits without Close.
func helperAttach(arg string) int {
	idx, list, _ := strings.Cut(arg, " ")
	ifindex, err := strconv.Atoi(idx)
	if err == nil {
		var cidrs []netip.Prefix
		if cidrs, err = ParseCIDRs(list); err == nil {
			var p *Program
			if p, err = Attach(ifindex, cidrs); err == nil {
				fmt.Println(p.ProgramID())
				return 0
			}
		}
	}
	fmt.Fprintln(os.Stderr, "helper attach:", err)
	return 1
}

func (tp *topo) counters(t *testing.T, p *Program) Counters {
	t.Helper()
	c, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sendPinned runs fn on a thread pinned to one CPU and then sends sentinel to
// the node address from s, so that receiver.drain sees everything fn sent.
func sendPinned(t *testing.T, s *sender, sentinel []byte, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		if err := pinToOneCPU(); err != nil {
			errc <- err
			return
		}
		if err := fn(); err != nil {
			errc <- err
			return
		}
		errc <- s.send(nodeAddr, sentinel)
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestVerdicts(t *testing.T) {
	tp := newTopo(t)
	recv := tp.receiver(t)
	recv.enableDst(t)
	p := tp.attach(t, strictCIDR)
	t.Cleanup(func() { p.Close() })
	tp.requireOneFilter(t, int(p.ProgramID()))

	plain := tp.sender(t, 0)
	const n = 20
	ipv4Header := func(version byte) []byte {
		h := make([]byte, 20)
		h[0] = version<<4 | 5
		copy(h[16:], podAddr.AsSlice())
		return h
	}
	tests := []struct {
		name     string
		mark     int                // SO_MARK of the UDP sender
		dst      netip.Addr         // UDP destination, n packets; invalid: raw frame instead
		raw      []byte             // raw frame payload with rawType
		rawType  uint16             // ethertype of the raw frame
		want     Reason             // the counter that must grow, by n (UDP) or 1 (raw)
		received map[netip.Addr]int // datagrams B must get
	}{
		{name: "peer node address passes", dst: nodeAddr, want: ReasonPassNoMatch, received: map[netip.Addr]int{nodeAddr: n}},
		{name: "address outside the cidrs passes", dst: otherAddr, want: ReasonPassNoMatch, received: map[netip.Addr]int{otherAddr: n}},
		{name: "pod address is dropped", dst: podAddr, want: ReasonDropStrict, received: map[netip.Addr]int{}},
		{name: "wireguard mark passes", mark: 0x1E00, dst: podAddr, want: ReasonPassEncrypted, received: map[netip.Addr]int{podAddr: n}},
		{name: "ipsec output mark passes", mark: 0x0E00, dst: podAddr, want: ReasonPassEncrypted, received: map[netip.Addr]int{podAddr: n}},
		{name: "ipsec decrypt mark is dropped", mark: 0x0D00, dst: podAddr, want: ReasonDropStrict, received: map[netip.Addr]int{}},
		{name: "other mark is dropped", mark: 0xE000, dst: podAddr, want: ReasonDropStrict, received: map[netip.Addr]int{}},
		{name: "truncated ipv4 header is dropped", raw: make([]byte, 10), rawType: unix.ETH_P_IP, want: ReasonDropMalformed, received: map[netip.Addr]int{}},
		{name: "ipv6 in an ipv4 frame is dropped", raw: ipv4Header(6), rawType: unix.ETH_P_IP, want: ReasonDropMalformed, received: map[netip.Addr]int{}},
		{name: "ipv6 frame passes", raw: make([]byte, 40), rawType: unix.ETH_P_IPV6, want: ReasonPassNotIPv4, received: map[netip.Addr]int{}},
		{name: "arp frame passes", raw: make([]byte, 28), rawType: unix.ETH_P_ARP, want: ReasonPassNotIPv4, received: map[netip.Addr]int{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tp.counters(t, p)
			want := before
			sentinel := []byte(fmt.Sprintf("sentinel %d", i))
			if tt.dst.IsValid() {
				s := tp.sender(t, tt.mark)
				sendPinned(t, plain, sentinel, func() error {
					for range n {
						if err := s.send(tt.dst, []byte("data")); err != nil {
							return err
						}
					}
					return nil
				})
				want[tt.want] += n
			} else {
				tp.rawFrame(t, tt.rawType, tt.raw)
				want[tt.want]++
				sendPinned(t, plain, sentinel, func() error { return nil })
			}
			want[ReasonPassNoMatch]++ // the sentinel
			if diff := cmp.Diff(want, tp.counters(t, p)); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.received, recv.drain(t, sentinel)); diff != "" {
				t.Errorf("datagrams received by the peer per destination (-want +got):\n%s", diff)
			}
		})
	}
	drops, err := p.Drops()
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(3*n + 2); drops != want {
		t.Errorf("Drops() = %d, want %d", drops, want)
	}
}

func TestUpdateWithoutDetach(t *testing.T) {
	tp := newTopo(t)
	recv := tp.receiver(t)
	recv.enableDst(t)
	p := tp.attach(t, strictCIDR)
	t.Cleanup(func() { p.Close() })
	id := tp.requireOneFilter(t, 0)
	s := tp.sender(t, 0)

	steps := []struct {
		name  string
		cidrs []netip.Prefix
		// received: podAddr and otherAddr each get one datagram; these arrive.
		received map[netip.Addr]int
	}{
		{name: "initial set", cidrs: prefixes("10.99.0.0/16"), received: map[netip.Addr]int{otherAddr: 1}},
		{name: "move to the other range", cidrs: prefixes("10.77.0.0/16"), received: map[netip.Addr]int{podAddr: 1}},
		{name: "both", cidrs: prefixes("10.77.1.1/32", "10.99.1.0/24"), received: map[netip.Addr]int{}},
		{name: "empty set drops nothing", cidrs: nil, received: map[netip.Addr]int{podAddr: 1, otherAddr: 1}},
		{name: "back", cidrs: prefixes("10.99.0.0/16"), received: map[netip.Addr]int{otherAddr: 1}},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := p.Update(st.cidrs); err != nil {
				t.Fatal(err)
			}
			got, err := p.CIDRs()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(st.cidrs, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("CIDRs() (-want +got):\n%s", diff)
			}
			sentinel := []byte(fmt.Sprintf("sentinel %d", i))
			sendPinned(t, s, sentinel, func() error {
				if err := s.send(podAddr, []byte("pod")); err != nil {
					return err
				}
				return s.send(otherAddr, []byte("other"))
			})
			if diff := cmp.Diff(st.received, recv.drain(t, sentinel)); diff != "" {
				t.Errorf("datagrams received (-want +got):\n%s", diff)
			}
			tp.requireOneFilter(t, id)
		})
	}

	if err := p.Update(prefixes("10.99.0.0/16", "fd00::/64")); !errors.Is(err, ErrInvalidCIDR) {
		t.Errorf("Update with an IPv6 prefix: %v, want ErrInvalidCIDR", err)
	}
	if got, err := p.CIDRs(); err != nil || len(got) != 1 || got[0] != strictCIDR {
		t.Errorf("after a rejected Update, CIDRs() = %v, %v; want [%s]", got, err, strictCIDR)
	}
}

// TestNoLeakAcrossRestartsAndUpdates streams packets to a pod address that is
// covered throughout while the filter is attached by a process that exits
// (an agent stopping without detaching), re-attached again and again (agent
// restarts, with time between them where no Program exists in any process),
// and its CIDR set reshaped so that every update removes the prefix that
// covered the pod before. Not one packet to the pod may reach the peer.
func TestNoLeakAcrossRestartsAndUpdates(t *testing.T) {
	tp := newTopo(t)
	recv := tp.receiver(t)
	recv.enableDst(t)
	raw, err := recv.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatalf("SO_RCVBUFFORCE: %v", serr)
	}

	// An agent process attaches and exits without detaching.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", tp.nsA, exe)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s", helperEnv, tp.ifindex, strictCIDR))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper attach: %v\n%s", err, out)
	}
	helperID, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	tp.requireOneFilter(t, helperID)

	// The stream: one pinned sender, every 8th packet to the peer's node
	// address (which must all arrive), the rest to the pod.
	s := tp.sender(t, 0)
	var sent, sentNode, sentPod atomic.Int64
	var stop atomic.Bool
	sentinel := []byte("sentinel")
	done := make(chan error, 1)
	go func() {
		if err := pinToOneCPU(); err != nil {
			done <- err
			return
		}
		for i := 0; !stop.Load(); i++ {
			dst := podAddr
			if i%8 == 0 {
				dst = nodeAddr
				sentNode.Add(1)
			}
			if err := s.send(dst, []byte("stream")); err != nil {
				done <- err
				return
			}
			if dst == podAddr {
				sentPod.Add(1)
			}
			sent.Add(1)
			if i%64 == 0 {
				unix.Nanosleep(&unix.Timespec{Nsec: 200_000}, nil) // pace: let the receiver keep up
			}
		}
		done <- s.send(nodeAddr, sentinel)
	}()
	received := make(chan map[netip.Addr]int, 1)
	go func() { received <- recv.drainNoFatal(sentinel) }()
	// progress waits until the stream has sent k more packets (a wait, not an assertion).
	progress := func(k int64) {
		target := sent.Load() + k
		for sent.Load() < target {
			select {
			case err := <-done:
				t.Fatalf("stream stopped: %v", err)
			default:
				unix.Nanosleep(&unix.Timespec{Nsec: 100_000}, nil)
			}
		}
	}

	shapes := [][]netip.Prefix{
		prefixes("10.99.0.0/17", "10.99.128.0/17"),
		prefixes("10.77.0.0/16", "10.99.1.0/24"),
		prefixes("10.99.1.1/32"),
		prefixes("10.99.0.0/16"),
	}
	var p *Program
	progress(500) // the helper's filter alone, no agent running
	for i := range 12 {
		if p != nil {
			if err := p.Release(); err != nil { // the agent exits
				t.Fatal(err)
			}
			progress(300) // no agent
		}
		p = tp.attach(t, shapes[i%len(shapes)]...) // the agent starts again
		podAfter := sentPod.Load()
		tp.requireOneFilter(t, int(p.ProgramID()))
		// Each program took over its predecessor's counters, back to the
		// helper's: together they dropped every pod packet the stream sent
		// (sentPod grows after sendto returns, when tc has counted it).
		drops, err := p.Drops()
		if err != nil {
			t.Fatal(err)
		}
		if min := uint64(podAfter); drops < min {
			t.Fatalf("restart %d: Drops() = %d after re-attach, want at least %d (counters not carried over)", i, drops, min)
		}
		progress(300)
		for j := range 24 {
			if err := p.Update(shapes[(i+j+1)%len(shapes)]); err != nil {
				t.Fatal(err)
			}
			progress(25)
		}
		later, err := p.Drops()
		if err != nil {
			t.Fatal(err)
		}
		if later <= drops {
			t.Fatalf("restart %d: the program dropped nothing while the stream ran", i)
		}
	}
	stop.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := <-received
	if got == nil {
		t.Fatal("receiver failed, see log")
	}
	t.Logf("stream: %d packets sent, %d to the node address", sent.Load(), sentNode.Load())
	want := map[netip.Addr]int{nodeAddr: int(sentNode.Load())}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("datagrams received per destination (-want +got):\n%s", diff)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if fs := tp.filters(t); len(fs) != 0 {
		t.Errorf("filters left after Close: %v", fs)
	}
}

// drainNoFatal is drain for a goroutine other than the test's: it logs
// nothing and returns nil on error.
func (r *receiver) drainNoFatal(sentinel []byte) map[netip.Addr]int {
	got, err := r.drainErr(sentinel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		return nil
	}
	return got
}

func TestCloseAndDetach(t *testing.T) {
	tp := newTopo(t)
	recv := tp.receiver(t)
	recv.enableDst(t)
	s := tp.sender(t, 0)
	podArrives := func(t *testing.T, want int, sentinel string) {
		t.Helper()
		sendPinned(t, s, []byte(sentinel), func() error { return s.send(podAddr, []byte("pod")) })
		got := recv.drain(t, []byte(sentinel))
		if got[podAddr] != want {
			t.Errorf("pod datagrams received = %d, want %d", got[podAddr], want)
		}
	}

	first := tp.attach(t, strictCIDR)
	second := tp.attach(t, strictCIDR) // a restarted agent, the first one still open
	tp.requireOneFilter(t, int(second.ProgramID()))
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	tp.requireOneFilter(t, int(second.ProgramID())) // not the first's to remove
	podArrives(t, 0, "s1")
	if _, err := first.Drops(); !errors.Is(err, ErrClosed) {
		t.Errorf("Drops after Close: %v, want ErrClosed", err)
	}
	if err := first.Update(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close: %v, want ErrClosed", err)
	}

	if err := second.Release(); err != nil {
		t.Fatal(err)
	}
	tp.requireOneFilter(t, int(second.ProgramID())) // Release leaves the filter
	podArrives(t, 0, "s2")

	tp.inNS(t, tp.nsA, func() error { return Detach(tp.ifindex) })
	if fs := tp.filters(t); len(fs) != 0 {
		t.Fatalf("filters after Detach: %v", fs)
	}
	podArrives(t, 1, "s3")
	tp.inNS(t, tp.nsA, func() error { return Detach(tp.ifindex) }) // nothing to do
	if err := second.Close(); err != nil {
		t.Errorf("Close of a released Program: %v", err)
	}

	third := tp.attach(t, strictCIDR) // the clsact qdisc is reused
	tp.requireOneFilter(t, int(third.ProgramID()))
	podArrives(t, 0, "s4")
	if err := third.Close(); err != nil {
		t.Fatal(err)
	}
	if fs := tp.filters(t); len(fs) != 0 {
		t.Fatalf("filters after Close: %v", fs)
	}
	podArrives(t, 1, "s5")
}

func TestAttachRejects(t *testing.T) {
	tp := newTopo(t)
	var loIndex int
	tp.inNS(t, tp.nsA, func() error {
		l, err := netlink.LinkByName("lo")
		loIndex = l.Attrs().Index
		return err
	})
	attachErr := func(ifindex int, cidrs []netip.Prefix) error {
		var err error
		tp.inNS(t, tp.nsA, func() error {
			var p *Program
			p, err = Attach(ifindex, cidrs)
			if err == nil {
				p.Close()
			}
			return nil
		})
		return err
	}
	if err := attachErr(tp.ifindex, prefixes("10.99.1.0/16")); !errors.Is(err, ErrInvalidCIDR) {
		t.Errorf("host bits: %v, want ErrInvalidCIDR", err)
	}
	if err := attachErr(loIndex, prefixes("10.99.0.0/16")); !errors.Is(err, ErrNotEthernet) {
		t.Errorf("loopback: %v, want ErrNotEthernet", err)
	}
	if err := attachErr(1<<30, prefixes("10.99.0.0/16")); err == nil {
		t.Error("missing link: no error")
	}

	// An ingress qdisc holds the handle clsact needs; Attach says so.
	blocked := tp.devA + "d"
	run(t, "ip", "-n", tp.nsA, "link", "add", blocked, "type", "veth", "peer", "name", tp.devA+"e")
	run(t, "ip", "netns", "exec", tp.nsA, "tc", "qdisc", "add", "dev", blocked, "ingress")
	var blockedIndex int
	tp.inNS(t, tp.nsA, func() error {
		l, err := netlink.LinkByName(blocked)
		if err == nil {
			blockedIndex = l.Attrs().Index
		}
		return err
	})
	if err := attachErr(blockedIndex, prefixes("10.99.0.0/16")); err == nil || !strings.Contains(err.Error(), "handle ffff: is taken") {
		t.Errorf("ingress qdisc in the way: %v, want an error naming the handle", err)
	}

	// A foreign cls_bpf filter at strait's priority and handle is never replaced.
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	p := tp.attach(t, strictCIDR) // creates the clsact qdisc
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	tp.inNS(t, tp.nsA, func() error {
		return netlink.FilterAdd(&netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: tp.ifindex, Parent: netlink.HANDLE_MIN_EGRESS,
				Handle: FilterHandle, Priority: FilterPriority, Protocol: unix.ETH_P_ALL,
			},
			Fd: prog.FD(), Name: "someone-else", DirectAction: true,
		})
	})
	if err := attachErr(tp.ifindex, prefixes("10.99.0.0/16")); !errors.Is(err, ErrFilterConflict) {
		t.Errorf("foreign filter: %v, want ErrFilterConflict", err)
	}
	var detachErr error
	tp.inNS(t, tp.nsA, func() error { detachErr = Detach(tp.ifindex); return nil })
	if !errors.Is(detachErr, ErrFilterConflict) {
		t.Errorf("Detach with a foreign filter: %v, want ErrFilterConflict", detachErr)
	}
	fs := tp.filters(t)
	if len(fs) != 1 || fs[0].(*netlink.BpfFilter).Name != "someone-else" {
		t.Errorf("foreign filter not left alone: %v", fs)
	}
}
