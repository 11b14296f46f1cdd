package connect

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/identity"
)

func TestParseContext(t *testing.T) {
	const good = "cluster: c1\nid: 1\nendpoints: [\"https://127.0.0.1:2379\"]\ncertDir: certs\nclustermeshConfigDir: /abs/mesh\n"
	tests := []struct {
		name    string
		in      string
		want    *Context
		wantErr string
	}{
		{
			name: "minimal, relative paths resolved, max defaults to 255",
			in:   good,
			want: &Context{Cluster: "c1", ID: 1, Max: identity.ClusterMax255, Endpoints: []string{"https://127.0.0.1:2379"},
				CertDir: "/base/certs", ClustermeshConfigDir: "/abs/mesh"},
		},
		{
			name: "full",
			in:   "cluster: c2\nid: 300\nmaxConnectedClusters: 511\nendpoints: [\"https://198.18.2.1:2379\"]\ncertDir: /c\nclustermeshConfigDir: m\nagents:\n- node: n1\n  socket: n1/agent.sock\n",
			want: &Context{Cluster: "c2", ID: 300, Max: identity.ClusterMax511, Endpoints: []string{"https://198.18.2.1:2379"},
				CertDir: "/c", ClustermeshConfigDir: "/base/m", Agents: []Agent{{Node: "n1", Socket: "/base/n1/agent.sock"}}},
		},
		{name: "default name", in: "cluster: default\nid: 1\n",
			wantErr: `connect: invalid context file: field "cluster": "default" is reserved for a cluster outside a mesh: give the cluster another name (here and in its strait-apiserver --cluster-name)`},
		{name: "bad name", in: "cluster: C_1\nid: 1\n",
			wantErr: `connect: invalid context file: field "cluster": "C_1": lowercase letters, digits and '-', at most 32 characters, starting and ending with a letter or digit`},
		{name: "no name", in: "id: 1\n", wantErr: `connect: invalid context file: field "cluster": missing`},
		{name: "id zero", in: "cluster: c1\nid: 0\n",
			wantErr: `connect: invalid context file: field "id": 0 is reserved for a cluster outside a mesh: give the cluster an ID in 1..255 (here and in its strait-apiserver --cluster-id)`},
		{name: "id missing", in: "cluster: c1\n", wantErr: `connect: invalid context file: field "id": missing`},
		{name: "id above max", in: "cluster: c1\nid: 256\n", wantErr: `connect: invalid context file: field "id": 256 is outside 1..255 (maxConnectedClusters)`},
		{name: "bad max", in: "cluster: c1\nid: 1\nmaxConnectedClusters: 100\n", wantErr: `connect: invalid context file: field "maxConnectedClusters": 100: must be 255 or 511`},
		{name: "no endpoints", in: "cluster: c1\nid: 1\n",
			wantErr: `connect: invalid context file: field "endpoints": missing: list the https://host:port URLs of the cluster's strait-apiserver`},
		{name: "http endpoint", in: "cluster: c1\nid: 1\nendpoints: [\"http://127.0.0.1:2379\"]\n",
			wantErr: `connect: invalid context file: field "endpoints[0]": "http://127.0.0.1:2379": want https://host:port`},
		{name: "endpoint without port", in: "cluster: c1\nid: 1\nendpoints: [\"https://127.0.0.1\"]\n",
			wantErr: `connect: invalid context file: field "endpoints[0]": "https://127.0.0.1": want https://host:port`},
		{name: "endpoint port 0", in: "cluster: c1\nid: 1\nendpoints: [\"https://127.0.0.1:0\"]\n",
			wantErr: `connect: invalid context file: field "endpoints[0]": "https://127.0.0.1:0": port "0" is not in 1-65535`},
		{name: "no certDir", in: "cluster: c1\nid: 1\nendpoints: [\"https://a:1\"]\n",
			wantErr: "connect: invalid context file: field \"certDir\": missing: the cluster's `strait-apiserver certs generate` directory"},
		{name: "no mesh dir", in: "cluster: c1\nid: 1\nendpoints: [\"https://a:1\"]\ncertDir: c\n",
			wantErr: `connect: invalid context file: field "clustermeshConfigDir": missing: the directory the cluster's strait-apiserver watches (--clustermesh-config)`},
		{name: "agent without socket", in: good + "agents:\n- node: n1\n",
			wantErr: `connect: invalid context file: field "agents[0].socket": missing`},
		{name: "agent twice", in: good + "agents:\n- {node: n1, socket: a}\n- {node: n1, socket: b}\n",
			wantErr: `connect: invalid context file: field "agents[1].node": "n1" listed twice`},
		{name: "unknown field", in: good + "endpoint: x\n",
			wantErr: `connect: invalid context file: invalid yaml: error unmarshaling JSON: while decoding JSON: json: unknown field "endpoint"`},
		{name: "not yaml", in: "cluster: [\n",
			wantErr: `connect: invalid context file: invalid yaml: error converting YAML to JSON: yaml: line 1: did not find expected node content`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseContext([]byte(tt.in), "/base")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error:\n got %v\nwant %s", err, tt.wantErr)
				}
				if !errors.Is(err, ErrContext) {
					t.Errorf("error %v does not match ErrContext", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestLoadContextErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := LoadContext(missing); err == nil || err.Error() != "connect: invalid context file: "+missing+": open "+missing+": no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("cluster: c1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadContext(bad); err == nil || err.Error() != bad+`: connect: invalid context file: field "id": missing` {
		t.Errorf("bad file: %v", err)
	}
	if _, err := LoadContext(dir); err == nil || !errors.Is(err, ErrContext) {
		t.Errorf("directory: %v", err)
	}
}
