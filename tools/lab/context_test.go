package lab

import (
	"os"
	"testing"

	"github.com/strait-net/strait/clustermesh/connect"
	"github.com/strait-net/strait/internal/testkit"
)

// TestContextFile checks that the lab's context files are what straitctl
// (clustermesh/connect) reads.
func TestContextFile(t *testing.T) {
	work, bin := t.TempDir(), t.TempDir()
	stubBinaries(t, bin, "strait-apiserver", "strait-agent", "strait-cni", "strait-wireguard")
	l, err := newLab(testkit.Logger(t), Spec{Name: "ctx", Clusters: 2, NodesPerCluster: 2, BinDir: bin, WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	c := l.clusters[1]
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := l.writeContext(c); err != nil {
		t.Fatal(err)
	}
	got, err := connect.LoadContext(c.ContextFile)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cluster != "cluster2" || got.ID != 2 || len(got.Endpoints) != 1 || got.Endpoints[0] != "https://198.18.2.1:2379" ||
		got.CertDir != c.CertDir || got.ClustermeshConfigDir != c.MeshDir {
		t.Errorf("context = %+v", got)
	}
	if len(got.Agents) != 2 || got.Agents[0].Node != "node1" || got.Agents[1].Socket != l.nodes[3].Socket {
		t.Errorf("agents = %+v", got.Agents)
	}
}
