package agent

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/agent/route"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/meshstate"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/encryption/ipsec"
	"github.com/strait-net/strait/encryption/wireguard"
	"github.com/strait-net/strait/encryption/wireguard/wgfake"
	"github.com/strait-net/strait/identity"
	"github.com/strait-net/strait/internal/etcdtest"
	"github.com/strait-net/strait/internal/testkit"
)

const dev = "strait-wg0"

func testKey(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// harness is a local etcd (as the cluster's strait-apiserver would fill
// it), a fake WireGuard device and an in-memory route table, shared by
// successive agents of node c1/n1.
type harness struct {
	t      *testing.T
	srv    *etcdtest.Server
	raw    *clientv3.Client
	wg     *wgfake.Fake
	routes *route.Twin
	priv   wgtypes.Key
	state  string
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, srv: etcdtest.Start(t, etcdtest.Options{}), wg: wgfake.New(), routes: route.NewTwin(), priv: testKey(t), state: t.TempDir()}
	h.raw = h.srv.Client(t)
	port := 51871
	h.wg.AddDevice(wgtypes.Device{Name: dev, Type: wgtypes.Userspace, PrivateKey: h.priv, PublicKey: h.priv.PublicKey(), ListenPort: port})
	return h
}

// start runs a new WireGuard agent until the returned stop is called.
func (h *harness) start() (*Agent, func()) {
	return h.startWith(func(c *Config, d *Deps) {})
}

// startWith runs a new agent whose config and deps mod may change.
func (h *harness) startWith(mod func(*Config, *Deps)) (*Agent, func()) {
	t := h.t
	c, err := kvstore.New(testkit.Context(t, 2*time.Minute), testkit.Logger(t), kvstore.Config{Endpoints: h.srv.Endpoints(), MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Cluster: "c1", ClusterID: 1, Max: identity.ClusterMax255, NodeName: "n1",
		NodeIP: netip.MustParseAddr("198.18.1.11"), PodCIDR: netip.MustParsePrefix("10.1.1.0/24"),
		StateDir: h.state, BootID: "570d3fd1-93db-4862-ba99-6a3c2c10c38f", Encryption: EncryptionWireGuard,
	}
	deps := Deps{
		KV:        c,
		WireGuard: &WireGuard{Client: h.wg, Device: dev, Type: "userspace", Index: 7, MTU: 1420, PublicKey: h.priv.PublicKey(), Port: 51871},
		Routes:    h.routes,
	}
	mod(&cfg, &deps)
	a, err := New(testkit.Logger(t), cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent Run: %v", err)
		}
		// Die without revoking the lease, as a killed agent does.
		c.Etcd().Close()
		c.Close()
	}
	t.Cleanup(stop)
	return a, stop
}

func (h *harness) put(key string, value []byte) {
	h.t.Helper()
	if _, err := h.raw.Put(testkit.Context(h.t, time.Minute), key, string(value)); err != nil {
		h.t.Fatalf("put %s: %v", key, err)
	}
}

func (h *harness) del(key string) {
	h.t.Helper()
	if _, err := h.raw.Delete(testkit.Context(h.t, time.Minute), key); err != nil {
		h.t.Fatalf("delete %s: %v", key, err)
	}
}

// remoteCluster writes a remote cluster's config into the local etcd the
// way KVStoreMesh does; canaries are written by sync.
func (h *harness) remoteCluster(name string, id identity.ClusterID) {
	cfg := &schema.ClusterConfig{Cluster: name, ID: id, Capabilities: schema.Capabilities{
		SyncedCanaries: true, Cached: true, MaxConnectedClusters: identity.ClusterMax255,
	}}
	b, err := cfg.Marshal()
	if err != nil {
		h.t.Fatal(err)
	}
	h.put(cfg.Key(), b)
}

func (h *harness) sync(cluster string) {
	for _, k := range []meshstate.Kind{meshstate.KindNodes, meshstate.KindIPCache, meshstate.KindIdentities, meshstate.KindServices} {
		h.put(meshstate.CanaryKey(cluster, k), schema.CanaryValue(time.Now()))
	}
}

