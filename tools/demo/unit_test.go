package demo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/internal/testkit"
	"github.com/strait-net/strait/tools/lab"
	"github.com/strait-net/strait/tools/lab/capture"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func validOptions() Options {
	return Options{Clusters: 2, Nodes: 2, Pods: 2, Encryption: "wireguard", Dir: "d", BinDir: "b", Timeout: time.Minute}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Options)
		want   string
	}{
		{"valid", func(*Options) {}, ""},
		{"one cluster", func(o *Options) { o.Clusters = 1 }, "invalid --clusters: 1: want 2..9 (a mesh needs at least two clusters): demo: invalid option"},
		{"ten clusters", func(o *Options) { o.Clusters = 10 }, "invalid --clusters: 10: want 2..9 (a mesh needs at least two clusters): demo: invalid option"},
		{"zero nodes", func(o *Options) { o.Nodes = 0 }, "invalid --nodes: 0: want 1..9 nodes per cluster: demo: invalid option"},
		{"zero pods", func(o *Options) { o.Pods = 0 }, "invalid --pods: 0: want 1..9 pods per node: demo: invalid option"},
		{"ten pods", func(o *Options) { o.Pods = 10 }, "invalid --pods: 10: want 1..9 pods per node: demo: invalid option"},
		{"bad encryption", func(o *Options) { o.Encryption = "aes" }, `invalid --encryption: "aes": want wireguard, ipsec or none: demo: invalid option`},
		{"no dir", func(o *Options) { o.Dir = "" }, "invalid --dir: empty: name the work directory: demo: invalid option"},
		{"no bin dir", func(o *Options) { o.BinDir = "" }, "invalid --bin-dir: empty: name the directory holding the strait binaries: demo: invalid option"},
		{"zero timeout", func(o *Options) { o.Timeout = 0 }, "invalid --timeout: 0s: must be positive: demo: invalid option"},
		{"bad name", func(o *Options) { o.Name = "Demo-1" }, `invalid --name: "Demo-1": want 1 to 8 of [a-z0-9] (it goes into namespace names): demo: invalid option`},
		{"two at once", func(o *Options) { o.Clusters, o.Pods = 0, 0 },
			"invalid --clusters: 0: want 2..9 (a mesh needs at least two clusters): demo: invalid option\ninvalid --pods: 0: want 1..9 pods per node: demo: invalid option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validOptions()
			tt.modify(&o)
			err := o.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error:\n got %v\nwant %s", err, tt.want)
			}
			if !errors.Is(err, ErrOption) {
				t.Errorf("error %v does not wrap ErrOption", err)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	o, err := Options{BinDir: "/opt/strait/bin"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Clusters: 2, Nodes: 2, Pods: 2, Encryption: "wireguard", Dir: filepath.Join(wd, ".strait-demo"),
		BinDir: "/opt/strait/bin", Timeout: 3 * time.Minute}
	if diff := cmp.Diff(want, o); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if _, err := (Options{}).withDefaults(); err == nil || !strings.Contains(err.Error(), "--bin-dir") {
		t.Errorf("no bin dir: got %v, want an error naming --bin-dir", err)
	}
}

func sampleSummary() *Summary {
	return &Summary{
		Name: "demo", Dir: "/work/.strait-demo", BinDir: "/work/bin", Encryption: "wireguard",
		Clusters: 2, NodesPerCluster: 2, PodsPerNode: 2,
		Peers:         map[string]int{"cluster1/node1": 3, "cluster1/node2": 3, "cluster2/node1": 3, "cluster2/node2": 3},
		ExpectedPeers: 3, Pairs: 32, TCPReached: 32, ICMPReached: 32,
		EncryptedPackets: 1234, EncryptedBytes: 456789, MarkerHits: 0,
		FirstEncrypted: 1234567 * time.Microsecond,
		Times: Times{Build: 14321 * time.Millisecond, Connect: 301 * time.Millisecond, Ready: 1500 * time.Millisecond,
			Traffic: 2100 * time.Millisecond, Teardown: 3 * time.Second, Total: 21234 * time.Millisecond},
		Contexts:    []string{"/work/.strait-demo/cluster1/context.yaml", "/work/.strait-demo/cluster2/context.yaml"},
		StatusNetns: "sl-demo-c1api", ExamplePod: "sl-demo-c1n1p1", ExampleRemoteIP: "10.2.1.2",
	}
}

func TestSummaryGolden(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		modify func(*Summary)
	}{
		{"wireguard", "summary-wireguard.golden", func(*Summary) {}},
		{"kept", "summary-kept.golden", func(s *Summary) { s.Kept = true; s.Times.Teardown = 0 }},
		{"failures", "summary-failures.golden", func(s *Summary) {
			s.TCPReached, s.ICMPReached, s.FirstEncrypted, s.Retried = 31, 30, 0, 3
			s.Peers["cluster2/node2"] = 1
			s.Failures = []string{"TCP pod1-1-1 (10.1.1.2) → pod2-2-1 (10.2.2.2): i/o timeout", "ICMP pod1-1-1 (10.1.1.2) → pod2-2-1 (10.2.2.2): i/o timeout"}
		}},
		{"none", "summary-none.golden", func(s *Summary) {
			s.Encryption, s.ExpectedPeers, s.Peers = "none", 0, map[string]int{}
			s.EncryptedPackets, s.EncryptedBytes, s.PlaintextPackets, s.FirstEncrypted = 0, 0, 512, 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sampleSummary()
			tt.modify(s)
			var b bytes.Buffer
			if err := s.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			if s.Kept {
				if err := s.WriteExplore(&b); err != nil {
					t.Fatal(err)
				}
			}
			golden := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), b.String()); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
		})
	}
}

