package vme2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strait-net/strait/encryption/ipsec"
	"github.com/strait-net/strait/internal/testkit"
	"github.com/strait-net/strait/tools/lab"
	"github.com/strait-net/strait/tools/lab/capture"
)

// rotationDelay is the agents' --ipsec-rotation-delay (default 5m): long
// enough for an advertisement to reach every node under TCG, short enough
// to watch the old states go.
const rotationDelay = 30 * time.Second

// floodInterval is the ping flood's pace (one echo request per 10 ms).
const floodInterval = 10 * time.Millisecond

// TestVMIPsec is issue 8's end-to-end test: 2 clusters × 2 nodes × 1 pod
// with IPsec. Reachability with only ESP between node addresses on the
// underlay; under a ping flood and a TCP stream, an agent restart (states
// kept, nothing lost) and a key rotation (nothing lost, 4 states per
// remote while both keys live, 2 after the delay); a node reboot (new
// boot ID) re-keys exactly that node's pairs.
func TestVMIPsec(t *testing.T) {
	needKernel(t, "ESP (IPsec)", probeIPsec)
	ctx := testkit.Context(t, 20*time.Minute)
	bin := wrappedBinDir(t, "--ipsec-rotation-delay", rotationDelay.String())
	l := upLab(t, ctx, "i", lab.Spec{Clusters: 2, NodesPerCluster: 2, PodsPerNode: 1, Connect: true,
		Encryption: lab.EncryptionIPsec, BinDir: bin})
	keyFile := filepath.Join(l.Spec().WorkDir, "ipsec.key")
	key := currentKey(t, keyFile)
	nodes := l.Nodes()
	for _, n := range nodes {
		st, err := status(ctx, l, n)
		if err != nil {
			t.Fatalf("%s: %v", n.Key(), err)
		}
		if st.Encryption != "ipsec" || st.Device != "" {
			t.Errorf("%s: encryption %q device %q, want ipsec without a device", n.Key(), st.Encryption, st.Device)
		}
	}
	waitSettled(t, ctx, nodes, key, "initial XFRM states")

	marker := newMarker("IPSEC")
	cfg := l.CaptureConfig(marker)
	capt, err := capture.Start(ctx, testkit.Logger(t), l.Underlay(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer capt.Stop()
	startEchoServers(t, l)

	t.Run("reachability", func(t *testing.T) {
		reachAll(t, ctx, l, marker)
		s := capt.Stats()
		checkCapture(t, s, capture.ClassIPsec)
		checkESPAddrs(t, s, cfg.NodeAddrs)
	})
	if t.Failed() {
		t.FailNow()
	}

	src, dst := mustPod(t, l, 1, 1, 1), mustPod(t, l, 2, 1, 1)
	s := startStream(t, ctx, src, dst, streamPort, marker)
	s.progress(t, ctx, "stream starts", 50)

	t.Run("agent restart keeps states and traffic", func(t *testing.T) {
		before, err := readAllXfrm(nodes)
		if err != nil {
			t.Fatal(err)
		}
		f := startFlood(t, src.Netns, dst.IP, 0x7100, floodInterval, marker)
		w := watchXfrm(nodes, func(all map[string]nodeXfrm) string {
			for nk, b := range before {
				for id, k := range b.States {
					if got, ok := all[nk].States[id]; !ok || !bytes.Equal(got, k) {
						return fmt.Sprintf("%s: state %s removed or changed", nk, id)
					}
				}
				for dst, spi := range b.OutSPIs {
					if got, ok := all[nk].OutSPIs[dst]; !ok || got != spi {
						return fmt.Sprintf("%s: OUT policy to %s (spi 0x%08x) removed or changed: %v", nk, dst, spi, all[nk].OutSPIs)
					}
				}
			}
			return ""
		})
		for _, n := range []lab.Node{l.NodeOf(src), l.NodeOf(dst)} {
			if err := l.AgentStop(ctx, n, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			s.progress(t, ctx, "stream with the agent of "+n.Key()+" dead", 100)
			if err := l.AgentStart(ctx, n); err != nil {
				t.Fatal(err)
			}
			if err := l.WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
			s.progress(t, ctx, "stream after the restart of "+n.Key(), 100)
		}
		// The restarted agents have synced: whatever they would change,
		// they changed by the time their datapath is settled again.
		waitSettled(t, ctx, nodes, key, "XFRM states after the restarts")
		if bad := w.stop(); len(bad) > 0 {
			t.Errorf("XFRM states disturbed by agent restarts (%d observations), first: %v", len(bad), bad[:min(len(bad), 5)])
		}
		f.finish(t, "agent restarts", 20*time.Second)
		if t.Failed() {
			logAgents(t, l, "ipsec", "IPsec", "Publishing")
		}
	})

	t.Run("key rotation under traffic", func(t *testing.T) {
		f := startFlood(t, src.Netns, dst.IP, 0x7200, floodInterval, marker)
		s.progress(t, ctx, "stream before the rotation", 50)
		maxStates := map[string]int{}
		var mu sync.Mutex
		w := watchXfrm(nodes, func(all map[string]nodeXfrm) string {
			mu.Lock()
			defer mu.Unlock()
			for nk, x := range all {
				maxStates[nk] = max(maxStates[nk], len(x.States))
			}
			return ""
		})
		next := ipsec.NextSPI(key)
		appendKey(t, keyFile, next)
		rotated, old := time.Now(), key
		key = next // for what follows, even if this subtest fails
		waitSettled(t, ctx, nodes, next, fmt.Sprintf("rotation from key %d to %d (old states gone after the %v delay)", old, next, rotationDelay))
		t.Logf("rotation %d → %d settled (old states removed) %v after the key file changed", old, next, time.Since(rotated).Round(time.Millisecond))
		w.stop()
		s.progress(t, ctx, "stream after the rotation", 50)
		f.finish(t, "key rotation", 20*time.Second)
		mu.Lock()
		defer mu.Unlock()
		for _, n := range nodes {
			if want := 4 * (len(nodes) - 1); maxStates[n.Key()] != want {
				t.Errorf("%s: at most %d XFRM states during the rotation, want %d (2 keys × 2 per remote node)", n.Key(), maxStates[n.Key()], want)
			}
		}
	})

	t.Run("node reboot re-keys its pairs", func(t *testing.T) {
		n := mustNode(t, l, 2, 2)
		// A second stream runs across the reboot, to the rebooted node's
		// pod: the re-keying may drop the packets of an instant (states
		// are replaced by delete+add), which TCP must recover from.
		rs := startStream(t, ctx, mustPod(t, l, 1, 2, 1), mustPod(t, l, 2, 2, 1), streamPort+1, marker)
		rs.progress(t, ctx, "stream to "+n.Key()+" before its reboot", 50)
		before, err := readAllXfrm(nodes)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.AgentStop(ctx, n, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		bootID := writeBootID(t, n.Dir)
		if err := l.AgentStart(ctx, n); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s rebooted with boot ID %s", n.Key(), bootID)
		wctx, cancel := context.WithTimeout(ctx, phaseTimeout)
		defer cancel()
		waitUntil(t, wctx, "keys of "+n.Key()+"'s pairs changed, all others kept", func() (bool, string) {
			all, err := readAllXfrm(nodes)
			if err != nil {
				return false, err.Error()
			}
			if ok, why := settled(nodes, all, key); !ok {
				return false, why
			}
			for nk, x := range all {
				for id, k := range x.States {
					old, had := before[nk].States[id]
					involved := id.Src == n.IP || id.Dst == n.IP
					switch {
					case !had:
						return false, fmt.Sprintf("%s: state %s new", nk, id)
					case involved && bytes.Equal(old, k):
						return false, fmt.Sprintf("%s: state %s of a pair with %s still has its old key", nk, id, n.Key())
					case !involved && !bytes.Equal(old, k):
						return false, fmt.Sprintf("%s: state %s of a pair without %s changed its key", nk, id, n.Key())
					}
				}
			}
			return true, ""
		})
		// Traffic to and from the rebooted node's pod flows again.
		p := mustPod(t, l, 2, 2, 1)
		for _, o := range l.Pods() {
			if o.Cluster == p.Cluster && o.Node == p.Node {
				continue
			}
			waitUntil(t, wctx, fmt.Sprintf("ICMP %s → %s after the reboot", o.Name, p.Name), func() (bool, string) {
				pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				if err := lab.Ping(pctx, o.Netns, p.IP, 0x7300, 1, marker); err != nil {
					return false, err.Error()
				}
				return true, ""
			})
			if err := lab.Echo(ctx, o.Netns, netip.AddrPortFrom(p.IP, echoPort), marker); err != nil {
				t.Errorf("TCP %s → %s after the reboot: %v", o.Name, p.Name, err)
			}
			if err := lab.Echo(ctx, p.Netns, netip.AddrPortFrom(o.IP, echoPort), marker); err != nil {
				t.Errorf("TCP %s → %s after the reboot: %v", p.Name, o.Name, err)
			}
		}
		s.progress(t, ctx, "stream after the reboot", 50)
		rs.progress(t, ctx, "stream to "+n.Key()+" after its reboot", 50)
		rs.finish(t, ctx)
	})

	s.finish(t, ctx)
	st, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	checkCapture(t, st, capture.ClassIPsec)
	checkESPAddrs(t, st, cfg.NodeAddrs)
}

// waitSettled waits until every node holds exactly key's layout (settled).
func waitSettled(t *testing.T, ctx context.Context, nodes []lab.Node, key uint8, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout)
	defer cancel()
	waitUntil(t, ctx, what, func() (bool, string) {
		all, err := readAllXfrm(nodes)
		if err != nil {
			return false, err.Error()
		}
		return settled(nodes, all, key)
	})
}

// currentKey is the current key index of the lab's key file (its last line).
func currentKey(t *testing.T, path string) uint8 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys, err := ipsec.ParseKeyFile(f, path)
	if err != nil {
		t.Fatal(err)
	}
	return keys[len(keys)-1].SPI
}

// appendKey appends a fresh per-node-pair AES-GCM key line with index spi
// to the shared key file (one write), as an operator rotating keys does.
func appendKey(t *testing.T, path string, spi uint8) {
	t.Helper()
	k := make([]byte, 20)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(f, "%d+ rfc4106(gcm(aes)) %s 128\n", spi, hex.EncodeToString(k)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkESPAddrs fails the test when a sampled ESP packet was not between
// two node addresses (the capture classifies ESP by protocol alone).
func checkESPAddrs(t *testing.T, s capture.Stats, nodeAddrs []netip.Addr) {
	t.Helper()
	isNode := func(a string) bool {
		ip, err := netip.ParseAddr(a)
		return err == nil && contains(nodeAddrs, ip)
	}
	for _, d := range s.Samples[capture.ClassIPsec] {
		// "ip proto 50 SRC > DST len N"
		f := strings.Fields(d)
		if len(f) < 6 || f[2] != "50" || f[4] != ">" || !isNode(f[3]) || !isNode(f[5]) {
			t.Errorf("ESP packet not between two node addresses: %s", d)
		}
	}
}

func contains(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// xfrmWatch polls every node's XFRM state until stopped and collects the
// problems check reports.
type xfrmWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	bad    []string
}

func watchXfrm(nodes []lab.Node, check func(map[string]nodeXfrm) string) *xfrmWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &xfrmWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			all, err := readAllXfrm(nodes)
			if err != nil {
				w.bad = append(w.bad, err.Error())
			} else if p := check(all); p != "" {
				w.bad = append(w.bad, p)
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

// stop ends the watch and returns the problems seen.
func (w *xfrmWatch) stop() []string {
	w.cancel()
	<-w.done
	return w.bad
}

// logAgents logs the lines of every agent's log that contain one of words
// (the last 20 per node), for the diagnosis of a failure in the VM, whose
// files are gone after the run.
func logAgents(t *testing.T, l *lab.Lab, words ...string) {
	t.Helper()
	for _, n := range l.Nodes() {
		b, err := os.ReadFile(l.AgentLog(n))
		if err != nil {
			t.Logf("%s: %v", n.Key(), err)
			continue
		}
		var lines []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "=== lab:") {
				lines = append(lines, "=== (re)started"+line[len("=== lab:"):min(len(line), 45)])
				continue
			}
			for _, w := range words {
				if strings.Contains(line, w) {
					lines = append(lines, line)
					break
				}
			}
		}
		lines = lines[max(0, len(lines)-20):]
		t.Logf("agent log of %s (lines with %v):\n  %s", n.Key(), words, strings.Join(lines, "\n  "))
	}
}
