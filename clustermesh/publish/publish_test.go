package publish

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
	"github.com/strait-net/strait/internal/etcdtest"
)

var opts3 = Options{Cluster: "cluster3", ClusterID: 3, Max: identity.ClusterMax255}

// golden reads one of Cilium's values from the schema package's goldens.
func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "schema", "testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// TestCiliumJSON publishes values decoded from Cilium's own output and
// checks the bytes in etcd are exactly Cilium's, at the right keys, with
// the canaries Cilium writes.
func TestCiliumJSON(t *testing.T) {
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := newClient(t, srv)
	raw := srv.Client(t)
	origin := schema.Origin{Cluster: "cluster3", ClusterID: 3, Max: identity.ClusterMax255}

	nodeJSON := golden(t, "cilium-node-1.json")
	node, err := schema.DecodeNode(schema.NodeKey("cluster3", "test-node-1"), nodeJSON, origin)
	if err != nil {
		t.Fatal(err)
	}
	ipJSON := golden(t, "cilium-ip-pod.json")
	ip, err := schema.DecodeIPIdentityPair(schema.IPKey(netip.MustParseAddr("10.244.2.74")), ipJSON, origin)
	if err != nil {
		t.Fatal(err)
	}
	svcJSON := golden(t, "cilium-service.json")
	svc, err := schema.DecodeClusterService(schema.ServiceKey("cluster3", "ns-alpha", "echo-service"), svcJSON, origin)
	if err != nil {
		t.Fatal(err)
	}

	np, err := NewNodePublisher(c, testkit.Logger(t), opts3)
	if err != nil {
		t.Fatal(err)
	}
	ipp, err := NewIPCachePublisher(c, testkit.Logger(t), IPCacheOptions{Options: opts3, After: np.Published()})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := NewServicePublisher(c, testkit.Logger(t), opts3)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{np.Upsert(node), ipp.Upsert(ip), sp.Upsert(svc)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	np.Synced()
	ipp.Synced()
	sp.Synced()
	testkit.RunBackground(t, np.Run)
	testkit.RunBackground(t, ipp.Run)
	testkit.RunBackground(t, sp.Run)
	testkit.WaitClosed(ctx, t, np.Published(), "nodes")
	testkit.WaitClosed(ctx, t, ipp.Published(), "ip")
	testkit.WaitClosed(ctx, t, sp.Published(), "services")

	got := testkit.Content(ctx, t, raw, "cilium/state/")
	want := map[string]string{
		"cilium/state/nodes/v1/cluster3/test-node-1":              string(nodeJSON),
		"cilium/state/ip/v1/default/10.244.2.74":                  string(ipJSON),
		"cilium/state/services/v1/cluster3/ns-alpha/echo-service": string(svcJSON),
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("etcd content (-want +got):\n%s", d)
	}
	canaries := testkit.Content(ctx, t, raw, "cilium/synced/")
	var keys []string
	for k, v := range canaries {
		keys = append(keys, k)
		if _, err := schema.DecodeCanary(k, []byte(v), origin); err != nil {
			t.Errorf("canary: %v", err)
		}
	}
	wantCanaries := []string{
		"cilium/synced/cluster3/cilium/state/ip/v1",
		"cilium/synced/cluster3/cilium/state/nodes/v1",
		"cilium/synced/cluster3/cilium/state/services/v1",
	}
	if d := cmp.Diff(wantCanaries, keys, cmpSorted); d != "" {
		t.Errorf("canaries (-want +got):\n%s", d)
	}
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

func testNode(name string) *schema.Node {
	return &schema.Node{
		Name:    name,
		Cluster: "cluster3",
		IPAddresses: []schema.Address{
			{Type: schema.AddressInternalIP, IP: netip.MustParseAddr("172.18.0.2")},
		},
		IPv4AllocCIDR:   netip.MustParsePrefix("10.244.0.0/24"),
		ClusterID:       3,
		EncryptionKey:   2,
		WireguardPubKey: "VRksOB6ZNds4oXWIGfSVpvc0gBhcOWFmzvTDcyvULlI=",
		BootID:          "570d3fd1-93db-4862-ba99-6a3c2c10c38f",
	}
}

func testIP(addr string, id identity.NumericIdentity) *schema.IPIdentityPair {
	return &schema.IPIdentityPair{
		IP:            netip.MustParseAddr(addr),
		HostIP:        netip.MustParseAddr("172.18.0.2"),
		ID:            id,
		EncryptionKey: 2,
		K8sNamespace:  "default",
		K8sPodName:    "pod-" + addr,
	}
}

// TestRejectInvalid checks that a bad entry is refused with an error
// naming it, counted, and that it does not stop the others.
func TestRejectInvalid(t *testing.T) {
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := newClient(t, srv)
	raw := srv.Client(t)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	o := opts3
	o.Metrics = m
	np, _ := NewNodePublisher(c, testkit.Logger(t), o)
	ipp, _ := NewIPCachePublisher(c, testkit.Logger(t), IPCacheOptions{Options: o})
	sp, _ := NewServicePublisher(c, testkit.Logger(t), o)

	otherCluster := testNode("n-other")
	otherCluster.Cluster = "cluster4"
	otherID := testNode("n-id")
	otherID.ClusterID = 4
	badWG := testNode("n-wg")
	badWG.WireguardPubKey = "not base64!"
	svcOther := &schema.ClusterService{Cluster: "cluster3", Namespace: "ns", Name: "svc", ClusterID: 9, Shared: true, IncludeExternal: true}

	tests := []struct {
		name    string
		upsert  func() error
		wantErr string // substring naming the entry
	}{
		{"node of another cluster", func() error { return np.Upsert(otherCluster) }, "cilium/state/nodes/v1/cluster4/n-other"},
		{"node with another cluster ID", func() error { return np.Upsert(otherID) }, "cilium/state/nodes/v1/cluster3/n-id"},
		{"node with bad WireGuard key", func() error { return np.Upsert(badWG) }, "cilium/state/nodes/v1/cluster3/n-wg"},
		{"nil node", func() error { return np.Upsert(nil) }, "<nil>"},
		{"node name with slash", func() error { return np.Delete("a/b") }, `"a/b"`},
		{"ip with identity of cluster 4", func() error { return ipp.Upsert(testIP("10.0.0.9", 4<<16|7)) }, "cilium/state/ip/v1/default/10.0.0.9"},
		{"ip with node-local identity", func() error { return ipp.Upsert(testIP("10.0.0.8", 1<<24|1)) }, "cilium/state/ip/v1/default/10.0.0.8"},
		{"ip without identity", func() error { return ipp.Upsert(testIP("10.0.0.7", 0)) }, "cilium/state/ip/v1/default/10.0.0.7"},
		{"ip without address", func() error { return ipp.Upsert(&schema.IPIdentityPair{ID: 3<<16 | 1}) }, "<no IP>"},
		{"service with another cluster ID", func() error { return sp.Upsert(svcOther) }, "cilium/state/services/v1/cluster3/ns/svc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.upsert()
			if !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("error %v, want ErrInvalidEntry", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not name %q", err, tt.wantErr)
			}
		})
	}
	// Valid entries still go through, including a reserved identity
	// (health, 4) on an endpoint address.
	if err := np.Upsert(testNode("n1")); err != nil {
		t.Fatal(err)
	}
	if err := ipp.Upsert(testIP("10.0.0.1", 3<<16|1)); err != nil {
		t.Fatal(err)
	}
	if err := ipp.Upsert(testIP("10.0.0.2", identity.NumericIdentity(4))); err != nil {
		t.Fatal(err)
	}
	np.Synced()
	ipp.Synced()
	sp.Synced()
	testkit.RunBackground(t, np.Run)
	testkit.RunBackground(t, ipp.Run)
	testkit.RunBackground(t, sp.Run)
	testkit.WaitClosed(ctx, t, np.Published(), "nodes")
	testkit.WaitClosed(ctx, t, ipp.Published(), "ip")
	testkit.WaitClosed(ctx, t, sp.Published(), "services")
	var keys []string
	for k := range testkit.Content(ctx, t, raw, "cilium/state/") {
		keys = append(keys, k)
	}
	want := []string{
		"cilium/state/ip/v1/default/10.0.0.1",
		"cilium/state/ip/v1/default/10.0.0.2",
		"cilium/state/nodes/v1/cluster3/n1",
	}
	if d := cmp.Diff(want, keys, cmpSorted); d != "" {
		t.Errorf("published keys (-want +got):\n%s", d)
	}
	if got := testutil.ToFloat64(m.rejected.WithLabelValues("nodes")); got != 5 {
		t.Errorf("rejected nodes = %v, want 5", got)
	}
	if got := testutil.ToFloat64(m.rejected.WithLabelValues("ip")); got != 4 {
		t.Errorf("rejected ip = %v, want 4", got)
	}
	if got := testutil.ToFloat64(m.entries.WithLabelValues("ip")); got != 2 {
		t.Errorf("ip entries = %v, want 2", got)
	}
}

// TestLeaseLossRewrites revokes the publisher's lease from outside: the
// node entry vanishes and is written again under a new lease.
func TestLeaseLossRewrites(t *testing.T) {
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := newClientTTL(t, srv, 2*time.Second)
	raw := srv.Client(t)
	np, _ := NewNodePublisher(c, testkit.Logger(t), opts3)
	n := testNode("n1")
	if err := np.Upsert(n); err != nil {
		t.Fatal(err)
	}
	np.Synced()
	testkit.RunBackground(t, np.Run)
	testkit.WaitClosed(ctx, t, np.Published(), "nodes")

	key := n.Key()
	resp, err := raw.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v %v", key, resp, err)
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)
	if lease == 0 {
		t.Fatalf("%s is not leased", key)
	}
	rr, err := raw.Revoke(ctx, lease)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitPut(ctx, t, raw, key, rr.Header.Revision)
	resp, err = raw.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s after lease loss: %v %v", key, resp, err)
	}
	if got := clientv3.LeaseID(resp.Kvs[0].Lease); got == 0 || got == lease {
		t.Errorf("entry lease after loss = %x, want a new lease (old %x)", got, lease)
	}
	want, _ := n.Marshal()
	if string(resp.Kvs[0].Value) != string(want) {
		t.Errorf("re-written value %s, want %s", resp.Kvs[0].Value, want)
	}
}

