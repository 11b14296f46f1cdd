package globalsvc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// refModel is a deliberately simple model of Cache: flat maps keyed by
// strings, and a merge written as "collect every (backend, port name)
// tuple, group, then filter", without the fast paths of merge().
type refModel struct {
	locals    map[string]LocalService           // "ns/name"
	remotes   map[string]*schema.ClusterService // "cluster/ns/name", shared only
	unhealthy map[BackendKey]bool
}

func refAnnotation(ann map[string]string, key, legacy string) (string, bool) {
	if v, ok := ann[key]; ok {
		return v, true
	}
	v, ok := ann[legacy]
	return v, ok
}

// refParse returns the config and whether some value was not understood.
func refParse(ann map[string]string) (Config, bool) {
	var cfg Config
	bad := false
	v, ok := refAnnotation(ann, AnnotationGlobal, AnnotationGlobalLegacy)
	if ok {
		cfg.Global = strings.ToLower(v) == "true"
		bad = bad || !(strings.ToLower(v) == "true" || strings.ToLower(v) == "false")
	}
	if !cfg.Global {
		return cfg, bad
	}
	cfg.Shared = true
	if v, ok := refAnnotation(ann, AnnotationShared, AnnotationSharedLegacy); ok {
		cfg.Shared = strings.ToLower(v) == "true"
		bad = bad || !(strings.ToLower(v) == "true" || strings.ToLower(v) == "false")
	}
	if v, ok := refAnnotation(ann, AnnotationAffinity, AnnotationAffinityLegacy); ok {
		l := strings.ToLower(v)
		if l == "local" {
			cfg.Affinity = AffinityLocal
		} else if l == "remote" {
			cfg.Affinity = AffinityRemote
		} else if l != "none" && l != "" {
			bad = true
		}
	}
	return cfg, bad
}

func (r *refModel) list() []Merged {
	var keys []string
	for k := range r.locals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []Merged{}
	for _, k := range keys {
		out = append(out, r.merge(r.locals[k]))
	}
	return out
}

func (r *refModel) merge(s LocalService) Merged {
	cfg, _ := refParse(s.Annotations)
	m := Merged{Namespace: s.Namespace, Name: s.Name, Config: cfg}
	if s.Frontends != nil {
		m.Frontends = map[netip.Addr]schema.PortConfiguration{}
		for a, pc := range s.Frontends {
			m.Frontends[a] = schema.PortConfiguration{}
			for n, l4 := range pc {
				m.Frontends[a][n] = l4
			}
		}
	}
	type tuple struct {
		b    Backend
		name string
	}
	var tuples []tuple
	for a, lb := range s.Backends {
		for n, l4 := range lb.Ports {
			b := Backend{Cluster: local.Name, ClusterID: local.ID, Addr: a, L4: l4, State: lb.State}
			b.Unhealthy = lb.Unhealthy || r.unhealthy[b.Key()]
			tuples = append(tuples, tuple{b, n})
		}
	}
	if cfg.Global {
		for _, rs := range r.remotes {
			if rs.Namespace != s.Namespace || rs.Name != s.Name {
				continue
			}
			for a, pc := range rs.Backends {
				for n, l4 := range pc {
					b := Backend{Cluster: rs.Cluster, ClusterID: rs.ClusterID, Addr: a, L4: l4}
					b.Unhealthy = r.unhealthy[b.Key()]
					tuples = append(tuples, tuple{b, n})
				}
			}
		}
	}
	grouped := map[BackendKey]*Backend{}
	for _, t := range tuples {
		g := grouped[t.b.Key()]
		if g == nil {
			b := t.b
			g = &b
			grouped[t.b.Key()] = g
		}
		g.PortNames = append(g.PortNames, t.name)
	}
	var all []Backend
	for _, g := range grouped {
		sort.Strings(g.PortNames)
		all = append(all, *g)
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.Cluster != b.Cluster {
			return a.Cluster < b.Cluster
		}
		if a.Addr != b.Addr {
			return a.Addr.Less(b.Addr)
		}
		if a.L4.Protocol != b.L4.Protocol {
			return a.L4.Protocol < b.L4.Protocol
		}
		return a.L4.Port < b.L4.Port
	})

	isLocal := func(b Backend) bool { return b.Cluster == local.Name }
	ok := func(b Backend) bool { return b.State == StateActive && !b.Unhealthy }
	localOK, remoteOK := false, false
	for _, b := range all {
		if ok(b) && isLocal(b) {
			localOK = true
		}
		if ok(b) && !isLocal(b) {
			remoteOK = true
		}
	}
	useLocal := !(cfg.Global && cfg.Affinity == AffinityRemote && remoteOK)
	useRemote := cfg.Global && !(cfg.Affinity == AffinityLocal && localOK)
	for _, b := range all {
		use := (isLocal(b) && useLocal) || (!isLocal(b) && useRemote)
		if b.Unhealthy {
			m.Excluded = append(m.Excluded, Exclusion{b, ReasonUnhealthy})
		} else if b.State != StateActive {
			m.Excluded = append(m.Excluded, Exclusion{b, ReasonNotActive})
		} else if !use {
			m.Excluded = append(m.Excluded, Exclusion{b, ReasonAffinity})
		} else {
			m.Backends = append(m.Backends, b)
		}
	}
	return m
}

