package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/strait-net/strait/encryption/ipsec"
	"github.com/strait-net/strait/internal/binaries"
	"github.com/strait-net/strait/internal/testkit"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
}

// apiserverBin builds only strait-apiserver (the control-plane tests need
// nothing else), or uses STRAIT_BIN_DIR.
func apiserverBin(t *testing.T) string {
	t.Helper()
	if d := os.Getenv(binaries.EnvDir); d != "" {
		return d
	}
	root, err := binaries.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := binaries.Build(context.Background(), root, dir, "./cmd/strait-apiserver"); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stubBinaries writes scripts named like the binaries the lab does not run
// in a test (they fail when started) into dir.
func stubBinaries(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, b := range names {
		if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\necho broken "+b+" >&2\nexit 3\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// controlPlaneBin is a directory with a real strait-apiserver and stubs of
// the rest.
func controlPlaneBin(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	if err := copyFile(filepath.Join(apiserverBin(t), "strait-apiserver"), filepath.Join(bin, "strait-apiserver"), 0o755); err != nil {
		t.Fatal(err)
	}
	stubBinaries(t, bin, "strait-agent", "strait-cni", "strait-wireguard")
	return bin
}

func labName(t *testing.T, suffix string) string {
	return "t" + strconv.Itoa(os.Getpid()%100000) + suffix
}

func TestSpecDefaults(t *testing.T) {
	tests := []struct {
		name    string
		spec    Spec
		wantErr bool
	}{
		{name: "ok", spec: Spec{Name: "t1", Clusters: 2, NodesPerCluster: 2, PodsPerNode: 2, BinDir: "/b", WorkDir: "/w"}},
		{name: "long name", spec: Spec{Name: "toolong89", Clusters: 1, NodesPerCluster: 1, BinDir: "/b", WorkDir: "/w"}, wantErr: true},
		{name: "upper name", spec: Spec{Name: "T1", Clusters: 1, NodesPerCluster: 1, BinDir: "/b", WorkDir: "/w"}, wantErr: true},
		{name: "no clusters", spec: Spec{Name: "t1", NodesPerCluster: 1, BinDir: "/b", WorkDir: "/w"}, wantErr: true},
		{name: "ten nodes", spec: Spec{Name: "t1", Clusters: 1, NodesPerCluster: 10, BinDir: "/b", WorkDir: "/w"}, wantErr: true},
		{name: "small mtu", spec: Spec{Name: "t1", Clusters: 1, NodesPerCluster: 1, UnderlayMTU: 1000, BinDir: "/b", WorkDir: "/w"}, wantErr: true},
		{name: "bad encryption", spec: Spec{Name: "t1", Clusters: 1, NodesPerCluster: 1, Encryption: "tls", BinDir: "/b", WorkDir: "/w"}, wantErr: true},
		{name: "bad wg mode", spec: Spec{Name: "t1", Clusters: 1, NodesPerCluster: 1, WireGuardMode: "x", BinDir: "/b", WorkDir: "/w"}, wantErr: true},
		{name: "no dirs", spec: Spec{Name: "t1", Clusters: 1, NodesPerCluster: 1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.spec.withDefaults()
			if (err != nil) != tt.wantErr {
				t.Fatalf("withDefaults err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (got.UnderlayMTU != 1500 || got.Encryption != EncryptionWireGuard || got.LogLevel != "info") {
				t.Errorf("defaults not filled: %+v", got)
			}
		})
	}
}

func TestDescriptions(t *testing.T) {
	s := Spec{Name: "t9", WorkDir: "/w"}
	n := nodeDesc(s, 2, 3)
	want := Node{Cluster: 2, ClusterName: "cluster2", Index: 3, Name: "node3", Netns: "sl-t9-c2n3",
		IP: mustAddr("198.18.2.13"), PodCIDR: mustPrefix("10.2.3.0/24"),
		Dir: "/w/cluster2/node3", StateDir: "/w/cluster2/node3/state", Socket: "/w/cluster2/node3/agent.sock"}
	if d := cmp.Diff(want, n, cmp.Comparer(func(a, b Node) bool { return a == b })); d != "" {
		t.Errorf("nodeDesc (-want +got):\n%s", d)
	}
	c := clusterDesc(s, 2)
	if c.Endpoint != "https://198.18.2.1:2379" || c.Netns != "sl-t9-c2api" || c.Name != "cluster2" {
		t.Errorf("clusterDesc = %+v", c)
	}
	p := podDesc(s, 2, 3, 1)
	if p.Netns != "sl-t9-c2n3p1" || p.Name != "pod2-3-1" {
		t.Errorf("podDesc = %+v", p)
	}
	if !UnderlayNet().Contains(n.IP) || !UnderlayNet().Contains(c.APIAddr) {
		t.Errorf("addresses outside %s", UnderlayNet())
	}
}

func TestDecodeRecord(t *testing.T) {
	tests := []struct {
		name, in string
		wantErr  bool
	}{
		{name: "ok", in: `{"spec":{"Name":"t1"},"netns":["sl-t1-ul"],"pidFiles":[{"path":"/w/a.pid","binary":"strait-agent"}]}`},
		{name: "not json", in: `{`, wantErr: true},
		{name: "bad name", in: `{"spec":{"Name":"../x"}}`, wantErr: true},
		{name: "foreign netns", in: `{"spec":{"Name":"t1"},"netns":["host"]}`, wantErr: true},
		{name: "netns path", in: `{"spec":{"Name":"t1"},"netns":["sl-/../x"]}`, wantErr: true},
		{name: "relative pid file", in: `{"spec":{"Name":"t1"},"pidFiles":[{"path":"a.pid","binary":"x"}]}`, wantErr: true},
		{name: "no binary", in: `{"spec":{"Name":"t1"},"pidFiles":[{"path":"/a.pid"}]}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeRecord("lab.json", []byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrRecord) {
				t.Errorf("err = %v, want ErrRecord", err)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"spec":{"Name":"t1"},"netns":["sl-t1-ul"],"pidFiles":[{"path":"/w/a.pid","binary":"strait-agent"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeRecord("lab.json", b)
		if err != nil {
			return
		}
		for _, n := range rec.Netns {
			if filepath.Base(n) != n {
				t.Fatalf("accepted netns %q", n)
			}
		}
	})
}

// TestControlPlane builds the underlay, the apiservers and connects them
// (no agents), then checks the connection through each cluster's cache,
// and that Close and Destroy leave nothing behind.
func TestControlPlane(t *testing.T) {
	needRoot(t)
	ctx := testkit.Context(t, 3*time.Minute)
	log := testkit.Logger(t)
	bin := controlPlaneBin(t)
	work := t.TempDir()
	name := labName(t, "c")
	t.Cleanup(func() { Destroy(context.Background(), log, work) })

	l, err := newLab(log, Spec{Name: name, Clusters: 2, NodesPerCluster: 1, BinDir: bin, WorkDir: work, Connect: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newLab(log, Spec{Name: name, Clusters: 1, NodesPerCluster: 1, BinDir: bin, WorkDir: work}); !errors.Is(err, ErrExists) {
		t.Fatalf("second lab in the same work dir: %v, want ErrExists", err)
	}
	for _, step := range []func(context.Context) error{l.upTopology, l.upApiservers, l.ConnectAll} {
		if err := step(ctx); err != nil {
			l.Close(ctx)
			t.Fatal(err)
		}
	}
	// A node reaches its apiserver and the other cluster's over the underlay.
	for _, n := range l.Nodes() {
		for _, c := range l.Clusters() {
			conn, err := DialIn(ctx, n.Netns, "tcp", c.APIAddr.String()+":2379")
			if err != nil {
				t.Errorf("%s to %s: %v", n.Key(), c.Endpoint, err)
				continue
			}
			conn.Close()
		}
	}
	// The context file names the cluster and its directories.
	b, err := os.ReadFile(l.clusters[0].ContextFile)
	if err != nil || !slices.Contains([]string{string(b)}, string(b)) || len(b) == 0 {
		t.Errorf("context file: %v", err)
	}
	// An apiserver restart comes back with the connection.
	c1 := l.clusters[0]
	if err := l.ApiserverStop(ctx, c1); err != nil {
		t.Fatal(err)
	}
	if err := l.ApiserverStart(ctx, c1); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	// Simulate a crash: Destroy from the record alone.
	if err := Destroy(ctx, log, work); err != nil {
		t.Fatal(err)
	}
	left, err := listNetns(Prefix + name + "-")
	if err != nil || len(left) != 0 {
		t.Errorf("netns left after Destroy: %v %v", left, err)
	}
	for _, c := range l.clusters {
		if pidRuns(l.apiservers[c.ID].cmd.Process.Pid, "strait-apiserver") {
			t.Errorf("apiserver of %s still running", c.Name)
		}
	}
	if _, err := os.Stat(filepath.Join(work, RecordFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record left: %v", err)
	}
	if err := l.Close(ctx); err != nil {
		t.Errorf("Close after Destroy: %v", err)
	}
}

func TestAgentArgs(t *testing.T) {
	tests := []struct {
		name      string
		spec      Spec
		want      []string // flags that must appear with these values
		wantNoArg []string // flags that must not appear
	}{
		{name: "wireguard", spec: Spec{Name: "a", Clusters: 2, NodesPerCluster: 2, BinDir: "/b", WorkDir: "/w"},
			want:      []string{"--cluster-name=cluster1", "--cluster-id=1", "--node-name=node1", "--node-ip=198.18.1.11", "--pod-cidr=10.1.1.0/24", "--kvstore-endpoints=https://198.18.1.1:2379", "--encryption=wireguard", "--wireguard-binary=/b/strait-wireguard", "--state-dir=/w/cluster1/node1/state", "--underlay-device=eth0"},
			wantNoArg: []string{"--strict-mode-cidr", "--ipsec-key-file", "--wireguard-mode"}},
		{name: "strict userspace", spec: Spec{Name: "a", Clusters: 2, NodesPerCluster: 1, StrictMode: true, WireGuardMode: "userspace", BinDir: "/b", WorkDir: "/w"},
			want: []string{"--strict-mode-cidr=10.2.1.0/24", "--wireguard-mode=userspace"}},
		{name: "ipsec", spec: Spec{Name: "a", Clusters: 1, NodesPerCluster: 2, Encryption: "ipsec", StrictMode: true, BinDir: "/b", WorkDir: "/w"},
			want:      []string{"--encryption=ipsec", "--ipsec-key-file=/w/ipsec.key", "--strict-mode-cidr=10.1.2.0/24"},
			wantNoArg: []string{"--wireguard-binary"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.spec.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			l := &Lab{spec: s}
			for c := 1; c <= s.Clusters; c++ {
				l.clusters = append(l.clusters, clusterDesc(s, c))
				for n := 1; n <= s.NodesPerCluster; n++ {
					l.nodes = append(l.nodes, nodeDesc(s, c, n))
				}
			}
			args := l.agentArgs(l.nodes[0])
			got := map[string]string{}
			for i := 0; i+1 < len(args); i += 2 {
				got[args[i]] = args[i+1]
			}
			for _, w := range tt.want {
				k, v, _ := strings.Cut(w, "=")
				if got[k] != v {
					t.Errorf("%s = %q, want %q (args %q)", k, got[k], v, args)
				}
			}
			for _, k := range tt.wantNoArg {
				if _, ok := got[k]; ok {
					t.Errorf("%s present: %q", k, args)
				}
			}
		})
	}
}

func TestWriteIPsecKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	if err := writeIPsecKey(p); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys, err := ipsec.ParseKeyFile(f, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].SPI != 3 || !keys[0].PerNodePair || keys[0].ICVBits != 128 {
		t.Errorf("keys = %+v", keys)
	}
}

// TestUpFailureTearsDown: Up with a strait-agent that exits at once fails
// at the agents step, names the agent, its log and what it said, and leaves
// no namespace, process or record behind.
func TestUpFailureTearsDown(t *testing.T) {
	needRoot(t)
	ctx := testkit.Context(t, 2*time.Minute)
	log := testkit.Logger(t)
	bin := controlPlaneBin(t)
	src := t.TempDir()
	if err := copyFile(filepath.Join(bin, "strait-apiserver"), filepath.Join(src, "strait-apiserver"), 0o755); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	name := labName(t, "f")
	t.Cleanup(func() { Destroy(context.Background(), log, work) })
	if _, err := Up(ctx, log, Spec{Name: name, Clusters: 1, NodesPerCluster: 1, BinDir: src, WorkDir: work}); !errors.Is(err, binaries.ErrMissing) {
		t.Fatalf("Up with only strait-apiserver: %v, want binaries.ErrMissing", err)
	}
	l, err := Up(ctx, log, Spec{Name: name, Clusters: 1, NodesPerCluster: 1, BinDir: bin, WorkDir: work})
	if err == nil {
		l.Close(ctx)
		t.Fatal("Up without strait-agent succeeded")
	}
	t.Logf("Up error: %v", err)
	for _, want := range []string{"agents", "agent cluster1/node1", "agent.log", "broken strait-agent"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q", want)
		}
	}
	if left, _ := listNetns(Prefix + name + "-"); len(left) != 0 {
		t.Errorf("namespaces left: %v", left)
	}
	if _, err := os.Stat(filepath.Join(work, RecordFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record left: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(work, "cluster1", "apiserver.pid"))
	if len(b) != 0 {
		t.Errorf("apiserver pid file left: %s", b)
	}
}

func TestSortPidFiles(t *testing.T) {
	got := []pidFile{{"/a", "strait-apiserver"}, {"/w", "strait-wireguard"}, {"/g", "strait-agent"}, {"/b", "strait-apiserver"}, {"/h", "strait-agent"}}
	sortPidFiles(got)
	want := []pidFile{{"/g", "strait-agent"}, {"/h", "strait-agent"}, {"/w", "strait-wireguard"}, {"/a", "strait-apiserver"}, {"/b", "strait-apiserver"}}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(pidFile{})); d != "" {
		t.Errorf("sortPidFiles (-want +got):\n%s", d)
	}
}

// TestKillPidFile: a pid file is acted on only when the pid runs the
// recorded binary.
func TestKillPidFile(t *testing.T) {
	dir := t.TempDir()
	p, err := startProcess("sleeper", "sleep", filepath.Join(dir, "s.log"), filepath.Join(dir, "s.pid"), nil, "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop(syscall.SIGKILL, time.Second)
	pid := p.cmd.Process.Pid
	if err := killPidFile(filepath.Join(dir, "s.pid"), "strait-agent", time.Second); err != nil {
		t.Fatal(err)
	}
	if !p.running() || !pidRuns(pid, "sleep") {
		t.Fatal("a process of another binary was killed")
	}
	os.WriteFile(filepath.Join(dir, "s.pid"), []byte(strconv.Itoa(pid)), 0o644)
	if err := killPidFile(filepath.Join(dir, "s.pid"), "sleep", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if _, err := os.Stat(filepath.Join(dir, "s.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bad.pid"), []byte("x"), 0o644)
	if err := killPidFile(filepath.Join(dir, "bad.pid"), "sleep", time.Second); err == nil {
		t.Error("bad pid file accepted")
	}
	if err := killPidFile(filepath.Join(dir, "none.pid"), "sleep", time.Second); err != nil {
		t.Errorf("missing pid file: %v", err)
	}
}
