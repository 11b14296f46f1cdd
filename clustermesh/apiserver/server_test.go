package apiserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/certs"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
	"github.com/strait-net/strait/internal/etcdtest"
)

// seed writes, as admin, one key under every prefix the access test probes.
func seed(t *testing.T, admin *clientv3.Client, self, other string) {
	t.Helper()
	for _, k := range []string{
		"cilium/state/nodes/v1/" + self + "/n1",
		"cilium/state/identities/v1/id/65537",
		schema.ClusterConfigKey(other),
		schema.CanaryKey(self, schema.NodesPrefix),
		schema.CanaryKey(other, schema.NodesPrefix),
		"cilium/cache/nodes/v1/" + other + "/n9",
		"cilium/.initlock/abc/1",
		"other/key",
	} {
		if _, err := admin.Put(opCtx(t), k, "v"); err != nil {
			t.Fatalf("admin put %s: %v", k, err)
		}
	}
}

type access struct {
	op      string // get, prefix, put, delete
	key     string
	allowed bool
}

// checkAccess runs every op as cli and compares the outcome.
func checkAccess(t *testing.T, cli *clientv3.Client, user string, ops []access) {
	t.Helper()
	for _, a := range ops {
		t.Run(fmt.Sprintf("%s/%s %s", user, a.op, a.key), func(t *testing.T) {
			var err error
			var n int
			switch a.op {
			case "get":
				var r *clientv3.GetResponse
				if r, err = cli.Get(opCtx(t), a.key); err == nil {
					n = len(r.Kvs)
				}
			case "prefix":
				var r *clientv3.GetResponse
				if r, err = cli.Get(opCtx(t), a.key, clientv3.WithPrefix()); err == nil {
					n = len(r.Kvs)
				}
			case "put":
				_, err = cli.Put(opCtx(t), a.key, "x")
			case "delete":
				_, err = cli.Delete(opCtx(t), a.key)
			}
			if a.allowed {
				if err != nil {
					t.Fatalf("%s %s as %s: %v", a.op, a.key, user, err)
				}
				if (a.op == "get" || a.op == "prefix") && n == 0 {
					t.Errorf("%s %s as %s: allowed but found nothing", a.op, a.key, user)
				}
				return
			}
			if !errors.Is(err, rpctypes.ErrPermissionDenied) {
				t.Fatalf("%s %s as %s: got %v, want permission denied", a.op, a.key, user, err)
			}
		})
	}
}

func remoteAccess(self, other string) []access {
	return []access{
		{"get", "cilium/state/nodes/v1/" + self + "/n1", true},
		{"prefix", "cilium/state/", true},
		{"prefix", "cilium/state/identities/v1/", true},
		{"get", schema.ClusterConfigKey(self), true},
		{"prefix", schema.SyncedPrefix + self + "/", true},
		{"get", schema.CanaryKey(self, schema.NodesPrefix), true},
		{"get", schema.HeartbeatKey, true},

		{"get", schema.ClusterConfigKey(other), false},
		{"prefix", schema.ClusterConfigPrefix, false},
		{"prefix", schema.SyncedPrefix + other + "/", false},
		{"prefix", schema.SyncedPrefix, false},
		{"prefix", schema.CachePrefix, false},
		{"prefix", "cilium/.initlock/", false},
		{"prefix", "cilium/", false},
		{"get", "other/key", false},

		{"put", "cilium/state/nodes/v1/" + self + "/n1", false},
		{"put", "cilium/state/nodes/v1/" + self + "/n2", false},
		{"delete", "cilium/state/nodes/v1/" + self + "/n1", false},
		{"put", schema.ClusterConfigKey(self), false},
		{"put", schema.CanaryKey(self, schema.NodesPrefix), false},
		{"put", schema.HeartbeatKey, false},
		{"put", "cilium/.initlock/x", false},
		{"put", "other/key", false},
	}
}