func nodeOf(cluster string, id identity.ClusterID, name, ip, cidr, key string) *schema.Node {
	n := &schema.Node{Name: name, Cluster: cluster, ClusterID: id, WireguardPubKey: key,
		IPAddresses: []schema.Address{{Type: schema.AddressInternalIP, IP: netip.MustParseAddr(ip)}}}
	if cidr != "" {
		n.IPv4AllocCIDR = netip.MustParsePrefix(cidr)
	}
	return n
}

// remoteNode writes n into the local etcd's cache (remote clusters) or
// state prefix (own cluster).
func (h *harness) node(n *schema.Node) {
	h.t.Helper()
	b, err := n.Marshal()
	if err != nil {
		h.t.Fatal(err)
	}
	key := n.Key()
	if n.Cluster != "c1" {
		if key, err = schema.StateToCacheKey(n.Cluster, key); err != nil {
			h.t.Fatal(err)
		}
	}
	h.put(key, b)
}

func (h *harness) ipEntry(cluster, ip, host string, id identity.NumericIdentity) {
	h.t.Helper()
	e := &schema.IPIdentityPair{IP: netip.MustParseAddr(ip), HostIP: netip.MustParseAddr(host), ID: id, K8sNamespace: "default", K8sPodName: "p"}
	b, err := e.Marshal()
	if err != nil {
		h.t.Fatal(err)
	}
	key, err := schema.StateToCacheKey(cluster, e.Key())
	if err != nil {
		h.t.Fatal(err)
	}
	h.put(key, b)
}

func b64(k wgtypes.Key) string { return base64.StdEncoding.EncodeToString(k[:]) }

// peers renders the fake device as "key-owner endpoint allowed,..." lines.
func (h *harness) peers(names map[wgtypes.Key]string) []string {
	d, err := h.wg.Device(dev)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, p := range d.Peers {
		var ips []string
		for _, a := range p.AllowedIPs {
			ips = append(ips, a.String())
		}
		slices.Sort(ips)
		name := names[p.PublicKey]
		if name == "" {
			name = p.PublicKey.String()
		}
		ep := ""
		if p.Endpoint != nil {
			ep = p.Endpoint.String()
		}
		out = append(out, fmt.Sprintf("%s %s %s", name, ep, strings.Join(ips, ",")))
	}
	slices.Sort(out)
	return out
}

func (h *harness) routeLines() []string {
	s := h.routes.String()
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// waitFor polls cond (state kept by other goroutines, no notification to
// wait on) until it holds or the test's deadline passes.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	for {
		ok, got := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; last: %s", what, ctx.Err(), got)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func waitPeers(ctx context.Context, t *testing.T, h *harness, names map[wgtypes.Key]string, want []string) {
	t.Helper()
	waitFor(ctx, t, "peers", func() (bool, string) {
		got := h.peers(names)
		return cmp.Equal(want, got), cmp.Diff(want, got)
	})
}

func waitRoutes(ctx context.Context, t *testing.T, h *harness, want []string) {
	t.Helper()
	waitFor(ctx, t, "routes", func() (bool, string) {
		got := h.routeLines()
		return cmp.Equal(want, got), cmp.Diff(want, got)
	})
}

// reconciledSynced waits until a has finished a pass after the mesh synced.
func reconciledSynced(ctx context.Context, t *testing.T, a *Agent) {
	t.Helper()
	waitFor(ctx, t, "a reconciliation after sync", func() (bool, string) {
		return a.prunedPasses.Load() > 0, fmt.Sprint(a.prunedPasses.Load())
	})
}

func problems(st endpointapi.Status) []string {
	var out []string
	for _, p := range st.Problems {
		out = append(out, p.Node+": "+p.Reason)
	}
	return out
}

