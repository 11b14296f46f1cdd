package kvstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/internal/etcdtest"
)

func TestClientReadWrite(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{Name: "rw"})
	c := newTestClient(t, srv, Config{})
	raw := srv.Client(t)

	if _, found, err := c.Get(ctx, "cilium/x"); err != nil || found {
		t.Fatalf("Get missing = found %v, %v", found, err)
	}
	for _, k := range []string{"cilium/p/a", "cilium/p/b", "cilium/q"} {
		if err := c.Put(ctx, k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	v, found, err := c.Get(ctx, "cilium/p/a")
	if err != nil || !found || string(v) != "v-cilium/p/a" {
		t.Fatalf("Get = %q, %v, %v", v, found, err)
	}
	if err := c.Delete(ctx, "cilium/p/a"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePrefix(ctx, "cilium/p/"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"cilium/q": "v-cilium/q"}, etcdContent(ctx, t, c, "cilium/")); diff != "" {
		t.Fatalf("content (-want +got):\n%s", diff)
	}

	// A leased key carries the session lease and vanishes with Close.
	if err := c.PutLeased(ctx, "cilium/leased", []byte("x")); err != nil {
		t.Fatal(err)
	}
	id, err := c.LeaseID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := raw.Get(ctx, "cilium/leased")
	if err != nil || len(resp.Kvs) != 1 || clientv3.LeaseID(resp.Kvs[0].Lease) != id {
		t.Fatalf("leased key = %v, %v; want lease %x", resp, err, id)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if resp, err := raw.Get(ctx, "cilium/leased"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("leased key after Close = %v, %v; want gone", resp, err)
	}
	if _, err := c.LeaseID(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("LeaseID after Close = %v, want ErrClosed", err)
	}
}

// TestLeaseExpiry: a writer that dies without revoking its lease loses its
// entries when the lease expires; a live writer whose lease is revoked
// behind its back re-writes its entries under a new lease.
func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{Name: "lease"})
	observer := newTestClient(t, srv, Config{})
	raw := srv.Client(t)
	const prefix = schema.NodesPrefix + "/c1/"
	events := observer.ListAndWatch(ctx, prefix)
	if ev := recv(ctx, t, events); ev.Kind != EventListDone {
		t.Fatalf("first event = %+v, want list-done", ev)
	}
	view := map[string]string{}
	apply := func(ev Event) {
		switch ev.Kind {
		case EventUpsert:
			view[ev.Key] = string(ev.Value)
		case EventDelete:
			delete(view, ev.Key)
		}
	}
	cfg := Config{Endpoints: srv.Endpoints(), LeaseTTL: 2 * time.Second, MaxBackoff: 500 * time.Millisecond}
	startStore := func(name string) (*Client, *SyncStore, context.CancelFunc) {
		c, err := New(ctx, testkit.Logger(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s := NewSyncStore(c, testkit.Logger(t), SyncStoreOptions{Prefix: prefix + name, Cluster: "c1", CanaryPrefix: prefix + name})
		s.Upsert("n1", []byte(name+"-1"))
		s.Upsert("n2", []byte(name+"-2"))
		s.Synced()
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(sctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("SyncStore.Run: %v", err)
			}
		})
		select {
		case <-s.InitialSyncDone():
		case <-ctx.Done():
			t.Fatal("initial sync not done")
		}
		return c, s, cancel
	}

	dead, _, stopDead := startStore("dead")
	live, liveStore, _ := startStore("live")
	want := map[string]string{
		prefix + "dead/n1": "dead-1", prefix + "dead/n2": "dead-2",
		prefix + "live/n1": "live-1", prefix + "live/n2": "live-2",
	}
	for !cmp.Equal(view, want) {
		apply(recv(ctx, t, events))
	}

	// The dead writer stops renewing: no revoke, the lease must expire.
	stopDead()
	if err := dead.Etcd().Close(); err != nil {
		t.Logf("close raw client: %v", err)
	}
	delete(want, prefix+"dead/n1")
	delete(want, prefix+"dead/n2")
	for !cmp.Equal(view, want) {
		apply(recv(ctx, t, events))
	}

	// Revoke the live writer's lease from outside: its entries vanish and
	// come back under a new lease.
	old, err := live.LeaseID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Revoke(ctx, old); err != nil {
		t.Fatal(err)
	}
	sawDelete := false
	for !sawDelete || !cmp.Equal(view, want) {
		ev := recv(ctx, t, events)
		sawDelete = sawDelete || ev.Kind == EventDelete
		apply(ev)
	}
	for _, key := range []string{liveStore.Key("n1"), liveStore.Key("n2")} {
		resp, err := raw.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s = %v, %v", key, resp, err)
		}
		if l := clientv3.LeaseID(resp.Kvs[0].Lease); l == old || l == clientv3.NoLease {
			t.Fatalf("%s has lease %x after re-grant, old lease %x", key, l, old)
		}
	}
	// The canary was revoked with the entries and is written again.
	if err := observer.WaitForCanary(ctx, "c1", prefix+"live"); err != nil {
		t.Fatal(err)
	}
}