// TestPruneOnlyAfterSynced leaves a stale entry of an earlier run in etcd:
// it survives until Synced, then goes.
func TestPruneOnlyAfterSynced(t *testing.T) {
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := newClient(t, srv)
	raw := srv.Client(t)
	stale := schema.IPKey(netip.MustParseAddr("10.0.0.99"))
	staleValue, _ := testIP("10.0.0.99", 3<<16|5).Marshal()
	if _, err := raw.Put(ctx, stale, string(staleValue)); err != nil {
		t.Fatal(err)
	}
	ipp, _ := NewIPCachePublisher(c, testkit.Logger(t), IPCacheOptions{Options: opts3})
	fresh := testIP("10.0.0.1", 3<<16|1)
	resp, err := raw.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := ipp.Upsert(fresh); err != nil {
		t.Fatal(err)
	}
	testkit.RunBackground(t, ipp.Run)
	testkit.WaitPut(ctx, t, raw, fresh.Key(), resp.Header.Revision)
	if got := testkit.Content(ctx, t, raw, stale); len(got) != 1 {
		t.Fatalf("stale entry pruned before Synced: %v", got)
	}
	if got := testkit.Content(ctx, t, raw, "cilium/synced/"); len(got) != 0 {
		t.Fatalf("canary written before Synced: %v", got)
	}
	ipp.Synced()
	testkit.WaitClosed(ctx, t, ipp.Published(), "ip")
	if got := testkit.Content(ctx, t, raw, stale); len(got) != 0 {
		t.Errorf("stale entry still there after Synced: %v", got)
	}
	if got := testkit.Content(ctx, t, raw, fresh.Key()); len(got) != 1 {
		t.Errorf("fresh entry missing: %v", got)
	}
}