// frame builds an Ethernet + IPv4 frame with a UDP or TCP header (ports)
// or a bare payload (ESP).
func frame(src, dst string, proto uint8, sport, dport uint16) []byte {
	l4 := make([]byte, 8)
	if proto == 6 {
		l4 = make([]byte, 20)
		l4[12] = 5 << 4
	}
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	ip[8] = 64
	ip[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	eth := make([]byte, 14)
	binary.BigEndian.PutUint16(eth[12:], 0x0800)
	return append(append(eth, ip...), l4...)
}

func TestCrossEncrypted(t *testing.T) {
	cfg := capture.Config{
		NodeAddrs: []netip.Addr{netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("198.18.1.12"), netip.MustParseAddr("198.18.2.11")},
		APIAddrs:  []netip.Addr{netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.2.1")},
		PodCIDRs:  []netip.Prefix{netip.MustParsePrefix("10.1.1.0/24"), netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("10.2.1.0/24")},
	}
	clusterOf := map[netip.Addr]int{
		netip.MustParseAddr("198.18.1.11"): 1, netip.MustParseAddr("198.18.1.12"): 1, netip.MustParseAddr("198.18.2.11"): 2,
	}
	tests := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"wireguard across clusters", frame("198.18.1.11", "198.18.2.11", 17, 51871, 51871), true},
		{"wireguard back", frame("198.18.2.11", "198.18.1.12", 17, 51871, 51871), true},
		{"wireguard inside a cluster", frame("198.18.1.11", "198.18.1.12", 17, 51871, 51871), false},
		{"esp across clusters", frame("198.18.1.12", "198.18.2.11", 50, 0, 0), true},
		{"esp inside a cluster", frame("198.18.1.12", "198.18.1.11", 50, 0, 0), false},
		{"udp on another port", frame("198.18.1.11", "198.18.2.11", 17, 4000, 4001), false},
		{"plaintext pod", frame("10.1.1.2", "10.2.1.2", 17, 51871, 51871), false},
		{"control plane", frame("198.18.1.11", "198.18.2.1", 6, 40000, 2379), false},
		{"unknown node", frame("198.18.3.11", "198.18.2.11", 50, 0, 0), false},
		{"truncated", frame("198.18.1.11", "198.18.2.11", 17, 51871, 51871)[:20], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, desc := crossEncrypted(&cfg, clusterOf, tt.frame)
			if got != tt.want {
				t.Errorf("crossEncrypted = %v (%q), want %v", got, desc, tt.want)
			}
			if got && desc == "" {
				t.Errorf("no description")
			}
		})
	}
}

