package meshtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strait-net/strait/clustermesh/apiserver"
	"github.com/strait-net/strait/clustermesh/certs"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/kvstoremesh"
	"github.com/strait-net/strait/clustermesh/meshstate"
	"github.com/strait-net/strait/clustermesh/publish"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

const (
	// waitTimeout bounds every wait: generous, a hang fails instead of
	// blocking the run.
	waitTimeout = 45 * time.Second
	pollEvery   = 25 * time.Millisecond
	maxClusters = identity.ClusterMax255
)

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// eventually polls cond until it returns "" (ok); otherwise fails with
// its last description.
func eventually(t testing.TB, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, msg)
		}
		time.Sleep(pollEvery)
	}
}

func opCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// cluster is one cluster of a test mesh: its certificates, apiserver,
// remote-cluster config directory, publishers and agent.
type cluster struct {
	name    string
	id      identity.ClusterID
	files   certs.Files
	meshDir string
	cfg     apiserver.Config
	metrics *kvstoremesh.Metrics

	srv    *apiserver.Server
	cancel context.CancelFunc
	done   chan error

	admin *kvstore.Client // raw writes and canaries not covered by publishers
	pub   *publishers
	agent *meshstate.State
}

type options struct {
	removalGrace time.Duration
	cacheTTL     time.Duration
}

// newMesh starts the clusters names (IDs 1, 2, ...), each with publishers
// and an agent, and connects every pair.
func newMesh(t *testing.T, opts options, names ...string) map[string]*cluster {
	t.Helper()
	cs := map[string]*cluster{}
	// Registered first, so it runs last: once every agent, publisher and
	// client is closed (while etcd still serves), every apiserver stops at
	// once, so no cache waits on a remote that is already gone.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() { defer wg.Done(); c.stop(t) }()
		}
		wg.Wait()
	})
	for i, name := range names {
		c := &cluster{name: name, id: identity.ClusterID(i + 1)}
		f, _, err := certs.WriteClusterDir(certs.ClusterDirOptions{Cluster: name, Dir: filepath.Join(t.TempDir(), "certs-"+name)})
		if err != nil {
			t.Fatal(err)
		}
		c.files = f
		c.meshDir = filepath.Join(t.TempDir(), "clustermesh-"+name)
		if err := os.Mkdir(c.meshDir, 0o700); err != nil {
			t.Fatal(err)
		}
		c.metrics, err = kvstoremesh.NewMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		c.cfg = apiserver.Config{
			ClusterName:          name,
			ClusterID:            c.id,
			Max:                  maxClusters,
			DataDir:              filepath.Join(t.TempDir(), "etcd-"+name),
			ServerCertFile:       f.ServerCert,
			ServerKeyFile:        f.ServerKey,
			ClientCAFile:         f.CACert,
			AdminCertFile:        f.AdminCert,
			AdminKeyFile:         f.AdminKey,
			HeartbeatInterval:    time.Hour,
			ClusterMeshConfigDir: c.meshDir,
			RemovalGrace:         opts.removalGrace,
			MeshMetrics:          c.metrics,
		}
		c.start(t)
		c.admin = c.client(t, f.AdminCert, f.AdminKey)
		c.writeOtherCanaries(t)
		c.pub = startPublishers(t, c)
		c.agent = startAgent(t, c, opts.cacheTTL)
		cs[name] = c
	}
	for _, c := range cs {
		for _, r := range cs {
			if r != c {
				c.connect(t, r)
			}
		}
	}
	return cs
}

// start runs the apiserver (again, after stop: same data dir and ports),
// picking free ports the first time and retrying on a bind clash. newMesh's
// cleanup stops it.
func (c *cluster) start(t *testing.T) {
	t.Helper()
	pick := len(c.cfg.ListenClientURLs) == 0
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if pick {
			c.cfg.ListenClientURLs = []string{"https://" + freeAddr(t)}
			c.cfg.ListenPeerURL = "http://" + freeAddr(t)
		}
		s, err := apiserver.New(testkit.Logger(t), c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx); close(done) }()
		select {
		case <-s.Ready():
			c.srv, c.cancel, c.done = s, cancel, done
			return
		case err := <-done:
			cancel()
			lastErr = err
			if errors.Is(err, syscall.EADDRINUSE) {
				if pick {
					continue
				}
				time.Sleep(200 * time.Millisecond) // same ports: wait for the old listener to go
				continue
			}
			t.Fatalf("Run of %s: %v", c.name, err)
		}
	}
	t.Fatalf("Run of %s: %v", c.name, lastErr)
}

// stop ends the apiserver's Run (idempotent) and checks it returned nil.
func (c *cluster) stop(t testing.TB) {
	t.Helper()
	if c.cancel == nil {
		return
	}
	c.cancel()
	if err, ok := <-c.done; ok && err != nil {
		t.Errorf("Run of %s returned %v", c.name, err)
	}
	c.cancel = nil
}