// TestNodeBeforeIPCache starts the ipcache publisher first; etcd's history
// must still show the node written before any ipcache entry.
func TestNodeBeforeIPCache(t *testing.T) {
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := newClient(t, srv)
	raw := srv.Client(t)
	start, err := raw.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	np, _ := NewNodePublisher(c, testkit.Logger(t), opts3)
	ipp, _ := NewIPCachePublisher(c, testkit.Logger(t), IPCacheOptions{Options: opts3, After: np.Published()})
	for i := range 5 {
		if err := ipp.Upsert(testIP(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}).String(), 3<<16|1)); err != nil {
			t.Fatal(err)
		}
	}
	ipp.Synced()
	testkit.RunBackground(t, ipp.Run)
	n := testNode("n1")
	if err := np.Upsert(n); err != nil {
		t.Fatal(err)
	}
	np.Synced()
	testkit.RunBackground(t, np.Run)
	testkit.WaitClosed(ctx, t, ipp.Published(), "ip")

	// Replay the history of cilium/state/ since the start.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var order []string
	for wr := range raw.Watch(wctx, "cilium/state/", clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1)) {
		for _, ev := range wr.Events {
			order = append(order, string(ev.Kv.Key))
		}
		if len(order) >= 6 {
			break
		}
	}
	if len(order) < 6 || order[0] != n.Key() {
		t.Fatalf("write order %v: node %s not first", order, n.Key())
	}
}