// gen draws random inputs from small pools, so that names, addresses and
// ports collide often.
type gen struct{ r *rand.Rand }

func (g gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

var (
	randAddrs = []netip.Addr{ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.4"), ip("fd00::1")}
	randL4    = []schema.L4Addr{tcp(80), tcp(8080), {Protocol: schema.ProtocolUDP, Port: 53}}
	randClus  = []string{"c1", "c2", "c3", "c4"}
)

func (g gen) ports() schema.PortConfiguration {
	pc := schema.PortConfiguration{}
	for range 1 + g.r.IntN(3) {
		pc[g.pick("http", "http-alt", "dns", "metrics", "")] = randL4[g.r.IntN(len(randL4))]
	}
	return pc
}

func (g gen) annotations() map[string]string {
	ann := map[string]string{}
	vals := map[string][]string{
		AnnotationGlobal:         {"true", "True", "false", "yes"},
		AnnotationGlobalLegacy:   {"true", "TRUE", "false", "1"},
		AnnotationShared:         {"true", "false", "False", "no"},
		AnnotationSharedLegacy:   {"true", "false", "0"},
		AnnotationAffinity:       {"local", "remote", "none", "", "Local", "nearest"},
		AnnotationAffinityLegacy: {"local", "REMOTE", "none", "far"},
	}
	for k, vs := range vals {
		if g.r.IntN(3) == 0 || (k == AnnotationGlobal && g.r.IntN(2) == 0) {
			ann[k] = vs[g.r.IntN(len(vs))]
		}
	}
	return ann
}

func (g gen) local() LocalService {
	s := LocalService{
		Namespace:   g.pick("a", "b"),
		Name:        g.pick("x", "y"),
		Annotations: g.annotations(),
		Backends:    map[netip.Addr]LocalBackend{},
	}
	if g.r.IntN(4) != 0 {
		s.Frontends = map[netip.Addr]schema.PortConfiguration{ip("172.20.0.1"): g.ports()}
	}
	for range g.r.IntN(5) {
		lb := LocalBackend{Ports: g.ports(), Unhealthy: g.r.IntN(5) == 0}
		if g.r.IntN(3) == 0 {
			lb.State = State(g.r.IntN(4))
		}
		s.Backends[randAddrs[g.r.IntN(len(randAddrs))]] = lb
	}
	return s
}

func (g gen) remote() *schema.ClusterService {
	i := g.r.IntN(len(randClus))
	s := &schema.ClusterService{
		Cluster: randClus[i], Namespace: g.pick("a", "b"), Name: g.pick("x", "y"),
		Backends:        map[netip.Addr]schema.PortConfiguration{},
		IncludeExternal: true, Shared: g.r.IntN(5) != 0, ClusterID: identity.ClusterID(i + 1),
	}
	for range g.r.IntN(4) {
		s.Backends[randAddrs[g.r.IntN(len(randAddrs))]] = g.ports()
	}
	return s
}

func (g gen) key() BackendKey {
	return BackendKey{
		Cluster: randClus[g.r.IntN(len(randClus))],
		Addr:    randAddrs[g.r.IntN(len(randAddrs))],
		L4:      randL4[g.r.IntN(len(randL4))],
	}
}

// TestCacheRandom applies random operations to a Cache and to refModel and
// compares the whole merged view after each one; it also checks Merge on
// the same inputs.
func TestCacheRandom(t *testing.T) {
	rounds := 600
	if testing.Short() {
		rounds = 300
	}
	for seed := range uint64(6) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			g := gen{rand.New(rand.NewPCG(seed, 0x5eed))}
			c := newCache(t)
			ref := &refModel{
				locals:    map[string]LocalService{},
				remotes:   map[string]*schema.ClusterService{},
				unhealthy: map[BackendKey]bool{},
			}
			for i := range rounds {
				var op string
				switch n := g.r.IntN(20); {
				case n < 5:
					s := g.local()
					op = fmt.Sprintf("UpsertLocal(%s/%s %v)", s.Namespace, s.Name, s.Annotations)
					err := c.UpsertLocal(s)
					_, bad := refParse(s.Annotations)
					if bad != errors.Is(err, ErrInvalidAnnotation) || (err != nil && !bad) {
						t.Fatalf("round %d: %s: error %v, want bad=%v", i, op, err, bad)
					}
					ref.locals[s.Namespace+"/"+s.Name] = s
				case n < 6:
					ns, name := g.pick("a", "b"), g.pick("x", "y")
					op = fmt.Sprintf("DeleteLocal(%s/%s)", ns, name)
					c.DeleteLocal(ns, name)
					delete(ref.locals, ns+"/"+name)
				case n < 12:
					s := g.remote()
					op = fmt.Sprintf("Upsert(%s shared=%v)", s.Key(), s.Shared)
					err := c.Upsert(s)
					if s.Cluster == local.Name {
						if !errors.Is(err, ErrLocalCluster) {
							t.Fatalf("round %d: %s: error %v, want ErrLocalCluster", i, op, err)
						}
						break
					}
					if err != nil {
						t.Fatalf("round %d: %s: %v", i, op, err)
					}
					k := s.Cluster + "/" + s.Namespace + "/" + s.Name
					if s.Shared {
						ref.remotes[k] = s
					} else {
						delete(ref.remotes, k)
					}
				case n < 13:
					cl, ns, name := g.pick(randClus...), g.pick("a", "b"), g.pick("x", "y")
					op = fmt.Sprintf("Delete(%s/%s/%s)", cl, ns, name)
					c.Delete(cl, ns, name)
					delete(ref.remotes, cl+"/"+ns+"/"+name)
				case n < 14:
					cl := g.pick(randClus...)
					op = fmt.Sprintf("DeleteCluster(%s)", cl)
					c.DeleteCluster(cl)
					for k, rs := range ref.remotes {
						if rs.Cluster == cl {
							delete(ref.remotes, k)
						}
					}
					for k := range ref.unhealthy {
						if k.Cluster == cl {
							delete(ref.unhealthy, k)
						}
					}
				default:
					k, bad := g.key(), g.r.IntN(2) == 0
					op = fmt.Sprintf("SetUnhealthy(%v, %v)", k, bad)
					c.SetUnhealthy(k, bad)
					if bad {
						ref.unhealthy[k] = true
					} else {
						delete(ref.unhealthy, k)
					}
				}
				want := ref.list()
				if diff := cmp.Diff(want, c.List(), addrEqual); diff != "" {
					t.Fatalf("round %d: after %s: List (-ref +cache):\n%s", i, op, diff)
				}
				// The pure Merge agrees on the same inputs, including
				// unshared entries it must skip itself.
				for _, m := range want {
					in := Input{Cluster: local, Local: ref.locals[m.Namespace+"/"+m.Name],
						Remote: map[string]*schema.ClusterService{}, Unhealthy: ref.unhealthy}
					for _, rs := range ref.remotes {
						if rs.Namespace == m.Namespace && rs.Name == m.Name {
							in.Remote[rs.Cluster] = rs
						}
					}
					if cl := g.pick("c2", "c3", "c4"); in.Remote[cl] == nil {
						in.Remote[cl] = &schema.ClusterService{Cluster: cl, Namespace: m.Namespace, Name: m.Name,
							Backends: map[netip.Addr]schema.PortConfiguration{ip("10.9.9.9"): http(1)}}
					}
					got, _ := Merge(in)
					if diff := cmp.Diff(m, got, addrEqual); diff != "" {
						t.Fatalf("round %d: after %s: Merge(%s/%s) (-ref +merge):\n%s", i, op, m.Namespace, m.Name, diff)
					}
				}
			}
		})
	}
}
