package identity_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/identity"
	"github.com/strait-net/strait/internal/etcdtest"
)

// logBuffer collects log lines for assertions and echoes them to t.Log
// while the test runs.
type logBuffer struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
	buf  bytes.Buffer
}

func (w *logBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *logBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func newTestLog(tb testing.TB) (*slog.Logger, *logBuffer) {
	w := &logBuffer{t: tb}
	tb.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	if _, ok := tb.(*testing.B); ok {
		w.done = true
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})), w
}

// agent is one node: its own kvstore client and allocator.
type agent struct {
	a      *identity.Allocator
	client *kvstore.Client
	log    *logBuffer
}

func newClient(tb testing.TB, srv *etcdtest.Server, log *slog.Logger, ttl time.Duration) *kvstore.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kvstore.New(ctx, log, kvstore.Config{Endpoints: srv.Endpoints(), LeaseTTL: ttl})
	if err != nil {
		tb.Fatalf("kvstore.New: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// startAgent runs an allocator for node against srv until the test ends.
func startAgent(tb testing.TB, srv *etcdtest.Server, opts identity.AllocatorOptions, ttl time.Duration) *agent {
	tb.Helper()
	log, buf := newTestLog(tb)
	c := newClient(tb, srv, log, ttl)
	if opts.ClusterMax == 0 {
		opts.ClusterMax = identity.ClusterMax255
	}
	a, err := identity.NewAllocator(log, c, opts)
	if err != nil {
		tb.Fatalf("identity.NewAllocator: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			tb.Errorf("Run: %v", err)
		}
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := a.WaitSynced(wctx); err != nil {
		tb.Fatalf("WaitSynced: %v", err)
	}
	return &agent{a: a, client: c, log: buf}
}

// eventually polls cond until it holds, failing the test after a generous
// bound (a hang guard, not a timing assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// etcdState reads every identity key: id → labels and labels → node → id.
func etcdState(t *testing.T, c *kvstore.Client) (ids map[identity.NumericIdentity]string, refs map[string]map[string]identity.NumericIdentity) {
	t.Helper()
	k := identity.Keys{Prefix: identity.KVStorePrefix}
	ids = map[identity.NumericIdentity]string{}
	refs = map[string]map[string]identity.NumericIdentity{}
	err := c.IdentityList(t.Context(), identity.KVStorePrefix+"/", func(key string, value []byte, _ int64) {
		if strings.HasPrefix(key, k.IDPrefix()) {
			id, err := k.ParseIDKey(key)
			if err != nil {
				t.Errorf("etcd holds %v", err)
				return
			}
			ids[id] = string(value)
			return
		}
		ls, node, err := k.ParseRefKey(key)
		if err != nil {
			t.Errorf("etcd holds %v", err)
			return
		}
		id, err := identity.ParseIDValue(key, value)
		if err != nil {
			t.Errorf("etcd holds %v", err)
			return
		}
		s := ls.KVStoreString()
		if refs[s] == nil {
			refs[s] = map[string]identity.NumericIdentity{}
		}
		refs[s][node] = id
	})
	if err != nil {
		t.Fatalf("list identities: %v", err)
	}
	return ids, refs
}

func labelSet(i int, cluster string) identity.Labels {
	return identity.MustLabels(fmt.Sprintf("k8s:app=app-%d", i), "k8s:io.kubernetes.pod.namespace=ns-"+fmt.Sprint(i%3)).WithCluster(cluster)
}

func TestIdentityConcurrentAgents(t *testing.T) {
	const agents, workers, sets = 3, 6, 24
	srv := etcdtest.Start(t, etcdtest.Options{})
	var as []*agent
	for n := range agents {
		as = append(as, startAgent(t, srv, identity.AllocatorOptions{Node: fmt.Sprintf("node-%d", n)}, time.Minute))
	}
	type result struct {
		set   int
		id    identity.NumericIdentity
		isNew bool
	}
	results := make(chan result, agents*workers*sets)
	var wg sync.WaitGroup
	for n, ag := range as {
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(n), uint64(w)))
				for _, i := range rng.Perm(sets) {
					id, isNew, err := ag.a.Allocate(t.Context(), labelSet(i, "c0"))
					if err != nil {
						t.Errorf("agent %d worker %d set %d: %v", n, w, i, err)
						return
					}
					results <- result{i, id, isNew}
				}
			})
		}
	}
	wg.Wait()
	close(results)

	idOf := map[int]identity.NumericIdentity{}
	setOf := map[identity.NumericIdentity]int{}
	created := map[int]int{}
	for r := range results {
		if old, ok := idOf[r.set]; ok && old != r.id {
			t.Errorf("set %d got two IDs: %d and %d", r.set, old, r.id)
		}
		if old, ok := setOf[r.id]; ok && old != r.set {
			t.Errorf("ID %d given to sets %d and %d", r.id, old, r.set)
		}
		idOf[r.set], setOf[r.id] = r.id, r.set
		if r.isNew {
			created[r.set]++
		}
		first, last := as[0].a.Range()
		if r.id < first || r.id > last {
			t.Errorf("ID %d outside [%d, %d]", r.id, first, last)
		}
	}
	if len(idOf) != sets {
		t.Fatalf("%d sets allocated, want %d", len(idOf), sets)
	}
	for i := range sets {
		if created[i] != 1 {
			t.Errorf("set %d created %d times, want once", i, created[i])
		}
	}

	// etcd holds exactly one id key per set and one reference per node.
	ids, refs := etcdState(t, as[0].client)
	if len(ids) != sets {
		t.Errorf("etcd holds %d id keys, want %d: %v", len(ids), sets, ids)
	}
	for i, id := range idOf {
		s := labelSet(i, "c0").KVStoreString()
		if ids[id] != s {
			t.Errorf("id/%d = %q, want %q", id, ids[id], s)
		}
		if len(refs[s]) != agents {
			t.Errorf("set %d has %d references, want %d", i, len(refs[s]), agents)
		}
		for node, rid := range refs[s] {
			if rid != id {
				t.Errorf("set %d: %s references %d, want %d", i, node, rid, id)
			}
		}
	}
	// Every agent's cache converges on the same mapping, so lookups
	// answer without etcd.
	for n, ag := range as {
		eventually(t, fmt.Sprintf("agent %d cache", n), func() bool { return identity.CacheLen(ag.a) == sets })
		for i, id := range idOf {
			if got, ok := ag.a.LookupByLabels(labelSet(i, "c0")); !ok || got != id {
				t.Errorf("agent %d LookupByLabels(set %d) = %d, %v; want %d", n, i, got, ok, id)
			}
			if ls, ok := ag.a.LookupByID(id); !ok || !ls.Equal(labelSet(i, "c0")) {
				t.Errorf("agent %d LookupByID(%d) = %v, %v", n, id, ls, ok)
			}
		}
	}
}