// consumer materializes a watch and records every upsert per key.
type consumer struct {
	view    map[string]string
	upserts map[string][]int64 // key → revisions of its upserts
	deletes map[string]int
}

func newConsumer() *consumer {
	return &consumer{view: map[string]string{}, upserts: map[string][]int64{}, deletes: map[string]int{}}
}

func (c *consumer) apply(ev Event) {
	switch ev.Kind {
	case EventUpsert:
		c.view[ev.Key] = string(ev.Value)
		c.upserts[ev.Key] = append(c.upserts[ev.Key], ev.Revision)
	case EventDelete:
		delete(c.view, ev.Key)
		c.deletes[ev.Key]++
	}
}

// TestWatchSurvivesRestart: writes before an etcd stop and after its
// restart all reach the consumer exactly once, and it ends with etcd's
// content.
func TestWatchSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{Name: "restart"})
	c := newTestClient(t, srv, Config{DialTimeout: time.Second, MaxBackoff: 500 * time.Millisecond})
	raw := srv.Client(t)
	const prefix = schema.IPPrefix + "/default/"
	key := func(s string, i int) string { return fmt.Sprintf("%s%s%d", prefix, s, i) }
	for i := 0; i < 20; i++ {
		if _, err := raw.Put(ctx, key("k", i), "v0"); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := c.ListAndWatch(wctx, prefix)
	con := newConsumer()
	for _, ev := range recvUntil(ctx, t, events, func(ev Event) bool { return ev.Kind == EventListDone }) {
		con.apply(ev)
	}
	// Writes before the stop; the consumer may or may not see them before.
	for i := 0; i < 5; i++ {
		if _, err := raw.Put(ctx, key("k", i), "v1"); err != nil {
			t.Fatal(err)
		}
	}
	srv.Stop()
	srv.Restart()
	for i := 5; i < 10; i++ {
		if _, err := raw.Delete(ctx, key("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 10; i < 15; i++ {
		if _, err := raw.Put(ctx, key("k", i), "v2"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		if _, err := raw.Put(ctx, key("n", i), "new"); err != nil {
			t.Fatal(err)
		}
	}
	sentinel := prefix + "zz-sentinel"
	if _, err := raw.Put(ctx, sentinel, "end"); err != nil {
		t.Fatal(err)
	}
	for _, ev := range recvUntil(ctx, t, events, func(ev Event) bool { return ev.Key == sentinel }) {
		con.apply(ev)
	}
	if diff := cmp.Diff(etcdContent(ctx, t, c, prefix), con.view); diff != "" {
		t.Fatalf("consumer view (-etcd +consumer):\n%s", diff)
	}
	for k, revs := range con.upserts {
		if !slices.IsSorted(revs) || len(slices.Compact(slices.Clone(revs))) != len(revs) {
			t.Errorf("%s: upsert revisions %v repeat", k, revs)
		}
	}
	for i := 15; i < 20; i++ {
		if n := len(con.upserts[key("k", i)]); n != 1 {
			t.Errorf("unchanged %s: %d upserts, want 1", key("k", i), n)
		}
	}
	for k, n := range con.deletes {
		if n != 1 {
			t.Errorf("%s: %d deletes, want 1", k, n)
		}
	}
}

// TestCompactionRelists: a consumer resuming from a compacted revision is
// re-listed and receives exactly the differences.
func TestCompactionRelists(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{Name: "compact"})
	c := newTestClient(t, srv, Config{MaxBackoff: 500 * time.Millisecond})
	raw := srv.Client(t)
	const prefix = schema.ServicesPrefix + "/c1/"
	key := func(s string, i int) string { return fmt.Sprintf("%sns/%s%03d", prefix, s, i) }
	for i := 0; i < 100; i++ {
		if _, err := raw.Put(ctx, key("k", i), "v0"); err != nil {
			t.Fatal(err)
		}
	}
	cache := NewCache()
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); cache.Run(wctx, c.ListAndWatch(wctx, prefix)) }()
	select {
	case <-cache.Synced():
	case <-ctx.Done():
		t.Fatal("cache not synced")
	}
	cancel() // the consumer goes away ...
	<-done
	snap := cache.Snapshot()

	// ... while much changes and the history is compacted.
	for i := 0; i < 50; i++ {
		if _, err := raw.Delete(ctx, key("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 50; i < 60; i++ {
		if _, err := raw.Put(ctx, key("k", i), "v1"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		if _, err := raw.Put(ctx, key("n", i), "new"); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := raw.Put(ctx, prefix+"zz-sentinel", "end")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// Check the premise: the consumer's revision is gone.
	probe := raw.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(snap.Revision+1))
	if wr := <-probe; !errors.Is(wr.Err(), rpctypes.ErrCompacted) {
		t.Fatalf("watch from %d: %v, want compacted", snap.Revision+1, wr.Err())
	}

	final := etcdContent(ctx, t, c, prefix)
	events := c.Watch(ctx, prefix, WatchOptions{Resume: &snap})
	// Deletes found by a re-list follow its upserts, so wait for the end
	// state rather than for the sentinel.
	got := recvUntil(ctx, t, events, func(ev Event) bool {
		cache.Apply(ev)
		return cmp.Equal(final, cache.Entries())
	})
	if got[0].Kind != EventListDone || got[0].Revision != snap.Revision {
		t.Fatalf("first event %+v, want list-done at %d", got[0], snap.Revision)
	}
	type change struct{ Kind, Key, Value string }
	var gotChanges, wantChanges []change
	deleteRevs := map[int64]bool{}
	for _, ev := range got[1:] {
		gotChanges = append(gotChanges, change{ev.Kind.String(), ev.Key, string(ev.Value)})
		if ev.Kind == EventDelete {
			deleteRevs[ev.Revision] = true
		}
	}
	for i := 0; i < 50; i++ {
		wantChanges = append(wantChanges, change{"delete", key("k", i), ""})
	}
	for i := 50; i < 60; i++ {
		wantChanges = append(wantChanges, change{"upsert", key("k", i), "v1"})
	}
	for i := 0; i < 10; i++ {
		wantChanges = append(wantChanges, change{"upsert", key("n", i), "new"})
	}
	wantChanges = append(wantChanges, change{"upsert", prefix + "zz-sentinel", "end"})
	less := func(a, b change) int { return strings.Compare(a.Key, b.Key) }
	slices.SortFunc(gotChanges, less)
	slices.SortFunc(wantChanges, less)
	if diff := cmp.Diff(wantChanges, gotChanges); diff != "" {
		t.Fatalf("changes after compaction (-want +got):\n%s", diff)
	}
	// A re-list reports all vanished keys at the one list revision.
	if len(deleteRevs) != 1 {
		t.Fatalf("delete revisions %v, want the single re-list revision", deleteRevs)
	}
	if diff := cmp.Diff(etcdContent(ctx, t, c, prefix), cache.Entries()); diff != "" {
		t.Fatalf("cache (-etcd +cache):\n%s", diff)
	}
}

// TestCanaryGatesConsumer: with two clusters' etcds at once, a consumer
// requiring the canary lists a prefix only after the canary exists, while
// one that does not require it starts at once.
func TestCanaryGatesConsumer(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t, 2*time.Minute)
	srv1 := etcdtest.Start(t, etcdtest.Options{Name: "c1"})
	srv2 := etcdtest.Start(t, etcdtest.Options{Name: "c2"})
	c1 := newTestClient(t, srv1, Config{})
	c2 := newTestClient(t, srv2, Config{})

	prefix := func(cluster string) string { return schema.NodesPrefix + "/" + cluster }
	stores := map[string]*SyncStore{}
	for name, c := range map[string]*Client{"c1": c1, "c2": c2} {
		s := NewSyncStore(c, testkit.Logger(t), SyncStoreOptions{Prefix: prefix(name), Cluster: name, CanaryPrefix: schema.NodesPrefix})
		s.Upsert("node-a", []byte(name+"-a"))
		s.Upsert("node-b", []byte(name+"-b"))
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.Run(sctx) }()
		t.Cleanup(func() { cancel(); <-done })
		stores[name] = s
	}
	// Both stores have written their entries but not their canary.
	for name, c := range map[string]*Client{"c1": c1, "c2": c2} {
		wctx, cancel := context.WithCancel(ctx)
		seen := map[string]bool{}
		for ev := range c.ListAndWatch(wctx, prefix(name)+"/") {
			seen[ev.Key] = ev.Kind == EventUpsert
			if seen[prefix(name)+"/node-a"] && seen[prefix(name)+"/node-b"] {
				break
			}
		}
		cancel()
	}

	gated := c1.WatchSynced(ctx, "c1", schema.NodesPrefix, true)
	ungated := c2.WatchSynced(ctx, "c2", schema.NodesPrefix, false)
	evs := recvUntil(ctx, t, ungated, func(ev Event) bool { return ev.Kind == EventListDone })
	if len(evs) != 3 {
		t.Fatalf("ungated consumer: %d events, want 2 upserts and list-done", len(evs))
	}
	select {
	case ev := <-gated:
		t.Fatalf("gated consumer got %+v before the canary", ev)
	default:
	}

	stores["c1"].Synced()
	<-stores["c1"].InitialSyncDone()
	canary, err := c1.Etcd().Get(ctx, schema.CanaryKey("c1", schema.NodesPrefix))
	if err != nil || len(canary.Kvs) != 1 {
		t.Fatalf("canary = %v, %v", canary, err)
	}
	if _, err := time.Parse(time.RFC3339, string(canary.Kvs[0].Value)); err != nil {
		t.Fatalf("canary value: %v", err)
	}
	evs = recvUntil(ctx, t, gated, func(ev Event) bool { return ev.Kind == EventListDone })
	if len(evs) != 3 {
		t.Fatalf("gated consumer: %d events, want 2 upserts and list-done", len(evs))
	}
	// Had it listed before the canary, its list revision would be older.
	if done := evs[2]; done.Revision < canary.Kvs[0].ModRevision {
		t.Fatalf("gated list at revision %d, before the canary at %d", done.Revision, canary.Kvs[0].ModRevision)
	}
}

// TestSyncStoreRestart: a restarted writer prunes what it no longer wants
// only after its own initial sync.
func TestSyncStoreRestart(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{Name: "restart-store"})
	raw := srv.Client(t)
	const prefix = schema.ServicesPrefix + "/c1"
	run := func(s *SyncStore) func() {
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.Run(sctx) }()
		return func() { cancel(); <-done }
	}

	// First life: a, b, c.
	first, err := New(ctx, testkit.Logger(t), Config{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	s1 := NewSyncStore(first, testkit.Logger(t), SyncStoreOptions{Prefix: prefix, Cluster: "c1", CanaryPrefix: schema.ServicesPrefix})
	for _, n := range []string{"ns/a", "ns/b", "ns/c"} {
		s1.Upsert(n, []byte("v1"))
	}
	s1.Synced()
	stop1 := run(s1)
	<-s1.InitialSyncDone()
	stop1()
	// The process dies: its lease (15 min) outlives it.
	first.Etcd().Close()
	first.Close()

	// Second life: wants b (changed) and d, not a and c.
	second := newTestClient(t, srv, Config{})
	s2 := NewSyncStore(second, testkit.Logger(t), SyncStoreOptions{Prefix: prefix, Cluster: "c1", CanaryPrefix: schema.ServicesPrefix})
	stop2 := run(s2)
	defer stop2()
	s2.Upsert("ns/b", []byte("v2"))
	s2.Upsert("ns/d", []byte("v2"))
	want := map[string]string{prefix + "/ns/a": "v1", prefix + "/ns/b": "v2", prefix + "/ns/c": "v1", prefix + "/ns/d": "v2"}
	// Before Synced nothing is pruned, whatever the store has written.
	events := second.ListAndWatch(ctx, prefix+"/")
	view := map[string]string{}
	for !cmp.Equal(view, want) {
		ev := recv(ctx, t, events)
		switch ev.Kind {
		case EventUpsert:
			view[ev.Key] = string(ev.Value)
		case EventDelete:
			t.Fatalf("deleted %s before the initial sync", ev.Key)
		}
	}
	s2.Synced()
	<-s2.InitialSyncDone()
	want = map[string]string{prefix + "/ns/b": "v2", prefix + "/ns/d": "v2"}
	if diff := cmp.Diff(want, etcdContent(ctx, t, second, prefix+"/")); diff != "" {
		t.Fatalf("after initial sync (-want +got):\n%s", diff)
	}
	if resp, err := raw.Get(ctx, schema.CanaryKey("c1", schema.ServicesPrefix)); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("canary after initial sync: %v, %v", resp, err)
	}
	// Deletes after the initial sync go straight through.
	s2.Delete("ns/d")
	for {
		ev := recv(ctx, t, events)
		if ev.Kind == EventDelete && ev.Key == prefix+"/ns/d" {
			break
		}
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{Name: "heartbeat"})
	c := newTestClient(t, srv, Config{})
	events := c.ListAndWatch(ctx, schema.HeartbeatKey)
	recvUntil(ctx, t, events, func(ev Event) bool { return ev.Kind == EventListDone })
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.RunHeartbeat(hctx, 20*time.Millisecond) }()
	var revs []int64
	for len(revs) < 2 {
		ev := recv(ctx, t, events)
		if _, err := time.Parse(time.RFC3339, string(ev.Value)); err != nil {
			t.Fatalf("heartbeat value %q: %v", ev.Value, err)
		}
		revs = append(revs, ev.Revision)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunHeartbeat: %v", err)
	}
	if err := c.RunHeartbeat(ctx, 0); err == nil {
		t.Fatal("RunHeartbeat with interval 0: want error")
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "mesh")
	other := newTestPKI(t, "other")
	srv := etcdtest.Start(t, etcdtest.Options{Name: "tls", TLS: &transport.TLSInfo{
		CertFile: pki.ServerCert, KeyFile: pki.ServerKey, TrustedCAFile: pki.CAFile, ClientCertAuth: true,
	}})

	t.Run("good", func(t *testing.T) {
		c := newTestClient(t, srv, Config{TrustedCAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey})
		ctx := testkit.Context(t, 2*time.Minute)
		if err := c.Put(ctx, "cilium/tls", []byte("ok")); err != nil {
			t.Fatal(err)
		}
		if v, _, err := c.Get(ctx, "cilium/tls"); err != nil || string(v) != "ok" {
			t.Fatalf("Get = %q, %v", v, err)
		}
	})

	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return "http://" + l.Addr().String()
	}()
	for _, tc := range []struct {
		name   string
		cfg    Config
		reason []string // any of these in the error
	}{
		{name: "wrong CA", cfg: Config{Endpoints: srv.Endpoints(), TrustedCAFile: other.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey},
			reason: []string{"x509", "certificate signed by unknown authority"}},
		{name: "client cert from another CA", cfg: Config{Endpoints: srv.Endpoints(), TrustedCAFile: pki.CAFile, CertFile: other.ClientCert, KeyFile: other.ClientKey},
			reason: []string{"bad certificate", "unknown certificate authority"}},
		{name: "no client cert", cfg: Config{Endpoints: srv.Endpoints(), TrustedCAFile: pki.CAFile},
			reason: []string{"certificate required", "bad certificate"}},
		{name: "unreachable", cfg: Config{Endpoints: []string{free}},
			reason: []string{"connection refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			tc.cfg.DialTimeout = 500 * time.Millisecond
			tc.cfg.MaxBackoff = 200 * time.Millisecond
			c, err := New(ctx, testkit.Logger(t), tc.cfg)
			if err == nil {
				c.Close()
				t.Fatal("New succeeded")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error does not wrap the ctx error")
			}
			if !strings.Contains(err.Error(), tc.cfg.Endpoints[0]) {
				t.Errorf("error does not name endpoint %s", tc.cfg.Endpoints[0])
			}
			if !slices.ContainsFunc(tc.reason, func(r string) bool { return strings.Contains(err.Error(), r) }) {
				t.Errorf("error does not give the reason (any of %q)", tc.reason)
			}
		})
	}

	t.Run("missing TLS file", func(t *testing.T) {
		_, err := New(testkit.Context(t, 2*time.Minute), testkit.Logger(t), Config{Endpoints: srv.Endpoints(), TrustedCAFile: pki.CAFile + ".missing"})
		if err == nil || !strings.Contains(err.Error(), "ca.crt.missing") {
			t.Fatalf("New = %v, want error naming the CA file", err)
		}
	})
}

