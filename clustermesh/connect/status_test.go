package connect

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite golden files")

// agentBackend answers the endpoint API with a fixed status: the agent
// side of straitctl status, served over the real socket API.
type agentBackend struct{ st endpointapi.Status }

func (b *agentBackend) Node(context.Context) (endpointapi.NodeInfo, error) {
	return endpointapi.NodeInfo{}, errors.New("not used")
}
func (b *agentBackend) PutEndpoint(context.Context, endpointapi.Endpoint) (endpointapi.EndpointStatus, error) {
	return endpointapi.EndpointStatus{}, errors.New("not used")
}
func (b *agentBackend) DeleteEndpoint(context.Context, string, string) error { return nil }
func (b *agentBackend) Endpoints(context.Context) ([]endpointapi.EndpointStatus, error) {
	return nil, nil
}
func (b *agentBackend) Status(context.Context) (endpointapi.Status, error) { return b.st, nil }

func serveAgent(t *testing.T, path string, st endpointapi.Status) {
	t.Helper()
	testkit.RunBackground(t, func(ctx context.Context) error {
		return endpointapi.Serve(ctx, testkit.Logger(t), path, &agentBackend{st: st})
	})
	eventually(t, "agent socket "+path, func() string {
		if _, err := os.Stat(path); err != nil {
			return err.Error()
		}
		return ""
	})
}

// TestStatus connects two real clusters and checks the whole status
// JSON against a golden file (dynamic endpoints and paths replaced).
func TestStatus(t *testing.T) {
	m := newMesh(t)
	c1 := m.add("c1", 1, clusterOpts{})
	c2 := m.add("c2", 2, clusterOpts{})
	ctx := testkit.Context(t, 2*time.Minute)
	log := testkit.Logger(t)
	sock := t.TempDir()
	serveAgent(t, filepath.Join(sock, "c1n1.sock"), endpointapi.Status{Cluster: "c1", Node: "n1",
		Clusters: []endpointapi.ClusterStatus{{Name: "c2", ID: 2, Connected: true, Ready: true}}})
	serveAgent(t, filepath.Join(sock, "c1n2.sock"), endpointapi.Status{Cluster: "c1", Node: "n2",
		Clusters: []endpointapi.ClusterStatus{{Name: "c2", ID: 2, Connected: true, Ready: false}}})
	serveAgent(t, filepath.Join(sock, "c2n1.sock"), endpointapi.Status{Cluster: "c2", Node: "n1",
		Clusters: []endpointapi.ClusterStatus{{Name: "c1", ID: 1, Connected: true, Ready: true}},
		Problems: []endpointapi.Problem{{Node: "c1/n9", Reason: "pod CIDR 10.1.1.0/24 overlaps node c1/n1"}}})
	addAgents := func(c *tcluster, agents string) string {
		p := filepath.Join(c.base, "status.yaml")
		writeFile(t, p, string(readFile(t, c.ctxPath))+"agents:\n"+agents)
		return p
	}
	p1 := addAgents(c1, fmt.Sprintf("- {node: n1, socket: %s/c1n1.sock}\n- {node: n2, socket: %s/c1n2.sock}\n", sock, sock))
	p2 := addAgents(c2, fmt.Sprintf("- {node: n1, socket: %s/c2n1.sock}\n- {node: n2, socket: %s/c2n2.sock}\n", sock, sock))
	cs := []*Context{mustLoad(t, p1), mustLoad(t, p2)}

	normalize := func(st *Status) string {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		s := string(b) + "\n"
		return strings.NewReplacer(c1.srv.Endpoints()[0], "https://C1-ENDPOINT", c2.srv.Endpoints()[0], "https://C2-ENDPOINT",
			c1.meshDir, "C1-MESH-DIR", sock, "SOCKET-DIR").Replace(s)
	}

	// Before connect: nothing configured, c2's second agent missing.
	st, err := CollectStatus(ctx, log, cs, StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status-unconnected.json", normalize(st))

	if _, err := Connect(ctx, log, ctxs(t, c1, c2), Options{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both remotes ready", func() string {
		st, err = CollectStatus(ctx, log, cs, StatusOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.Clusters {
			if c.Ready != 1 {
				return fmt.Sprintf("%s: %+v", c.Name, c.Remotes)
			}
		}
		return ""
	})
	golden(t, "status-connected.json", normalize(st))

	// Without agents, the mesh is ready and WaitStatus returns.
	var progress int
	st, err = WaitStatus(ctx, log, ctxs(t, c1, c2), StatusOptions{}, 10*time.Millisecond, func(*Status) { progress++ })
	if err != nil || !st.Ready || progress == 0 {
		t.Fatalf("WaitStatus: %v, %+v, %d progress calls", err, st, progress)
	}
	// With the broken agents it times out with ErrNotReady.
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := WaitStatus(wctx, log, cs, StatusOptions{}, 10*time.Millisecond, nil); !errors.Is(err, ErrNotReady) {
		t.Fatalf("WaitStatus with broken agents: %v", err)
	}

	// A dead apiserver.
	dead := filepath.Join(c2.base, "dead.yaml")
	writeFile(t, dead, fmt.Sprintf("cluster: c2\nid: 2\nendpoints: [\"https://%s\"]\ncertDir: certs\nclustermeshConfigDir: mesh\n", freeAddr(t)))
	st, err = CollectStatus(ctx, log, []*Context{mustLoad(t, dead)}, StatusOptions{DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready || st.Clusters[0].Reachable || len(st.Clusters[0].Errors) == 0 ||
		!strings.HasPrefix(st.Clusters[0].Errors[0].Message, "apiserver of c2 unreachable: ") {
		t.Errorf("dead apiserver: %s", normalize(st))
	}
}

func ctxs(t *testing.T, cs ...*tcluster) []*Context {
	var out []*Context
	for _, c := range cs {
		out = append(out, c.context(t))
	}
	return out
}

// golden compares got with testdata/<name>, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s (-want +got):\n%s", p, d)
	}
}