func localAccess(self, other string) []access {
	return []access{
		{"get", schema.HeartbeatKey, true},
		{"prefix", schema.CachePrefix, true},
		{"prefix", schema.ClusterConfigPrefix, true},
		{"get", schema.ClusterConfigKey(self), true},
		{"get", schema.ClusterConfigKey(other), true},
		{"prefix", schema.SyncedPrefix, true},

		{"prefix", schema.StatePrefix, false},
		{"get", "cilium/state/nodes/v1/" + self + "/n1", false},
		{"prefix", "cilium/.initlock/", false},
		{"get", "other/key", false},

		{"put", "cilium/cache/nodes/v1/" + other + "/n9", false},
		{"put", schema.ClusterConfigKey(self), false},
		{"put", schema.CanaryKey(self, schema.NodesPrefix), false},
		{"put", schema.HeartbeatKey, false},
		{"put", "cilium/state/nodes/v1/" + self + "/n3", false},
	}
}

func adminAccess(self string) []access {
	return []access{
		{"put", "cilium/state/nodes/v1/" + self + "/n4", true},
		{"put", "cilium/cache/nodes/v1/x/n4", true},
		{"put", "other/key2", true},
		{"prefix", "cilium/", true},
		{"delete", "other/key2", true},
	}
}

func wantClusterConfig(id identity.ClusterID, max identity.ClusterMax) string {
	return fmt.Sprintf(`{"id":%d,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":%d,"serviceExportsEnabled":false}}`, id, max)
}

