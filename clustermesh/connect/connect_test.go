package connect

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/clustermesh/remoteconfig"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/internal/testkit"
)

// TestContextRefusals covers the refusals decided from the context files
// alone: nothing is dialled, nothing written.
func TestContextRefusals(t *testing.T) {
	mk := func(name string, id, max uint32) *Context {
		c, err := ParseContext([]byte(fmt.Sprintf("cluster: %s\nid: %d\nmaxConnectedClusters: %d\nendpoints: [\"https://127.0.0.1:1\"]\ncertDir: c\nclustermeshConfigDir: m\n", name, id, max)), "/x/"+name)
		if err != nil {
			t.Fatal(err)
		}
		c.Path = name + ".yaml"
		return c
	}
	tests := []struct {
		name    string
		cs      []*Context
		mode    Mode
		want    string
		wantErr error
	}{
		{name: "same name", cs: []*Context{mk("c1", 1, 255), mk("c1", 2, 255)}, wantErr: ErrNameClash,
			want: `connect: cluster names clash: c1.yaml and c1.yaml both name cluster "c1": every cluster of a mesh needs its own name; fix "cluster" in one of them`},
		{name: "same id", cs: []*Context{mk("c1", 1, 255), mk("c2", 1, 255)}, wantErr: ErrIDClash,
			want: `connect: cluster IDs clash: clusters "c1" and "c2" both have ID 1: every cluster of a mesh needs its own ID; give one of them another --cluster-id (and "id" in its context file)`},
		{name: "id above peer max", cs: []*Context{mk("c1", 1, 255), mk("c2", 300, 511)}, wantErr: ErrIDRange,
			want: `connect: cluster ID out of the peer's range: cluster "c2" has ID 300, above the maxConnectedClusters 255 of cluster "c1": give "c2" an ID in 1..255`},
		{name: "different max", cs: []*Context{mk("c1", 1, 255), mk("c2", 2, 511)}, wantErr: ErrMaxMismatch,
			want: `connect: max-connected-clusters differ: cluster "c1" runs maxConnectedClusters 255, cluster "c2" 511: every cluster of a mesh needs the same --max-connected-clusters`},
		{name: "one cluster", cs: []*Context{mk("c1", 1, 255)}, wantErr: ErrUsage,
			want: `connect: invalid usage: 1 context(s) given: name at least two clusters (--context A.yaml --context B.yaml)`},
		{name: "bad mode", cs: []*Context{mk("c1", 1, 255), mk("c2", 2, 255)}, mode: "ring", wantErr: ErrUsage,
			want: `connect: invalid usage: mode "ring": want bidirectional, mesh or unicast`},
		{name: "missing config dir", cs: []*Context{mk("c1", 1, 255), mk("c2", 2, 255)}, wantErr: ErrContext,
			want: `connect: invalid context file: c1.yaml: field "clustermeshConfigDir": stat /x/c1/m: no such file or directory: create it, or point it at the directory the cluster's strait-apiserver watches (--clustermesh-config)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Connect(testkit.Context(t, 5*time.Second), testkit.Logger(t), tt.cs, Options{Mode: tt.mode})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error:\n got %v\nwant %s", err, tt.want)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%v does not match %v", err, tt.wantErr)
			}
		})
	}
}

func TestPairs(t *testing.T) {
	tests := []struct {
		name string
		mode Mode
		cs   []string
		want []Pair
	}{
		{"bidirectional", ModeBidirectional, []string{"a", "b"}, []Pair{{"a", "b"}, {"b", "a"}}},
		{"bidirectional three", "", []string{"a", "b", "c"}, []Pair{{"a", "b"}, {"b", "a"}, {"a", "c"}, {"c", "a"}}},
		{"unicast", ModeUnicast, []string{"a", "b", "c"}, []Pair{{"a", "b"}, {"a", "c"}}},
		{"mesh", ModeMesh, []string{"a", "b", "c"}, []Pair{{"a", "b"}, {"a", "c"}, {"b", "a"}, {"b", "c"}, {"c", "a"}, {"c", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Pairs(tt.cs, tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestConnect runs connect, its refusals, rollback and disconnect against
// real strait-apiservers on loopback, each caching its remotes
// (ClusterMeshConfigDir), so a connection is proven by the peer's
// cilium/cluster-config/<remote> with "cached": true appearing.
func TestConnect(t *testing.T) {
	m := newMesh(t)
	c1 := m.add("c1", 1, clusterOpts{})
	c2 := m.add("c2", 2, clusterOpts{})
	c3 := m.add("c3", 3, clusterOpts{})
	c1.putNode(t, "n1", "10.1.1.0")
	c2.putNode(t, "n1", "10.2.1.0")
	c3.putNode(t, "n1", "10.3.1.0")
	log := testkit.Logger(t)
	ctx := testkit.Context(t, 2*time.Minute)
	ctxs := func(cs ...*tcluster) []*Context {
		var out []*Context
		for _, c := range cs {
			out = append(out, c.context(t))
		}
		return out
	}
	before := map[string]map[string]string{}
	auth := map[string]string{}
	for _, c := range []*tcluster{c1, c2, c3} {
		before[c.name] = dirState(t, c.meshDir)
		auth[c.name] = c.authState(t)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		for _, c := range []*tcluster{c1, c2, c3} {
			if d := cmp.Diff(before[c.name], dirState(t, c.meshDir)); d != "" {
				t.Errorf("files of %s changed (-before +after):\n%s", c.name, d)
			}
		}
	}
	refuse := func(t *testing.T, cs []*Context, opts Options, sentinel error, want string) {
		t.Helper()
		_, err := Connect(ctx, log, cs, opts)
		if err == nil || err.Error() != want {
			t.Fatalf("error:\n got %v\nwant %s", err, want)
		}
		if !errors.Is(err, sentinel) {
			t.Errorf("%v does not match %v", err, sentinel)
		}
		unchanged(t)
	}

	t.Run("unreachable apiserver", func(t *testing.T) {
		dead := "https://" + freeAddr(t)
		p := filepath.Join(c2.base, "dead.yaml")
		writeFile(t, p, fmt.Sprintf("cluster: c2\nid: 2\nendpoints: [%q]\ncertDir: certs\nclustermeshConfigDir: mesh\n", dead))
		host := strings.TrimPrefix(dead, "https://")
		refuse(t, []*Context{c1.context(t), mustLoad(t, p)}, Options{DialTimeout: 2 * time.Second}, ErrUnreachable,
			fmt.Sprintf(`connect: apiserver unreachable: cluster "c2": %s: dial tcp %s: connect: connection refused: check that its strait-apiserver runs and "endpoints" in %s`, dead, host, p))
	})
	t.Run("id disagrees with the apiserver", func(t *testing.T) {
		p := c2.writeContext(t, "c2", 7, 255)
		refuse(t, []*Context{c1.context(t), mustLoad(t, p)}, Options{}, ErrClusterConfig,
			fmt.Sprintf(`connect: cluster config does not match the context: cluster "c2": %s says ID 7, its apiserver announces ID 2 in cilium/cluster-config/c2: fix "id" in %s`, p, p))
	})
	t.Run("name disagrees with the apiserver", func(t *testing.T) {
		p := c2.writeContext(t, "c9", 2, 255)
		refuse(t, []*Context{c1.context(t), mustLoad(t, p)}, Options{}, ErrClusterConfig,
			fmt.Sprintf(`connect: cluster config does not match the context: cluster "c9": its apiserver at %s has no cilium/cluster-config/c9: the apiserver runs under another --cluster-name, or is still starting; fix "cluster" in %s`, c2.srv.Endpoints()[0], p))
	})
	t.Run("pod CIDR overlap", func(t *testing.T) {
		c2.putNode(t, "n2", "10.1.1.0")
		defer func() {
			if err := c2.admin.Delete(ctx, schema.NodeKey("c2", "n2")); err != nil {
				t.Fatal(err)
			}
		}()
		refuse(t, ctxs(c1, c2), Options{}, ErrPodCIDROverlap,
			`connect: pod CIDRs overlap: 10.1.1.0/24 of cluster "c1" (node n1) and 10.1.1.0/24 of cluster "c2" (node n2): pod CIDRs must be disjoint across a mesh; renumber the pods of one cluster`)
	})
	t.Run("already connected", func(t *testing.T) {
		p := filepath.Join(c1.meshDir, "c2")
		writeFile(t, p, "endpoints: [\"https://192.0.2.1:2379\"]\n")
		defer os.Remove(p)
		before[c1.name] = dirState(t, c1.meshDir)
		defer func() { delete(before[c1.name], "c2") }()
		refuse(t, ctxs(c1, c2), Options{}, ErrAlreadyConnected,
			fmt.Sprintf(`connect: already connected: cluster "c1" is already connected to cluster "c2" with other settings (%s differs): run "straitctl disconnect" for the pair first`, p))
	})
	t.Run("rollback when the second cluster's write fails", func(t *testing.T) {
		makeReadOnly(t, c2.meshDir)
		_, err := Connect(ctx, log, ctxs(c1, c2), Options{})
		if !errors.Is(err, ErrApply) {
			t.Fatalf("got %v, want ErrApply", err)
		}
		if !strings.HasPrefix(err.Error(), "connect: applying the change failed: write "+filepath.Join(c2.meshDir, "c1.etcd-client-ca.crt")+": ") ||
			!strings.HasSuffix(err.Error(), "; the 4 earlier change(s) were undone, nothing changed") {
			t.Errorf("error: %v", err)
		}
		unchanged(t)
	})

	var connected map[string]map[string]string
	t.Run("connect bidirectional", func(t *testing.T) {
		res, err := Connect(ctx, log, ctxs(c1, c2), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]Pair{{"c1", "c2"}, {"c2", "c1"}}, res.Changed); d != "" {
			t.Errorf("changed (-want +got):\n%s", d)
		}
		for _, p := range [][2]*tcluster{{c1, c2}, {c2, c1}} {
			l, r := p[0], p[1]
			snap, err := remoteconfig.Scan(l.meshDir)
			if err != nil {
				t.Fatal(err)
			}
			rc, ok := snap.Clusters[r.name]
			if !ok || len(snap.Invalid) > 0 {
				t.Fatalf("%s's dir: %+v", l.name, snap)
			}
			if d := cmp.Diff(r.srv.Endpoints(), rc.Config.Endpoints); d != "" {
				t.Errorf("endpoints (-want +got):\n%s", d)
			}
			if got, want := readFile(t, rc.Config.CertFile), readFile(t, r.files.RemoteCert); string(got) != string(want) {
				t.Errorf("%s: cert-file is not %s's remote.crt", l.name, r.name)
			}
			eventually(t, l.name+" caching "+r.name, func() string {
				v, ok := l.has(t, schema.ClusterConfigKey(r.name))
				if !ok || !strings.Contains(v, `"cached":true`) {
					return fmt.Sprintf("%s = %q, %v", schema.ClusterConfigKey(r.name), v, ok)
				}
				return ""
			})
			// The remote's node arrived in the cache.
			eventually(t, l.name+" caching "+r.name+"'s node", func() string {
				if _, ok := l.has(t, "cilium/cache/nodes/v1/"+r.name+"/n1"); !ok {
					return "missing"
				}
				return ""
			})
		}
		connected = map[string]map[string]string{c1.name: dirState(t, c1.meshDir), c2.name: dirState(t, c2.meshDir)}
		if got := connected["c1"]["c2.etcd-client.key"]; !strings.HasPrefix(got, "-rw-------") {
			t.Errorf("key mode: %q", got[:10])
		}
	})
	t.Run("connect again is a no-op", func(t *testing.T) {
		res, err := Connect(ctx, log, ctxs(c1, c2), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Changed) != 0 || len(res.Unchanged) != 2 {
			t.Errorf("result %+v", res)
		}
		for name, st := range connected {
			dir := c1.meshDir
			if name == "c2" {
				dir = c2.meshDir
			}
			if d := cmp.Diff(st, dirState(t, dir)); d != "" {
				t.Errorf("%s changed:\n%s", name, d)
			}
		}
	})
	t.Run("mesh with a third cluster keeps the existing pair", func(t *testing.T) {
		res, err := Connect(ctx, log, ctxs(c1, c2, c3), Options{Mode: ModeMesh})
		if err != nil {
			t.Fatal(err)
		}
		want := []Pair{{"c1", "c3"}, {"c2", "c3"}, {"c3", "c1"}, {"c3", "c2"}}
		if d := cmp.Diff(want, res.Changed); d != "" {
			t.Errorf("changed (-want +got):\n%s", d)
		}
		eventually(t, "c3 caching c1 and c2", func() string {
			for _, r := range []string{"c1", "c2"} {
				if v, ok := c3.has(t, schema.ClusterConfigKey(r)); !ok || !strings.Contains(v, `"cached":true`) {
					return r + " not cached"
				}
			}
			return ""
		})
	})
	t.Run("disconnect restores files and leaves etcd auth alone", func(t *testing.T) {
		// An unrelated file stays.
		writeFile(t, filepath.Join(c1.meshDir, "notes.txt"), "keep me")
		before[c1.name]["notes.txt"] = dirState(t, c1.meshDir)["notes.txt"]
		res, err := Disconnect(ctx, log, ctxs(c1, c2, c3), Options{Mode: ModeMesh})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Changed) != 6 || len(res.Files) != 24 {
			t.Errorf("result %+v", res)
		}
		unchanged(t)
		for _, c := range []*tcluster{c1, c2, c3} {
			if d := cmp.Diff(auth[c.name], c.authState(t)); d != "" {
				t.Errorf("etcd auth of %s changed:\n%s", c.name, d)
			}
		}
		eventually(t, "c1 dropping c2", func() string {
			if _, ok := c1.has(t, schema.ClusterConfigKey("c2")); ok {
				return "still there"
			}
			return ""
		})
		res, err = Disconnect(ctx, log, ctxs(c1, c2), Options{})
		if err != nil || len(res.Changed) != 0 || len(res.Unchanged) != 2 {
			t.Errorf("second disconnect: %+v, %v", res, err)
		}
	})
	t.Run("unicast", func(t *testing.T) {
		if _, err := Connect(ctx, log, ctxs(c3, c1), Options{Mode: ModeUnicast}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(c3.meshDir, "c1")); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(filepath.Join(c1.meshDir, "c3")); !os.IsNotExist(err) {
			t.Errorf("c1 got a file for c3: %v", err)
		}
		if _, err := Disconnect(ctx, log, ctxs(c3, c1), Options{Mode: ModeUnicast}); err != nil {
			t.Fatal(err)
		}
		unchanged(t)
	})
}

// TestConnectCA covers the CA rule: c5's apiserver presents a server
// certificate issued by c4's CA, not by its own.
func TestConnectCA(t *testing.T) {
	m := newMesh(t)
	c4 := m.add("c4", 4, clusterOpts{})
	c5 := m.add("c5", 5, clusterOpts{serverCA: c4})
	ctx := testkit.Context(t, 2*time.Minute)
	log := testkit.Logger(t)
	cs := []*Context{c4.context(t), c5.context(t)}
	_, err := Connect(ctx, log, cs, Options{})
	want := fmt.Sprintf(`connect: CA mismatch: the apiserver of cluster "c5" presents a certificate issued by the CA of cluster "c4" ("strait-ca-c4"), not by its own CA "strait-ca-c5" in %s: pass --allow-mismatching-ca to trust both CAs, or reissue its server certificate with its own CA`, c5.files.CACert)
	if err == nil || err.Error() != want || !errors.Is(err, ErrCAMismatch) {
		t.Fatalf("error:\n got %v\nwant %s", err, want)
	}
	if st := dirState(t, c4.meshDir); len(st) != 0 {
		t.Errorf("c4's dir: %v", st)
	}
	res, err := Connect(ctx, log, cs, Options{AllowMismatchingCA: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changed) != 2 {
		t.Errorf("result %+v", res)
	}
	// c4 trusts both CAs for c5 and its cache connects.
	if got, want := string(readFile(t, filepath.Join(c4.meshDir, "c5.etcd-client-ca.crt"))), string(bundle(readFile(t, c5.files.CACert), readFile(t, c4.files.CACert))); got != want {
		t.Errorf("bundle:\n%s\nwant\n%s", got, want)
	}
	eventually(t, "c4 caching c5", func() string {
		if v, ok := c4.has(t, schema.ClusterConfigKey("c5")); !ok || !strings.Contains(v, `"cached":true`) {
			return "not cached"
		}
		return ""
	})
	// A server certificate that neither CA issued is refused even with the flag.
	c6 := m.add("c6", 6, clusterOpts{serverCA: c5})
	_, err = Connect(ctx, log, []*Context{c4.context(t), c6.context(t)}, Options{AllowMismatchingCA: true})
	want = fmt.Sprintf(`connect: CA mismatch: the apiserver of cluster "c6" presents a certificate (issuer "strait-ca-c5") that the CA "strait-ca-c6" nor the CA "strait-ca-c4" does not verify (x509: certificate signed by unknown authority): point "certDir" of %s at the certificate directory its strait-apiserver runs with`, c6.ctxPath)
	if err == nil || err.Error() != want || !errors.Is(err, ErrCAMismatch) {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
}

// TestConnectKnownPeers: a new cluster must not clash (ID, pod CIDRs) with
// the clusters a side is already connected to, even when they are not
// listed.
func TestConnectKnownPeers(t *testing.T) {
	m := newMesh(t)
	c1 := m.add("c1", 1, clusterOpts{})
	c2 := m.add("c2", 2, clusterOpts{})
	c4 := m.add("c4", 2, clusterOpts{})
	c5 := m.add("c5", 5, clusterOpts{})
	c1.putNode(t, "n1", "10.1.1.0")
	c2.putNode(t, "n1", "10.2.1.0")
	c4.putNode(t, "n1", "10.4.1.0")
	c5.putNode(t, "n7", "10.2.1.0")
	ctx := testkit.Context(t, 2*time.Minute)
	log := testkit.Logger(t)
	if _, err := Connect(ctx, log, ctxs(t, c1, c2), Options{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "c1 caching c2's node", func() string {
		if _, ok := c1.has(t, "cilium/cache/nodes/v1/c2/n1"); !ok {
			return "missing"
		}
		return ""
	})
	before := dirState(t, c1.meshDir)
	for _, tt := range []struct {
		peer     *tcluster
		sentinel error
		want     string
	}{
		{c4, ErrIDClash, `connect: cluster IDs clash: cluster "c4" has ID 2, the ID of cluster "c2" that cluster "c1" is already connected to: every cluster of a mesh needs its own ID; give "c4" another --cluster-id, or disconnect "c2" from "c1" first`},
		{c5, ErrPodCIDROverlap, `connect: pod CIDRs overlap: 10.2.1.0/24 of cluster "c5" (node n7) and 10.2.1.0/24 of cluster "c2" (node n1), which cluster "c1" is already connected to: pod CIDRs must be disjoint across a mesh; renumber the pods of one cluster`},
	} {
		_, err := Connect(ctx, log, ctxs(t, c1, tt.peer), Options{})
		if err == nil || err.Error() != tt.want || !errors.Is(err, tt.sentinel) {
			t.Errorf("error:\n got %v\nwant %s", err, tt.want)
		}
	}
	if d := cmp.Diff(before, dirState(t, c1.meshDir)); d != "" {
		t.Errorf("c1's files changed:\n%s", d)
	}
	if st := dirState(t, c4.meshDir); len(st) != 0 {
		t.Errorf("c4's files: %v", st)
	}
}

// TestCertificateRefusals: unusable certDir files are refused, naming the
// cluster, the file and the fix, before anything is dialled or written.
func TestCertificateRefusals(t *testing.T) {
	m := newMesh(t)
	c1 := m.add("c1", 1, clusterOpts{})
	c2 := m.add("c2", 2, clusterOpts{})
	ctx := testkit.Context(t, time.Minute)
	t.Run("remote.crt missing", func(t *testing.T) {
		data := readFile(t, c2.files.RemoteCert)
		if err := os.Remove(c2.files.RemoteCert); err != nil {
			t.Fatal(err)
		}
		defer writeFile(t, c2.files.RemoteCert, string(data))
		_, err := Connect(ctx, testkit.Logger(t), ctxs(t, c1, c2), Options{})
		want := fmt.Sprintf(`connect: unusable certificate: cluster "c2": open %s: no such file or directory: check "certDir" in %s`, c2.files.RemoteCert, c2.ctxPath)
		if err == nil || err.Error() != want || !errors.Is(err, ErrCertificate) {
			t.Errorf("error:\n got %v\nwant %s", err, want)
		}
	})
	t.Run("remote.crt with another CN", func(t *testing.T) {
		// c2's local.crt/key in place of remote.crt/key: right CA, wrong user.
		crt, key := readFile(t, c2.files.RemoteCert), readFile(t, c2.files.RemoteKey)
		defer func() { writeFile(t, c2.files.RemoteCert, string(crt)); writeFile(t, c2.files.RemoteKey, string(key)) }()
		writeFile(t, c2.files.RemoteCert, string(readFile(t, c2.files.LocalCert)))
		writeFile(t, c2.files.RemoteKey, string(readFile(t, c2.files.LocalKey)))
		_, err := Connect(ctx, testkit.Logger(t), ctxs(t, c1, c2), Options{})
		want := fmt.Sprintf(`connect: unusable certificate: cluster "c2": %s has CN "local-c2", want "remote": run "strait-apiserver certs generate" for it again`, c2.files.RemoteCert)
		if err == nil || err.Error() != want || !errors.Is(err, ErrCertificate) {
			t.Errorf("error:\n got %v\nwant %s", err, want)
		}
	})
	t.Run("remote.crt of another CA", func(t *testing.T) {
		crt, key := readFile(t, c2.files.RemoteCert), readFile(t, c2.files.RemoteKey)
		defer func() { writeFile(t, c2.files.RemoteCert, string(crt)); writeFile(t, c2.files.RemoteKey, string(key)) }()
		writeFile(t, c2.files.RemoteCert, string(readFile(t, c1.files.RemoteCert)))
		writeFile(t, c2.files.RemoteKey, string(readFile(t, c1.files.RemoteKey)))
		_, err := Connect(ctx, testkit.Logger(t), ctxs(t, c1, c2), Options{})
		if err == nil || !errors.Is(err, ErrCertificate) ||
			!strings.HasPrefix(err.Error(), fmt.Sprintf(`connect: unusable certificate: cluster "c2": %s is not issued by its CA %s (`, c2.files.RemoteCert, c2.files.CACert)) ||
			!strings.HasSuffix(err.Error(), `): run "strait-apiserver certs generate" for it again`) {
			t.Errorf("got %v", err)
		}
	})
	for _, c := range []*tcluster{c1, c2} {
		if st := dirState(t, c.meshDir); len(st) != 0 {
			t.Errorf("%s's files: %v", c.name, st)
		}
	}
}