func stats(counts map[capture.Class]int, marker int) capture.Stats {
	var s capture.Stats
	for c, n := range counts {
		s.Packets[c] = n
		s.Samples[c] = []string{c.String() + " sample"}
	}
	s.MarkerHits = marker
	if marker > 0 {
		s.MarkerSamples = []string{"marker sample"}
	}
	return s
}

func TestProve(t *testing.T) {
	wg := capture.ClassWireGuard
	tests := []struct {
		name       string
		encryption string
		st         capture.Stats
		cross      bool
		want       string // substring; "" = no error
	}{
		{"wireguard clean", "wireguard", stats(map[capture.Class]int{wg: 100, capture.ClassControlPlane: 50, capture.ClassARP: 4}, 0), true, ""},
		{"plaintext", "wireguard", stats(map[capture.Class]int{wg: 100, capture.ClassPlaintextPod: 2}, 0), true, "2 plaintext pod packets (e.g. PLAINTEXT-POD sample)"},
		{"marker", "wireguard", stats(map[capture.Class]int{wg: 100}, 1), true, "the payload marker crossed 1 times (e.g. marker sample)"},
		{"other", "wireguard", stats(map[capture.Class]int{wg: 100, capture.ClassOther: 3}, 0), true, "3 unexpected packets"},
		{"esp in wireguard mode", "wireguard", stats(map[capture.Class]int{wg: 100, capture.ClassIPsec: 3}, 0), true, "3 ipsec packets in wireguard mode"},
		{"no wireguard", "wireguard", stats(map[capture.Class]int{capture.ClassControlPlane: 10}, 0), false, "no wireguard packet at all"},
		{"only inside clusters", "wireguard", stats(map[capture.Class]int{wg: 10}, 0), false, "no wireguard packet between nodes of different clusters"},
		{"ipsec clean", "ipsec", stats(map[capture.Class]int{capture.ClassIPsec: 10}, 0), true, ""},
		{"wireguard in ipsec mode", "ipsec", stats(map[capture.Class]int{capture.ClassIPsec: 10, wg: 1}, 0), true, "1 wireguard packets in ipsec mode"},
		{"none", "none", stats(map[capture.Class]int{capture.ClassPlaintextPod: 100}, 5), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := prove(tt.encryption, tt.st, tt.cross)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrNotEncrypted) {
				t.Fatalf("error %v, want ErrNotEncrypted containing %q", err, tt.want)
			}
		})
	}
}

