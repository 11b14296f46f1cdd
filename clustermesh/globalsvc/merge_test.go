package globalsvc

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

var local = Cluster{Name: "c1", ID: 1}

// addrEqual lets cmp compare netip.Addr values (unexported fields).
var addrEqual = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func tcp(port uint16) schema.L4Addr { return schema.L4Addr{Protocol: schema.ProtocolTCP, Port: port} }

// http is the port configuration of a backend serving "http" on port.
func http(port uint16) schema.PortConfiguration { return schema.PortConfiguration{"http": tcp(port)} }

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

var frontends = map[netip.Addr]schema.PortConfiguration{ip("172.20.0.10"): http(80)}

// svc returns the local service ns/svc with the given annotations and
// backends.
func svc(ann map[string]string, backends map[netip.Addr]LocalBackend) LocalService {
	return LocalService{
		Namespace:   "ns",
		Name:        "svc",
		Annotations: ann,
		Frontends:   frontends,
		Backends:    backends,
	}
}

// remote returns cluster's entry for ns/svc with one "http" port 8080 per
// backend address.
func remote(cluster string, id identity.ClusterID, shared bool, addrs ...string) *schema.ClusterService {
	s := &schema.ClusterService{
		Cluster: cluster, Namespace: "ns", Name: "svc",
		Frontends:       map[netip.Addr]schema.PortConfiguration{},
		Backends:        map[netip.Addr]schema.PortConfiguration{},
		IncludeExternal: true, Shared: shared, ClusterID: id,
	}
	for _, a := range addrs {
		s.Backends[ip(a)] = http(8080)
	}
	return s
}

func be(cluster string, id identity.ClusterID, addr string) Backend {
	return Backend{Cluster: cluster, ClusterID: id, Addr: ip(addr), L4: tcp(8080), PortNames: []string{"http"}}
}

func localBE(addr string) Backend { return be("c1", 1, addr) }

func with(b Backend, f func(*Backend)) Backend { f(&b); return b }

func unhealthy(b Backend) Backend { return with(b, func(b *Backend) { b.Unhealthy = true }) }

func state(b Backend, s State) Backend { return with(b, func(b *Backend) { b.State = s }) }

func excl(r Reason, bs ...Backend) []Exclusion {
	out := make([]Exclusion, 0, len(bs))
	for _, b := range bs {
		out = append(out, Exclusion{Backend: b, Reason: r})
	}
	return out
}

var (
	global         = map[string]string{AnnotationGlobal: "true"}
	globalLocal    = map[string]string{AnnotationGlobal: "true", AnnotationAffinity: "local"}
	globalRemote   = map[string]string{AnnotationGlobal: "true", AnnotationAffinity: "remote"}
	globalNone     = map[string]string{AnnotationGlobal: "true", AnnotationAffinity: "none"}
	globalUnshared = map[string]string{AnnotationGlobal: "true", AnnotationShared: "false"}

	twoLocal = map[netip.Addr]LocalBackend{
		ip("10.1.0.1"): {Ports: http(8080)},
		ip("10.1.0.2"): {Ports: http(8080)},
	}
	twoRemotes = map[string]*schema.ClusterService{
		"c2": remote("c2", 2, true, "10.2.0.1"),
		"c3": remote("c3", 3, true, "10.3.0.1", "10.3.0.2"),
	}
	allRemote = []Backend{be("c2", 2, "10.2.0.1"), be("c3", 3, "10.3.0.1"), be("c3", 3, "10.3.0.2")}
)

