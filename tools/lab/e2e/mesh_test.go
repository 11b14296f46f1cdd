package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"
	"github.com/strait-net/strait/tools/lab"
	"github.com/strait-net/strait/tools/lab/capture"
)

const (
	echoPort   = 7000
	streamPort = 7001
)

// TestMesh is issue 6's end-to-end test on one lab of 2 clusters × 2
// nodes × 2 pods (userspace WireGuard): full reachability with only
// encrypted pod traffic on the underlay, then the disruptions under a
// running stream. The subtests share the lab and run in order.
func TestMesh(t *testing.T) {
	needRoot(t)
	ctx := testkit.Context(t, 4*time.Minute)
	l := upLab(t, ctx, "m", lab.Spec{Clusters: 2, NodesPerCluster: 2, PodsPerNode: 2, Connect: true, WireGuardMode: "userspace"})
	marker := []byte(fmt.Sprintf("STRAIT-E2E-MARKER-%d-%d", os.Getpid(), time.Now().UnixNano()))
	capt, err := capture.Start(ctx, testkit.Logger(t), l.Underlay(), l.CaptureConfig(marker))
	if err != nil {
		t.Fatal(err)
	}
	defer capt.Stop()
	for _, p := range l.Pods() {
		srv, err := lab.StartEchoServer(p.Netns, echoPort)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
	}

	t.Run("reachability", func(t *testing.T) {
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
		t.Logf("%d pod pairs on different nodes reached each other over TCP and ICMP", pairs)
		checkCapture(t, capt.Stats())
	})
	if t.Failed() {
		t.FailNow()
	}

	// The stream: pod 1 of c1n1 → pod 1 of c2n1, sequence-numbered blocks.
	src, dst := mustPod(t, l, 1, 1, 1), mustPod(t, l, 2, 1, 1)
	scfg := lab.StreamConfig{BlockSize: 1024, Interval: 2 * time.Millisecond, Marker: marker}
	ssrv, err := lab.StartStreamServer(dst.Netns, streamPort, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ssrv.Close()
	stream, err := lab.StartStream(ctx, src.Netns, netip.AddrPortFrom(dst.IP, streamPort), scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	// progress waits until the server verified n more blocks.
	progress := func(t *testing.T, what string, n int) {
		t.Helper()
		from := ssrv.Received()
		waitUntil(t, ctx, what, func() (bool, string) {
			if err := stream.Err(); err != nil {
				t.Fatalf("%s: stream broke: %v", what, err)
			}
			got := ssrv.Received()
			return got >= from+n, fmt.Sprintf("%d blocks of %d more received", got-from, n)
		})
	}
	progress(t, "stream starts", 100)

	t.Run("agent killed and restarted", func(t *testing.T) {
		for _, n := range []lab.Node{l.NodeOf(src), l.NodeOf(dst)} {
			if err := l.AgentStop(ctx, n, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			progress(t, "stream with the agent of "+n.Key()+" dead", 200)
			if err := l.AgentStart(ctx, n); err != nil {
				t.Fatal(err)
			}
			if err := l.WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
			progress(t, "stream after the restart of "+n.Key(), 200)
		}
	})

	t.Run("apiserver stopped for 20s", func(t *testing.T) {
		c1, _ := l.Cluster(1)
		if err := l.ApiserverStop(ctx, c1); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		for time.Since(stopped) < 20*time.Second {
			progress(t, "stream with the apiserver of cluster1 down", 100)
		}
		// New connections between existing pods work too.
		if err := lab.Echo(ctx, src.Netns, netip.AddrPortFrom(dst.IP, echoPort), marker); err != nil {
			t.Errorf("new TCP connection with the apiserver down: %v", err)
		}
		phase := time.Now()
		if err := l.ApiserverStart(ctx, c1); err != nil {
			t.Fatal(err)
		}
		t.Logf("apiserver of cluster1 back after %v down, serving in %v", time.Since(stopped).Round(time.Millisecond), time.Since(phase).Round(time.Millisecond))
		phase = time.Now()
		if err := l.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("clusters reconnected in %v", time.Since(phase).Round(time.Millisecond))
		phase = time.Now()
		if err := l.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("agents ready again in %v", time.Since(phase).Round(time.Millisecond))
		progress(t, "stream after the apiserver restart", 100)
	})

	t.Run("key regenerated", func(t *testing.T) {
		n, err := l.Node(2, 2)
		if err != nil {
			t.Fatal(err)
		}
		before, err := status(ctx, l, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.AgentStop(ctx, n, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(n.StateDir, "wireguard.key")); err != nil {
			t.Fatal(err)
		}
		if err := l.AgentStart(ctx, n); err != nil {
			t.Fatal(err)
		}
		var newKey string
		waitUntil(t, ctx, "new key on "+n.Key(), func() (bool, string) {
			st, err := status(ctx, l, n)
			if err != nil {
				return false, err.Error()
			}
			newKey = st.PublicKey
			return newKey != "" && newKey != before.PublicKey, "public key " + newKey
		})
		for _, o := range l.Nodes() {
			if o.Netns == n.Netns {
				continue
			}
			waitUntil(t, ctx, o.Key()+" learning the new key of "+n.Key(), func() (bool, string) {
				st, err := status(ctx, l, o)
				if err != nil {
					return false, err.Error()
				}
				p, ok := peer(st, n.Key())
				return ok && p.PublicKey == newKey, fmt.Sprintf("peer %+v (problems %+v)", p, st.Problems)
			})
		}
		// Traffic from and to the re-keyed node's pods flows again.
		p := mustPod(t, l, 2, 2, 1)
		if err := lab.Echo(ctx, src.Netns, netip.AddrPortFrom(p.IP, echoPort), marker); err != nil {
			t.Errorf("TCP to a pod of the re-keyed node: %v", err)
		}
		if err := lab.Ping(ctx, p.Netns, src.IP, 0x5f00, 1, marker); err != nil {
			t.Errorf("ICMP from a pod of the re-keyed node: %v", err)
		}
	})

	t.Run("remote node removed", func(t *testing.T) {
		n, err := l.Node(2, 2)
		if err != nil {
			t.Fatal(err)
		}
		st, err := status(ctx, l, n)
		if err != nil {
			t.Fatal(err)
		}
		key := st.PublicKey
		if err := l.RemoveNode(ctx, n); err != nil {
			t.Fatal(err)
		}
		for _, o := range l.Nodes() {
			waitUntil(t, ctx, o.Key()+" forgetting "+n.Key(), func() (bool, string) {
				st, err := status(ctx, l, o)
				if err != nil {
					return false, err.Error()
				}
				for _, p := range st.Peers {
					if p.Node == n.Key() || p.PublicKey == key {
						return false, fmt.Sprintf("peer still there: %+v", p)
					}
				}
				rs, err := routesTo(o, n.PodCIDR)
				if err != nil {
					return false, err.Error()
				}
				return len(rs) == 0, fmt.Sprintf("routes to %s: %v", n.PodCIDR, rs)
			})
		}
		progress(t, "stream after a node removal", 100)
	})

	sent, err := stream.Stop()
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	res, err := ssrv.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err != nil || res.Blocks != sent || res.Bytes != int64(sent*scfg.BlockSize) {
		t.Errorf("stream: sent %d blocks, server verified %d (%d bytes), error %v", sent, res.Blocks, res.Bytes, res.Err)
	}
	t.Logf("stream: %d blocks (%d bytes) sent and verified, no reset", sent, res.Bytes)
	s, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	checkCapture(t, s)
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
