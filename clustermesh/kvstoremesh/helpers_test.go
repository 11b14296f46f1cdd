package kvstoremesh

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/remoteconfig"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
	"github.com/strait-net/strait/internal/etcdtest"
)

// TestMain fails the package when goroutines of this package (or the
// kvstore clients it starts) outlive the tests.
func TestMain(m *testing.M) {
	os.Exit(testkit.RunWithLeakCheck(m, "strait/clustermesh/kvstoremesh.", "strait/clustermesh/kvstore."))
}

// waitTimeout is the generous bound of every eventually.
const waitTimeout = 60 * time.Second

// eventually polls cond until it returns "" (success) or waitTimeout
// passes; then the test fails with cond's last message.
func eventually(tb testing.TB, what string, cond func() string) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	msg := ""
	for time.Now().Before(deadline) {
		if msg = cond(); msg == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("%s: still not true after %v: %s", what, waitTimeout, msg)
}

// cluster is a simulated remote cluster: its etcd and a raw client.
type cluster struct {
	name string
	id   identity.ClusterID
	srv  *etcdtest.Server
	cli  *clientv3.Client
}

func startCluster(t testing.TB, name string, id identity.ClusterID, syncedCanaries bool) *cluster {
	t.Helper()
	srv := etcdtest.Start(t, etcdtest.Options{Name: name})
	c := &cluster{name: name, id: id, srv: srv, cli: srv.Client(t)}
	c.writeConfig(t, schema.ClusterConfig{Cluster: name, ID: id, Capabilities: schema.Capabilities{
		SyncedCanaries: syncedCanaries, MaxConnectedClusters: identity.ClusterMax255,
	}})
	return c
}

func (c *cluster) writeConfig(t testing.TB, cc schema.ClusterConfig) {
	t.Helper()
	v, err := cc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c.put(t, schema.ClusterConfigKey(c.name), string(v))
}