// TestTwoClustersAccess runs two embedded apiservers at once and checks
// every user's access on each, and that certificates of one cluster are
// refused by the other.
func TestTwoClustersAccess(t *testing.T) {
	f1, f2 := clusterCerts(t, "c1"), clusterCerts(t, "c2")
	s1 := start(t, embeddedConfig(t, "c1", 1, f1))
	cfg2 := embeddedConfig(t, "c2", 2, f2)
	cfg2.Max = identity.ClusterMax511
	s2 := start(t, cfg2)

	for _, tc := range []struct {
		s           *running
		f           certs.Files
		self, other string
		id          identity.ClusterID
		max         identity.ClusterMax
	}{
		{s1, f1, "c1", "c2", 1, identity.ClusterMax255},
		{s2, f2, "c2", "c1", 2, identity.ClusterMax511},
	} {
		t.Run(tc.self, func(t *testing.T) {
			eps := tc.s.Endpoints()
			admin := etcdClient(t, eps, tc.f.CACert, tc.f.AdminCert, tc.f.AdminKey)
			seed(t, admin, tc.self, tc.other)

			remote := etcdClient(t, eps, tc.f.CACert, tc.f.RemoteCert, tc.f.RemoteKey)
			r, err := remote.Get(opCtx(t), schema.ClusterConfigKey(tc.self))
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Kvs) != 1 {
				t.Fatalf("cluster config of %s not found", tc.self)
			}
			if diff := cmp.Diff(wantClusterConfig(tc.id, tc.max), string(r.Kvs[0].Value)); diff != "" {
				t.Errorf("cluster config (-want +got):\n%s", diff)
			}
			// What a consumer with the same max decodes and accepts.
			dec, err := schema.DecodeClusterConfig(string(r.Kvs[0].Key), r.Kvs[0].Value, schema.Origin{Cluster: tc.self, ClusterID: tc.id, Max: tc.max})
			if err != nil {
				t.Fatalf("decode own cluster config: %v", err)
			}
			if dec.ID != tc.id || dec.Capabilities.MaxConnectedClusters != tc.max || !dec.Capabilities.SyncedCanaries {
				t.Errorf("decoded cluster config %+v", dec)
			}
			hb, err := remote.Get(opCtx(t), schema.HeartbeatKey)
			if err != nil {
				t.Fatal(err)
			}
			if len(hb.Kvs) != 1 {
				t.Fatal("no heartbeat")
			}
			if _, err := time.Parse(time.RFC3339, string(hb.Kvs[0].Value)); err != nil {
				t.Errorf("heartbeat %q: %v", hb.Kvs[0].Value, err)
			}

			checkAccess(t, remote, "remote", remoteAccess(tc.self, tc.other))
			local := etcdClient(t, eps, tc.f.CACert, tc.f.LocalCert, tc.f.LocalKey)
			checkAccess(t, local, "local", localAccess(tc.self, tc.other))
			checkAccess(t, admin, "admin", adminAccess(tc.self))

			// etcd's root user, from a certificate of this cluster's CA.
			ca, err := certs.LoadCA(tc.f.CACert, tc.f.CAKey)
			if err != nil {
				t.Fatal(err)
			}
			kp, err := ca.Issue(certs.LeafOptions{CommonName: certs.RootUser, Client: true, Now: time.Now(), Validity: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			rootCert, rootKey := tc.f.Dir+"/root.crt", tc.f.Dir+"/root.key"
			if err := certs.WriteKeyPair(rootCert, rootKey, kp); err != nil {
				t.Fatal(err)
			}
			root := etcdClient(t, eps, tc.f.CACert, rootCert, rootKey)
			checkAccess(t, root, "root", adminAccess(tc.self))

			// A user without any role is denied everything.
			unknown, err := ca.Issue(certs.LeafOptions{CommonName: "nobody", Client: true, Now: time.Now(), Validity: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if err := certs.WriteKeyPair(tc.f.Dir+"/nobody.crt", tc.f.Dir+"/nobody.key", unknown); err != nil {
				t.Fatal(err)
			}
			nobody := etcdClient(t, eps, tc.f.CACert, tc.f.Dir+"/nobody.crt", tc.f.Dir+"/nobody.key")
			if _, err := nobody.Get(opCtx(t), schema.HeartbeatKey); err == nil {
				t.Error("user without a role read the heartbeat")
			}
		})
	}

	// Refused at the TLS layer, with an error naming the endpoint.
	refused := []struct {
		name          string
		endpoint      string
		ca, cert, key string
	}{
		{"c2 admin cert against c1", s1.Endpoints()[0], f1.CACert, f2.AdminCert, f2.AdminKey},
		{"c1 remote cert against c2", s2.Endpoints()[0], f2.CACert, f1.RemoteCert, f1.RemoteKey},
		{"no client cert against c1", s1.Endpoints()[0], f1.CACert, "", ""},
		{"c1 server not trusted with c2's CA", s1.Endpoints()[0], f2.CACert, f2.RemoteCert, f2.RemoteKey},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			c, err := kvstore.New(ctx, discardLogger(), kvstore.Config{
				Endpoints: []string{tt.endpoint}, TrustedCAFile: tt.ca, CertFile: tt.cert, KeyFile: tt.key,
				DialTimeout: time.Second,
			})
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), tt.endpoint) {
				t.Errorf("error does not name %s: %v", tt.endpoint, err)
			}
			// The same identity through a raw client: every request fails.
			raw := etcdClient(t, []string{tt.endpoint}, tt.ca, tt.cert, tt.key)
			rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer rcancel()
			if _, err := raw.Get(rctx, schema.HeartbeatKey); err == nil {
				t.Error("raw client read the heartbeat")
			}
		})
	}
}

