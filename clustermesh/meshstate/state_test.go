package meshstate

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
	"github.com/strait-net/strait/internal/etcdtest"
)

const local = "c1"

var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b identity.Labels) bool { return a.Equal(b) }),
}

// mesh is a local etcd as KVStoreMesh fills it, and a State reading it.
type mesh struct {
	t       *testing.T
	srv     *etcdtest.Server
	raw     *clientv3.Client
	state   *State
	metrics *Metrics
	nodes   *recorder[string, *schema.Node]
	ips     *recorder[netip.Prefix, IPEntry]
	ids     *recorder[identity.NumericIdentity, identity.Labels]
	svcs    *recorder[ServiceName, *schema.ClusterService]
	stop    func()
}

func newMesh(t *testing.T) *mesh {
	srv := etcdtest.Start(t, etcdtest.Options{})
	return &mesh{t: t, srv: srv, raw: srv.Client(t)}
}

// start creates the State, subscribes the recorders and runs it.
func (m *mesh) start(ttl time.Duration) {
	t := m.t
	var err error
	m.metrics, err = NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m.state, err = New(newClient(t, m.srv), testkit.Logger(t), Options{
		Cluster: local, ClusterID: 1, Max: identity.ClusterMax255, CacheTTL: ttl, Metrics: m.metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.nodes, m.ips = newRecorder[string, *schema.Node](), newRecorder[netip.Prefix, IPEntry]()
	m.ids, m.svcs = newRecorder[identity.NumericIdentity, identity.Labels](), newRecorder[ServiceName, *schema.ClusterService]()
	m.state.SubscribeNodes(m.nodes.fn)
	m.state.SubscribeIPCache(m.ips.fn)
	m.state.SubscribeIdentities(m.ids.fn)
	m.state.SubscribeServices(m.svcs.fn)
	testkit.RunBackground(t, m.state.Run)
}

func (m *mesh) put(key string, value []byte) {
	m.t.Helper()
	if _, err := m.raw.Put(testkit.Context(m.t, 2*time.Minute), key, string(value)); err != nil {
		m.t.Fatalf("put %s: %v", key, err)
	}
}

func (m *mesh) del(key string) {
	m.t.Helper()
	if _, err := m.raw.Delete(testkit.Context(m.t, 2*time.Minute), key); err != nil {
		m.t.Fatalf("delete %s: %v", key, err)
	}
}

func (m *mesh) config(cluster string, id identity.ClusterID, cached bool) {
	m.t.Helper()
	cfg := &schema.ClusterConfig{Cluster: cluster, ID: id, Capabilities: schema.Capabilities{
		SyncedCanaries: true, Cached: cached, MaxConnectedClusters: identity.ClusterMax255,
	}}
	b, err := cfg.Marshal()
	if err != nil {
		m.t.Fatal(err)
	}
	m.put(cfg.Key(), b)
}

func (m *mesh) canary(cluster string, k Kind) {
	m.put(CanaryKey(cluster, k), schema.CanaryValue(time.Now()))
}

func toCacheKey(t *testing.T, cluster, stateKey string) string {
	t.Helper()
	k, err := schema.StateToCacheKey(cluster, stateKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func remoteNode(cluster string, id identity.ClusterID, name string) *schema.Node {
	return &schema.Node{
		Name: name, Cluster: cluster, ClusterID: id,
		IPAddresses:     []schema.Address{{Type: schema.AddressInternalIP, IP: netip.MustParseAddr("172.18.0.2")}},
		IPv4AllocCIDR:   netip.MustParsePrefix("10.2.0.0/24"),
		WireguardPubKey: "VRksOB6ZNds4oXWIGfSVpvc0gBhcOWFmzvTDcyvULlI=",
	}
}

func (m *mesh) node(cluster string, n *schema.Node) {
	b, err := n.Marshal()
	if err != nil {
		m.t.Fatal(err)
	}
	m.put(toCacheKey(m.t, cluster, n.Key()), b)
}

func ipPair(addr string, id identity.NumericIdentity) *schema.IPIdentityPair {
	return &schema.IPIdentityPair{IP: netip.MustParseAddr(addr), HostIP: netip.MustParseAddr("172.18.0.2"), ID: id, EncryptionKey: 1, K8sNamespace: "ns", K8sPodName: "pod-" + addr}
}

func (m *mesh) ip(cluster string, p *schema.IPIdentityPair) {
	b, err := p.Marshal()
	if err != nil {
		m.t.Fatal(err)
	}
	m.put(toCacheKey(m.t, cluster, p.Key()), b)
}

func ipKey(cluster, addr string) string {
	return schema.CacheIPPrefix + "/" + cluster + "/" + addr
}

func idKey(cluster string, id identity.NumericIdentity) string {
	return fmt.Sprintf("%s/%s/id/%d", schema.CacheIdentitiesPrefix, cluster, id)
}

func (m *mesh) identity(cluster string, id identity.NumericIdentity, labels string) {
	m.put(idKey(cluster, id), []byte(labels))
}

func (m *mesh) service(cluster string, s *schema.ClusterService) {
	b, err := s.Marshal()
	if err != nil {
		m.t.Fatal(err)
	}
	m.put(toCacheKey(m.t, cluster, s.Key()), b)
}

func remoteService(cluster string, id identity.ClusterID) *schema.ClusterService {
	return &schema.ClusterService{
		Cluster: cluster, Namespace: "ns", Name: "echo", ClusterID: id,
		Frontends:       map[netip.Addr]schema.PortConfiguration{netip.MustParseAddr("10.96.0.10"): {"http": {Protocol: "TCP", Port: 80}}},
		Backends:        map[netip.Addr]schema.PortConfiguration{netip.MustParseAddr("10.2.0.5"): {"http": {Protocol: "TCP", Port: 8080}}},
		IncludeExternal: true, Shared: true,
	}
}

func host(addr string) netip.Prefix {
	a := netip.MustParseAddr(addr)
	return netip.PrefixFrom(a, a.BitLen())
}

func labelsOf(cluster, app string) string {
	return "k8s:app=" + app + ";k8s:io.cilium.k8s.policy.cluster=" + cluster + ";"
}

func ipEntry(addr string, id identity.NumericIdentity) IPEntry {
	return IPEntry{HostIP: netip.MustParseAddr("172.18.0.2"), ID: id, EncryptionKey: 1, Namespace: "ns", PodName: "pod-" + addr}
}

// TestJoin: a remote's config and entries exist; nothing arrives before
// a kind's canary; after all canaries the cluster is synced and every
// subscriber saw the entries, then OpSynced.
func TestJoin(t *testing.T) {
	ctx := testkit.Context(t, 2*time.Minute)
	m := newMesh(t)
	const c2 = "c2"
	id1, id2 := identity.NumericIdentity(2<<16|1), identity.NumericIdentity(2<<16|2)
	m.config(local, 1, false) // our own: skipped
	m.config(c2, 2, true)
	m.node(c2, remoteNode(c2, 2, "n1"))
	m.ip(c2, ipPair("10.2.0.5", id1))
	m.ip(c2, ipPair("10.2.0.6", id2))
	m.identity(c2, id1, labelsOf(c2, "a"))
	m.service(c2, remoteService(c2, 2))
	m.start(0)

	m.canary(c2, KindNodes)
	if err := m.state.ClusterSynced(ctx, c2, KindNodes); err != nil {
		t.Fatal(err)
	}
	// The ipcache prefix is full but its canary is missing: nothing.
	if evs := m.ips.all(); len(evs) != 0 {
		t.Fatalf("ipcache events before its canary: %v", evs)
	}
	if evs := m.ids.all(); len(evs) != 0 {
		t.Fatalf("identity events before its canary: %v", evs)
	}
	m.canary(c2, KindIPCache)
	m.canary(c2, KindIdentities)
	m.canary(c2, KindServices)
	if err := m.state.Synced(ctx); err != nil {
		t.Fatal(err)
	}

	wantIPs := []IPCacheEvent{
		{Op: OpUpsert, Cluster: c2, Key: host("10.2.0.5"), Value: ipEntry("10.2.0.5", id1)},
		{Op: OpUpsert, Cluster: c2, Key: host("10.2.0.6"), Value: ipEntry("10.2.0.6", id2)},
		{Op: OpSynced, Cluster: c2},
	}
	if d := cmp.Diff(wantIPs, m.ips.all(), cmpOpts); d != "" {
		t.Errorf("ipcache events (-want +got):\n%s", d)
	}
	wantNodes := []NodeEvent{
		{Op: OpUpsert, Cluster: c2, Key: "n1", Value: remoteNode(c2, 2, "n1")},
		{Op: OpSynced, Cluster: c2},
	}
	if d := cmp.Diff(wantNodes, m.nodes.all(), cmpOpts); d != "" {
		t.Errorf("node events (-want +got):\n%s", d)
	}
	wantIDs := []IdentityEvent{
		{Op: OpUpsert, Cluster: c2, Key: id1, Value: identity.MustLabels("k8s:app=a", "k8s:io.cilium.k8s.policy.cluster=c2")},
		{Op: OpSynced, Cluster: c2},
	}
	if d := cmp.Diff(wantIDs, m.ids.all(), cmpOpts); d != "" {
		t.Errorf("identity events (-want +got):\n%s", d)
	}
	wantSvcs := []ServiceEvent{
		{Op: OpUpsert, Cluster: c2, Key: ServiceName{"ns", "echo"}, Value: remoteService(c2, 2)},
		{Op: OpSynced, Cluster: c2},
	}
	if d := cmp.Diff(wantSvcs, m.svcs.all(), cmpOpts); d != "" {
		t.Errorf("service events (-want +got):\n%s", d)
	}

	// Live changes arrive in etcd's order.
	m.ip(c2, ipPair("10.2.0.7", id1))
	m.del(ipKey(c2, "10.2.0.5"))
	m.ip(c2, ipPair("10.2.0.5", id2))
	evs := m.ips.waitFor(ctx, t, "live changes", func(evs []IPCacheEvent) bool { return len(evs) >= 6 })
	wantLive := []IPCacheEvent{
		{Op: OpUpsert, Cluster: c2, Key: host("10.2.0.7"), Value: ipEntry("10.2.0.7", id1)},
		{Op: OpDelete, Cluster: c2, Key: host("10.2.0.5"), Value: ipEntry("10.2.0.5", id1)},
		{Op: OpUpsert, Cluster: c2, Key: host("10.2.0.5"), Value: ipEntry("10.2.0.5", id2)},
	}
	if d := cmp.Diff(wantLive, evs[3:], cmpOpts); d != "" {
		t.Errorf("live ipcache events (-want +got):\n%s", d)
	}
	if cl, e, ok := m.state.LookupIP(host("10.2.0.5")); !ok || cl != c2 || e.ID != id2 {
		t.Errorf("LookupIP = %s %+v %v", cl, e, ok)
	}
	st := m.state.Status()
	wantStatus := []ClusterStatus{{Name: c2, ID: 2, Connected: true, Ready: true, Entries: [numKinds]int{1, 3, 1, 1}}}
	if d := cmp.Diff(wantStatus, st, cmpOpts); d != "" {
		t.Errorf("Status (-want +got):\n%s", d)
	}
	if got := testutil.ToFloat64(m.metrics.ready); got != 1 {
		t.Errorf("ready clusters = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.metrics.entries.WithLabelValues(c2, "ip")); got != 3 {
		t.Errorf("ip entries gauge = %v, want 3", got)
	}

	// A late subscriber gets the current state replayed.
	late := newRecorder[string, *schema.Node]()
	cancel := m.state.SubscribeNodes(late.fn)
	defer cancel()
	if d := cmp.Diff(wantNodes, late.all(), cmpOpts); d != "" {
		t.Errorf("replay (-want +got):\n%s", d)
	}
}

// TestInvalidEntries: entries claiming another cluster, identities out
// of the remote's range and bad labels are skipped and counted; the
// valid ones are kept.
func TestInvalidEntries(t *testing.T) {
	ctx := testkit.Context(t, 2*time.Minute)
	m := newMesh(t)
	const c2 = "c2"
	good := identity.NumericIdentity(2<<16 | 1)
	of3 := identity.NumericIdentity(3<<16 | 1)
	m.config(c2, 2, true)
	m.config("c9", 600, true) // ID beyond our max: config rejected
	m.node(c2, remoteNode(c2, 2, "good"))
	// A node claiming cluster c3 under c2's prefix.
	bad := remoteNode("c3", 3, "evil")
	b, _ := bad.Marshal()
	m.put(schema.CacheNodesPrefix+"/c2/evil", b)
	// A node of c2 with c3's ID.
	m.node(c2, remoteNode(c2, 3, "wrong-id"))
	m.ip(c2, ipPair("10.2.0.5", good))
	m.ip(c2, ipPair("10.2.0.6", of3))                         // identity of another cluster
	m.ip(c2, ipPair("10.2.0.8", identity.NumericIdentity(4))) // reserved (health): fine
	m.put(ipKey(c2, "10.2.0.7"), []byte(`{"IP":"10.9.9.9","ID":131073}`))
	m.identity(c2, good, labelsOf(c2, "a"))
	m.identity(c2, of3, labelsOf(c2, "b"))                                // out of range
	m.identity(c2, 2<<16|2, labelsOf("c3", "b"))                          // cluster label of c3
	m.identity(c2, 2<<16|3, "no-trailing-semicolon")                      // bad labels
	m.put(schema.CacheIdentitiesPrefix+"/c2/id/0042", []byte("k8s:a=b;")) // bad key
	svc := remoteService(c2, 7)
	m.service(c2, svc)
	m.start(0)
	for _, k := range kinds {
		m.canary(c2, k)
	}
	if err := m.state.ClusterSynced(ctx, c2); err != nil {
		t.Fatal(err)
	}
	st := m.state.Status()
	want := []ClusterStatus{{Name: c2, ID: 2, Connected: true, Ready: true, Entries: [numKinds]int{1, 2, 1, 0}}}
	if d := cmp.Diff(want, st, cmpOpts); d != "" {
		t.Errorf("Status (-want +got):\n%s", d)
	}
	inv := func(kind, reason string) float64 {
		return testutil.ToFloat64(m.metrics.invalid.WithLabelValues(c2, kind, reason))
	}
	checks := []struct {
		kind, reason string
		want         float64
	}{
		{"nodes", reasonClusterMismatch, 2},
		{"ip", reasonOutOfRange, 1},
		{"ip", reasonKeyMismatch, 1},
		{"identities", reasonOutOfRange, 1},
		{"identities", reasonClusterMismatch, 1},
		{"identities", reasonInvalidLabels, 1},
		{"identities", reasonInvalidKey, 1},
		{"services", reasonClusterMismatch, 1},
	}
	for _, c := range checks {
		if got := inv(c.kind, c.reason); got != c.want {
			t.Errorf("invalid{%s,%s} = %v, want %v", c.kind, c.reason, got, c.want)
		}
	}
	if got := testutil.ToFloat64(m.metrics.invalid.WithLabelValues("c9", "cluster-config", reasonOutOfRange)) +
		testutil.ToFloat64(m.metrics.invalid.WithLabelValues("c9", "cluster-config", reasonInvalidValue)); got != 1 {
		t.Errorf("invalid c9 config counted %v times, want 1", got)
	}

	// A valid entry overwritten with an invalid value is withdrawn.
	m.ip(c2, ipPair("10.2.0.5", of3))
	m.ips.waitFor(ctx, t, "withdrawal", func(evs []IPCacheEvent) bool {
		last := evs[len(evs)-1]
		return last.Op == OpDelete && last.Key == host("10.2.0.5")
	})
}

// TestLeaveAndRejoin: a deleted config keeps the state (default TTL and a
// long one); a re-join re-lists and deletes only what is really gone,
// after the list; a short TTL revokes the state.
func TestLeaveAndRejoin(t *testing.T) {
	for _, ttl := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("ttl=%v", ttl), func(t *testing.T) {
			ctx := testkit.Context(t, 2*time.Minute)
			m := newMesh(t)
			const c2 = "c2"
			id := identity.NumericIdentity(2<<16 | 1)
			m.config(c2, 2, true)
			m.ip(c2, ipPair("10.2.0.5", id))
			m.ip(c2, ipPair("10.2.0.6", id))
			for _, k := range kinds {
				m.canary(c2, k)
			}
			m.start(ttl)
			if err := m.state.Synced(ctx); err != nil {
				t.Fatal(err)
			}
			m.del(schema.ClusterConfigKey(c2))
			waitStatus(ctx, t, m.state, func(st []ClusterStatus) bool { return len(st) == 1 && !st[0].Connected })
			// KVStoreMesh deletes its cache after a grace period; we no
			// longer watch, so nothing changes.
			m.del(ipKey(c2, "10.2.0.5"))
			m.ip(c2, ipPair("10.2.0.7", id))
			if _, _, ok := m.state.LookupIP(host("10.2.0.5")); !ok {
				t.Fatal("state dropped on disconnect")
			}
			before := len(m.ips.all())
			m.config(c2, 2, true)
			if err := m.state.ClusterSynced(ctx, c2); err != nil {
				t.Fatal(err)
			}
			want := []IPCacheEvent{
				{Op: OpUpsert, Cluster: c2, Key: host("10.2.0.7"), Value: ipEntry("10.2.0.7", id)},
				{Op: OpDelete, Cluster: c2, Key: host("10.2.0.5"), Value: ipEntry("10.2.0.5", id)},
				{Op: OpSynced, Cluster: c2},
			}
			got := m.ips.all()[before:]
			// The delete comes from the sweep after the list: after
			// every upsert of it, before OpSynced.
			if d := cmp.Diff(want, got, cmpOpts); d != "" {
				t.Errorf("re-join events (-want +got):\n%s", d)
			}
		})
	}
	t.Run("ttl expires", func(t *testing.T) {
		ctx := testkit.Context(t, 2*time.Minute)
		m := newMesh(t)
		const c2 = "c2"
		id := identity.NumericIdentity(2<<16 | 1)
		m.config(c2, 2, true)
		m.ip(c2, ipPair("10.2.0.5", id))
		m.node(c2, remoteNode(c2, 2, "n1"))
		for _, k := range kinds {
			m.canary(c2, k)
		}
		const ttl = 300 * time.Millisecond
		m.start(ttl)
		if err := m.state.Synced(ctx); err != nil {
			t.Fatal(err)
		}
		// Re-joining within the TTL cancels the revocation: after the
		// TTL has passed since the re-join, the state is still there.
		m.del(schema.ClusterConfigKey(c2))
		waitStatus(ctx, t, m.state, func(st []ClusterStatus) bool { return len(st) == 1 && !st[0].Connected })
		m.config(c2, 2, true)
		if err := m.state.ClusterSynced(ctx, c2); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * ttl)
		if _, _, ok := m.state.LookupIP(host("10.2.0.5")); !ok {
			t.Fatal("state revoked although the cluster re-joined")
		}
		// Leaving for good: revoked after the TTL, with deletes.
		m.del(schema.ClusterConfigKey(c2))
		m.ips.waitFor(ctx, t, "revocation", func(evs []IPCacheEvent) bool {
			return evs[len(evs)-1].Op == OpDelete
		})
		m.nodes.waitFor(ctx, t, "node revocation", func(evs []NodeEvent) bool {
			return evs[len(evs)-1].Op == OpDelete
		})
		waitStatus(ctx, t, m.state, func(st []ClusterStatus) bool { return len(st) == 0 })
	})
}

func waitStatus(ctx context.Context, t *testing.T, s *State, cond func([]ClusterStatus) bool) {
	t.Helper()
	for !cond(s.Status()) {
		select {
		case <-ctx.Done():
			t.Fatalf("status %+v: %v", s.Status(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestWatchRestart: etcd stops and restarts under a synced state; the
// watches resume without deleting anything, and later changes arrive.
func TestWatchRestart(t *testing.T) {
	ctx := testkit.Context(t, 2*time.Minute)
	m := newMesh(t)
	const c2 = "c2"
	id := identity.NumericIdentity(2<<16 | 1)
	m.config(c2, 2, true)
	for i := range 20 {
		m.ip(c2, ipPair(fmt.Sprintf("10.2.0.%d", i+1), id))
	}
	for _, k := range kinds {
		m.canary(c2, k)
	}
	m.start(0)
	if err := m.state.Synced(ctx); err != nil {
		t.Fatal(err)
	}
	m.srv.Stop()
	m.srv.Restart()
	m.ip(c2, ipPair("10.2.0.100", id))
	m.del(ipKey(c2, "10.2.0.1"))
	evs := m.ips.waitFor(ctx, t, "changes after restart", func(evs []IPCacheEvent) bool {
		last := evs[len(evs)-1]
		return last.Op == OpDelete && last.Key == host("10.2.0.1")
	})
	var deletes []netip.Prefix
	for _, ev := range evs {
		if ev.Op == OpDelete {
			deletes = append(deletes, ev.Key)
		}
	}
	if d := cmp.Diff([]netip.Prefix{host("10.2.0.1")}, deletes, cmpOpts); d != "" {
		t.Errorf("deletes (-want +got):\n%s", d)
	}
	if n := m.state.Status()[0].Entries[KindIPCache]; n != 20 {
		t.Errorf("%d ipcache entries, want 20", n)
	}
}
