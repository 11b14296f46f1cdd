package globalsvc

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func newCache(t testing.TB) *Cache {
	t.Helper()
	c, err := NewCache(local)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCacheSteps applies steps in order and compares the whole merged view
// (List) after each.
func TestCacheSteps(t *testing.T) {
	k := func(cluster, addr string) BackendKey {
		return BackendKey{Cluster: cluster, Addr: ip(addr), L4: tcp(8080)}
	}
	localTwo := []Backend{localBE("10.1.0.1"), localBE("10.1.0.2")}
	merged := func(cfg Config, bes []Backend, ex []Exclusion) []Merged {
		return []Merged{{Namespace: "ns", Name: "svc", Config: cfg, Frontends: frontends, Backends: bes, Excluded: ex}}
	}
	cfgGlobal := Config{Global: true, Shared: true}
	cfgLocal := Config{Global: true, Shared: true, Affinity: AffinityLocal}

	type step struct {
		name    string
		do      func(c *Cache) error
		wantErr error
		want    []Merged
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "remote entries wait for the local service",
			steps: []step{
				{name: "remote first", do: func(c *Cache) error { return c.Upsert(remote("c2", 2, true, "10.2.0.1")) }, want: []Merged{}},
				{name: "local global", do: func(c *Cache) error { return c.UpsertLocal(svc(global, twoLocal)) },
					want: merged(cfgGlobal, cat(localTwo, []Backend{be("c2", 2, "10.2.0.1")}), nil)},
				{name: "local deleted", do: func(c *Cache) error { c.DeleteLocal("ns", "svc"); return nil }, want: []Merged{}},
				{name: "local back", do: func(c *Cache) error { return c.UpsertLocal(svc(global, twoLocal)) },
					want: merged(cfgGlobal, cat(localTwo, []Backend{be("c2", 2, "10.2.0.1")}), nil)},
			},
		},
		{
			name: "non-global local service gets no remote backends",
			steps: []step{
				{name: "remote", do: func(c *Cache) error { return c.Upsert(remote("c2", 2, true, "10.2.0.1")) }, want: []Merged{}},
				{name: "local not global", do: func(c *Cache) error { return c.UpsertLocal(svc(nil, twoLocal)) },
					want: merged(Config{}, localTwo, nil)},
				{name: "becomes global", do: func(c *Cache) error { return c.UpsertLocal(svc(global, twoLocal)) },
					want: merged(cfgGlobal, cat(localTwo, []Backend{be("c2", 2, "10.2.0.1")}), nil)},
			},
		},
		{
			name: "remote becomes unshared, then shared again",
			steps: []step{
				{name: "setup", do: func(c *Cache) error {
					return errors.Join(c.UpsertLocal(svc(global, twoLocal)), c.Upsert(remote("c2", 2, true, "10.2.0.1")),
						c.Upsert(remote("c3", 3, true, "10.3.0.1")))
				}, want: merged(cfgGlobal, cat(localTwo, []Backend{be("c2", 2, "10.2.0.1"), be("c3", 3, "10.3.0.1")}), nil)},
				{name: "c2 unshared", do: func(c *Cache) error { return c.Upsert(remote("c2", 2, false, "10.2.0.1")) },
					want: merged(cfgGlobal, cat(localTwo, []Backend{be("c3", 3, "10.3.0.1")}), nil)},
				{name: "c2 shared", do: func(c *Cache) error { return c.Upsert(remote("c2", 2, true, "10.2.0.9")) },
					want: merged(cfgGlobal, cat(localTwo, []Backend{be("c2", 2, "10.2.0.9"), be("c3", 3, "10.3.0.1")}), nil)},
				{name: "c3 deleted", do: func(c *Cache) error { c.Delete("c3", "ns", "svc"); return nil },
					want: merged(cfgGlobal, cat(localTwo, []Backend{be("c2", 2, "10.2.0.9")}), nil)},
				{name: "delete of unknown entries is a no-op", do: func(c *Cache) error {
					c.Delete("c9", "ns", "svc")
					c.Delete("c2", "ns", "other")
					c.DeleteCluster("c9")
					return nil
				}, want: merged(cfgGlobal, cat(localTwo, []Backend{be("c2", 2, "10.2.0.9")}), nil)},
			},
		},
		{
			name: "local shared false keeps consuming remote backends",
			steps: []step{
				{name: "setup", do: func(c *Cache) error {
					return errors.Join(c.UpsertLocal(svc(globalUnshared, twoLocal)), c.Upsert(remote("c2", 2, true, "10.2.0.1")))
				}, want: merged(Config{Global: true}, cat(localTwo, []Backend{be("c2", 2, "10.2.0.1")}), nil)},
			},
		},
		{
			name: "affinity local: backends going unhealthy and back",
			steps: []step{
				{name: "setup", do: func(c *Cache) error {
					return errors.Join(c.UpsertLocal(svc(globalLocal, twoLocal)), c.Upsert(remote("c2", 2, true, "10.2.0.1", "10.2.0.2")))
				}, want: merged(cfgLocal, localTwo, excl(ReasonAffinity, be("c2", 2, "10.2.0.1"), be("c2", 2, "10.2.0.2")))},
				{name: "one local unhealthy", do: func(c *Cache) error { c.SetUnhealthy(k("c1", "10.1.0.1"), true); return nil },
					want: merged(cfgLocal, []Backend{localBE("10.1.0.2")}, append(
						excl(ReasonUnhealthy, unhealthy(localBE("10.1.0.1"))),
						excl(ReasonAffinity, be("c2", 2, "10.2.0.1"), be("c2", 2, "10.2.0.2"))...))},
				{name: "all local unhealthy: remote used", do: func(c *Cache) error { c.SetUnhealthy(k("c1", "10.1.0.2"), true); return nil },
					want: merged(cfgLocal, []Backend{be("c2", 2, "10.2.0.1"), be("c2", 2, "10.2.0.2")},
						excl(ReasonUnhealthy, unhealthy(localBE("10.1.0.1")), unhealthy(localBE("10.1.0.2"))))},
				{name: "a remote goes unhealthy: dropped", do: func(c *Cache) error { c.SetUnhealthy(k("c2", "10.2.0.2"), true); return nil },
					want: merged(cfgLocal, []Backend{be("c2", 2, "10.2.0.1")},
						excl(ReasonUnhealthy, unhealthy(localBE("10.1.0.1")), unhealthy(localBE("10.1.0.2")), unhealthy(be("c2", 2, "10.2.0.2"))))},
				{name: "a local recovers: local only again", do: func(c *Cache) error { c.SetUnhealthy(k("c1", "10.1.0.2"), false); return nil },
					want: merged(cfgLocal, []Backend{localBE("10.1.0.2")}, append(
						excl(ReasonUnhealthy, unhealthy(localBE("10.1.0.1"))),
						Exclusion{Backend: be("c2", 2, "10.2.0.1"), Reason: ReasonAffinity},
						Exclusion{Backend: unhealthy(be("c2", 2, "10.2.0.2")), Reason: ReasonUnhealthy}))},
			},
		},
		{
			name: "cluster removed",
			steps: []step{
				{name: "setup", do: func(c *Cache) error {
					other := svc(global, nil)
					other.Name = "other"
					otherRemote := remote("c2", 2, true, "10.2.1.1")
					otherRemote.Name = "other"
					return errors.Join(c.UpsertLocal(svc(global, twoLocal)), c.UpsertLocal(other),
						c.Upsert(remote("c2", 2, true, "10.2.0.1")), c.Upsert(remote("c3", 3, true, "10.3.0.1")), c.Upsert(otherRemote))
				}, want: []Merged{
					{Namespace: "ns", Name: "other", Config: cfgGlobal, Frontends: frontends,
						Backends: []Backend{be("c2", 2, "10.2.1.1")}},
					{Namespace: "ns", Name: "svc", Config: cfgGlobal, Frontends: frontends,
						Backends: cat(localTwo, []Backend{be("c2", 2, "10.2.0.1"), be("c3", 3, "10.3.0.1")})},
				}},
				{name: "c2 marked unhealthy", do: func(c *Cache) error { c.SetUnhealthy(k("c2", "10.2.0.1"), true); return nil },
					want: []Merged{
						{Namespace: "ns", Name: "other", Config: cfgGlobal, Frontends: frontends,
							Backends: []Backend{be("c2", 2, "10.2.1.1")}},
						{Namespace: "ns", Name: "svc", Config: cfgGlobal, Frontends: frontends,
							Backends: cat(localTwo, []Backend{be("c3", 3, "10.3.0.1")}),
							Excluded: excl(ReasonUnhealthy, unhealthy(be("c2", 2, "10.2.0.1")))},
					}},
				{name: "c2 removed", do: func(c *Cache) error { c.DeleteCluster("c2"); return nil },
					want: []Merged{
						{Namespace: "ns", Name: "other", Config: cfgGlobal, Frontends: frontends},
						{Namespace: "ns", Name: "svc", Config: cfgGlobal, Frontends: frontends,
							Backends: cat(localTwo, []Backend{be("c3", 3, "10.3.0.1")})},
					}},
				{name: "c2 re-joins healthy (marks went with it)", do: func(c *Cache) error { return c.Upsert(remote("c2", 2, true, "10.2.0.1")) },
					want: []Merged{
						{Namespace: "ns", Name: "other", Config: cfgGlobal, Frontends: frontends},
						{Namespace: "ns", Name: "svc", Config: cfgGlobal, Frontends: frontends,
							Backends: cat(localTwo, []Backend{be("c2", 2, "10.2.0.1"), be("c3", 3, "10.3.0.1")})},
					}},
			},
		},
		{
			name: "bad input",
			steps: []step{
				{name: "remote claiming the local cluster", do: func(c *Cache) error { return c.Upsert(remote("c1", 1, true, "10.9.0.1")) },
					wantErr: ErrLocalCluster, want: []Merged{}},
				{name: "nil remote", do: func(c *Cache) error { return c.Upsert(nil) }, wantErr: ErrInvalidService, want: []Merged{}},
				{name: "remote without cluster", do: func(c *Cache) error { return c.Upsert(remote("", 2, true)) },
					wantErr: ErrInvalidService, want: []Merged{}},
				{name: "local without namespace", do: func(c *Cache) error { return c.UpsertLocal(LocalService{Name: "svc"}) },
					wantErr: ErrInvalidService, want: []Merged{}},
				{name: "bad annotation is stored with its fallback", do: func(c *Cache) error {
					return c.UpsertLocal(svc(map[string]string{AnnotationGlobal: "ja"}, twoLocal))
				}, wantErr: ErrInvalidAnnotation, want: merged(Config{}, localTwo, nil)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t)
			for _, st := range tt.steps {
				err := st.do(c)
				if !errors.Is(err, st.wantErr) || (err == nil) != (st.wantErr == nil) {
					t.Errorf("%s: error = %v, want %v", st.name, err, st.wantErr)
				}
				if diff := cmp.Diff(st.want, c.List(), addrEqual); diff != "" {
					t.Errorf("%s: List (-want +got):\n%s", st.name, diff)
				}
			}
		})
	}
}

