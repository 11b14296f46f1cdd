package connect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strait-net/strait/clustermesh/apiserver"
	"github.com/strait-net/strait/clustermesh/certs"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/kvstoremesh"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
	"github.com/strait-net/strait/internal/testkit"
)

const (
	waitTimeout = 45 * time.Second
	pollEvery   = 25 * time.Millisecond
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

// tcluster is one real cluster: certificates, a strait-apiserver on
// loopback watching meshDir, an admin client and a context file.
type tcluster struct {
	name    string
	id      identity.ClusterID
	base    string
	files   certs.Files
	meshDir string
	ctxPath string
	srv     *apiserver.Server
	cancel  context.CancelFunc
	done    chan error
	admin   *kvstore.Client
}

type clusterOpts struct {
	// serverCA, when set, issues the server certificate (a CA mismatch);
	// the apiserver's client CA file then holds both CAs.
	serverCA *tcluster
}

// mesh starts clusters and stops them all at once when the test ends.
type mesh struct {
	t  *testing.T
	mu sync.Mutex
	cs []*tcluster
}

func newMesh(t *testing.T) *mesh {
	m := &mesh{t: t}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, c := range m.cs {
			wg.Add(1)
			go func() { defer wg.Done(); c.stop(t) }()
		}
		wg.Wait()
	})
	return m
}