// client is a kvstore client of this cluster as the certificate's user,
// closed when the test ends.
func (c *cluster) client(t testing.TB, cert, key string) *kvstore.Client {
	t.Helper()
	cli, err := kvstore.New(opCtx(t), testkit.Logger(t), c.srv.ClientConfig(cert, key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// writeOtherCanaries writes the sync canaries of the prefixes no publisher
// of this test owns (identities, service exports), as the identity
// allocator and an export controller would.
func (c *cluster) writeOtherCanaries(t testing.TB) {
	t.Helper()
	for _, p := range []string{schema.IdentitiesPrefix, schema.ServiceExportsPrefix} {
		if err := c.admin.WriteCanary(opCtx(t), c.name, p); err != nil {
			t.Fatal(err)
		}
	}
}

// connect writes r's file into c's config directory: r's endpoint, r's CA
// and the remote user's certificate issued by r's CA.
func (c *cluster) connect(t testing.TB, r *cluster) {
	t.Helper()
	body := fmt.Sprintf("endpoints:\n- %s\ntrusted-ca-file: %s\ncert-file: %s\nkey-file: %s\n",
		r.srv.Endpoints()[0], r.files.CACert, r.files.RemoteCert, r.files.RemoteKey)
	tmp := filepath.Join(c.meshDir, "."+r.name+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.meshDir, r.name)); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) disconnect(t testing.TB, r *cluster) {
	t.Helper()
	if err := os.Remove(filepath.Join(c.meshDir, r.name)); err != nil {
		t.Fatal(err)
	}
}

// has reports whether key exists in c's etcd.
func (c *cluster) has(t testing.TB, key string) bool {
	t.Helper()
	_, ok, err := c.admin.Get(opCtx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// identityID is identity n of c's range.
func (c *cluster) identityID(n uint32) identity.NumericIdentity {
	return identity.NumericIdentity(uint32(c.id)<<16 | n)
}

// node is a valid node of c.
func (c *cluster) node(name, ip string) *schema.Node {
	return &schema.Node{
		Name:        name,
		Cluster:     c.name,
		ClusterID:   c.id,
		IPAddresses: []schema.Address{{Type: "InternalIP", IP: netip.MustParseAddr(ip)}},
	}
}

// ip is a valid ipcache entry of c hosted on hostIP.
func (c *cluster) ip(addr, hostIP string, n uint32) *schema.IPIdentityPair {
	return &schema.IPIdentityPair{
		IP:           netip.MustParseAddr(addr),
		HostIP:       netip.MustParseAddr(hostIP),
		ID:           c.identityID(n),
		K8sNamespace: "default",
		K8sPodName:   "pod-" + addr,
	}
}

// publishers are one cluster's node, ipcache and service publishers, on
// their own admin client.
type publishers struct {
	nodes    *publish.NodePublisher
	ips      *publish.IPCachePublisher
	services *publish.ServicePublisher
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func startPublishers(t *testing.T, c *cluster) *publishers {
	t.Helper()
	cli := c.client(t, c.files.AdminCert, c.files.AdminKey)
	log := testkit.Logger(t)
	po := publish.Options{Cluster: c.name, ClusterID: c.id, Max: maxClusters}
	p := &publishers{}
	var err error
	if p.nodes, err = publish.NewNodePublisher(cli, log, po); err != nil {
		t.Fatal(err)
	}
	if p.ips, err = publish.NewIPCachePublisher(cli, log, publish.IPCacheOptions{Options: po, After: p.nodes.Published()}); err != nil {
		t.Fatal(err)
	}
	if p.services, err = publish.NewServicePublisher(cli, log, po); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	for _, run := range []func(context.Context) error{p.nodes.Run, p.ips.Run, p.services.Run} {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("publisher of %s: %v", c.name, err)
			}
		}()
	}
	t.Cleanup(p.stop)
	return p
}

// stop ends the publishers; what they wrote stays (under their client's lease).
func (p *publishers) stop() {
	p.cancel()
	p.wg.Wait()
}

// publish upserts nodes and ipcache entries and marks every publisher synced.
func (p *publishers) publish(t testing.TB, nodes []*schema.Node, ips []*schema.IPIdentityPair) {
	t.Helper()
	for _, n := range nodes {
		if err := p.nodes.Upsert(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range ips {
		if err := p.ips.Upsert(e); err != nil {
			t.Fatal(err)
		}
	}
	p.nodes.Synced()
	p.ips.Synced()
	p.services.Synced()
}

func startAgent(t *testing.T, c *cluster, ttl time.Duration) *meshstate.State {
	t.Helper()
	cli := c.client(t, c.files.LocalCert, c.files.LocalKey)
	st, err := meshstate.New(cli, testkit.Logger(t), meshstate.Options{Cluster: c.name, ClusterID: c.id, Max: maxClusters, CacheTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent of %s: %v", c.name, err)
		}
	})
	return st
}

// agentHasNode reports "" when c's agent has node name of cluster from.
func (c *cluster) agentNode(from, name string) string {
	if _, ok := c.agent.Node(from, name); !ok {
		return fmt.Sprintf("agent of %s lacks node %s/%s", c.name, from, name)
	}
	return ""
}

// agentIP reports "" when c's agent maps addr to cluster from.
func (c *cluster) agentIP(from, addr string) string {
	a := netip.MustParseAddr(addr)
	got, _, ok := c.agent.LookupIP(netip.PrefixFrom(a, a.BitLen()))
	if !ok || got != from {
		return fmt.Sprintf("agent of %s: LookupIP(%s) = %q, %v; want %q", c.name, addr, got, ok, from)
	}
	return ""
}

func (c *cluster) agentLacksIP(addr string) bool {
	a := netip.MustParseAddr(addr)
	_, _, ok := c.agent.LookupIP(netip.PrefixFrom(a, a.BitLen()))
	return !ok
}

// remoteReady reports "" when c's cache has r ready.
func (c *cluster) remoteReady(r string) string {
	st, ok := c.srv.RemoteStatus(r)
	if !ok || !st.Ready {
		return fmt.Sprintf("%s's cache of %s not ready: %+v", c.name, r, st)
	}
	return ""
}
