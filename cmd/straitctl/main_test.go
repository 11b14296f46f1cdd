package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strait-net/strait/clustermesh/apiserver"
	"github.com/strait-net/strait/clustermesh/certs"
	"github.com/strait-net/strait/clustermesh/connect"
	"github.com/strait-net/strait/clustermesh/inspect"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/kvstoremesh"
	"github.com/strait-net/strait/identity"
	"github.com/strait-net/strait/internal/testkit"
)

func TestMain(m *testing.M) {
	os.Exit(testkit.RunWithLeakCheck(m, "strait-net/strait/clustermesh/"))
}

// run executes straitctl with args; it returns stdout and the error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCommand(&out, &errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(testkit.Context(t, 2*time.Minute))
	return out.String(), err
}

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	ctxFile := filepath.Join(dir, "c1.yaml")
	if err := os.WriteFile(ctxFile, []byte("cluster: c1\nid: 1\nendpoints: [\"https://127.0.0.1:1\"]\ncertDir: c\nclustermeshConfigDir: m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"connect without contexts", []string{"connect"}, "invalid --context: missing: name a context file per cluster (--context cluster1.yaml)"},
		{"bad mode", []string{"connect", "--mode", "ring", "--context", ctxFile}, `invalid --mode: "ring": want bidirectional, mesh or unicast`},
		{"bad log level", []string{"status", "--log-level", "loud", "--context", ctxFile}, `invalid --log-level: "loud": want debug, info, warn or error`},
		{"bad output", []string{"status", "-o", "yaml", "--context", ctxFile}, `invalid --output: "yaml": want table or json`},
		{"unknown kind", []string{"inspect", "pods", "--context", ctxFile}, `unknown kind "pods": want nodes, ipcache, identities, services or clusters`},
		{"inspect two contexts", []string{"inspect", "nodes", "--context", ctxFile, "--context", ctxFile}, "invalid --cluster: missing: 2 contexts given, name the cluster to inspect"},
		{"inspect unknown cluster", []string{"inspect", "nodes", "--context", ctxFile, "--cluster", "c9"}, `invalid --cluster: "c9" is none of the contexts' clusters (c1)`},
		{"missing context file", []string{"status", "--context", filepath.Join(dir, "nope.yaml")},
			"connect: invalid context file: " + filepath.Join(dir, "nope.yaml") + ": open " + filepath.Join(dir, "nope.yaml") + ": no such file or directory"},
		{"unreachable", []string{"connect", "--timeout", "1s", "--context", ctxFile, "--context", ctxFile},
			`connect: cluster names clash: ` + ctxFile + ` and ` + ctxFile + ` both name cluster "c1": every cluster of a mesh needs its own name; fix "cluster" in one of them`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, tt.args...)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error:\n got %v\nwant %s", err, tt.want)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startCluster runs a real strait-apiserver on loopback and writes its
// context file; it stops when the test ends.
func startCluster(t *testing.T, name string, id identity.ClusterID) string {
	t.Helper()
	base := filepath.Join(t.TempDir(), name)
	f, _, err := certs.WriteClusterDir(certs.ClusterDirOptions{Cluster: name, Dir: filepath.Join(base, "certs")})
	if err != nil {
		t.Fatal(err)
	}
	meshDir := filepath.Join(base, "mesh")
	if err := os.Mkdir(meshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	metrics, err := kvstoremesh.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := apiserver.Config{
		ClusterName: name, ClusterID: id, Max: identity.ClusterMax255,
		DataDir: filepath.Join(base, "etcd"), ServerCertFile: f.ServerCert, ServerKeyFile: f.ServerKey,
		ClientCAFile: f.CACert, AdminCertFile: f.AdminCert, AdminKeyFile: f.AdminKey,
		HeartbeatInterval: time.Hour, ClusterMeshConfigDir: meshDir, RemovalGrace: time.Second, MeshMetrics: metrics,
	}
	for attempt := 0; ; attempt++ {
		cfg.ListenClientURLs = []string{"https://" + freeAddr(t)}
		cfg.ListenPeerURL = "http://" + freeAddr(t)
		s, err := apiserver.New(testkit.Logger(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		select {
		case <-s.Ready():
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("apiserver %s: %v", name, err)
				}
			})
		case err := <-done:
			cancel()
			if errors.Is(err, syscall.EADDRINUSE) && attempt < 5 {
				continue
			}
			t.Fatal(err)
		}
		cli, err := kvstore.New(testkit.Context(t, time.Minute), testkit.Logger(t), s.ClientConfig(f.AdminCert, f.AdminKey))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		for _, k := range kvstoremesh.AllKinds() {
			if err := cli.WriteCanary(testkit.Context(t, time.Minute), name, k.StatePrefix()); err != nil {
				t.Fatal(err)
			}
		}
		node := fmt.Sprintf(`{"Name":"n1","Cluster":%q,"IPAddresses":[{"Type":"InternalIP","IP":"192.0.2.%d"}],"IPv4AllocCIDR":{"IP":"10.%d.1.0","Mask":"////AA=="},"ClusterID":%d}`, name, id, id, id)
		if err := cli.Put(testkit.Context(t, time.Minute), "cilium/state/nodes/v1/"+name+"/n1", []byte(node)); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(base, "context.yaml")
		body := fmt.Sprintf("cluster: %s\nid: %d\nendpoints: [%q]\ncertDir: certs\nclustermeshConfigDir: mesh\n", name, id, s.Endpoints()[0])
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// TestCommands drives connect, status --wait, inspect and disconnect
// against two real apiservers.
func TestCommands(t *testing.T) {
	a := startCluster(t, "cluster1", 1)
	b := startCluster(t, "cluster2", 2)
	out, err := run(t, "connect", "--context", a, "--context", b)
	if err != nil {
		t.Fatal(err)
	}
	if want := "cluster1 → cluster2: connected\ncluster2 → cluster1: connected\n"; out != want {
		t.Errorf("connect printed %q, want %q", out, want)
	}
	out, err = run(t, "connect", "--context", a, "--context", b)
	if err != nil || !strings.Contains(out, "already connected (identical files), nothing to do") {
		t.Errorf("second connect: %q, %v", out, err)
	}
	out, err = run(t, "status", "--wait", "--wait-timeout", "1m", "-o", "json", "--context", a, "--context", b)
	if err != nil {
		t.Fatalf("status --wait: %v\n%s", err, out)
	}
	var st connect.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Ready || len(st.Clusters) != 2 || st.Clusters[0].Ready != 1 || st.Clusters[1].Ready != 1 {
		t.Errorf("status: %s", out)
	}
	out, err = run(t, "status", "--context", a)
	if err != nil || !strings.Contains(out, "remote clusters: 1 configured, 1 connected, 1 ready") || !strings.HasSuffix(out, "all clusters ready\n") {
		t.Errorf("status table: %q, %v", out, err)
	}
	out, err = run(t, "inspect", "nodes", "-o", "json", "--context", a, "--context", b, "--cluster", "cluster1")
	if err != nil {
		t.Fatal(err)
	}
	var r inspect.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range r.Entries {
		keys = append(keys, e.Source+" "+e.Key)
	}
	if got, want := strings.Join(keys, "|"), "state cilium/state/nodes/v1/cluster1/n1|cache cilium/cache/nodes/v1/cluster2/n1"; got != want || len(r.Invalid) != 0 {
		t.Errorf("inspect nodes: %s", out)
	}
	out, err = run(t, "inspect", "clusters", "--context", b)
	if err != nil || !strings.HasPrefix(out, "CLUSTER   ID  MAX  CACHED  SYNCED-CANARIES  SYNCED\ncluster1  1   255  true    true") {
		t.Errorf("inspect clusters: %q, %v", out, err)
	}
	out, err = run(t, "disconnect", "--context", a, "--context", b)
	if err != nil || out != "cluster1 → cluster2: disconnected\ncluster2 → cluster1: disconnected\n" {
		t.Errorf("disconnect: %q, %v", out, err)
	}
	// A dead apiserver: status --wait gives up with a non-zero exit.
	dead := filepath.Join(t.TempDir(), "dead.yaml")
	body := fmt.Sprintf("cluster: cluster1\nid: 1\nendpoints: [\"https://%s\"]\ncertDir: %s\nclustermeshConfigDir: %s\n",
		freeAddr(t), filepath.Join(filepath.Dir(a), "certs"), filepath.Join(filepath.Dir(a), "mesh"))
	if err := os.WriteFile(dead, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "status", "--wait", "--wait-timeout", "2s", "--timeout", "500ms", "--context", dead)
	if err == nil || err.Error() != "not ready after 2s: connect: mesh not ready: context deadline exceeded" ||
		!strings.Contains(out, "cluster cluster1 (id 1): apiserver https://") || !strings.Contains(out, "UNREACHABLE") {
		t.Errorf("status --wait of a dead apiserver: %v\n%s", err, out)
	}
}
