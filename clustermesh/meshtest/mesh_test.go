package meshtest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/kvstoremesh"
	"github.com/strait-net/strait/clustermesh/meshstate"
	"github.com/strait-net/strait/clustermesh/schema"
)

// populate publishes one node and two ipcache entries per cluster; cluster
// i (1-based) uses 10.<i>.0.0/16 pods on node 172.18.0.<i>.
func populate(t *testing.T, cs map[string]*cluster) {
	t.Helper()
	for _, c := range cs {
		host := fmt.Sprintf("172.18.0.%d", c.id)
		c.pub.publish(t, []*schema.Node{c.node("n1", host)}, []*schema.IPIdentityPair{
			c.ip(fmt.Sprintf("10.%d.0.1", c.id), host, 100),
			c.ip(fmt.Sprintf("10.%d.0.2", c.id), host, 101),
		})
	}
}

// waitJoined waits until every cluster's agent sees every other's node
// and ipcache entries.
func waitJoined(t *testing.T, cs map[string]*cluster) {
	t.Helper()
	for _, c := range cs {
		for _, r := range cs {
			if r == c {
				continue
			}
			eventually(t, c.name+" sees "+r.name, func() string {
				if m := c.remoteReady(r.name); m != "" {
					return m
				}
				if m := c.agentNode(r.name, "n1"); m != "" {
					return m
				}
				for _, n := range []int{1, 2} {
					if m := c.agentIP(r.name, fmt.Sprintf("10.%d.0.%d", r.id, n)); m != "" {
						return m
					}
				}
				return ""
			})
		}
	}
}

// nodeEvents records the node events an agent delivers.
type nodeEvents struct {
	mu  sync.Mutex
	evs []meshstate.NodeEvent
}

func recordNodes(t *testing.T, st *meshstate.State) *nodeEvents {
	r := &nodeEvents{}
	cancel := st.SubscribeNodes(func(e meshstate.NodeEvent) {
		r.mu.Lock()
		r.evs = append(r.evs, e)
		r.mu.Unlock()
	})
	t.Cleanup(cancel)
	return r
}

// has reports "" when, for cluster, an event first of op first on node
// name was delivered and later one of op then (OpSynced: for the cluster,
// any node).
func (r *nodeEvents) has(first meshstate.Op, cluster, name string, then meshstate.Op) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := false
	for _, e := range r.evs {
		if e.Cluster != cluster {
			continue
		}
		if !seen && e.Op == first && e.Key == name {
			seen = true
			continue
		}
		if seen && e.Op == then && (then == meshstate.OpSynced || e.Key == name) {
			return ""
		}
	}
	return fmt.Sprintf("no %s %s/%s followed by %s among %d events", first, cluster, name, then, len(r.evs))
}

