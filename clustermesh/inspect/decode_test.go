package inspect

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

var update = flag.Bool("update", false, "rewrite golden files")

// schemaGolden reads a value golden of clustermesh/schema: Cilium's own
// bytes (cilium-*) or strait's (strait-*).
func schemaGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "schema", "testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// Self is the strait cluster of the schema goldens (c-1, ID 42).
var self = schema.Origin{Cluster: "c-1", ClusterID: 42, Max: identity.ClusterMax255}

// ciliumIdentity is the identity example of reference/clustermesh.md §1.
const ciliumIdentity = "k8s:app=baz;k8s:io.cilium.k8s.policy.cluster=cluster3;k8s:io.kubernetes.pod.namespace=bar;"

// fixture is etcd content with strait's own entries (local), Cilium's
// entries of cluster3 as a KVStoreMesh cache holds them, and broken ones.
// exact maps keys whose Value must be the golden's bytes.
func fixture(t testing.TB) (map[Kind]Input, map[string][]byte) {
	g := func(n string) []byte { return schemaGolden(t, n) }
	configs := []KV{
		{"cilium/cluster-config/broken", []byte(`{"id":0,"capabilities":{}}`)},
		{"cilium/cluster-config/c-1", []byte(`{"id":42,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255,"serviceExportsEnabled":false}}`)},
		{"cilium/cluster-config/cluster3", g("cilium-clusterconfig.json")},
	}
	exact := map[string][]byte{
		"cilium/state/nodes/v1/c-1/worker-0":                      g("strait-node.json"),
		"cilium/cache/nodes/v1/cluster3/test-node-1":              g("cilium-node-1.json"),
		"cilium/cache/nodes/v1/cluster3/test-node-2":              g("cilium-node-2.json"),
		"cilium/state/ip/v1/default/2001:db8::1":                  g("strait-ip-host.json"),
		"cilium/cache/ip/v1/cluster3/10.244.2.74":                 g("cilium-ip-pod.json"),
		"cilium/cache/ip/v1/cluster3/fd00:10:244:1::d643":         g("cilium-ip-pod-v6.json"),
		"cilium/state/services/v1/c-1/default/web":                g("strait-service.json"),
		"cilium/cache/services/v1/cluster3/ns-alpha/echo-service": g("cilium-service.json"),
		"cilium/cluster-config/cluster3":                          g("cilium-clusterconfig.json"),
	}
	in := map[Kind]Input{
		KindNodes: {Configs: configs,
			Local: []KV{
				{"cilium/state/nodes/v1/c-1/worker-0", exact["cilium/state/nodes/v1/c-1/worker-0"]},
				{"cilium/state/nodes/v1/c-2/w", []byte(`{"Name":"w","Cluster":"c-2","ClusterID":2}`)},
			},
			Cached: []KV{
				{"cilium/cache/nodes/v1/cluster3/test-node-1", exact["cilium/cache/nodes/v1/cluster3/test-node-1"]},
				{"cilium/cache/nodes/v1/cluster3/test-node-2", exact["cilium/cache/nodes/v1/cluster3/test-node-2"]},
				{"cilium/cache/nodes/v1/gone/n1", []byte(`{"Name":"n1","Cluster":"gone","ClusterID":9}`)},
			}},
		KindIPCache: {Configs: configs,
			Local: []KV{
				{"cilium/state/ip/v1/default/10.42.0.9", []byte(`{"IP":"10.42.0.8","ID":2752513}`)},
				{"cilium/state/ip/v1/default/2001:db8::1", exact["cilium/state/ip/v1/default/2001:db8::1"]},
			},
			Cached: []KV{
				{"cilium/cache/ip/v1/cluster3/10.244.2.74", exact["cilium/cache/ip/v1/cluster3/10.244.2.74"]},
				{"cilium/cache/ip/v1/cluster3/10.244.2.75", []byte(`{"IP":"10.244.2.75","HostIP":"172.18.0.2","ID":262145}`)},
				{"cilium/cache/ip/v1/cluster3/fd00:10:244:1::d643", exact["cilium/cache/ip/v1/cluster3/fd00:10:244:1::d643"]},
			}},
		KindIdentities: {Configs: configs,
			Local: []KV{
				{"cilium/state/identities/v1/id/2752513", []byte("k8s:app=web;k8s:io.cilium.k8s.policy.cluster=c-1;k8s:io.kubernetes.pod.namespace=default;")},
				{"cilium/state/identities/v1/id/2752514", []byte("k8s:app=web;k8s:io.cilium.k8s.policy.cluster=c-2;")},
			},
			Cached: []KV{
				{"cilium/cache/identities/v1/cluster3/id/199475", []byte(ciliumIdentity)},
				{"cilium/cache/identities/v1/cluster3/id/65537", []byte("k8s:app=x;")},
			}},
		KindServices: {Configs: configs,
			Local: []KV{
				{"cilium/state/services/v1/c-1/default/web", exact["cilium/state/services/v1/c-1/default/web"]},
			},
			Cached: []KV{
				{"cilium/cache/services/v1/cluster3/ns-alpha/broken", []byte(`{"cluster":`)},
				{"cilium/cache/services/v1/cluster3/ns-alpha/echo-service", exact["cilium/cache/services/v1/cluster3/ns-alpha/echo-service"]},
			}},
		KindClusters: {Configs: configs, Synced: []KV{
			{"cilium/synced/c-1/cilium/state/nodes/v1", g("strait-canary.txt")},
			{"cilium/synced/cluster3/cilium/cache/nodes/v1", g("cilium-canary.txt")},
		}},
	}
	return in, exact
}

// TestDecodeGolden decodes strait's and Cilium's entries side by side:
// both are listed the same way and re-encode to exactly their bytes.
func TestDecodeGolden(t *testing.T) {
	in, exact := fixture(t)
	for _, kind := range Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			r, err := Decode(self, kind, in[kind])
			if err != nil {
				t.Fatal(err)
			}
			checkExact(t, r, exact)
			var js bytes.Buffer
			enc := json.NewEncoder(&js)
			enc.SetIndent("", "  ")
			if err := enc.Encode(r); err != nil {
				t.Fatal(err)
			}
			golden(t, "inspect-"+string(kind)+".json", js.String())
			var tab bytes.Buffer
			if err := WriteTable(&tab, r); err != nil {
				t.Fatal(err)
			}
			golden(t, "inspect-"+string(kind)+".txt", tab.String())
		})
	}
}

// checkExact requires every entry named in exact to be valid with exactly
// those bytes as its Value.
func checkExact(t *testing.T, r *Report, exact map[string][]byte) {
	t.Helper()
	for _, e := range r.Entries {
		if want, ok := exact[e.Key]; ok && !bytes.Equal(want, e.Value) {
			t.Errorf("%s: value\n got %s\nwant %s", e.Key, e.Value, want)
		}
	}
	for _, in := range r.Invalid {
		if _, ok := exact[in.Key]; ok {
			t.Errorf("%s invalid: %s", in.Key, in.Reason)
		}
	}
}

func TestDecodeUnknownKind(t *testing.T) {
	if _, err := Decode(self, "pods", Input{}); err == nil || err.Error() != `inspect: unknown kind: "pods": want one of nodes, ipcache, identities, services, clusters` {
		t.Errorf("got %v", err)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
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