func TestAgentNotReady(t *testing.T) {
	spec := lab.Spec{Name: "x", Clusters: 2, NodesPerCluster: 2, WorkDir: "/w"}
	clusters, nodes := lab.Describe(spec)
	n := nodes[0] // cluster1/node1
	peer := func(o lab.Node) endpointapi.PeerStatus {
		return endpointapi.PeerStatus{Node: o.Key(), AllowedIPs: []string{o.PodCIDR.String()}}
	}
	ready := endpointapi.Status{
		Clusters: []endpointapi.ClusterStatus{{Name: "cluster2", Ready: true}},
		Peers:    []endpointapi.PeerStatus{peer(nodes[1]), peer(nodes[2]), peer(nodes[3])},
	}
	tests := []struct {
		name       string
		encryption string
		modify     func(*endpointapi.Status)
		want       string
	}{
		{"ready", "wireguard", func(*endpointapi.Status) {}, ""},
		{"remote not ready", "wireguard", func(s *endpointapi.Status) { s.Clusters[0].Ready = false },
			"agent cluster1/node1: remote cluster cluster2 not ready (clusters [{Name:cluster2 ID:0 Connected:false Ready:false Nodes:0 Endpoints:0}], problems [])"},
		{"remote unknown", "wireguard", func(s *endpointapi.Status) { s.Clusters = nil },
			"agent cluster1/node1: remote cluster cluster2 not ready (clusters [], problems [])"},
		{"peer missing", "wireguard", func(s *endpointapi.Status) { s.Peers = s.Peers[:2] },
			"agent cluster1/node1: no WireGuard peer cluster2/node2 with 10.2.2.0/24 yet (problems [])"},
		{"peer without its pod CIDR", "wireguard", func(s *endpointapi.Status) { s.Peers[1].AllowedIPs = nil },
			"agent cluster1/node1: no WireGuard peer cluster2/node1 with 10.2.1.0/24 yet (problems [])"},
		{"no peers needed without wireguard", "none", func(s *endpointapi.Status) { s.Peers = nil }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := ready
			st.Clusters = append([]endpointapi.ClusterStatus(nil), ready.Clusters...)
			st.Peers = append([]endpointapi.PeerStatus(nil), ready.Peers...)
			tt.modify(&st)
			if got := agentNotReady(n, clusters, nodes, tt.encryption, st); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestPrepareDir(t *testing.T) {
	t.Run("absent", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new")
		if err := prepareDir(dir); err != nil {
			t.Fatal(err)
		}
		if !exists(filepath.Join(dir, MarkerFile)) {
			t.Errorf("no marker in %s", dir)
		}
	})
	t.Run("foreign", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
		err := prepareDir(dir)
		if err == nil || !errors.Is(err, ErrOption) || !strings.HasPrefix(err.Error(), "invalid --dir: "+dir+" is not empty and not a demo directory") {
			t.Fatalf("got %v, want an error naming --dir", err)
		}
		if exists(filepath.Join(dir, MarkerFile)) {
			t.Errorf("marker written into a foreign directory")
		}
	})
	t.Run("demo up", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, lab.RecordFile), []byte("{}"), 0o600)
		if err := prepareDir(dir); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "straitctl demo down --dir "+dir) {
			t.Fatalf("got %v, want ErrExists telling how to remove it", err)
		}
	})
	t.Run("previous demo", func(t *testing.T) {
		dir := t.TempDir()
		for _, d := range []string{"cluster1/node1/state", "cluster2/etcd"} {
			os.MkdirAll(filepath.Join(dir, d), 0o700)
		}
		os.WriteFile(filepath.Join(dir, MarkerFile), []byte(markerText), 0o600)
		os.WriteFile(filepath.Join(dir, "ipsec.key"), []byte("3+ rfc4106(gcm(aes)) 0123 128"), 0o600)
		os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("x"), 0o600)
		if err := prepareDir(dir); err != nil {
			t.Fatal(err)
		}
		if got := names(t, dir); !cmp.Equal(got, []string{"keep.txt", MarkerFile}) {
			t.Errorf("left %v, want [keep.txt %s]", got, MarkerFile)
		}
	})
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestDownWithoutDemo(t *testing.T) {
	dir := t.TempDir()
	err := Down(testkit.Context(t, time.Minute), testkit.Logger(t), dir)
	if !errors.Is(err, ErrNoDemo) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("got %v, want ErrNoDemo naming %s", err, dir)
	}
}

func TestDownFailedRunFiles(t *testing.T) {
	// A run that failed and tore down leaves its logs and the marker: Down
	// removes them (and the directory, then empty).
	dir := filepath.Join(t.TempDir(), "demo")
	os.MkdirAll(filepath.Join(dir, "cluster1", "node1"), 0o700)
	os.WriteFile(filepath.Join(dir, "cluster1", "node1", "agent.log"), []byte("log"), 0o600)
	os.WriteFile(filepath.Join(dir, MarkerFile), []byte(markerText), 0o600)
	if err := Down(testkit.Context(t, time.Minute), testkit.Logger(t), dir); err != nil {
		t.Fatal(err)
	}
	if exists(dir) {
		t.Errorf("%s still there: %v", dir, names(t, dir))
	}
}