func (c *cluster) put(t testing.TB, key, value string) {
	t.Helper()
	if _, err := c.cli.Put(testkit.Context(t, 3*time.Minute), key, value); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (c *cluster) del(t testing.TB, key string) {
	t.Helper()
	if _, err := c.cli.Delete(testkit.Context(t, 3*time.Minute), key); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

// writeCanary writes the remote's canary of kind k.
func (c *cluster) writeCanary(t testing.TB, k Kind) {
	c.put(t, schema.CanaryKey(c.name, k.StatePrefix()), string(schema.CanaryValue(time.Now())))
}

func (c *cluster) writeAllCanaries(t testing.TB) {
	for _, k := range AllKinds() {
		c.writeCanary(t, k)
	}
}

func (c *cluster) deleteCanary(t testing.TB, k Kind) {
	c.del(t, schema.CanaryKey(c.name, k.StatePrefix()))
}

// remoteConfig is the config file a watcher would report for c.
func (c *cluster) remoteConfig() remoteconfig.RemoteCluster {
	return remoteconfig.RemoteCluster{
		Name:   c.name,
		Path:   "/config/" + c.name,
		Config: kvstore.Config{Endpoints: c.srv.Endpoints(), DialTimeout: time.Second, MaxBackoff: 500 * time.Millisecond},
		Hash:   sha256.Sum256([]byte(c.srv.Endpoint())),
	}
}

// Entry builders: each returns the remote state key and the value.

func (c *cluster) node(t testing.TB, name string, ip string) (string, string) {
	t.Helper()
	n := schema.Node{
		Name: name, Cluster: c.name, ClusterID: c.id,
		IPAddresses: []schema.Address{{Type: schema.AddressInternalIP, IP: netip.MustParseAddr(ip)}},
		Source:      "custom-resource",
	}
	return marshal(t, n.Key(), &n)
}

func (c *cluster) ip(t testing.TB, ip string, id identity.NumericIdentity) (string, string) {
	t.Helper()
	p := schema.IPIdentityPair{IP: netip.MustParseAddr(ip), HostIP: netip.MustParseAddr("192.0.2.1"), ID: id}
	return marshal(t, p.Key(), &p)
}

func (c *cluster) service(t testing.TB, ns, name string) (string, string) {
	t.Helper()
	s := schema.ClusterService{
		Cluster: c.name, Namespace: ns, Name: name, ClusterID: c.id, IncludeExternal: true, Shared: true,
		Frontends: map[netip.Addr]schema.PortConfiguration{netip.MustParseAddr("10.96.0.10"): {"http": {Protocol: schema.ProtocolTCP, Port: 80}}},
		Backends:  map[netip.Addr]schema.PortConfiguration{netip.MustParseAddr("10.1.0.5"): {"http": {Protocol: schema.ProtocolTCP, Port: 8080}}},
	}
	return marshal(t, s.Key(), &s)
}

func (c *cluster) export(t testing.TB, ns, name string) (string, string) {
	t.Helper()
	e := schema.ServiceExport{
		Cluster: c.name, Namespace: ns, Name: name,
		ExportCreationTimestamp: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Ports:                   []schema.ServicePort{{Name: "http", Protocol: "TCP", Port: 80}},
		Type:                    schema.ServiceExportClusterSetIP,
		SessionAffinity:         schema.SessionAffinityNone,
	}
	return marshal(t, e.Key(), &e)
}

// identityID returns the n-th identity of c's range.
func (c *cluster) identityID(n uint32) identity.NumericIdentity {
	return identity.NumericIdentity(uint32(c.id)<<16 | n)
}

func (c *cluster) identity(id identity.NumericIdentity, app string) (string, string) {
	key := identity.Keys{Prefix: schema.IdentitiesPrefix}.IDKey(id)
	return key, "k8s:app=" + app + ";k8s:" + identity.ClusterLabel + "=" + c.name + ";"
}

func marshal(t testing.TB, key string, v interface{ Marshal() ([]byte, error) }) (string, string) {
	t.Helper()
	b, err := v.Marshal()
	if err != nil {
		t.Fatalf("marshal %s: %v", key, err)
	}
	return key, string(b)
}

// populate writes a full data set into c (without canaries) and returns
// the local cache content it should produce.
func (c *cluster) populate(t testing.TB) map[string]string {
	t.Helper()
	want := map[string]string{}
	add := func(k, v string) {
		c.put(t, k, v)
		ck, err := schema.StateToCacheKey(c.name, k)
		if err != nil {
			t.Fatalf("cache key of %s: %v", k, err)
		}
		want[ck] = v
	}
	add(c.node(t, "n1", "172.18.0.2"))
	add(c.node(t, "n2", "172.18.0.3"))
	add(c.ip(t, "10.1.0.5", c.identityID(100)))
	add(c.ip(t, "10.1.0.6", identity.NumericIdentity(4))) // reserved: health
	add(c.service(t, "default", "web"))
	add(c.export(t, "default", "web"))
	add(c.identity(c.identityID(100), "web"))
	add(c.identity(c.identityID(101), "db"))
	return want
}

// local is the local cluster: its etcd, a raw client and the kvstore
// client the Mesh writes through.
type local struct {
	srv *etcdtest.Server
	cli *clientv3.Client
}

func startLocal(t testing.TB) *local {
	srv := etcdtest.Start(t, etcdtest.Options{Name: "local"})
	return &local{srv: srv, cli: srv.Client(t)}
}

// client returns a new kvstore client of the local etcd, closed at cleanup.
func (l *local) client(t testing.TB) *kvstore.Client {
	t.Helper()
	c, err := kvstore.New(testkit.Context(t, 3*time.Minute), testkit.Logger(t), kvstore.Config{Endpoints: l.srv.Endpoints(), MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dump returns every local key under prefix.
func (l *local) dump(t testing.TB, prefix string) map[string]string {
	t.Helper()
	resp, err := l.cli.Get(testkit.Context(t, 3*time.Minute), prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("get %s: %v", prefix, err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

// cache returns the local cached data of cluster.
func (l *local) cache(t testing.TB, cluster string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range AllKinds() {
		for key, v := range l.dump(t, k.storePrefix(cluster)+"/") {
			out[key] = v
		}
	}
	return out
}

func (l *local) has(t testing.TB, key string) bool {
	t.Helper()
	_, ok := l.dump(t, key)[key]
	return ok
}

const (
	localName = "local"
	localID   = identity.ClusterID(1)
)

// testMesh is a running Mesh.
type testMesh struct {
	*Mesh
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// startMesh runs a Mesh writing through lc; it is stopped at cleanup.
func startMesh(t testing.TB, lc *kvstore.Client, tweak func(*Options)) *testMesh {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Local: lc, ClusterName: localName, ClusterID: localID, ClusterMax: identity.ClusterMax255,
		Metrics:  metrics,
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		ConnectTimeout: 2 * time.Second, ProbeInterval: 100 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&opts)
	}
	m, err := New(testkit.Logger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testkit.Context(t, 3*time.Minute))
	tm := &testMesh{Mesh: m, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { tm.done <- m.Run(ctx) }()
	t.Cleanup(tm.stop)
	return tm
}

// stop stops the Mesh and waits for Run to return; idempotent.
func (tm *testMesh) stop() {
	tm.cancel()
	if err, ok := <-tm.done; ok {
		if err != nil {
			panic(fmt.Sprintf("Run: %v", err))
		}
		close(tm.done)
	}
}

func (tm *testMesh) add(c *cluster) { tm.Add(context.Background(), c.remoteConfig()) }

// waitReady waits until cluster is Ready.
func (tm *testMesh) waitReady(t testing.TB, name string) {
	t.Helper()
	eventually(t, name+" ready", func() string {
		st, ok := tm.Status(name)
		if !ok {
			return "unknown cluster"
		}
		if !st.Ready {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
}

// waitKind waits until kind k of cluster is in state s.
func (tm *testMesh) waitKind(t testing.TB, name string, k Kind, s PrefixState) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s %s %s", name, k, s), func() string {
		st, ok := tm.Status(name)
		if !ok {
			return "unknown cluster"
		}
		if got := st.Kinds[k].State; got != s {
			return fmt.Sprintf("state %s; status %+v", got, st)
		}
		return ""
	})
}

func (tm *testMesh) failures(name string, r Reason) float64 {
	return testutil.ToFloat64(tm.metrics.Failures.WithLabelValues(name, string(r)))
}

// localCanaries returns which local canaries of cluster exist.
func (l *local) localCanaries(t testing.TB, cluster string) map[string]string {
	t.Helper()
	return l.dump(t, schema.SyncedPrefix+cluster+"/")
}

// waitCache waits until the local cache of c equals want.
func (l *local) waitCache(t testing.TB, cluster string, want map[string]string) {
	t.Helper()
	eventually(t, "cache of "+cluster, func() string {
		got := l.cache(t, cluster)
		if d := diffMaps(want, got); d != "" {
			return d
		}
		return ""
	})
}

func diffMaps(want, got map[string]string) string {
	return cmp.Diff(want, got)
}