// TestSyncStoreOwns: writers sharing one prefix (every agent of a cluster
// in cilium/state/ip/v1/default) prune only the stale keys they own, and a
// persistent canary outlives the writer that wrote it.
func TestSyncStoreOwns(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t, 2*time.Minute)
	srv := etcdtest.Start(t, etcdtest.Options{Name: "owns-store"})
	raw := srv.Client(t)
	const prefix = schema.IPPrefix + "/default"
	canary := schema.CanaryKey("c1", schema.IPPrefix)
	// Values name their writer, as ipcache entries name their HostIP.
	ownedBy := func(w string) func(string, []byte) bool {
		return func(_ string, v []byte) bool { return strings.HasPrefix(string(v), w+":") }
	}
	run := func(s *SyncStore) func() {
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.Run(sctx) }()
		return func() { cancel(); <-done }
	}
	newStore := func(c *Client, w string) *SyncStore {
		return NewSyncStore(c, testkit.Logger(t), SyncStoreOptions{
			Prefix: prefix, Cluster: "c1", CanaryPrefix: schema.IPPrefix,
			Owns: ownedBy(w), PersistentCanary: true,
		})
	}

	// Writer A (its own client: its own lease) publishes a1, a2 and dies.
	ca, err := New(ctx, testkit.Logger(t), Config{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	sa := newStore(ca, "A")
	sa.Upsert("10.0.0.1", []byte("A:1"))
	sa.Upsert("10.0.0.2", []byte("A:1"))
	sa.Synced()
	stopA := run(sa)
	<-sa.InitialSyncDone()
	stopA()
	ca.Etcd().Close() // dies without revoking: its entries outlive it
	ca.Close()

	// Writer B publishes b1 under its own lease.
	cb := newTestClient(t, srv, Config{})
	sb := newStore(cb, "B")
	sb.Upsert("10.0.1.1", []byte("B:1"))
	sb.Synced()
	stopB := run(sb)
	<-sb.InitialSyncDone()

	// A restarts wanting only a2: a1 goes, B's entry stays.
	ca2 := newTestClient(t, srv, Config{})
	sa2 := newStore(ca2, "A")
	sa2.Upsert("10.0.0.2", []byte("A:2"))
	sa2.Synced()
	stopA2 := run(sa2)
	<-sa2.InitialSyncDone()
	stopA2()
	want := map[string]string{prefix + "/10.0.0.2": "A:2", prefix + "/10.0.1.1": "B:1"}
	if diff := cmp.Diff(want, etcdContent(ctx, t, ca2, prefix+"/")); diff != "" {
		t.Fatalf("after A's restart (-want +got):\n%s", diff)
	}

	// B stops and its lease is revoked: its entry goes, the canary stays.
	stopB()
	if err := cb.Close(); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{prefix + "/10.0.0.2": "A:2"}
	if diff := cmp.Diff(want, etcdContent(ctx, t, ca2, prefix+"/")); diff != "" {
		t.Fatalf("after B's lease revoked (-want +got):\n%s", diff)
	}
	resp, err := raw.Get(ctx, canary)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("canary %s after its writer's lease was revoked: %v, %v", canary, resp, err)
	}
	if resp.Kvs[0].Lease != 0 {
		t.Fatalf("canary %s has lease %x, want none", canary, resp.Kvs[0].Lease)
	}

	// Without Owns (nil), a store still prunes every stale key: today's
	// behaviour.
	cc := newTestClient(t, srv, Config{})
	sc := NewSyncStore(cc, testkit.Logger(t), SyncStoreOptions{Prefix: prefix})
	sc.Synced()
	stopC := run(sc)
	<-sc.InitialSyncDone()
	stopC()
	if got := etcdContent(ctx, t, cc, prefix+"/"); len(got) != 0 {
		t.Fatalf("store without Owns left %v", got)
	}
}