func TestAgent(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	h := newHarness(t)
	kn2, kr1, kr2, kr3 := testKey(t).PublicKey(), testKey(t).PublicKey(), testKey(t).PublicKey(), testKey(t).PublicKey()
	names := map[wgtypes.Key]string{kn2: "c1/n2", kr1: "c2/n1", kr2: "c2/n2", kr3: "c2/n3"}
	start, err := h.raw.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}

	a, stop := h.start()

	// The own node, with its key, goes out before any ipcache entry.
	ep := endpointapi.Endpoint{ContainerID: "ctr1", IfName: "eth0", Namespace: "default", PodName: "web-1",
		Labels: map[string]string{"app": "web"}, IPv4: netip.MustParseAddr("10.1.1.2"), HostIfName: "lxc1"}
	st, err := a.Backend().PutEndpoint(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	if id := identity.NumericIdentity(st.Identity); id>>16 != 1 {
		t.Errorf("identity %d not in cluster 1's range", id)
	}
	ipKey := schema.IPKey(ep.IPv4)
	testkit.WaitPut(ctx, t, h.raw, ipKey, start.Header.Revision)
	nodeResp, err := h.raw.Get(ctx, schema.NodeKey("c1", "n1"))
	if err != nil || len(nodeResp.Kvs) != 1 {
		t.Fatalf("own node: %v %v", nodeResp, err)
	}
	ipResp, err := h.raw.Get(ctx, ipKey)
	if err != nil || len(ipResp.Kvs) != 1 {
		t.Fatalf("ipcache entry: %v %v", ipResp, err)
	}
	if nodeResp.Kvs[0].CreateRevision >= ipResp.Kvs[0].CreateRevision {
		t.Errorf("node written at revision %d, not before the ipcache entry (%d)", nodeResp.Kvs[0].CreateRevision, ipResp.Kvs[0].CreateRevision)
	}
	self, err := schema.DecodeNode(schema.NodeKey("c1", "n1"), nodeResp.Kvs[0].Value, a.origin)
	if err != nil {
		t.Fatal(err)
	}
	if self.WireguardPubKey != b64(h.priv.PublicKey()) || self.BootID == "" || self.IPv4AllocCIDR != netip.MustParsePrefix("10.1.1.0/24") {
		t.Errorf("own node %+v", self)
	}
	pair, err := schema.DecodeIPIdentityPair(ipKey, ipResp.Kvs[0].Value, a.origin)
	if err != nil {
		t.Fatal(err)
	}
	if pair.HostIP != netip.MustParseAddr("198.18.1.11") || uint32(pair.ID) != st.Identity || pair.K8sPodName != "web-1" {
		t.Errorf("ipcache entry %+v", pair)
	}
	// Idempotent: the same endpoint again is the same status.
	if st2, err := a.Backend().PutEndpoint(ctx, ep); err != nil || st2.Identity != st.Identity {
		t.Errorf("second PutEndpoint: %+v, %v", st2, err)
	}
	// An address outside the pod CIDR is the caller's fault.
	bad := ep
	bad.ContainerID, bad.IPv4 = "ctr2", netip.MustParseAddr("10.9.9.9")
	if _, err := a.Backend().PutEndpoint(ctx, bad); err == nil || !strings.Contains(err.Error(), "outside the node's pod CIDR") {
		t.Errorf("endpoint outside the pod CIDR: %v", err)
	}

	// Another node of this cluster and a remote cluster's nodes.
	h.node(nodeOf("c1", 1, "n2", "198.18.1.12", "10.1.2.0/24", b64(kn2)))
	h.remoteCluster("c2", 2)
	h.node(nodeOf("c2", 2, "n1", "198.18.2.11", "10.2.1.0/24", b64(kr1)))
	h.node(nodeOf("c2", 2, "n2", "198.18.2.12", "10.2.2.0/24", b64(kr2)))
	h.ipEntry("c2", "10.77.0.5", "198.18.2.12", 2<<16|9)
	h.sync("c2")
	wantPeers := []string{
		"c1/n2 198.18.1.12:51871 10.1.2.0/24,198.18.1.12/32",
		"c2/n1 198.18.2.11:51871 10.2.1.0/24,198.18.2.11/32",
		"c2/n2 198.18.2.12:51871 10.2.2.0/24,10.77.0.5/32,198.18.2.12/32",
	}
	wantRoutes := []string{
		"10.1.2.0/24 dev 7 mtu 1420 proto 200",
		"10.2.1.0/24 dev 7 mtu 1420 proto 200",
		"10.2.2.0/24 dev 7 mtu 1420 proto 200",
		"10.77.0.5/32 dev 7 mtu 1420 proto 200",
	}
	waitPeers(ctx, t, h, names, wantPeers)
	waitRoutes(ctx, t, h, wantRoutes)
	// Every peer gets the keepalive, so its handshake runs when it is added
	// rather than when both nodes' pods first send at once.
	if d, err := h.wg.Device(dev); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range d.Peers {
			if p.PersistentKeepaliveInterval != wireguard.PersistentKeepalive {
				t.Errorf("peer %s: keepalive %s, want %s", names[p.PublicKey], p.PersistentKeepaliveInterval, wireguard.PersistentKeepalive)
			}
		}
	}

	// Bad input: no key, a malformed key (meshstate drops the entry), an
	// all-zero key, a duplicate of c2/n1's key, a CIDR overlapping c2/n2's,
	// our own key. Every other peer stays as it is.
	h.node(nodeOf("c2", 2, "nokey", "198.18.2.20", "10.2.20.0/24", ""))
	bogus := nodeOf("c2", 2, "badkey", "198.18.2.21", "10.2.21.0/24", "")
	raw, _ := bogus.Marshal()
	badKey, _ := schema.StateToCacheKey("c2", bogus.Key())
	h.put(badKey, []byte(strings.Replace(string(raw), `"WireguardPubKey":""`, `"WireguardPubKey":"xyz"`, 1)))
	h.node(nodeOf("c2", 2, "zero", "198.18.2.22", "10.2.22.0/24", b64(wgtypes.Key{})))
	h.node(nodeOf("c2", 2, "z-dup", "198.18.2.23", "10.2.23.0/24", b64(kr1)))
	h.node(nodeOf("c2", 2, "overlap", "198.18.2.24", "10.2.2.128/25", b64(kr3)))
	h.node(nodeOf("c2", 2, "mine", "198.18.2.25", "10.2.25.0/24", b64(h.priv.PublicKey())))
	wantProblems := []string{
		`c2/badkey: node entry refused: WireGuard public key "xyz": not base64: illegal base64 data at input byte 0`,
		"c2/mine: WireGuard public key " + b64(h.priv.PublicKey()) + " is this node's (c1/n1) own",
		"c2/nokey: no WireGuard public key",
		"c2/overlap: address conflict: 10.2.2.128/25 overlaps 10.2.2.0/24 of node c2/n2",
		"c2/z-dup: duplicate WireGuard public key " + b64(kr1) + ": already used by node c2/n1",
		`c2/zero: datapath: WireGuard public key is all zero: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`,
	}
	waitFor(ctx, t, "problems", func() (bool, string) {
		got := problems(a.Status(ctx))
		return cmp.Equal(wantProblems, got), cmp.Diff(wantProblems, got)
	})
	if diff := cmp.Diff(wantPeers, h.peers(names)); diff != "" {
		t.Fatalf("peers after bad input (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantRoutes, h.routeLines()); diff != "" {
		t.Fatalf("routes after bad input (-want +got):\n%s", diff)
	}
	status := a.Status(ctx)
	if status.KVStore != "ok" || !status.MeshSynced || len(status.Peers) != 3 || status.Endpoints != 1 || status.Device != dev {
		t.Errorf("status %+v", status)
	}

	// A remote node removed: its peer and route go (the mesh has synced).
	// (Its duplicate goes first, or it would take the key over.)
	h.del(func() string { k, _ := schema.StateToCacheKey("c2", schema.NodeKey("c2", "z-dup")); return k }())
	h.del(func() string { k, _ := schema.StateToCacheKey("c2", schema.NodeKey("c2", "n1")); return k }())
	wantPeers = slices.Delete(slices.Clone(wantPeers), 1, 2)
	wantRoutes = slices.Delete(slices.Clone(wantRoutes), 1, 2)
	waitPeers(ctx, t, h, names, wantPeers)
	waitRoutes(ctx, t, h, wantRoutes)

	// A node's key regenerated: its peer converges on the new key, the old
	// one goes, addresses and routes stay.
	kr4 := testKey(t).PublicKey()
	callsBefore := len(h.wg.Calls())
	names[kr4] = "c2/n2-newkey"
	h.node(nodeOf("c2", 2, "n2", "198.18.2.12", "10.2.2.0/24", b64(kr4)))
	wantPeers[1] = strings.Replace(wantPeers[1], "c2/n2 ", "c2/n2-newkey ", 1)
	waitPeers(ctx, t, h, names, wantPeers)
	if diff := cmp.Diff(wantRoutes, h.routeLines()); diff != "" {
		t.Fatalf("routes after a key change (-want +got):\n%s", diff)
	}
	// No address was ever without a peer during the change.
	for _, step := range h.wg.Steps() {
		for _, p := range []string{"10.2.2.0/24", "10.77.0.5/32"} {
			if _, ok := step.Owners[netip.MustParsePrefix(p)]; !ok && step.Call >= callsBefore {
				t.Fatalf("%s had no peer during the key change (step %+v)", p, step)
			}
		}
	}

	// Restart: a new agent object over the same device, routes and state
	// directory changes nothing.
	stop()
	calls, writes := len(h.wg.Calls()), h.routes.Writes()
	a2, _ := h.start()
	reconciledSynced(ctx, t, a2)
	if n := len(h.wg.Calls()); n != calls {
		t.Errorf("restart made %d ConfigureDevice calls: %+v", n-calls, h.wg.Calls()[calls:])
	}
	if n := h.routes.Writes(); n != writes {
		t.Errorf("restart made %d route writes", n-writes)
	}
	// The endpoint came back from endpoints.json with the same identity.
	eps, _ := a2.Backend().Endpoints(ctx)
	if len(eps) != 1 || eps[0].Identity != st.Identity {
		t.Errorf("restored endpoints %+v, want ctr1 with identity %d", eps, st.Identity)
	}
	if err := a2.Backend().DeleteEndpoint(ctx, "ctr1", "eth0"); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "ipcache entry withdrawn", func() (bool, string) {
		got := testkit.Content(ctx, t, h.raw, ipKey)
		return len(got) == 0, fmt.Sprint(got)
	})
	data, err := os.ReadFile(filepath.Join(h.state, EndpointsFile))
	if err != nil {
		t.Fatal(err)
	}
	if eps, err := DecodeEndpoints("endpoints.json", data); err != nil || len(eps) != 0 {
		t.Errorf("endpoints.json after delete: %v, %v", eps, err)
	}
}