// TestSharedPrefixOwners: two agents of one cluster publish their nodes and
// endpoints into the shared prefixes; a restarted agent prunes only its own
// stale node and ipcache keys, and the canaries outlive the agent that
// wrote them.
func TestSharedPrefixOwners(t *testing.T) {
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{})
	raw := srv.Client(t)
	hostA, hostB := netip.MustParseAddr("172.18.0.2"), netip.MustParseAddr("172.18.0.3")
	ipOf := func(addr string, host netip.Addr) *schema.IPIdentityPair {
		e := testIP(addr, 3<<16|1)
		e.HostIP = host
		return e
	}
	nodeOf := func(name string, host netip.Addr) *schema.Node {
		n := testNode(name)
		n.IPAddresses = []schema.Address{{Type: schema.AddressInternalIP, IP: host}}
		return n
	}
	type agent struct {
		np   *NodePublisher
		ipp  *IPCachePublisher
		stop func()
	}
	start := func(c *kvstore.Client, name string, host netip.Addr, ips ...string) agent {
		t.Helper()
		o := opts3
		o.Owns, o.PersistentCanary = OwnedByNode(o.Cluster, name), true
		np, err := NewNodePublisher(c, testkit.Logger(t), o)
		if err != nil {
			t.Fatal(err)
		}
		o.Owns = OwnedByHostIP(host)
		ipp, err := NewIPCachePublisher(c, testkit.Logger(t), IPCacheOptions{Options: o, After: np.Published()})
		if err != nil {
			t.Fatal(err)
		}
		if err := np.Upsert(nodeOf(name, host)); err != nil {
			t.Fatal(err)
		}
		for _, ip := range ips {
			if err := ipp.Upsert(ipOf(ip, host)); err != nil {
				t.Fatal(err)
			}
		}
		np.Synced()
		ipp.Synced()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{}, 2)
		go func() { np.Run(rctx); done <- struct{}{} }()
		go func() { ipp.Run(rctx); done <- struct{}{} }()
		testkit.WaitClosed(ctx, t, ipp.Published(), "ip of "+name)
		return agent{np: np, ipp: ipp, stop: func() { cancel(); <-done; <-done }}
	}

	// Agent a (node n1) publishes two pods and dies without revoking.
	ca, err := kvstore.New(ctx, testkit.Logger(t), kvstore.Config{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	a := start(ca, "n1", hostA, "10.0.0.1", "10.0.0.2")
	a.stop()
	ca.Etcd().Close()
	ca.Close()
	// Agent b (node n2) publishes one pod.
	cb := newClient(t, srv)
	b := start(cb, "n2", hostB, "10.0.1.1")
	defer b.stop()
	// Agent a comes back as n1 with one pod left.
	ca2 := newClient(t, srv)
	a2 := start(ca2, "n1", hostA, "10.0.0.2")
	defer a2.stop()

	got := testkit.Content(ctx, t, raw, "cilium/state/")
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{
		schema.IPKey(netip.MustParseAddr("10.0.0.2")),
		schema.IPKey(netip.MustParseAddr("10.0.1.1")),
		schema.NodeKey("cluster3", "n1"),
		schema.NodeKey("cluster3", "n2"),
	}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Fatalf("keys after n1's restart (-want +got):\n%s", diff)
	}
	for _, prefix := range []string{schema.NodesPrefix, schema.IPPrefix} {
		resp, err := raw.Get(ctx, schema.CanaryKey("cluster3", prefix))
		if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != 0 {
			t.Fatalf("canary of %s: %v, %v; want one key without lease", prefix, resp, err)
		}
	}
}

func TestOwnedBy(t *testing.T) {
	ownIP := OwnedByHostIP(netip.MustParseAddr("172.18.0.2"))
	ownNode := OwnedByNode("cluster3", "n1")
	mine, _ := testIP("10.0.0.1", 3<<16|1).Marshal()
	other := testIP("10.0.0.1", 3<<16|1)
	other.HostIP = netip.MustParseAddr("172.18.0.3")
	theirs, _ := other.Marshal()
	tests := []struct {
		name  string
		owns  func(string, []byte) bool
		key   string
		value []byte
		want  bool
	}{
		{name: "own host IP", owns: ownIP, value: mine, want: true},
		{name: "other host IP", owns: ownIP, value: theirs, want: false},
		{name: "garbage value", owns: ownIP, value: []byte("{"), want: false},
		{name: "no host IP", owns: ownIP, value: []byte(`{"IP":"10.0.0.1"}`), want: false},
		{name: "own node", owns: ownNode, key: schema.NodeKey("cluster3", "n1"), want: true},
		{name: "other node", owns: ownNode, key: schema.NodeKey("cluster3", "n2"), want: false},
		{name: "same name other cluster", owns: ownNode, key: schema.NodeKey("cluster4", "n1"), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.owns(tt.key, tt.value); got != tt.want {
				t.Errorf("owns(%q, %s) = %v, want %v", tt.key, tt.value, got, tt.want)
			}
		})
	}
}
