package vme2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/internal/testkit"
	"github.com/strait-net/strait/tools/lab"
	"github.com/strait-net/strait/tools/lab/capture"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

const (
	echoPort   = 7000
	streamPort = 7001
)

// phaseTimeout bounds each wait for a state the lab must reach (far
// above what TCG needs: a failure, not a slow pass, ends there).
const phaseTimeout = 4 * time.Minute

// upLab builds a lab for the test (each node with its own boot ID file,
// see wrapperScript) and removes it at cleanup.
func upLab(t *testing.T, ctx context.Context, suffix string, spec lab.Spec) *lab.Lab {
	t.Helper()
	spec.Name = fmt.Sprintf("v%d%s", os.Getpid()%100000, suffix)
	spec.WorkDir = t.TempDir()
	for c := 1; c <= spec.Clusters; c++ {
		for n := 1; n <= spec.NodesPerCluster; n++ {
			dir := filepath.Join(spec.WorkDir, fmt.Sprintf("cluster%d", c), fmt.Sprintf("node%d", n))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			writeBootID(t, dir)
		}
	}
	start := time.Now()
	l, err := lab.Up(ctx, testkit.Logger(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab %s up in %v", spec.Name, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.Close(cctx); err != nil {
			t.Errorf("lab close: %v", err)
		}
		if left, _ := os.ReadDir(lab.NetnsDir); slices.ContainsFunc(left, func(e os.DirEntry) bool {
			return strings.HasPrefix(e.Name(), lab.Prefix+spec.Name+"-")
		}) {
			t.Errorf("namespaces of lab %s left after Close", spec.Name)
		}
	})
	return l
}