func TestJoinLeaveRejoin(t *testing.T) {
	t.Parallel() // mostly waiting: run the scenarios side by side
	const grace, ttl = 2 * time.Second, 5 * time.Second
	cs := newMesh(t, options{removalGrace: grace, cacheTTL: ttl}, "a", "b", "c")
	a, b := cs["a"], cs["b"]
	events := recordNodes(t, a.agent)
	populate(t, cs)
	waitJoined(t, cs)
	for _, r := range []string{"b", "c"} {
		eventually(t, "a's agent delivers "+r+"'s node and synced", func() string {
			return events.has(meshstate.OpUpsert, r, "n1", meshstate.OpSynced)
		})
	}

	// A change in b reaches a's and c's agents.
	if err := b.pub.ips.Upsert(b.ip("10.2.0.3", "172.18.0.2", 102)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*cluster{a, cs["c"]} {
		eventually(t, c.name+" sees the new entry of b", func() string { return c.agentIP("b", "10.2.0.3") })
	}

	// Leave: b's file goes from a's directory.
	cfgKey := schema.ClusterConfigKey("b")
	cacheKey := schema.CacheNodesPrefix + "/b/n1"
	removed := time.Now()
	a.disconnect(t, b)
	eventually(t, "a's cluster-config of b deleted", func() string {
		if a.has(t, cfgKey) {
			return cfgKey + " present"
		}
		return ""
	})
	// The cached data is still there (grace) unless the grace is already over.
	st, ok := a.srv.RemoteStatus("b")
	present := a.has(t, cacheKey)
	if time.Since(removed) < grace {
		if !present {
			t.Errorf("%s deleted before the removal grace", cacheKey)
		}
		if !ok || !st.Draining {
			t.Errorf("a's status of b within its grace: %+v (known %v), want draining", st, ok)
		}
	}
	eventually(t, "a's cached data of b deleted", func() string {
		if a.has(t, cacheKey) {
			return cacheKey + " present"
		}
		return ""
	})
	if d := time.Since(removed); d < grace {
		t.Errorf("cached data of b deleted after %s, before the removal grace %s", d, grace)
	}
	// c still follows b.
	if m := cs["c"].agentNode("b", "n1"); m != "" {
		t.Error(m)
	}
	eventually(t, "a's agent revokes b", func() string {
		if _, ok := a.agent.Node("b", "n1"); ok || !a.agentLacksIP("10.2.0.1") {
			return "b's state still in a's agent"
		}
		return ""
	})
	if d := time.Since(removed); d < ttl {
		t.Errorf("a's agent revoked b after %s, before its cache TTL %s", d, ttl)
	}
	eventually(t, "a's agent delivers the deletion of b's node after its upsert", func() string {
		return events.has(meshstate.OpUpsert, "b", "n1", meshstate.OpDelete)
	})
	if m := a.agentIP("c", "10.3.0.1"); m != "" {
		t.Errorf("c affected by b's removal: %s", m)
	}

	// Re-join.
	a.connect(t, b)
	eventually(t, "a's cluster-config of b back", func() string {
		if !a.has(t, cfgKey) {
			return cfgKey + " absent"
		}
		return ""
	})
	eventually(t, "a sees b again", func() string {
		if m := a.remoteReady("b"); m != "" {
			return m
		}
		if m := a.agentNode("b", "n1"); m != "" {
			return m
		}
		return a.agentIP("b", "10.2.0.3")
	})
}

func TestEntryClaimingOtherClusterRejected(t *testing.T) {
	t.Parallel() // mostly waiting: run the scenarios side by side
	cs := newMesh(t, options{}, "a", "b", "c")
	a, b, c := cs["a"], cs["b"], cs["c"]
	populate(t, cs)
	waitJoined(t, cs)

	// b writes, with its admin certificate, entries that claim cluster c.
	evilNode, err := c.node("evil", "172.18.9.9").Marshal() // value says cluster c
	if err != nil {
		t.Fatal(err)
	}
	evilIP, err := c.ip("10.2.9.9", "172.18.0.2", 100).Marshal() // identity in c's range
	if err != nil {
		t.Fatal(err)
	}
	ctx := opCtx(t)
	for k, v := range map[string][]byte{
		schema.NodesPrefix + "/b/evil":        evilNode,
		schema.IPPrefix + "/default/10.2.9.9": evilIP,
		// Under c's prefix of b's etcd: not b's to publish, never read
		// (only cilium/state/nodes/v1/b/ is), so neither mirrored nor counted.
		schema.NodesPrefix + "/c/x": evilNode,
	} {
		if err := b.admin.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	// A valid entry written after them: once a's agent has it, the
	// invalid ones have been processed too.
	if err := b.pub.ips.Upsert(b.ip("10.2.0.8", "172.18.0.2", 108)); err != nil {
		t.Fatal(err)
	}
	for _, l := range []*cluster{a, c} {
		eventually(t, l.name+" sees the valid entry after the invalid ones", func() string { return l.agentIP("b", "10.2.0.8") })
		failures := l.metrics.Failures.WithLabelValues("b", string(kvstoremesh.ReasonInvalidEntry))
		eventually(t, l.name+" counts the invalid entries", func() string {
			if got := testutil.ToFloat64(failures); got != 2 {
				return fmt.Sprintf("invalid_entry failures of b = %v, want 2", got)
			}
			return ""
		})
		for _, k := range []string{schema.CacheNodesPrefix + "/b/evil", schema.CacheIPPrefix + "/b/10.2.9.9", schema.CacheNodesPrefix + "/c/x"} {
			if l.has(t, k) {
				t.Errorf("%s: %s mirrored", l.name, k)
			}
		}
		if _, ok := l.agent.Node("b", "evil"); ok {
			t.Errorf("%s's agent has b/evil", l.name)
		}
		for _, n := range []string{"evil", "x"} {
			if _, ok := l.agent.Node("c", n); ok {
				t.Errorf("%s's agent has c/%s", l.name, n)
			}
		}
		if !l.agentLacksIP("10.2.9.9") {
			t.Errorf("%s's agent has 10.2.9.9", l.name)
		}
		st, _ := l.srv.RemoteStatus("b")
		if st.InvalidEntries != 2 {
			t.Errorf("%s's status of b: %d invalid entries, want 2", l.name, st.InvalidEntries)
		}
		if got := testutil.ToFloat64(l.metrics.Failures.WithLabelValues("c", string(kvstoremesh.ReasonInvalidEntry))); got != 0 {
			t.Errorf("%s: invalid_entry failures of c = %v, want 0", l.name, got)
		}
	}
}

func TestRestartHalfPopulated(t *testing.T) {
	t.Parallel() // mostly waiting: run the scenarios side by side
	cs := newMesh(t, options{}, "a", "b", "c")
	a, b := cs["a"], cs["b"]
	populate(t, cs)
	if err := b.pub.nodes.Upsert(b.node("n2", "172.18.1.2")); err != nil {
		t.Fatal(err)
	}
	waitJoined(t, cs)
	eventually(t, "a sees b/n2", func() string { return a.agentNode("b", "n2") })

	// b's publishers stop and its apiserver restarts on the same data;
	// its etcd comes back half-populated: the nodes canary and n2 gone.
	b.pub.stop()
	b.stop(t)
	b.start(t)
	nodesCanary := schema.CanaryKey("b", schema.NodesPrefix)
	_, err := b.admin.Etcd().Txn(opCtx(t)).Then(
		clientv3.OpDelete(nodesCanary),
		clientv3.OpDelete(schema.NodesPrefix+"/b/n2"),
	).Commit()
	if err != nil {
		t.Fatal(err)
	}
	localCanary := schema.CanaryKey("b", schema.CacheNodesPrefix)
	eventually(t, "a's nodes mirror of b waits for the canary", func() string {
		st, _ := a.srv.RemoteStatus("b")
		for _, k := range st.Kinds {
			if k.Kind == kvstoremesh.KindNodes && k.State == kvstoremesh.PrefixWaitingCanary {
				if a.has(t, localCanary) {
					return localCanary + " still present"
				}
				return ""
			}
		}
		return fmt.Sprintf("status %+v", st)
	})
	// Another prefix still flows: a raw ipcache entry reaches a's agent,
	// so a has processed b's state past the deletions.
	late, err := b.ip("10.2.0.9", "172.18.0.2", 109).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.admin.Put(opCtx(t), schema.IPPrefix+"/default/10.2.0.9", late); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's agent sees the late entry", func() string { return a.agentIP("b", "10.2.0.9") })

	// Not taken as complete: nothing pruned, not ready.
	if !a.has(t, schema.CacheNodesPrefix+"/b/n2") {
		t.Error("a's cache pruned b/n2 from a half-populated etcd")
	}
	if m := a.agentNode("b", "n2"); m != "" {
		t.Errorf("from a half-populated etcd: %s", m)
	}
	if st, _ := a.srv.RemoteStatus("b"); st.Ready {
		t.Error("a's cache marks b ready without its nodes canary")
	}
	if a.has(t, localCanary) {
		t.Errorf("%s written without b's canary", localCanary)
	}

	// An agent of a started now has never seen b complete: it must not
	// take b's nodes from a cache whose canary is absent. Its ipcache of b
	// syncs (that canary is there), which shows it is reading b.
	fresh := startAgent(t, a, 0)
	if err := fresh.ClusterSynced(opCtx(t), "b", meshstate.KindIPCache); err != nil {
		t.Fatal(err)
	}
	if _, ok := fresh.Node("b", "n1"); ok {
		t.Error("a fresh agent took b's nodes without the nodes canary")
	}
	for _, st := range fresh.Status() {
		if st.Name == "b" && st.Ready {
			t.Errorf("a fresh agent marks b ready without the nodes canary: %+v", st)
		}
	}

	// b's publishers re-sync (n2 is gone for good): convergence.
	b.pub = startPublishers(t, b)
	b.pub.publish(t, []*schema.Node{b.node("n1", "172.18.0.2")}, []*schema.IPIdentityPair{
		b.ip("10.2.0.1", "172.18.0.2", 100),
		b.ip("10.2.0.2", "172.18.0.2", 101),
		b.ip("10.2.0.9", "172.18.0.2", 109),
	})
	for _, l := range []*cluster{a, cs["c"]} {
		eventually(t, l.name+" converges on b", func() string {
			if m := l.remoteReady("b"); m != "" {
				return m
			}
			if _, ok := l.agent.Node("b", "n2"); ok {
				return "b/n2 still in " + l.name + "'s agent"
			}
			if l.has(t, schema.CacheNodesPrefix+"/b/n2") {
				return "b/n2 still in " + l.name + "'s cache"
			}
			if !l.has(t, localCanary) {
				return localCanary + " absent"
			}
			if m := l.agentNode("b", "n1"); m != "" {
				return m
			}
			return l.agentIP("b", "10.2.0.9")
		})
	}
	if err := fresh.ClusterSynced(opCtx(t), "b"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the fresh agent converges on b", func() string {
		if _, ok := fresh.Node("b", "n2"); ok {
			return "b/n2 in the fresh agent"
		}
		return a.agentNode("b", "n1")
	})
	if _, ok := fresh.Node("b", "n1"); !ok {
		t.Error("the fresh agent lacks b/n1 after b's canaries returned")
	}
}