func (m *mesh) add(name string, id identity.ClusterID, o clusterOpts) *tcluster {
	t := m.t
	t.Helper()
	c := &tcluster{name: name, id: id, base: filepath.Join(t.TempDir(), name)}
	f, _, err := certs.WriteClusterDir(certs.ClusterDirOptions{Cluster: name, Dir: filepath.Join(c.base, "certs")})
	if err != nil {
		t.Fatal(err)
	}
	c.files = f
	clientCA := f.CACert
	if o.serverCA != nil {
		ca, err := certs.LoadCA(o.serverCA.files.CACert, o.serverCA.files.CAKey)
		if err != nil {
			t.Fatal(err)
		}
		dns, ips, err := certs.ParseHosts(certs.DefaultHosts(name))
		if err != nil {
			t.Fatal(err)
		}
		kp, err := ca.Issue(certs.LeafOptions{CommonName: name, DNSNames: dns, IPs: ips, Server: true, Client: true, Now: time.Now(), Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := certs.WriteKeyPair(f.ServerCert, f.ServerKey, kp); err != nil {
			t.Fatal(err)
		}
		clientCA = filepath.Join(c.base, "client-ca-bundle.crt")
		writeFile(t, clientCA, string(bundle(readFile(t, f.CACert), readFile(t, o.serverCA.files.CACert))))
	}
	c.meshDir = filepath.Join(c.base, "mesh")
	if err := os.Mkdir(c.meshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	metrics, err := kvstoremesh.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := apiserver.Config{
		ClusterName:          name,
		ClusterID:            id,
		Max:                  identity.ClusterMax255,
		DataDir:              filepath.Join(c.base, "etcd"),
		ServerCertFile:       f.ServerCert,
		ServerKeyFile:        f.ServerKey,
		ClientCAFile:         clientCA,
		AdminCertFile:        f.AdminCert,
		AdminKeyFile:         f.AdminKey,
		HeartbeatInterval:    time.Hour,
		ClusterMeshConfigDir: c.meshDir,
		RemovalGrace:         time.Second,
		MeshMetrics:          metrics,
	}
	var lastErr error
	for attempt := 0; attempt < 5 && c.srv == nil; attempt++ {
		cfg.ListenClientURLs = []string{"https://" + freeAddr(t)}
		cfg.ListenPeerURL = "http://" + freeAddr(t)
		s, err := apiserver.New(testkit.Logger(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx); close(done) }()
		select {
		case <-s.Ready():
			c.srv, c.cancel, c.done = s, cancel, done
		case err := <-done:
			cancel()
			lastErr = err
			if !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("Run of %s: %v", name, err)
			}
		}
	}
	if c.srv == nil {
		t.Fatalf("Run of %s: %v", name, lastErr)
	}
	m.mu.Lock()
	m.cs = append(m.cs, c)
	m.mu.Unlock()
	adminCfg := c.srv.ClientConfig(f.AdminCert, f.AdminKey)
	if o.serverCA != nil {
		adminCfg.TrustedCAFile = clientCA
	}
	cli, err := kvstore.New(testkit.Context(t, waitTimeout), testkit.Logger(t), adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	c.admin = cli
	// The canaries of every prefix the cache mirrors, as the publishers
	// of a running cluster write them.
	for _, k := range kvstoremesh.AllKinds() {
		if err := cli.WriteCanary(testkit.Context(t, waitTimeout), name, k.StatePrefix()); err != nil {
			t.Fatal(err)
		}
	}
	c.ctxPath = c.writeContext(t, name, uint32(id), 255)
	return c
}

// writeContext writes a context file (relative paths) into c's base.
func (c *tcluster) writeContext(t testing.TB, name string, id, max uint32) string {
	t.Helper()
	p := filepath.Join(c.base, fmt.Sprintf("ctx-%s-%d-%d.yaml", name, id, max))
	writeFile(t, p, fmt.Sprintf("cluster: %s\nid: %d\nmaxConnectedClusters: %d\nendpoints: [%q]\ncertDir: certs\nclustermeshConfigDir: mesh\n",
		name, id, max, c.srv.Endpoints()[0]))
	return p
}

func (c *tcluster) context(t testing.TB) *Context {
	t.Helper()
	return mustLoad(t, c.ctxPath)
}

func mustLoad(t testing.TB, path string) *Context {
	t.Helper()
	cx, err := LoadContext(path)
	if err != nil {
		t.Fatal(err)
	}
	return cx
}

func (c *tcluster) stop(t testing.TB) {
	if c.cancel == nil {
		return
	}
	c.cancel()
	if err, ok := <-c.done; ok && err != nil {
		t.Errorf("Run of %s returned %v", c.name, err)
	}
	c.cancel = nil
}

// putNode writes a node entry with a pod CIDR.
func (c *tcluster) putNode(t testing.TB, node, cidr string) {
	t.Helper()
	body := fmt.Sprintf(`{"Name":%q,"Cluster":%q,"IPAddresses":[{"Type":"InternalIP","IP":"192.0.2.%d"}],"IPv4AllocCIDR":{"IP":%q,"Mask":"////AA=="},"ClusterID":%d}`,
		node, c.name, c.id, cidr, c.id)
	if err := c.admin.Put(testkit.Context(t, waitTimeout), schema.NodeKey(c.name, node), []byte(body)); err != nil {
		t.Fatal(err)
	}
}

func (c *tcluster) has(t testing.TB, key string) (string, bool) {
	t.Helper()
	v, ok, err := c.admin.Get(testkit.Context(t, waitTimeout), key)
	if err != nil {
		t.Fatal(err)
	}
	return string(v), ok
}

// authState lists etcd users and roles with their grants.
func (c *tcluster) authState(t testing.TB) string {
	t.Helper()
	ctx := testkit.Context(t, waitTimeout)
	e := c.admin.Etcd()
	users, err := e.UserList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := ""
	us := append([]string(nil), users.Users...)
	sort.Strings(us)
	for _, u := range us {
		g, err := e.UserGet(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("user %s roles %v\n", u, g.Roles)
	}
	roles, err := e.RoleList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roles.Roles {
		g, err := e.RoleGet(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range g.Perm {
			out += fmt.Sprintf("role %s %s %q %q\n", r, p.PermType, p.Key, p.RangeEnd)
		}
	}
	return out
}

// dirState is every file of dir with its mode and content.
func dirState(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fmt.Sprintf("%v %s", fi.Mode(), readFile(t, filepath.Join(dir, e.Name())))
	}
	return out
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// makeReadOnly makes dir refuse new files, even for root (chattr +i),
// until the test ends.
func makeReadOnly(t testing.TB, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("chattr", "-i", dir).CombinedOutput(); err != nil {
			t.Errorf("chattr -i %s: %v: %s", dir, err, out)
		}
	})
}