func TestStepError(t *testing.T) {
	err := error(&StepError{Step: StepConnect, Err: errors.Join(ErrUnreached)})
	if err.Error() != "demo: connect: demo: pods unreachable" {
		t.Errorf("message %q", err.Error())
	}
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepConnect || !errors.Is(err, ErrUnreached) {
		t.Errorf("StepError does not unwrap: %#v", err)
	}
}

func TestOurs(t *testing.T) {
	tests := []struct {
		name    string
		cmdline string
		want    bool
	}{
		{"agent", "/tmp/bin/strait-agent --cluster-name cluster1 --state-dir /d/cluster1/node1/state", true},
		{"wireguard", "/tmp/bin/strait-wireguard --mtu 1420 strait-wg0", true},
		{"wrapper", "ip netns exec sl-demo-c1n1 sh -c d=$1 /tmp/bin/strait-agent /d/cluster1/node1/run-wireguard", true},
		{"shell", "sh -c d=$1; shift; mount --bind /tmp/bin/strait-agent", true},
		{"tail of a log", "tail -f /d/cluster1/node1/agent.log", false},
		{"editor", "vi /d/cluster1/context.yaml", false},
		{"other ip", "ip netns exec sl-x-ul tcpdump", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ours(tt.cmdline); got != tt.want {
				t.Errorf("ours(%q) = %v, want %v", tt.cmdline, got, tt.want)
			}
		})
	}
}

func TestCheckStatus(t *testing.T) {
	ready, err := os.ReadFile(filepath.Join("testdata", "status-ready.json"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(from, to string) []byte { return bytes.Replace(ready, []byte(from), []byte(to), 1) }
	clusters := []string{"cluster1", "cluster2"}
	tests := []struct {
		name     string
		out      []byte
		clusters []string
		want     string // "" = no error
	}{
		{"ready", ready, clusters, ""},
		{"not json", []byte("all clusters ready"), clusters, "straitctl status -o json: invalid character 'a' looking for beginning of value"},
		{"two values", append(append([]byte{}, ready...), []byte("{}")...), clusters, "straitctl status -o json: more than one JSON value"},
		{"unreachable", edit(`"reachable": true,
      "remotes"`, `"reachable": false,
      "remotes"`), clusters, `straitctl status: cluster "cluster1": apiserver not reachable (errors [])`},
		{"remote not ready", edit(`"ready": true,
          "id": 2`, `"ready": false,
          "id": 2`), clusters, `straitctl status: cluster "cluster1": remote "cluster2" not ready (remotes [{Name:cluster2 Configured:true Connected:true Ready:false ID:2 Pending:[]}], errors [])`},
		{"a cluster missing", ready, []string{"cluster1", "cluster2", "cluster3"}, `straitctl status: cluster "cluster1": remote "cluster3" not ready`},
		{"an extra cluster", ready, []string{"cluster1"}, `straitctl status: clusters ["cluster1" "cluster2"], want ["cluster1"]`},
		{"overall not ready", edit(`"ready": true
}`, `"ready": false
}`), clusters, "straitctl status: not ready: {"},
		{"empty", []byte(`{"clusters":[],"ready":true}`), clusters, `straitctl status: clusters [], want ["cluster1" "cluster2"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkStatus(tt.out, tt.clusters)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error:\n got %v\nwant prefix %s", err, tt.want)
			}
		})
	}
}

// FuzzCheckStatus: whatever straitctl prints, checkStatus returns an
// error or accepts a status that really lists both clusters as ready.
func FuzzCheckStatus(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "status-ready.json")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		if checkStatus(out, []string{"cluster1", "cluster2"}) != nil {
			return
		}
		if !bytes.Contains(out, []byte("cluster1")) || !bytes.Contains(out, []byte("cluster2")) {
			t.Errorf("accepted a status without both clusters: %q", out)
		}
	})
}