func cat(lists ...[]Backend) []Backend {
	var out []Backend
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func TestMerge(t *testing.T) {
	cfgGlobal := Config{Global: true, Shared: true}
	tests := []struct {
		name    string
		in      Input
		want    Merged
		wantErr error
	}{
		{
			name: "not global: local backends only",
			in:   Input{Cluster: local, Local: svc(nil, twoLocal), Remote: twoRemotes},
			want: Merged{Namespace: "ns", Name: "svc", Frontends: frontends,
				Backends: []Backend{localBE("10.1.0.1"), localBE("10.1.0.2")}},
		},
		{
			name: "global without affinity: all backends",
			in:   Input{Cluster: local, Local: svc(global, twoLocal), Remote: twoRemotes},
			want: Merged{Namespace: "ns", Name: "svc", Config: cfgGlobal, Frontends: frontends,
				Backends: cat([]Backend{localBE("10.1.0.1"), localBE("10.1.0.2")}, allRemote)},
		},
		{
			name: "affinity none keeps remote backends (#46623)",
			in:   Input{Cluster: local, Local: svc(globalNone, twoLocal), Remote: twoRemotes},
			want: Merged{Namespace: "ns", Name: "svc", Config: cfgGlobal, Frontends: frontends,
				Backends: cat([]Backend{localBE("10.1.0.1"), localBE("10.1.0.2")}, allRemote)},
		},
		{
			name: "affinity none: an unhealthy remote backend is dropped",
			in: Input{Cluster: local, Local: svc(global, twoLocal), Remote: twoRemotes,
				Unhealthy: map[BackendKey]bool{{Cluster: "c3", Addr: ip("10.3.0.1"), L4: tcp(8080)}: true}},
			want: Merged{Namespace: "ns", Name: "svc", Config: cfgGlobal, Frontends: frontends,
				Backends: []Backend{localBE("10.1.0.1"), localBE("10.1.0.2"), be("c2", 2, "10.2.0.1"), be("c3", 3, "10.3.0.2")},
				Excluded: excl(ReasonUnhealthy, unhealthy(be("c3", 3, "10.3.0.1")))},
		},
		{
			name: "affinity local with usable local backends",
			in:   Input{Cluster: local, Local: svc(globalLocal, twoLocal), Remote: twoRemotes},
			want: Merged{Namespace: "ns", Name: "svc", Frontends: frontends,
				Config:   Config{Global: true, Shared: true, Affinity: AffinityLocal},
				Backends: []Backend{localBE("10.1.0.1"), localBE("10.1.0.2")},
				Excluded: excl(ReasonAffinity, allRemote...)},
		},
		{
			name: "affinity local, one local backend left: still local only",
			in: Input{Cluster: local, Local: svc(globalLocal, map[netip.Addr]LocalBackend{
				ip("10.1.0.1"): {Ports: http(8080), Unhealthy: true},
				ip("10.1.0.2"): {Ports: http(8080)},
			}), Remote: twoRemotes},
			want: Merged{Namespace: "ns", Name: "svc", Frontends: frontends,
				Config:   Config{Global: true, Shared: true, Affinity: AffinityLocal},
				Backends: []Backend{localBE("10.1.0.2")},
				Excluded: append(excl(ReasonUnhealthy, unhealthy(localBE("10.1.0.1"))), excl(ReasonAffinity, allRemote...)...)},
		},
		{
			name: "affinity local, all local unhealthy: remote used",
			in: Input{Cluster: local, Local: svc(globalLocal, map[netip.Addr]LocalBackend{
				ip("10.1.0.1"): {Ports: http(8080), Unhealthy: true},
				ip("10.1.0.2"): {Ports: http(8080)},
			}), Remote: twoRemotes,
				Unhealthy: map[BackendKey]bool{{Cluster: "c1", Addr: ip("10.1.0.2"), L4: tcp(8080)}: true}},
			want: Merged{Namespace: "ns", Name: "svc", Frontends: frontends,
				Config:   Config{Global: true, Shared: true, Affinity: AffinityLocal},
				Backends: allRemote,
				Excluded: excl(ReasonUnhealthy, unhealthy(localBE("10.1.0.1")), unhealthy(localBE("10.1.0.2")))},
		},
		{
			name: "affinity local, local terminating and quarantined: remote used",
			in: Input{Cluster: local, Local: svc(globalLocal, map[netip.Addr]LocalBackend{
				ip("10.1.0.1"): {Ports: http(8080), State: StateTerminating},
				ip("10.1.0.2"): {Ports: http(8080), State: StateQuarantined},
			}), Remote: twoRemotes},
			want: Merged{Namespace: "ns", Name: "svc", Frontends: frontends,
				Config:   Config{Global: true, Shared: true, Affinity: AffinityLocal},
				Backends: allRemote,
				Excluded: excl(ReasonNotActive, state(localBE("10.1.0.1"), StateTerminating), state(localBE("10.1.0.2"), StateQuarantined))},
		},
		{
			name: "affinity local, no local backends at all: remote used",
			in:   Input{Cluster: local, Local: svc(globalLocal, nil), Remote: twoRemotes},
			want: Merged{Namespace: "ns", Name: "svc", Frontends: frontends,
				Config:   Config{Global: true, Shared: true, Affinity: AffinityLocal},
				Backends: allRemote},
		},
		{
			name: "affinity remote with usable remote backends",
			in:   Input{Cluster: local, Local: svc(globalRemote, twoLocal), Remote: twoRemotes},
			want: Merged{Namespace: "ns", Name: "svc", Frontends: frontends,
				Config:   Config{Global: true, Shared: true, Affinity: AffinityRemote},
				Backends: allRemote,
				Excluded: excl(ReasonAffinity, localBE("10.1.0.1"), localBE("10.1.0.2"))},
		},
		{
			name: "affinity remote, all remote unhealthy: local used",
			in: Input{Cluster: local, Local: svc(globalRemote, twoLocal), Remote: twoRemotes,
				Unhealthy: map[BackendKey]bool{
					{Cluster: "c2", Addr: ip("10.2.0.1"), L4: tcp(8080)}: true,
					{Cluster: "c3", Addr: ip("10.3.0.1"), L4: tcp(8080)}: true,
					{Cluster: "c3", Addr: ip("10.3.0.2"), L4: tcp(8080)}: true,
					{Cluster: "c3", Addr: ip("10.3.0.2"), L4: tcp(9999)}: false, // false marks are no marks
				}},
			want: Merged{Namespace: "ns", Name: "svc", Frontends: frontends,
				Config:   Config{Global: true, Shared: true, Affinity: AffinityRemote},
				Backends: []Backend{localBE("10.1.0.1"), localBE("10.1.0.2")},
				Excluded: excl(ReasonUnhealthy, unhealthy(be("c2", 2, "10.2.0.1")), unhealthy(be("c3", 3, "10.3.0.1")), unhealthy(be("c3", 3, "10.3.0.2")))},
		},
		{
			name: "affinity remote without remote entries: local used",
			in:   Input{Cluster: local, Local: svc(globalRemote, twoLocal)},
			want: Merged{Namespace: "ns", Name: "svc", Frontends: frontends,
				Config:   Config{Global: true, Shared: true, Affinity: AffinityRemote},
				Backends: []Backend{localBE("10.1.0.1"), localBE("10.1.0.2")}},
		},
		{
			name: "remote entry with shared false is not consumed",
			in: Input{Cluster: local, Local: svc(global, twoLocal), Remote: map[string]*schema.ClusterService{
				"c2": remote("c2", 2, false, "10.2.0.1"),
				"c3": remote("c3", 3, true, "10.3.0.1"),
			}},
			want: Merged{Namespace: "ns", Name: "svc", Config: cfgGlobal, Frontends: frontends,
				Backends: []Backend{localBE("10.1.0.1"), localBE("10.1.0.2"), be("c3", 3, "10.3.0.1")}},
		},
		{
			name: "local shared false still consumes remote backends",
			in:   Input{Cluster: local, Local: svc(globalUnshared, twoLocal), Remote: twoRemotes},
			want: Merged{Namespace: "ns", Name: "svc", Config: Config{Global: true}, Frontends: frontends,
				Backends: cat([]Backend{localBE("10.1.0.1"), localBE("10.1.0.2")}, allRemote)},
		},
		{
			name: "entries for the local cluster, another service or nil are ignored",
			in: Input{Cluster: local, Local: svc(global, nil), Remote: map[string]*schema.ClusterService{
				"c1": remote("c1", 1, true, "10.9.0.1"),
				"c2": with2(remote("c2", 2, true, "10.2.0.1"), func(s *schema.ClusterService) { s.Name = "other" }),
				"c3": with2(remote("c3", 3, true, "10.3.0.1"), func(s *schema.ClusterService) { s.Namespace = "other" }),
				"c4": nil,
				// The map key names the cluster.
				"c5": remote("wrong", 5, true, "10.5.0.1"),
			}},
			want: Merged{Namespace: "ns", Name: "svc", Config: cfgGlobal, Frontends: frontends,
				Backends: []Backend{be("c5", 5, "10.5.0.1")}},
		},
		{
			name: "several ports on one target port keep one backend with all names (#45109)",
			in: Input{Cluster: local, Local: svc(global, map[netip.Addr]LocalBackend{
				ip("10.1.0.1"): {Ports: schema.PortConfiguration{
					"http": tcp(8080), "http-alt": tcp(8080), "metrics": tcp(9090), "dns": {Protocol: schema.ProtocolUDP, Port: 8080},
				}},
			}), Remote: map[string]*schema.ClusterService{"c2": with2(remote("c2", 2, true), func(s *schema.ClusterService) {
				s.Backends[ip("10.2.0.1")] = schema.PortConfiguration{"tcp": tcp(9090), "tcp-alt": tcp(9090)}
			})}},
			want: Merged{Namespace: "ns", Name: "svc", Config: cfgGlobal, Frontends: frontends,
				Backends: []Backend{
					{Cluster: "c1", ClusterID: 1, Addr: ip("10.1.0.1"), L4: tcp(8080), PortNames: []string{"http", "http-alt"}},
					{Cluster: "c1", ClusterID: 1, Addr: ip("10.1.0.1"), L4: tcp(9090), PortNames: []string{"metrics"}},
					{Cluster: "c1", ClusterID: 1, Addr: ip("10.1.0.1"), L4: schema.L4Addr{Protocol: schema.ProtocolUDP, Port: 8080}, PortNames: []string{"dns"}},
					{Cluster: "c2", ClusterID: 2, Addr: ip("10.2.0.1"), L4: tcp(9090), PortNames: []string{"tcp", "tcp-alt"}},
				}},
		},
		{
			name: "same address in two clusters is two backends, IPv6 sorts after IPv4",
			in: Input{Cluster: local, Local: svc(global, map[netip.Addr]LocalBackend{
				ip("fd00::1"):  {Ports: http(8080)},
				ip("10.0.0.1"): {Ports: http(8080)},
			}), Remote: map[string]*schema.ClusterService{"c2": remote("c2", 2, true, "10.0.0.1")}},
			want: Merged{Namespace: "ns", Name: "svc", Config: cfgGlobal, Frontends: frontends,
				Backends: []Backend{localBE("10.0.0.1"), localBE("fd00::1"), be("c2", 2, "10.0.0.1")}},
		},
		{
			name: "bad affinity falls back to none",
			in: Input{Cluster: local, Local: svc(map[string]string{AnnotationGlobal: "true", AnnotationAffinity: "closest"}, twoLocal),
				Remote: twoRemotes},
			want: Merged{Namespace: "ns", Name: "svc", Config: cfgGlobal, Frontends: frontends,
				Backends: cat([]Backend{localBE("10.1.0.1"), localBE("10.1.0.2")}, allRemote)},
			wantErr: ErrInvalidAnnotation,
		},
		{
			name:    "service without name",
			in:      Input{Cluster: local, Local: LocalService{Namespace: "ns"}},
			want:    Merged{},
			wantErr: ErrInvalidService,
		},
		{
			name: "no frontends, no backends",
			in:   Input{Cluster: local, Local: LocalService{Namespace: "ns", Name: "svc", Annotations: global}},
			want: Merged{Namespace: "ns", Name: "svc", Config: cfgGlobal},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Merge(tt.in)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, addrEqual); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
		})
	}
}

func with2(s *schema.ClusterService, f func(*schema.ClusterService)) *schema.ClusterService {
	f(s)
	return s
}

func TestMergeCopiesFrontends(t *testing.T) {
	in := Input{Cluster: local, Local: svc(global, twoLocal)}
	in.Local.Frontends = map[netip.Addr]schema.PortConfiguration{ip("172.20.0.10"): http(80)}
	m, err := Merge(in)
	if err != nil {
		t.Fatal(err)
	}
	m.Frontends[ip("172.20.0.10")]["http"] = tcp(1)
	if got := in.Local.Frontends[ip("172.20.0.10")]["http"]; got != tcp(80) {
		t.Errorf("modifying the result changed the input: %v", got)
	}
}