func TestCacheGet(t *testing.T) {
	c := newCache(t)
	if _, ok := c.Get("ns", "svc"); ok {
		t.Error("Get on an empty cache found a service")
	}
	if err := c.Upsert(remote("c2", 2, true, "10.2.0.1")); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("ns", "svc"); ok {
		t.Error("remote entries alone made a service")
	}
	if err := c.UpsertLocal(svc(global, twoLocal)); err != nil {
		t.Fatal(err)
	}
	got, ok := c.Get("ns", "svc")
	if !ok {
		t.Fatal("Get did not find the local service")
	}
	want := Merged{Namespace: "ns", Name: "svc", Config: Config{Global: true, Shared: true}, Frontends: frontends,
		Backends: []Backend{localBE("10.1.0.1"), localBE("10.1.0.2"), be("c2", 2, "10.2.0.1")}}
	if diff := cmp.Diff(want, got, addrEqual); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
}

func TestNewCacheNeedsName(t *testing.T) {
	if _, err := NewCache(Cluster{ID: 1}); !errors.Is(err, ErrInvalidService) {
		t.Errorf("NewCache without name: error = %v, want ErrInvalidService", err)
	}
}

// TestCacheConcurrent runs writers and readers at once; -race checks the
// locking, and the final state is checked afterwards.
func TestCacheConcurrent(t *testing.T) {
	c := newCache(t)
	if err := c.UpsertLocal(svc(global, twoLocal)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cluster := fmt.Sprintf("c%d", w+2)
			for i := range 200 {
				addr := netip.AddrFrom4([4]byte{10, byte(w + 2), 0, byte(i%5 + 1)})
				rs := remote(cluster, 2, true)
				rs.Backends[addr] = http(8080)
				if err := c.Upsert(rs); err != nil {
					t.Error(err)
					return
				}
				c.SetUnhealthy(BackendKey{Cluster: cluster, Addr: addr, L4: tcp(8080)}, i%2 == 0)
				c.List()
				c.Get("ns", "svc")
			}
			c.DeleteCluster(cluster)
		}()
	}
	wg.Wait()
	want := []Merged{{Namespace: "ns", Name: "svc", Config: Config{Global: true, Shared: true}, Frontends: frontends,
		Backends: []Backend{localBE("10.1.0.1"), localBE("10.1.0.2")}}}
	if diff := cmp.Diff(want, c.List(), addrEqual); diff != "" {
		t.Errorf("final List (-want +got):\n%s", diff)
	}
}
