package kvstoremesh

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// wantCanaries is the set of local canaries of a fully synced cluster.
func wantCanaryKeys(cluster string) []string {
	var out []string
	for _, k := range AllKinds() {
		out = append(out, schema.CanaryKey(cluster, k.CachePrefix()))
	}
	slices.Sort(out)
	return out
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

func TestMirrorConverges(t *testing.T) {
	l := startLocal(t)
	b := startCluster(t, "b", 2, true)
	want := b.populate(t)
	b.writeAllCanaries(t)
	tm := startMesh(t, l.client(t), nil)
	tm.add(b)

	tm.waitReady(t, "b")
	l.waitCache(t, "b", want)
	if d := cmp.Diff(wantCanaryKeys("b"), sortedKeys(l.localCanaries(t, "b"))); d != "" {
		t.Errorf("local canaries (-want +got):\n%s", d)
	}
	// The local cluster config is the remote's plus cached and syncedCanaries.
	cfgs := l.dump(t, schema.ClusterConfigKey("b"))
	cc, err := schema.DecodeClusterConfig(schema.ClusterConfigKey("b"), []byte(cfgs[schema.ClusterConfigKey("b")]),
		schema.Origin{Cluster: "b", Max: identity.ClusterMax255})
	if err != nil {
		t.Fatalf("local cluster config: %v", err)
	}
	wantCC := &schema.ClusterConfig{Cluster: "b", ID: 2, Capabilities: schema.Capabilities{
		SyncedCanaries: true, Cached: true, MaxConnectedClusters: identity.ClusterMax255,
	}}
	if d := cmp.Diff(wantCC, cc); d != "" {
		t.Errorf("local cluster config (-want +got):\n%s", d)
	}

	// Updates, creations and deletions follow.
	k, v := b.node(t, "n1", "172.18.0.99")
	b.put(t, k, v)
	want["cilium/cache/nodes/v1/b/n1"] = v
	k, v = b.node(t, "n3", "172.18.0.4")
	b.put(t, k, v)
	want["cilium/cache/nodes/v1/b/n3"] = v
	b.del(t, "cilium/state/ip/v1/default/10.1.0.5")
	delete(want, "cilium/cache/ip/v1/b/10.1.0.5")
	k, v = b.identity(b.identityID(102), "cache")
	b.put(t, k, v)
	want[fmt.Sprintf("cilium/cache/identities/v1/b/id/%d", b.identityID(102))] = v
	b.del(t, "cilium/state/services/v1/b/default/web")
	delete(want, "cilium/cache/services/v1/b/default/web")
	// Keys of other clusters and identity references are not ours to copy.
	b.put(t, "cilium/state/nodes/v1/b2/n1", "{}")
	b.put(t, "cilium/state/identities/v1/value/k8s:app=web;/10.0.0.1", "131172")
	l.waitCache(t, "b", want)

	st, _ := tm.Status("b")
	wantSt := Status{
		Cluster: "b", Configured: true, Connected: true, Ready: true, ClusterID: 2, SyncedCanaries: true,
		Kinds: []KindStatus{
			{Kind: KindNodes, State: PrefixSynced, Entries: 3},
			{Kind: KindServices, State: PrefixSynced, Entries: 0},
			{Kind: KindServiceExports, State: PrefixSynced, Entries: 1},
			{Kind: KindIdentities, State: PrefixSynced, Entries: 3},
			{Kind: KindIP, State: PrefixSynced, Entries: 1},
		},
	}
	if d := cmp.Diff(wantSt, st); d != "" {
		t.Errorf("status (-want +got):\n%s", d)
	}
	if got := testutil.ToFloat64(tm.metrics.Entries.WithLabelValues("b", "nodes")); got != 3 {
		t.Errorf("entries{b,nodes} = %v, want 3", got)
	}
	if got := testutil.ToFloat64(tm.metrics.Ready); got != 1 {
		t.Errorf("ready clusters = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(tm.metrics.SyncSeconds); got != 5 {
		t.Errorf("initial sync histograms = %d, want 5 (one per kind)", got)
	}
}

func TestWithoutSyncedCanariesStartsAtOnce(t *testing.T) {
	l := startLocal(t)
	b := startCluster(t, "b", 2, false)
	want := b.populate(t)
	tm := startMesh(t, l.client(t), nil)
	tm.add(b)
	tm.waitReady(t, "b")
	l.waitCache(t, "b", want)
	if d := cmp.Diff(wantCanaryKeys("b"), sortedKeys(l.localCanaries(t, "b"))); d != "" {
		t.Errorf("local canaries (-want +got):\n%s", d)
	}
}

func TestWaitsForRemoteCanary(t *testing.T) {
	l := startLocal(t)
	b := startCluster(t, "b", 2, true)
	want := b.populate(t)
	tm := startMesh(t, l.client(t), nil)
	tm.add(b)

	for _, k := range AllKinds() {
		tm.waitKind(t, "b", k, PrefixWaitingCanary)
	}
	eventually(t, "local cluster config", func() string {
		if !l.has(t, schema.ClusterConfigKey("b")) {
			return "absent"
		}
		return ""
	})
	if got := l.cache(t, "b"); len(got) != 0 {
		t.Errorf("mirrored without canary: %v", keys(got))
	}
	if got := l.localCanaries(t, "b"); len(got) != 0 {
		t.Errorf("local canaries without remote canary: %v", keys(got))
	}
	if st, _ := tm.Status("b"); st.Ready {
		t.Errorf("ready without canaries: %+v", st)
	}

	// One canary releases one prefix.
	b.writeCanary(t, KindNodes)
	tm.waitKind(t, "b", KindNodes, PrefixSynced)
	nodes := map[string]string{}
	for k, v := range want {
		if strings.HasPrefix(k, schema.CacheNodesPrefix) {
			nodes[k] = v
		}
	}
	l.waitCache(t, "b", nodes)
	if d := cmp.Diff([]string{schema.CanaryKey("b", schema.CacheNodesPrefix)}, sortedKeys(l.localCanaries(t, "b"))); d != "" {
		t.Errorf("local canaries (-want +got):\n%s", d)
	}

	b.writeAllCanaries(t)
	tm.waitReady(t, "b")
	l.waitCache(t, "b", want)
}

func TestRemoteRestartHalfPopulated(t *testing.T) {
	l := startLocal(t)
	b := startCluster(t, "b", 2, true)
	want := b.populate(t)
	b.writeAllCanaries(t)
	tm := startMesh(t, l.client(t), nil)
	tm.add(b)
	tm.waitReady(t, "b")
	l.waitCache(t, "b", want)

	// The remote restarts: its canary goes first, then it is re-populated
	// only partly (n2 missing, n1 changed, n4 new).
	b.deleteCanary(t, KindNodes)
	tm.waitKind(t, "b", KindNodes, PrefixWaitingCanary)
	nodesCanary := schema.CanaryKey("b", schema.CacheNodesPrefix)
	eventually(t, "local nodes canary deleted", func() string {
		if l.has(t, nodesCanary) {
			return "present"
		}
		return ""
	})
	b.del(t, "cilium/state/nodes/v1/b/n2")
	k1, v1 := b.node(t, "n1", "172.18.0.50")
	b.put(t, k1, v1)
	k4, v4 := b.node(t, "n4", "172.18.0.51")
	b.put(t, k4, v4)
	// Other prefixes still follow.
	k, v := b.identity(b.identityID(103), "late")
	b.put(t, k, v)
	want[fmt.Sprintf("cilium/cache/identities/v1/b/id/%d", b.identityID(103))] = v
	l.waitCache(t, "b", want) // nodes untouched: nothing pruned, nothing half-copied

	st, _ := tm.Status("b")
	if st.Ready || l.has(t, nodesCanary) {
		t.Errorf("marked complete before the remote canary is back: ready=%v canary=%v", st.Ready, l.has(t, nodesCanary))
	}

	b.writeCanary(t, KindNodes)
	tm.waitReady(t, "b")
	delete(want, "cilium/cache/nodes/v1/b/n2")
	want["cilium/cache/nodes/v1/b/n1"] = v1
	want["cilium/cache/nodes/v1/b/n4"] = v4
	l.waitCache(t, "b", want)
	if !l.has(t, nodesCanary) {
		t.Error("local nodes canary not rewritten after the re-sync")
	}
}

func TestInvalidEntriesRejected(t *testing.T) {
	l := startLocal(t)
	b := startCluster(t, "b", 2, true)
	c := &cluster{name: "c", id: 3}
	want := b.populate(t)

	// Entries in b's etcd that claim cluster c.
	_, v := c.node(t, "evil", "172.18.9.9")
	b.put(t, "cilium/state/nodes/v1/b/evil", v) // value says cluster c
	k, v := c.identity(c.identityID(100), "evil")
	b.put(t, k, v) // ID in c's range
	k, v = b.ip(t, "10.1.9.9", c.identityID(100))
	b.put(t, k, v) // ipcache entry pointing at c's identity
	_, v = b.identity(b.identityID(200), "x")
	b.put(t, fmt.Sprintf("cilium/state/identities/v1/id/%d", b.identityID(200)), strings.Replace(v, "=b;", "=c;", 1)) // b's range, label says c
	b.put(t, "cilium/state/services/v1/b/default/broken", "{not json")
	b.writeAllCanaries(t)

	tm := startMesh(t, l.client(t), nil)
	tm.add(b)
	tm.waitReady(t, "b")
	l.waitCache(t, "b", want)
	if got := tm.failures("b", ReasonInvalidEntry); got != 5 {
		t.Errorf("invalid_entry failures = %v, want 5", got)
	}
	st, _ := tm.Status("b")
	if st.InvalidEntries != 5 || !strings.Contains(st.LastInvalidEntry, "cilium/state/") {
		t.Errorf("status invalid entries = %d, last %q", st.InvalidEntries, st.LastInvalidEntry)
	}

	// A valid entry turning invalid loses its copy.
	_, v = c.node(t, "n1", "172.18.0.2")
	b.put(t, "cilium/state/nodes/v1/b/n1", v)
	delete(want, "cilium/cache/nodes/v1/b/n1")
	l.waitCache(t, "b", want)
	if got := tm.failures("b", ReasonInvalidEntry); got != 6 {
		t.Errorf("invalid_entry failures = %v, want 6", got)
	}
}

func TestRemovalGrace(t *testing.T) {
	l := startLocal(t)
	b := startCluster(t, "b", 2, true)
	want := b.populate(t)
	b.writeAllCanaries(t)
	grace := make(chan time.Time)
	var (
		mu    sync.Mutex
		asked []time.Duration
	)
	tm := startMesh(t, l.client(t), func(o *Options) { o.RemovalGrace = time.Hour })
	tm.after = func(d time.Duration) <-chan time.Time {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, d)
		return grace
	}
	tm.add(b)
	tm.waitReady(t, "b")
	l.waitCache(t, "b", want)

	tm.Remove(context.Background(), "b")
	eventually(t, "local cluster config deleted", func() string {
		if l.has(t, schema.ClusterConfigKey("b")) {
			return "present"
		}
		return ""
	})
	if d := cmp.Diff(want, l.cache(t, "b")); d != "" {
		t.Errorf("cached data deleted before the grace (-want +got):\n%s", d)
	}
	st, ok := tm.Status("b")
	if !ok || !st.Draining || st.Configured {
		t.Errorf("status after removal: %+v", st)
	}
	if got := testutil.ToFloat64(tm.metrics.Configured); got != 0 {
		t.Errorf("configured clusters = %v, want 0", got)
	}

	// Re-adding within the grace cancels the deletion.
	tm.add(b)
	select {
	case grace <- time.Now():
		t.Fatal("a drain still waits for the grace after re-adding")
	default:
	}
	tm.waitReady(t, "b")
	l.waitCache(t, "b", want)
	eventually(t, "local cluster config rewritten", func() string {
		if !l.has(t, schema.ClusterConfigKey("b")) {
			return "absent"
		}
		return ""
	})

	// Removed again, the data goes when the grace ends.
	tm.Remove(context.Background(), "b")
	eventually(t, "local cluster config deleted", func() string {
		if l.has(t, schema.ClusterConfigKey("b")) {
			return "present"
		}
		return ""
	})
	if d := cmp.Diff(want, l.cache(t, "b")); d != "" {
		t.Errorf("cached data deleted before the grace (-want +got):\n%s", d)
	}
	grace <- time.Now()
	l.waitCache(t, "b", map[string]string{})
	eventually(t, "local canaries deleted", func() string {
		if c := l.localCanaries(t, "b"); len(c) > 0 {
			return fmt.Sprint(keys(c))
		}
		return ""
	})
	eventually(t, "status forgotten", func() string {
		if st, ok := tm.Status("b"); ok {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	mu.Lock()
	defer mu.Unlock()
	if d := cmp.Diff([]time.Duration{time.Hour, time.Hour}, asked); d != "" {
		t.Errorf("grace periods asked (-want +got):\n%s", d)
	}
}

func TestRemovalGraceRealTimer(t *testing.T) {
	l := startLocal(t)
	b := startCluster(t, "b", 2, false)
	want := b.populate(t)
	tm := startMesh(t, l.client(t), func(o *Options) { o.RemovalGrace = 200 * time.Millisecond })
	tm.add(b)
	tm.waitReady(t, "b")
	l.waitCache(t, "b", want)
	tm.Remove(context.Background(), "b")
	l.waitCache(t, "b", map[string]string{})
	if l.has(t, schema.ClusterConfigKey("b")) {
		t.Error("local cluster config still present")
	}
}

func TestUnreachableKeepsData(t *testing.T) {
	l := startLocal(t)
	b := startCluster(t, "b", 2, true)
	want := b.populate(t)
	b.writeAllCanaries(t)
	tm := startMesh(t, l.client(t), nil)
	tm.add(b)
	tm.waitReady(t, "b")
	l.waitCache(t, "b", want)

	b.srv.Stop()
	eventually(t, "disconnected", func() string {
		st, _ := tm.Status("b")
		if st.Connected || st.Reason != ReasonUnreachable {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	if d := cmp.Diff(want, l.cache(t, "b")); d != "" {
		t.Errorf("cached data changed while unreachable (-want +got):\n%s", d)
	}
	if !l.has(t, schema.ClusterConfigKey("b")) {
		t.Error("local cluster config deleted while unreachable")
	}
	if got := testutil.ToFloat64(tm.metrics.Connected); got != 0 {
		t.Errorf("connected clusters = %v, want 0", got)
	}

	b.srv.Restart()
	eventually(t, "reconnected", func() string {
		st, _ := tm.Status("b")
		if !st.Connected || st.Reason != ReasonNone {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	k, v := b.node(t, "n9", "172.18.0.9")
	b.put(t, k, v)
	want["cilium/cache/nodes/v1/b/n9"] = v
	l.waitCache(t, "b", want)
}

func TestConnectErrorReported(t *testing.T) {
	l := startLocal(t)
	b := startCluster(t, "b", 2, false)
	want := b.populate(t)
	b.srv.Stop()
	tm := startMesh(t, l.client(t), func(o *Options) { o.ConnectTimeout = 300 * time.Millisecond })
	tm.add(b)
	eventually(t, "connect error", func() string {
		st, _ := tm.Status("b")
		if st.Reason != ReasonConnectError || !strings.Contains(st.LastError, "connect to b") || tm.failures("b", ReasonConnectError) < 1 {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	b.srv.Restart()
	tm.waitReady(t, "b")
	l.waitCache(t, "b", want)
}

func TestClusterIDClash(t *testing.T) {
	l := startLocal(t)
	b := startCluster(t, "b", 2, false)
	c := startCluster(t, "c", 2, false)
	d := startCluster(t, "d", localID, false)
	want := b.populate(t)
	cWant := c.populate(t)
	d.populate(t)
	tm := startMesh(t, l.client(t), nil)
	tm.add(b)
	tm.waitReady(t, "b")
	tm.add(c)
	tm.add(d)
	for name, other := range map[string]string{"c": `remote cluster "b"`, "d": `local cluster "local"`} {
		eventually(t, name+" refused", func() string {
			st, _ := tm.Status(name)
			if st.Reason != ReasonConfigClash || !strings.Contains(st.LastError, other) || tm.failures(name, ReasonConfigClash) < 1 {
				return fmt.Sprintf("%+v", st)
			}
			return ""
		})
	}
	l.waitCache(t, "b", want)
	for _, name := range []string{"c", "d"} {
		if got := l.cache(t, name); len(got) != 0 {
			t.Errorf("refused cluster %s mirrored: %v", name, keys(got))
		}
		if l.has(t, schema.ClusterConfigKey(name)) {
			t.Errorf("refused cluster %s has a local cluster config", name)
		}
		if st, _ := tm.Status(name); st.Ready || st.ClusterID != 0 {
			t.Errorf("refused cluster %s: %+v", name, st)
		}
	}

	// When b leaves, its ID is free and c is accepted.
	tm.Remove(context.Background(), "b")
	tm.waitReady(t, "c")
	l.waitCache(t, "c", cWant)
}

func TestInvalidRemoteConfig(t *testing.T) {
	l := startLocal(t)
	b := startCluster(t, "b", 2, false)
	want := b.populate(t)
	b.del(t, schema.ClusterConfigKey("b"))
	tm := startMesh(t, l.client(t), nil)
	tm.add(b)
	eventually(t, "missing config", func() string {
		if st, _ := tm.Status("b"); st.Reason != ReasonMissingConfig {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	b.put(t, schema.ClusterConfigKey("b"), `{"id":300,"capabilities":{}}`)
	eventually(t, "invalid config", func() string {
		if st, _ := tm.Status("b"); st.Reason != ReasonInvalidConfig || !strings.Contains(st.LastError, `field "id"`) {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	if got := l.cache(t, "b"); len(got) != 0 {
		t.Errorf("mirrored with an invalid config: %v", keys(got))
	}
	b.writeConfig(t, schema.ClusterConfig{Cluster: "b", ID: 2})
	tm.waitReady(t, "b")
	l.waitCache(t, "b", want)

	// A config change to another ID re-validates: entries of ID 2 are now
	// invalid and their copies go once the new sync completes.
	b.writeConfig(t, schema.ClusterConfig{Cluster: "b", ID: 5})
	eventually(t, "new ID", func() string {
		if st, _ := tm.Status("b"); st.ClusterID != 5 || !st.Ready {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	l.waitCache(t, "b", map[string]string{
		// valid for any ID: the reserved-identity ipcache entry and the
		// export (which carries no cluster ID)
		"cilium/cache/ip/v1/b/10.1.0.6":                want["cilium/cache/ip/v1/b/10.1.0.6"],
		"cilium/cache/serviceexports/v1/b/default/web": want["cilium/cache/serviceexports/v1/b/default/web"],
	})
}

func TestMeshRestartPrunesAfterResync(t *testing.T) {
	l := startLocal(t)
	b := startCluster(t, "b", 2, true)
	want := b.populate(t)
	b.writeAllCanaries(t)
	lc1 := l.client(t) // stays open: the first Mesh "crashes" without revoking
	tm1 := startMesh(t, lc1, nil)
	tm1.add(b)
	tm1.waitReady(t, "b")
	l.waitCache(t, "b", want)
	tm1.stop()
	if d := cmp.Diff(want, l.cache(t, "b")); d != "" {
		t.Fatalf("stopping the Mesh changed the cache (-want +got):\n%s", d)
	}

	// While no Mesh runs, b loses n2 and is re-populating its nodes.
	b.deleteCanary(t, KindNodes)
	b.del(t, "cilium/state/nodes/v1/b/n2")
	b.del(t, "cilium/state/ip/v1/default/10.1.0.6")

	tm2 := startMesh(t, l.client(t), nil)
	tm2.add(b)
	tm2.waitKind(t, "b", KindIP, PrefixSynced)
	tm2.waitKind(t, "b", KindNodes, PrefixWaitingCanary)
	// ip had its canary: the stale entry is pruned after its re-sync.
	delete(want, "cilium/cache/ip/v1/b/10.1.0.6")
	l.waitCache(t, "b", want)
	// nodes had none: the stale n2 stays, and so does no local canary.
	if !l.has(t, "cilium/cache/nodes/v1/b/n2") {
		t.Error("stale node pruned before the remote canary is back")
	}
	if l.has(t, schema.CanaryKey("b", schema.CacheNodesPrefix)) {
		t.Error("local nodes canary of the previous run still present")
	}

	b.writeCanary(t, KindNodes)
	tm2.waitReady(t, "b")
	delete(want, "cilium/cache/nodes/v1/b/n2")
	l.waitCache(t, "b", want)

	// Closing the first Mesh's client revokes its lease; every copy was
	// re-written under the second Mesh's lease and survives.
	if err := lc1.Close(); err != nil {
		t.Fatal(err)
	}
	l.waitCache(t, "b", want)
	if d := cmp.Diff(wantCanaryKeys("b"), sortedKeys(l.localCanaries(t, "b"))); d != "" {
		t.Errorf("local canaries (-want +got):\n%s", d)
	}
}

func TestUpdateReconnects(t *testing.T) {
	l := startLocal(t)
	b1 := startCluster(t, "b", 2, false)
	want1 := b1.populate(t)
	b2 := startCluster(t, "b", 2, false)
	k, v := b2.node(t, "only-in-b2", "172.18.1.1")
	b2.put(t, k, v)
	tm := startMesh(t, l.client(t), nil)
	tm.add(b1)
	tm.waitReady(t, "b")
	l.waitCache(t, "b", want1)

	// The config file now points at another etcd of b.
	tm.Update(context.Background(), b2.remoteConfig())
	l.waitCache(t, "b", map[string]string{"cilium/cache/nodes/v1/b/only-in-b2": v})
	tm.waitReady(t, "b")

	// An invalid file keeps the connection; the same config again clears it.
	tm.Invalid(context.Background(), "b", fmt.Errorf("config/b: field \"endpoints\": bad"))
	st, _ := tm.Status("b")
	if st.Reason != ReasonInvalidConfigFile || !st.Ready {
		t.Errorf("after Invalid: %+v", st)
	}
	tm.Update(context.Background(), b2.remoteConfig())
	st, _ = tm.Status("b")
	if st.Reason != ReasonNone || !st.Ready {
		t.Errorf("after Update with the same config: %+v", st)
	}

	// A name only ever invalid is forgotten on Remove.
	tm.Invalid(context.Background(), "x", fmt.Errorf("config/x: bad"))
	if _, ok := tm.Status("x"); !ok {
		t.Error("invalid-only cluster has no status")
	}
	tm.Remove(context.Background(), "x")
	if _, ok := tm.Status("x"); ok {
		t.Error("invalid-only cluster kept after Remove")
	}
}

func TestAddBeforeRunAndOptions(t *testing.T) {
	l := startLocal(t)
	lc := l.client(t)
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"no local", Options{ClusterName: "a", ClusterID: 1, ClusterMax: 255}},
		{"bad max", Options{Local: lc, ClusterName: "a", ClusterID: 1, ClusterMax: 100}},
		{"bad id", Options{Local: lc, ClusterName: "a", ClusterID: 300, ClusterMax: 255}},
		{"bad name", Options{Local: lc, ClusterName: "A_", ClusterID: 1, ClusterMax: 255}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(testkit.Logger(t), tt.opts); err == nil || !strings.Contains(err.Error(), ErrOptions.Error()) {
				t.Errorf("New: %v, want ErrOptions", err)
			}
		})
	}

	b := startCluster(t, "b", 2, false)
	want := b.populate(t)
	m, err := New(testkit.Logger(t), Options{Local: lc, ClusterName: localName, ClusterID: localID, ClusterMax: 255,
		RetryMin: 50 * time.Millisecond, ProbeInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m.Add(context.Background(), b.remoteConfig())
	if st, _ := m.Status("b"); !st.Configured || st.Connected {
		t.Errorf("before Run: %+v", st)
	}
	ctx, cancel := context.WithCancel(testkit.Context(t, 3*time.Minute))
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	eventually(t, "ready", func() string {
		if st, _ := m.Status("b"); !st.Ready {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	l.waitCache(t, "b", want)
	if err := m.Run(ctx); err != ErrRunning {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if d := cmp.Diff(want, l.cache(t, "b")); d != "" {
		t.Errorf("Run's end changed the cache (-want +got):\n%s", d)
	}
}