func TestIdentityTwoClustersDisjoint(t *testing.T) {
	const sets = 30
	for _, max := range []identity.ClusterMax{identity.ClusterMax255, identity.ClusterMax511} {
		t.Run(fmt.Sprintf("max%d", max), func(t *testing.T) {
			srv1 := etcdtest.Start(t, etcdtest.Options{Name: "c1"})
			srv2 := etcdtest.Start(t, etcdtest.Options{Name: "c2"})
			a1 := startAgent(t, srv1, identity.AllocatorOptions{Node: "n", Cluster: 1, ClusterMax: max}, time.Minute)
			a2 := startAgent(t, srv2, identity.AllocatorOptions{Node: "n", Cluster: 2, ClusterMax: max}, time.Minute)
			seen := map[identity.NumericIdentity]identity.ClusterID{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for c, ag := range map[identity.ClusterID]*agent{1: a1, 2: a2} {
				wg.Go(func() {
					for i := range sets {
						// Identical label sets in both clusters on purpose.
						id, _, err := ag.a.Allocate(t.Context(), labelSet(i, "same"))
						if err != nil {
							t.Errorf("cluster %d: %v", c, err)
							return
						}
						if err := identity.ValidateRemote(max, c, id); err != nil {
							t.Errorf("cluster %d handed out %d: %v", c, id, err)
						}
						if got, err := max.ClusterOf(id); err != nil || got != c {
							t.Errorf("ClusterOf(%d) = %d, %v; want %d", id, got, err, c)
						}
						mu.Lock()
						if other, dup := seen[id]; dup {
							t.Errorf("ID %d allocated by clusters %d and %d", id, other, c)
						}
						seen[id] = c
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(seen) != 2*sets {
				t.Errorf("%d distinct IDs, want %d", len(seen), 2*sets)
			}
			// A cluster-1 identity presented as cluster 2's is rejected.
			id1, _ := a1.a.LookupByLabels(labelSet(0, "same"))
			if err := identity.ValidateRemote(max, 2, id1); !errors.Is(err, identity.ErrOutOfRange) {
				t.Errorf("identity.ValidateRemote(cluster 2, %d) = %v, want identity.ErrOutOfRange", id1, err)
			}
		})
	}
}

// fakeClock is a settable clock for the garbage collector's grace period.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestIdentityDeadAgentExpiresAndGC(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	const grace = time.Minute
	dying := startAgent(t, srv, identity.AllocatorOptions{Node: "dying"}, 2*time.Second)
	keeper := startAgent(t, srv, identity.AllocatorOptions{Node: "keeper", GCGrace: grace, Now: clock.Now}, time.Minute)
	ctx := t.Context()
	shared, solo := labelSet(1, "c0"), labelSet(2, "c0")

	idShared, _, err := dying.a.Allocate(ctx, shared)
	if err != nil {
		t.Fatal(err)
	}
	idSolo, _, err := dying.a.Allocate(ctx, solo)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := keeper.a.Allocate(ctx, shared); err != nil || got != idShared {
		t.Fatalf("keeper got %d, %v; want %d", got, err, idShared)
	}

	// The agent dies: its etcd connection goes away without revoking the
	// lease, so its references live until the lease expires.
	dying.client.Etcd().Close()
	eventually(t, "references of the dead agent expire", func() bool {
		_, refs := etcdState(t, keeper.client)
		_, a := refs[shared.KVStoreString()]["dying"]
		_, b := refs[solo.KVStoreString()]["dying"]
		return !a && !b
	})

	collect := func() []identity.NumericIdentity {
		t.Helper()
		got, err := keeper.a.CollectGarbage(ctx)
		if err != nil {
			t.Fatalf("CollectGarbage: %v", err)
		}
		return got
	}
	// First sighting of the orphan only starts its grace period.
	if got := collect(); len(got) != 0 {
		t.Fatalf("collected %v before the grace period", got)
	}
	clock.Advance(grace / 2)
	if got := collect(); len(got) != 0 {
		t.Fatalf("collected %v within the grace period", got)
	}
	clock.Advance(grace)
	if got := collect(); len(got) != 1 || got[0] != idSolo {
		t.Fatalf("collected %v, want only the unreferenced %d (the keeper still holds %d)", got, idSolo, idShared)
	}
	ids, _ := etcdState(t, keeper.client)
	if _, ok := ids[idShared]; !ok {
		t.Fatalf("referenced identity %d was deleted", idShared)
	}
	if _, ok := ids[idSolo]; ok {
		t.Fatalf("identity %d survived collection", idSolo)
	}
	eventually(t, "cache drops the collected identity", func() bool {
		_, ok := keeper.a.LookupByID(idSolo)
		return !ok
	})

	// The keeper releases too: collected after its own grace period.
	if released, err := keeper.a.Release(ctx, shared); err != nil || !released {
		t.Fatalf("Release = %v, %v", released, err)
	}
	if got := collect(); len(got) != 0 {
		t.Fatalf("collected %v at first sighting", got)
	}
	clock.Advance(2 * grace)
	if got := collect(); len(got) != 1 || got[0] != idShared {
		t.Fatalf("collected %v, want %d", got, idShared)
	}
	if ids, refs := etcdState(t, keeper.client); len(ids) != 0 || len(refs) != 0 {
		t.Errorf("etcd still holds %v %v", ids, refs)
	}
}

func TestIdentityGCNeverCollectsReferenced(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	ag := startAgent(t, srv, identity.AllocatorOptions{Node: "n", GCGrace: time.Second, Now: clock.Now}, time.Minute)
	ctx := t.Context()
	ls := labelSet(1, "c0")
	// Released: becomes a candidate.
	id, _, err := ag.a.Allocate(ctx, ls)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ag.a.Release(ctx, ls); err != nil {
		t.Fatal(err)
	}
	if got, _ := ag.a.CollectGarbage(ctx); len(got) != 0 {
		t.Fatalf("collected %v at first sighting", got)
	}
	// Re-used before the grace period ends: the orphan is joined again
	// (same ID) and must survive any number of collections.
	eventually(t, "cache holds the identity", func() bool { _, ok := ag.a.LookupByID(id); return ok })
	again, isNew, err := ag.a.Allocate(ctx, ls)
	if err != nil || again != id || isNew {
		t.Fatalf("re-allocate = %d, %v, %v; want the orphan %d re-joined", again, isNew, err, id)
	}
	for range 3 {
		clock.Advance(time.Hour)
		if got, err := ag.a.CollectGarbage(ctx); err != nil || len(got) != 0 {
			t.Fatalf("collected %v (%v) while referenced", got, err)
		}
	}
}

func TestIdentityRangeFull(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	raw := srv.Client(t)
	// A writer outside this allocator already took 300 and 301.
	for _, id := range []string{"300", "301"} {
		if _, err := raw.Put(t.Context(), identity.KVStorePrefix+"/id/"+id, "k8s:other="+id+";"); err != nil {
			t.Fatal(err)
		}
	}
	opts := identity.AllocatorOptions{Node: "n", Cluster: 5}
	identity.SetTestRange(&opts, 300, 303)
	opts.Cluster = 0
	ag := startAgent(t, srv, opts, time.Minute)
	got := map[identity.NumericIdentity]bool{}
	for i := range 2 {
		id, _, err := ag.a.Allocate(t.Context(), labelSet(i, "c0"))
		if err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
		got[id] = true
	}
	if !got[302] || !got[303] {
		t.Fatalf("allocated %v, want 302 and 303", got)
	}
	_, _, err := ag.a.Allocate(t.Context(), labelSet(9, "c0"))
	if !errors.Is(err, identity.ErrRangeFull) {
		t.Fatalf("Allocate on a full range = %v, want identity.ErrRangeFull", err)
	}
	for _, want := range []string{"cluster 0", "[300, 303]", "app-9"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	// Known sets still resolve on a full range.
	if _, _, err := ag.a.Allocate(t.Context(), labelSet(0, "c0")); err != nil {
		t.Errorf("re-allocating a known set on a full range: %v", err)
	}
}

func TestIdentityBadInput(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	raw := srv.Client(t)
	ctx := t.Context()
	k := identity.Keys{Prefix: identity.KVStorePrefix}
	badRef := labelSet(1, "c0").KVStoreString()
	farRef := labelSet(2, "c0").KVStoreString()
	for key, val := range map[string]string{
		k.IDPrefix() + "abc":      "k8s:a=b;",                        // id not a number
		k.IDKey(70000):            "k8s:far=away;",                   // cluster 1's ID in cluster 0's etcd
		k.IDKey(400):              "no-source=here;",                 // unparsable labels
		k.RefKey(badRef, "other"): "four-hundred",                    // reference not a number
		k.RefKey(farRef, "other"): "70000",                           // reference outside the range
		k.IDKey(401):              labelSet(3, "c0").KVStoreString(), // a good one
	} {
		if _, err := raw.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
	}
	ag := startAgent(t, srv, identity.AllocatorOptions{Node: "n"}, time.Minute)

	// The cache skipped the bad entries with an error log and went on.
	if ls, ok := ag.a.LookupByID(401); !ok || !ls.Equal(labelSet(3, "c0")) {
		t.Errorf("good identity 401 missing from the cache: %v %v", ls, ok)
	}
	if _, ok := ag.a.LookupByID(70000); ok {
		t.Error("out-of-range identity 70000 is in the cache")
	}
	if _, ok := ag.a.LookupByID(400); ok {
		t.Error("identity 400 with bad labels is returned by lookups")
	}
	logs := ag.log.String()
	for _, want := range []string{k.IDPrefix() + "abc", k.IDKey(70000), k.IDKey(400)} {
		if !strings.Contains(logs, want) {
			t.Errorf("no error log naming %q", want)
		}
	}

	tests := []struct {
		name    string
		labels  identity.Labels
		wantErr error
		naming  string
	}{
		{"reference not a number", labelSet(1, "c0"), identity.ErrMalformedValue, k.RefKey(badRef, "other")},
		{"reference outside range", labelSet(2, "c0"), identity.ErrOutOfRange, k.RefKey(farRef, "other")},
		{"no source", identity.Labels{{Key: "app", Value: "web"}}, identity.ErrNoSource, "app=web"},
		{"unsorted", identity.Labels{{"k8s", "b", "1"}, {"k8s", "a", "1"}}, identity.ErrNotCanonical, "k8s:b=1;k8s:a=1;"},
		{"semicolon in value", identity.Labels{{"k8s", "a", "x;y"}}, identity.ErrMalformedLabel, "x;y"},
		{"empty", identity.Labels{}, identity.ErrNoLabels, ""},
		{"too large", identity.Labels{{"k8s", "blob", strings.Repeat("x", identity.MaxLabelsBytes)}}, identity.ErrLabelsTooLarge, "k8s:blob=xxxx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ag.a.Allocate(ctx, tc.labels)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Allocate = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.naming) {
				t.Errorf("error %q does not name %q", err, tc.naming)
			}
		})
	}

	// The largest accepted label set does fit in one etcd transaction.
	big := identity.Labels{{"k8s", "blob", strings.Repeat("y", identity.MaxLabelsBytes-len("k8s:blob=;"))}}
	if id, _, err := ag.a.Allocate(ctx, big); err != nil {
		t.Fatalf("label set of exactly identity.MaxLabelsBytes: %v", err)
	} else if _, err := ag.a.Release(ctx, big); err != nil {
		t.Fatalf("release %d: %v", id, err)
	}
}

func TestIdentityRefCounting(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ag := startAgent(t, srv, identity.AllocatorOptions{Node: "n"}, time.Minute)
	ctx := t.Context()
	ls := labelSet(1, "c0")
	refKey := identity.Keys{Prefix: identity.KVStorePrefix}.RefKey(ls.KVStoreString(), "n")
	id1, new1, err1 := ag.a.Allocate(ctx, ls)
	id2, new2, err2 := ag.a.Allocate(ctx, ls)
	if err1 != nil || err2 != nil || id1 != id2 || !new1 || new2 {
		t.Fatalf("two allocations: (%d %v %v) (%d %v %v)", id1, new1, err1, id2, new2, err2)
	}
	hasRef := func() bool {
		_, found, err := ag.client.Get(ctx, refKey)
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	if rel, err := ag.a.Release(ctx, ls); err != nil || rel || !hasRef() {
		t.Fatalf("first release = %v, %v, ref present %v; want reference kept", rel, err, hasRef())
	}
	if rel, err := ag.a.Release(ctx, ls); err != nil || !rel || hasRef() {
		t.Fatalf("second release = %v, %v, ref present %v; want reference deleted", rel, err, hasRef())
	}
	if _, err := ag.a.Release(ctx, ls); !errors.Is(err, identity.ErrNotAllocated) {
		t.Fatalf("third release = %v, want identity.ErrNotAllocated", err)
	}
	// Reserved label sets never touch etcd.
	if id, _, err := ag.a.Allocate(ctx, identity.MustLabels("reserved:host")); err != nil || id != identity.ReservedHost {
		t.Errorf("Allocate(reserved:host) = %d, %v", id, err)
	}
}

func TestIdentityLeaseLossRestoresReferences(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ag := startAgent(t, srv, identity.AllocatorOptions{Node: "n"}, time.Minute)
	ctx := t.Context()
	ls := labelSet(1, "c0")
	id, _, err := ag.a.Allocate(ctx, ls)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := ag.client.LeaseID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Revoking the lease from outside drops the reference, as an expiry would.
	if _, err := srv.Client(t).Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	refKey := identity.Keys{Prefix: identity.KVStorePrefix}.RefKey(ls.KVStoreString(), "n")
	eventually(t, "reference restored under a new lease", func() bool {
		v, found, err := ag.client.Get(ctx, refKey)
		return err == nil && found && string(v) == strconv.FormatUint(uint64(id), 10)
	})
}

func TestIdentityOptions(t *testing.T) {
	log, _ := newTestLog(t)
	for _, tc := range []struct {
		name string
		opts identity.AllocatorOptions
		want error
	}{
		{"no node", identity.AllocatorOptions{ClusterMax: identity.ClusterMax255}, identity.ErrInvalidNode},
		{"slash in node", identity.AllocatorOptions{Node: "a/b", ClusterMax: identity.ClusterMax255}, identity.ErrInvalidNode},
		{"bad max", identity.AllocatorOptions{Node: "n", ClusterMax: 100}, identity.ErrInvalidClusterMax},
		{"cluster over max", identity.AllocatorOptions{Node: "n", ClusterMax: identity.ClusterMax255, Cluster: 300}, identity.ErrInvalidClusterID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := identity.NewAllocator(log, nil, tc.opts); !errors.Is(err, tc.want) {
				t.Fatalf("identity.NewAllocator = %v, want %v", err, tc.want)
			}
		})
	}
}