// TestNoPruneBeforeSync: a peer and a route left by an earlier run stay
// while a remote cluster configured at start has not synced, and go once
// it has.
func TestNoPruneBeforeSync(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	h := newHarness(t)
	stale := testKey(t).PublicKey()
	d, _ := h.wg.Device(dev)
	d.Peers = []wgtypes.Peer{{PublicKey: stale, AllowedIPs: nil}}
	h.wg.AddDevice(*d)
	if err := h.routes.RouteReplace(routeFor(t, "10.3.1.0/24", 7)); err != nil {
		t.Fatal(err)
	}
	kr1 := testKey(t).PublicKey()
	h.remoteCluster("c3", 3)
	h.node(nodeOf("c3", 3, "n1", "198.18.3.11", "10.3.2.0/24", b64(kr1)))
	names := map[wgtypes.Key]string{stale: "stale", kr1: "c3/n1"}

	a, _ := h.start()
	// The new node's peer arrives only with the canary (meshstate waits
	// for it), and the stale one stays until then.
	waitFor(ctx, t, "a first reconciliation", func() (bool, string) { return a.passes.Load() > 0, "" })
	if diff := cmp.Diff([]string{"stale  "}, h.peers(names)); diff != "" {
		t.Fatalf("before sync (-want +got):\n%s", diff)
	}
	h.sync("c3")
	waitPeers(ctx, t, h, names, []string{"c3/n1 198.18.3.11:51871 10.3.2.0/24,198.18.3.11/32"})
	waitRoutes(ctx, t, h, []string{"10.3.2.0/24 dev 7 mtu 1420 proto 200"})
}