// writeBootID gives the node whose directory is dir a new random boot ID
// (UUID text form, as the kernel prints it); returns it.
func writeBootID(t *testing.T, dir string) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	id := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	if err := os.WriteFile(filepath.Join(dir, "boot_id"), []byte(id+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return id
}

// newMarker is a payload marker the underlay must never carry.
func newMarker(what string) []byte {
	return []byte(fmt.Sprintf("STRAIT-VM-%s-MARKER-%d-%d", what, os.Getpid(), time.Now().UnixNano()))
}

// checkCapture fails the test unless the underlay carried only the
// encrypted class want (WireGuard or IPsec), control-plane TCP and ARP,
// some of want at all, and never the marker.
func checkCapture(t *testing.T, s capture.Stats, want capture.Class) {
	t.Helper()
	t.Logf("underlay capture: %s", s.String())
	if n := s.Count(capture.ClassPlaintextPod); n != 0 {
		t.Errorf("%d plaintext pod packets on the underlay, e.g. %v", n, s.Samples[capture.ClassPlaintextPod])
	}
	if s.MarkerHits != 0 {
		t.Errorf("the payload marker crossed the underlay %d times, e.g. %v", s.MarkerHits, s.MarkerSamples)
	}
	if n := s.Count(capture.ClassOther); n != 0 {
		t.Errorf("%d other packets on the underlay, e.g. %v", n, s.Samples[capture.ClassOther])
	}
	for _, c := range []capture.Class{capture.ClassWireGuard, capture.ClassIPsec} {
		if c != want && s.Count(c) != 0 {
			t.Errorf("%d %s packets on the underlay of a %s lab, e.g. %v", s.Count(c), c, want, s.Samples[c])
		}
	}
	if s.Count(want) == 0 || s.FirstEncrypted.IsZero() {
		t.Errorf("no %s packets on the underlay", want)
	}
}

// status returns node n's agent status.
func status(ctx context.Context, l *lab.Lab, n lab.Node) (endpointapi.Status, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return l.Agent(n).Status(sctx)
}

// waitUntil polls cond until it holds or ctx ends (the test then fails with
// cond's last description).
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for {
		ok, desc := cond()
		if ok {
			return
		}
		last = desc
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v; last: %s", what, ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func mustPod(t *testing.T, l *lab.Lab, c, n, p int) lab.Pod {
	t.Helper()
	for _, pod := range l.Pods() {
		if pod.Cluster == c && pod.Node == n && pod.Index == p {
			return pod
		}
	}
	t.Fatalf("pod %d of node %d of cluster %d not in the lab", p, n, c)
	return lab.Pod{}
}

func mustNode(t *testing.T, l *lab.Lab, c, n int) lab.Node {
	t.Helper()
	nd, err := l.Node(c, n)
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

// reachAll checks TCP echo and ICMP between every pair of pods on
// different nodes; every payload carries marker.
func reachAll(t *testing.T, ctx context.Context, l *lab.Lab, marker []byte) {
	t.Helper()
	pairs := 0
	for _, a := range l.Pods() {
		for _, b := range l.Pods() {
			if a.Cluster == b.Cluster && a.Node == b.Node {
				continue // same node: never on the underlay
			}
			pairs++
			payload := append([]byte(a.Name+">"+b.Name+":"), marker...)
			if err := lab.Echo(ctx, a.Netns, netip.AddrPortFrom(b.IP, echoPort), payload); err != nil {
				t.Errorf("TCP %s (%s) → %s (%s): %v", a.Name, a.IP, b.Name, b.IP, err)
			}
			if err := lab.Ping(ctx, a.Netns, b.IP, 0x5e00+pairs, pairs, marker); err != nil {
				t.Errorf("ICMP %s (%s) → %s (%s): %v", a.Name, a.IP, b.Name, b.IP, err)
			}
		}
	}
	if pairs == 0 {
		t.Errorf("no pod pairs on different nodes")
	}
	t.Logf("%d pod pairs on different nodes reached each other over TCP and ICMP", pairs)
}

// startEchoServers runs an echo server in every pod until the test ends.
func startEchoServers(t *testing.T, l *lab.Lab) {
	t.Helper()
	for _, p := range l.Pods() {
		srv, err := lab.StartEchoServer(p.Netns, echoPort)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
	}
}

// stream is a running verified TCP stream between two pods.
type stream struct {
	srv *lab.StreamServer
	st  *lab.Stream
	cfg lab.StreamConfig
}

func startStream(t *testing.T, ctx context.Context, src, dst lab.Pod, port uint16, marker []byte) *stream {
	t.Helper()
	cfg := lab.StreamConfig{BlockSize: 1024, Interval: 5 * time.Millisecond, Marker: marker}
	srv, err := lab.StartStreamServer(dst.Netns, port, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	st, err := lab.StartStream(ctx, src.Netns, netip.AddrPortFrom(dst.IP, port), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &stream{srv: srv, st: st, cfg: cfg}
}

// progress waits until the server verified n more blocks.
func (s *stream) progress(t *testing.T, ctx context.Context, what string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout)
	defer cancel()
	from := s.srv.Received()
	waitUntil(t, ctx, what, func() (bool, string) {
		if err := s.st.Err(); err != nil {
			t.Fatalf("%s: stream broke: %v", what, err)
		}
		got := s.srv.Received()
		return got >= from+n, fmt.Sprintf("%d blocks of %d more received", got-from, n)
	})
}

// finish stops the sender and checks that every block sent arrived intact.
func (s *stream) finish(t *testing.T, ctx context.Context) {
	t.Helper()
	sent, err := s.st.Stop()
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	res, err := s.srv.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err != nil || res.Blocks != sent || res.Bytes != int64(sent*s.cfg.BlockSize) {
		t.Errorf("stream: sent %d blocks, server verified %d (%d bytes), error %v", sent, res.Blocks, res.Bytes, res.Err)
		return
	}
	t.Logf("stream: %d blocks (%d bytes) sent and verified, no reset", sent, res.Bytes)
}

// flood is a continuous ICMP echo flood from one pod to another: one
// sequence-numbered request per interval, every reply recorded.
type flood struct {
	pc      *icmp.PacketConn
	id      int
	dst     netip.Addr
	payload []byte
	stop    chan struct{}
	sendErr chan error
	rdone   chan struct{}

	mu      sync.Mutex
	sent    int
	answers map[int]bool
	bad     []string
	cond    *sync.Cond
}

// maxFlood bounds a flood: sequence numbers are 16 bits.
const maxFlood = 60000

// startFlood sends from namespace ns to dst every interval until stop.
func startFlood(t *testing.T, ns string, dst netip.Addr, id int, interval time.Duration, marker []byte) *flood {
	t.Helper()
	f := &flood{id: id & 0xffff, dst: dst, payload: append([]byte("flood:"), marker...),
		stop: make(chan struct{}), sendErr: make(chan error, 1), rdone: make(chan struct{}), answers: map[int]bool{}}
	f.cond = sync.NewCond(&f.mu)
	if err := lab.Do(ns, func() error {
		var err error
		f.pc, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		t.Fatalf("flood from %s: %v", ns, err)
	}
	go f.receive()
	go f.send(interval)
	t.Cleanup(func() { f.halt(); f.pc.Close() })
	return f
}

func (f *flood) send(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	dst := &net.IPAddr{IP: f.dst.AsSlice()}
	for seq := 0; seq < maxFlood; seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: f.id, Seq: seq, Data: f.payload}}
		b, err := msg.Marshal(nil)
		if err == nil {
			_, err = f.pc.WriteTo(b, dst)
		}
		if err != nil {
			f.sendErr <- fmt.Errorf("echo request %d: %w", seq, err)
			return
		}
		f.mu.Lock()
		f.sent++
		f.mu.Unlock()
		select {
		case <-f.stop:
			f.sendErr <- nil
			return
		case <-tick.C:
		}
	}
	f.sendErr <- fmt.Errorf("flood reached %d requests", maxFlood)
}

func (f *flood) receive() {
	defer close(f.rdone)
	buf := make([]byte, 65536)
	for {
		n, from, err := f.pc.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		if ip, ok := from.(*net.IPAddr); !ok || !ip.IP.Equal(f.dst.AsSlice()) {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		if !ok || e.ID != f.id {
			continue
		}
		f.mu.Lock()
		if !bytes.Equal(e.Data, f.payload) && len(f.bad) < 5 {
			f.bad = append(f.bad, fmt.Sprintf("reply %d with altered data", e.Seq))
		}
		f.answers[e.Seq] = true
		f.cond.Broadcast()
		f.mu.Unlock()
	}
}

// halt stops sending (idempotent).
func (f *flood) halt() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
}

// finish stops sending, waits up to grace for the last replies and fails
// the test unless every request was answered intact.
func (f *flood) finish(t *testing.T, what string, grace time.Duration) {
	t.Helper()
	f.halt()
	if err := <-f.sendErr; err != nil {
		t.Errorf("%s: ping flood: %v", what, err)
	}
	deadline := time.Now().Add(grace)
	timer := time.AfterFunc(grace, func() { f.mu.Lock(); f.cond.Broadcast(); f.mu.Unlock() })
	defer timer.Stop()
	f.mu.Lock()
	for len(f.answers) < f.sent && time.Now().Before(deadline) {
		f.cond.Wait()
	}
	sent, answered := f.sent, len(f.answers)
	var missing []int
	for s := 0; s < sent && len(missing) < 20; s++ {
		if !f.answers[s] {
			missing = append(missing, s)
		}
	}
	bad := slices.Clone(f.bad)
	f.mu.Unlock()
	if sent == 0 {
		t.Errorf("%s: ping flood sent nothing", what)
	}
	if answered != sent || len(bad) > 0 {
		t.Errorf("%s: ping flood to %s: %d requests, %d answered; first unanswered sequence numbers %v; %v", what, f.dst, sent, answered, missing, bad)
		return
	}
	t.Logf("%s: ping flood to %s: all %d requests answered", what, f.dst, sent)
}
