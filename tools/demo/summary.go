package demo

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strait-net/strait/tools/lab"
)

// Summary is what a run found. Run returns it (also with an error when
// the failure came after the traffic, so the counts can be shown).
type Summary struct {
	// Name is the lab name (namespaces sl-<Name>-...), Dir the work
	// directory, BinDir where the binaries came from.
	Name, Dir, BinDir string
	Encryption        string
	Clusters          int
	NodesPerCluster   int
	PodsPerNode       int
	// Peers is each node's WireGuard peer count ("<cluster>/<node>" →
	// peers), read from its agent after the traffic; ExpectedPeers is
	// every other node of the mesh (0 without WireGuard).
	Peers         map[string]int
	ExpectedPeers int
	// Pairs is the number of ordered pod pairs in different clusters; each
	// was tried once over TCP (an echo carrying Marker) and once over ICMP.
	Pairs       int
	TCPReached  int
	ICMPReached int
	// Retried counts pair and protocol combinations that needed more than
	// one try (see Run: a crossed WireGuard handshake costs one retry).
	Retried int
	// Failures describe the pairs that failed (at most a few).
	Failures []string
	// Underlay capture, from before connect to after the traffic:
	// encrypted (WireGuard or ESP) frames and bytes, plaintext pod
	// packets, other unexpected frames, frames containing Marker.
	EncryptedPackets int
	EncryptedBytes   int64
	PlaintextPackets int
	OtherPackets     int
	MarkerHits       int
	// FirstEncrypted is from the moment connect returned to the first
	// encrypted frame between nodes of different clusters the capture saw
	// (zero: none seen).
	FirstEncrypted time.Duration
	// Times of the run's phases.
	Times Times
	// Kept: the topology was left running (Options.Keep).
	Kept bool
	// Contexts are the straitctl context files, one per cluster.
	Contexts []string
	// StatusNetns is a namespace on the lab's underlay from which straitctl
	// reaches the apiservers (the host namespace has no route there).
	StatusNetns string
	// ExamplePod and ExampleRemoteIP are a pod namespace and the address
	// of a pod in another cluster, for the exploration hints.
	ExamplePod      string
	ExampleRemoteIP string
}

// Times are the durations of a run's phases.
type Times struct {
	// Build: the clusters up (lab.Up); Connect: straitctl connect; Ready:
	// connect returned → every agent sees every remote cluster and node;
	// Traffic: the pod-to-pod traffic and the underlay proof; Teardown:
	// everything removed (zero when kept).
	Build, Connect, Ready, Traffic, Teardown time.Duration
	// Total is from the start of Run to the summary (teardown included).
	Total time.Duration
}

// Nodes is the total node count.
func (s *Summary) Nodes() int { return s.Clusters * s.NodesPerCluster }

// PeersRange returns the smallest and largest peer count over the nodes.
func (s *Summary) PeersRange() (lo, hi int) {
	first := true
	for _, p := range s.Peers {
		if first || p < lo {
			lo = p
		}
		if first || p > hi {
			hi = p
		}
		first = false
	}
	return lo, hi
}

// round keeps durations readable: milliseconds below 10 s, else 0.1 s.
func round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// WriteTable prints the summary table.
func (s *Summary) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nstrait demo: %d clusters × %d nodes × %d pods, encryption %s\n\n",
		s.Clusters, s.NodesPerCluster, s.PodsPerNode, s.Encryption)
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("clusters", "%d", s.Clusters)
	row("nodes", "%d (%d per cluster)", s.Nodes(), s.NodesPerCluster)
	if s.Encryption == lab.EncryptionWireGuard {
		lo, hi := s.PeersRange()
		peers := fmt.Sprint(lo)
		if lo != hi {
			peers = fmt.Sprintf("%d..%d", lo, hi)
		}
		row("WireGuard peers per node", "%s (expected %d)", peers, s.ExpectedPeers)
	} else {
		row("WireGuard peers per node", "n/a (encryption %s)", s.Encryption)
	}
	row("pods", "%d (%d per node)", s.Nodes()*s.PodsPerNode, s.PodsPerNode)
	row("pod pairs across clusters", "%d", s.Pairs)
	row("  reached over TCP", "%d/%d", s.TCPReached, s.Pairs)
	row("  reached over ICMP", "%d/%d", s.ICMPReached, s.Pairs)
	row("  needed a retry", "%d", s.Retried)
	row("bytes encrypted on the underlay", "%d (%d packets)", s.EncryptedBytes, s.EncryptedPackets)
	if s.Encryption == lab.EncryptionNone {
		row("plaintext pod packets", "%d (no encryption asked for)", s.PlaintextPackets)
	} else {
		row("plaintext pod packets", "%d", s.PlaintextPackets)
	}
	row("payload marker on the underlay", "%d times", s.MarkerHits)
	if s.FirstEncrypted > 0 {
		row("first encrypted cross-cluster packet", "%s after connect returned", round(s.FirstEncrypted))
	} else {
		row("first encrypted cross-cluster packet", "none seen")
	}
	row("total time", "%s", round(s.Times.Total))
	row("  build clusters", "%s", round(s.Times.Build))
	row("  connect", "%s", round(s.Times.Connect))
	row("  mesh ready", "%s", round(s.Times.Ready))
	row("  traffic and proof", "%s", round(s.Times.Traffic))
	if s.Kept {
		row("  teardown", "skipped (--keep)")
	} else {
		row("  teardown", "%s", round(s.Times.Teardown))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range s.Failures {
		fmt.Fprintf(&b, "  failed: %s\n", f)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteExplore prints how to look at a kept demo and how to remove it.
func (s *Summary) WriteExplore(w io.Writer) error {
	var b strings.Builder
	straitctl := "straitctl"
	if s.BinDir != "" {
		straitctl = s.BinDir + "/straitctl"
	}
	fmt.Fprintf(&b, "\nThe demo is still up (--keep). Its apiservers live on the demo's own underlay,\n")
	fmt.Fprintf(&b, "so run straitctl from one of its namespaces. The mesh as straitctl sees it:\n\n")
	fmt.Fprintf(&b, "  ip netns exec %s %s status", s.StatusNetns, straitctl)
	for _, c := range s.Contexts {
		fmt.Fprintf(&b, " --context %s", c)
	}
	fmt.Fprintf(&b, "\n  ip netns exec %s %s inspect nodes --context %s\n", s.StatusNetns, straitctl, first(s.Contexts))
	if s.ExamplePod != "" {
		fmt.Fprintf(&b, "\nA pod of cluster1 reaching a pod of another cluster, encrypted:\n\n")
		fmt.Fprintf(&b, "  ip netns exec %s ping -c 3 %s\n", s.ExamplePod, s.ExampleRemoteIP)
	}
	fmt.Fprintf(&b, "\nEvery namespace of the demo, and an agent's log, socket and state:\n\n")
	fmt.Fprintf(&b, "  ip netns list | grep '^%s%s-'\n", lab.Prefix, s.Name)
	fmt.Fprintf(&b, "  ls %s/cluster1/node1/\n", s.Dir)
	fmt.Fprintf(&b, "\nRemove it with:\n\n  %s demo down --dir %s\n", straitctl, s.Dir)
	_, err := io.WriteString(w, b.String())
	return err
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