// routeFor is a strait route an earlier agent left.
func routeFor(t *testing.T, dst string, idx int) *netlink.Route {
	t.Helper()
	p := netip.MustParsePrefix(dst)
	return &netlink.Route{LinkIndex: idx, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)},
		Scope: netlink.SCOPE_LINK, Protocol: route.Protocol, MTU: 1420}
}

// lateAdvertiser forwards the IPsec manager's Advertise to the agent built
// after it.
type lateAdvertiser struct{ a atomic.Pointer[Agent] }

func (l *lateAdvertiser) advertise(ctx context.Context, spi uint8) error {
	a := l.a.Load()
	if a == nil {
		return fmt.Errorf("agent not built yet")
	}
	return a.AdvertiseIPsecKey(ctx, spi)
}

// TestAgentIPsec: in IPsec mode the agent feeds the IPsec manager (XFRM
// twin) with the synced nodes, routes other nodes' pod CIDRs via their
// address on the underlay, and publishes the key index the manager
// advertises in its node.
func TestAgentIPsec(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	h := newHarness(t)
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keyFile, []byte("3+ rfc4106(gcm(aes)) 0102030405060708090a0b0c0d0e0f1011121314 128\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	xfrm := ipsec.NewMemKernel()
	late := &lateAdvertiser{}
	mgr, err := ipsec.NewManager(ipsec.ManagerConfig{Log: testkit.Logger(t), Kernel: xfrm, KeyFile: keyFile, Advertise: late.advertise})
	if err != nil {
		t.Fatal(err)
	}
	h.remoteCluster("c2", 2)
	n := nodeOf("c2", 2, "n1", "198.18.2.11", "10.2.1.0/24", "")
	n.BootID = "4a3d2c1b-0000-4000-8000-000000000001"
	n.EncryptionKey = 3
	h.node(n)
	h.sync("c2")
	a, _ := h.startWith(func(c *Config, d *Deps) {
		c.Encryption = EncryptionIPsec
		d.WireGuard = nil
		d.IPsec = mgr
		d.Underlay = route.Device{Index: 2, MTU: 1500}
	})
	late.a.Store(a)
	waitRoutes(ctx, t, h, []string{"10.2.1.0/24 via 198.18.2.11 dev 2 mtu 1420 proto 200"})
	waitFor(ctx, t, "XFRM states and policies", func() (bool, string) {
		s := xfrm.String()
		return strings.Contains(s, "198.18.2.11") && strings.Contains(s, "10.2.1.0/24"), s
	})
	waitFor(ctx, t, "the key index advertised in the node", func() (bool, string) {
		got := testkit.Content(ctx, t, h.raw, schema.NodeKey("c1", "n1"))
		v := got[schema.NodeKey("c1", "n1")]
		node, err := schema.DecodeNode(schema.NodeKey("c1", "n1"), []byte(v), a.origin)
		return err == nil && node.EncryptionKey == 3 && node.WireguardPubKey == "", v
	})
	if info, _ := a.Backend().Node(ctx); info.PodMTU != 1500-IPsecOverhead {
		t.Errorf("pod MTU %d", info.PodMTU)
	}
	st := a.Status(ctx)
	if st.Encryption != "ipsec" || len(st.Peers) != 1 || st.Peers[0].Node != "c2/n1" || len(st.Problems) != 0 {
		t.Errorf("status %+v", st)
	}
}

// TestRestartKeepsWorkingPeer: after a restart the agent knows no earlier
// decision, but the device does: a node whose key and address are already a
// peer wins a conflict against a newcomer that sorts before it.
func TestRestartKeepsWorkingPeer(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	h := newHarness(t)
	kWorking, kNew := testKey(t).PublicKey(), testKey(t).PublicKey()
	d, _ := h.wg.Device(dev)
	d.Peers = []wgtypes.Peer{{
		PublicKey:  kWorking,
		Endpoint:   &net.UDPAddr{IP: net.ParseIP("198.18.3.11").To4(), Port: 51871},
		AllowedIPs: []net.IPNet{{IP: net.IPv4(10, 3, 1, 0).To4(), Mask: net.CIDRMask(24, 32)}, {IP: net.IPv4(198, 18, 3, 11).To4(), Mask: net.CIDRMask(32, 32)}},
	}}
	h.wg.AddDevice(*d)
	h.remoteCluster("c2", 2)
	h.remoteCluster("c3", 3)
	h.node(nodeOf("c3", 3, "zz", "198.18.3.11", "10.3.1.0/24", b64(kWorking)))
	h.node(nodeOf("c2", 2, "aa", "198.18.2.11", "10.3.1.0/25", b64(kNew)))
	h.sync("c2")
	h.sync("c3")
	a, _ := h.start()
	reconciledSynced(ctx, t, a)
	names := map[wgtypes.Key]string{kWorking: "c3/zz", kNew: "c2/aa"}
	if diff := cmp.Diff([]string{"c3/zz 198.18.3.11:51871 10.3.1.0/24,198.18.3.11/32"}, h.peers(names)); diff != "" {
		t.Errorf("peers (-want +got):\n%s", diff)
	}
	want := []string{"c2/aa: address conflict: 10.3.1.0/25 overlaps 10.3.1.0/24 of node c3/zz"}
	if diff := cmp.Diff(want, problems(a.Status(ctx))); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