// TestRestartKeepsDataAndReinitIsIdempotent restarts an apiserver on the
// same data directory and ports.
func TestRestartKeepsDataAndReinitIsIdempotent(t *testing.T) {
	f := clusterCerts(t, "c1")
	ecfg := embeddedConfig(t, "c1", 1, f)
	ecfg.SyncedCanaries = DefaultSyncedCanaries
	s := start(t, ecfg)
	cfg := s.cfg
	admin := etcdClient(t, s.Endpoints(), f.CACert, f.AdminCert, f.AdminKey)
	// The canaries nothing else vouches for are written with the config.
	for _, p := range DefaultSyncedCanaries {
		if r, err := admin.Get(opCtx(t), schema.CanaryKey("c1", p)); err != nil || len(r.Kvs) != 1 || r.Kvs[0].Lease == 0 {
			t.Errorf("canary of %s: want one leased key, got %v (err %v)", p, r, err)
		}
	}
	if r, err := admin.Get(opCtx(t), schema.CanaryKey("c1", schema.NodesPrefix)); err != nil || len(r.Kvs) != 0 {
		t.Errorf("nodes canary written by the apiserver (the agents vouch for nodes): %v (err %v)", r, err)
	}
	seed(t, admin, "c1", "c2")
	// Somebody widened the remote role by hand; the restart must undo it.
	if _, err := admin.RoleGrantPermission(opCtx(t), RemoteRole, "cilium/", clientv3.GetPrefixRangeEnd("cilium/"), clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	s.stop(t)

	// Stopped (the lease is kept until its TTL, so nothing watched
	// vanishes): data, users and roles stay. Restart on the same ports.
	var s2 *running
	for attempt := 0; ; attempt++ {
		s2 = tryStart(t, cfg)
		if s2 != nil {
			break
		}
		if attempt == 50 {
			t.Fatal("restart: ports stayed busy")
		}
		time.Sleep(100 * time.Millisecond) // a port may linger after close
	}
	admin = etcdClient(t, s2.Endpoints(), f.CACert, f.AdminCert, f.AdminKey)
	r, err := admin.Get(opCtx(t), "cilium/state/nodes/v1/c1/n1")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("seeded key lost across restart: %v", r.Kvs)
	}

	users, err := admin.UserList(opCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(users.Users)
	if diff := cmp.Diff([]string{"admin-c1", "local-c1", "remote", "root"}, users.Users); diff != "" {
		t.Errorf("users (-want +got):\n%s", diff)
	}
	checkRoles(t, admin, "c1")

	// A third setup on the running, auth-enabled etcd is a no-op.
	if err := SetupAuth(opCtx(t), discardLogger(), admin, "c1"); err != nil {
		t.Fatalf("SetupAuth again: %v", err)
	}
	checkRoles(t, admin, "c1")

	remote := etcdClient(t, s2.Endpoints(), f.CACert, f.RemoteCert, f.RemoteKey)
	checkAccess(t, remote, "remote", remoteAccess("c1", "c2"))
}

// tryStart is start for a fixed address: nil when the address is busy.
func tryStart(t *testing.T, cfg Config) *running {
	t.Helper()
	s, err := New(testkit.Logger(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Server: s, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- s.Run(ctx)
		close(r.done)
	}()
	select {
	case <-s.Ready():
		t.Cleanup(func() { r.stop(t) })
		return r
	case err := <-r.done:
		cancel()
		if strings.Contains(err.Error(), "address already in use") {
			return nil
		}
		t.Fatalf("restart: %v", err)
		return nil
	}
}

// checkRoles compares the roles in etcd with Roles(cluster).
func checkRoles(t *testing.T, cli *clientv3.Client, cluster string) {
	t.Helper()
	for _, want := range Roles(cluster) {
		r, err := cli.RoleGet(opCtx(t), want.Name)
		if err != nil {
			t.Fatal(err)
		}
		var got []Perm
		for _, p := range r.Perm {
			if p.PermType != clientv3.PermRead {
				t.Errorf("role %s: %s permission on %q", want.Name, p.PermType, p.Key)
			}
			got = append(got, Perm{Key: string(p.Key), RangeEnd: string(p.RangeEnd)})
		}
		sortPerms(got)
		w := slices.Clone(want.Perms)
		sortPerms(w)
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("role %s permissions (-want +got):\n%s", want.Name, diff)
		}
	}
}

func sortPerms(p []Perm) {
	slices.SortFunc(p, func(a, b Perm) int { return strings.Compare(a.Key+"\x00"+a.RangeEnd, b.Key+"\x00"+b.RangeEnd) })
}

// TestExternalEtcd runs the apiserver against a TLS etcd with client
// certificate auth that it does not own.
func TestExternalEtcd(t *testing.T) {
	f := clusterCerts(t, "ext")
	srv := etcdtest.Start(t, etcdtest.Options{Name: "ext", TLS: &transport.TLSInfo{
		CertFile: f.ServerCert, KeyFile: f.ServerKey, TrustedCAFile: f.CACert, ClientCertAuth: true,
	}})
	cfg := Config{
		ClusterName:       "ext",
		ClusterID:         7,
		Max:               identity.ClusterMax255,
		ExternalEndpoints: srv.Endpoints(),
		ClientCAFile:      f.CACert,
		AdminCertFile:     f.AdminCert,
		AdminKeyFile:      f.AdminKey,
		HeartbeatInterval: time.Hour,
	}
	s := start(t, cfg)
	if diff := cmp.Diff(srv.Endpoints(), s.Endpoints()); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	admin := etcdClient(t, srv.Endpoints(), f.CACert, f.AdminCert, f.AdminKey)
	seed(t, admin, "ext", "c2")
	remote := etcdClient(t, srv.Endpoints(), f.CACert, f.RemoteCert, f.RemoteKey)
	r, err := remote.Get(opCtx(t), schema.ClusterConfigKey("ext"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 1 {
		t.Fatal("no cluster config")
	}
	if diff := cmp.Diff(wantClusterConfig(7, 255), string(r.Kvs[0].Value)); diff != "" {
		t.Errorf("cluster config (-want +got):\n%s", diff)
	}
	checkAccess(t, remote, "remote", remoteAccess("ext", "c2"))
	checkRoles(t, admin, "ext")

	// A second apiserver against the same etcd (e.g. a new replica) finds
	// everything in place.
	s2 := start(t, cfg)
	s2.stop(t)
	s.stop(t)
	// Stopping keeps the lease (it expires on its TTL): a replica that
	// stops, or a restart, never withdraws the cluster config (nor the
	// remote cache) that others watch; its data stays too.
	r, err = admin.Get(opCtx(t), schema.ClusterConfigKey("ext"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 1 || r.Kvs[0].Lease == 0 {
		t.Fatalf("cluster config after stop: want it kept under a lease, got %v", r.Kvs)
	}
	ttl, err := admin.TimeToLive(opCtx(t), clientv3.LeaseID(r.Kvs[0].Lease))
	if err != nil || ttl.TTL <= 0 {
		t.Errorf("lease of the cluster config after stop: %+v, %v (revoked?)", ttl, err)
	}
	r, err = admin.Get(opCtx(t), "cilium/state/nodes/v1/ext/n1")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 1 {
		t.Error("external etcd lost data")
	}
}

// TestKvstoreClientConfig reaches the server through the kvstore client
// config it advertises.
func TestKvstoreClientConfig(t *testing.T) {
	f := clusterCerts(t, "kv")
	s := start(t, embeddedConfig(t, "kv", 9, f))
	c, err := kvstore.New(opCtx(t), discardLogger(), s.ClientConfig(f.LocalCert, f.LocalKey))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, found, err := c.Get(opCtx(t), schema.ClusterConfigKey("kv"))
	if err != nil || !found {
		t.Fatalf("get cluster config: found=%v err=%v", found, err)
	}
	if diff := cmp.Diff(wantClusterConfig(9, 255), string(v)); diff != "" {
		t.Errorf("cluster config (-want +got):\n%s", diff)
	}
	if err := c.Put(opCtx(t), schema.HeartbeatKey, []byte("x")); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("local put: %v, want permission denied", err)
	}
}
