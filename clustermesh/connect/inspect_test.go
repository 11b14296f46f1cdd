package connect

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/clustermesh/inspect"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
	"github.com/strait-net/strait/internal/testkit"
)

func schemaGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "schema", "testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// TestInspectThroughCache publishes Cilium's own example values (cluster3,
// ID 3) in one real cluster and strait's (c-1, ID 42) in another, connects
// them, and inspects c-1's etcd: its own entries and the cached Cilium
// ones are all valid and shown with exactly their original bytes.
func TestInspectThroughCache(t *testing.T) {
	m := newMesh(t)
	c1 := m.add("c-1", 42, clusterOpts{})
	c3 := m.add("cluster3", 3, clusterOpts{})
	ctx := testkit.Context(t, 2*time.Minute)
	put := func(c *tcluster, key string, value []byte) {
		t.Helper()
		if err := c.admin.Put(ctx, key, value); err != nil {
			t.Fatal(err)
		}
	}
	type want struct{ cluster, source, key string }
	wants := map[inspect.Kind][]want{}
	values := map[string][]byte{}
	add := func(c *tcluster, kind inspect.Kind, stateKey, shownKey string, value []byte) {
		put(c, stateKey, value)
		source := inspect.SourceState
		if c != c1 {
			source = inspect.SourceCache
		}
		wants[kind] = append(wants[kind], want{c.name, source, shownKey})
		values[shownKey] = value
	}
	add(c1, inspect.KindNodes, "cilium/state/nodes/v1/c-1/worker-0", "cilium/state/nodes/v1/c-1/worker-0", schemaGolden(t, "strait-node.json"))
	add(c3, inspect.KindNodes, "cilium/state/nodes/v1/cluster3/test-node-1", "cilium/cache/nodes/v1/cluster3/test-node-1", schemaGolden(t, "cilium-node-1.json"))
	add(c3, inspect.KindNodes, "cilium/state/nodes/v1/cluster3/test-node-2", "cilium/cache/nodes/v1/cluster3/test-node-2", schemaGolden(t, "cilium-node-2.json"))
	add(c1, inspect.KindIPCache, "cilium/state/ip/v1/default/2001:db8::1", "cilium/state/ip/v1/default/2001:db8::1", schemaGolden(t, "strait-ip-host.json"))
	add(c3, inspect.KindIPCache, "cilium/state/ip/v1/default/10.244.2.74", "cilium/cache/ip/v1/cluster3/10.244.2.74", schemaGolden(t, "cilium-ip-pod.json"))
	add(c3, inspect.KindIPCache, "cilium/state/ip/v1/default/fd00:10:244:1::d643", "cilium/cache/ip/v1/cluster3/fd00:10:244:1::d643", schemaGolden(t, "cilium-ip-pod-v6.json"))
	add(c1, inspect.KindServices, "cilium/state/services/v1/c-1/default/web", "cilium/state/services/v1/c-1/default/web", schemaGolden(t, "strait-service.json"))
	add(c3, inspect.KindServices, "cilium/state/services/v1/cluster3/ns-alpha/echo-service", "cilium/cache/services/v1/cluster3/ns-alpha/echo-service", schemaGolden(t, "cilium-service.json"))
	add(c1, inspect.KindIdentities, "cilium/state/identities/v1/id/2752513", "cilium/state/identities/v1/id/2752513",
		[]byte(`{"id":2752513,"labels":["k8s:app=web","k8s:io.cilium.k8s.policy.cluster=c-1","k8s:io.kubernetes.pod.namespace=default"]}`))
	put(c1, "cilium/state/identities/v1/id/2752513", []byte("k8s:app=web;k8s:io.cilium.k8s.policy.cluster=c-1;k8s:io.kubernetes.pod.namespace=default;"))
	add(c3, inspect.KindIdentities, "cilium/state/identities/v1/id/199475", "cilium/cache/identities/v1/cluster3/id/199475",
		[]byte(`{"id":199475,"labels":["k8s:app=baz","k8s:io.cilium.k8s.policy.cluster=cluster3","k8s:io.kubernetes.pod.namespace=bar"]}`))
	put(c3, "cilium/state/identities/v1/id/199475", []byte("k8s:app=baz;k8s:io.cilium.k8s.policy.cluster=cluster3;k8s:io.kubernetes.pod.namespace=bar;"))

	if _, err := Connect(ctx, testkit.Logger(t), ctxs(t, c1, c3), Options{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "c-1 caching cluster3's entries", func() string {
		for _, ws := range wants {
			for _, w := range ws {
				if _, ok := c1.has(t, w.key); !ok {
					return w.key + " missing"
				}
			}
		}
		return ""
	})
	origin := schema.Origin{Cluster: "c-1", ClusterID: 42, Max: identity.ClusterMax255}
	for _, kind := range []inspect.Kind{inspect.KindNodes, inspect.KindIPCache, inspect.KindIdentities, inspect.KindServices} {
		r, err := inspect.Read(ctx, inspect.EtcdGetter{Client: c1.admin.Etcd()}, origin, kind)
		if err != nil {
			t.Fatal(err)
		}
		var got []want
		for _, e := range r.Entries {
			got = append(got, want{e.Cluster, e.Source, e.Key})
			if !bytes.Equal(e.Value, values[e.Key]) {
				t.Errorf("%s: value\n got %s\nwant %s", e.Key, e.Value, values[e.Key])
			}
		}
		// Local first, then cached, each in key order.
		ws := wants[kind]
		if d := cmp.Diff(ws, got, cmp.AllowUnexported(want{})); d != "" {
			t.Errorf("%s entries (-want +got):\n%s", kind, d)
		}
		if len(r.Invalid) != 0 {
			t.Errorf("%s invalid: %+v", kind, r.Invalid)
		}
	}
	r, err := inspect.Read(ctx, inspect.EtcdGetter{Client: c1.admin.Etcd()}, origin, inspect.KindClusters)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Entries) != 2 || r.Entries[1].Cluster != "cluster3" || len(r.Entries[1].Synced) != 5 {
		t.Errorf("clusters: %+v", r.Entries)
	}
}
