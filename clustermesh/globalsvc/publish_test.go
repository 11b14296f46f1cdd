package globalsvc

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

func TestPublish(t *testing.T) {
	backends := map[netip.Addr]LocalBackend{
		ip("10.1.0.1"): {Ports: schema.PortConfiguration{"http": tcp(8080), "http-alt": tcp(8080)}, Hostname: "pod-1",
			Zone: &schema.BackendZone{Zone: "a", ForZones: []schema.ForZone{{Name: "a"}}}},
		ip("10.1.0.2"): {Ports: http(8080)},
		ip("10.1.0.3"): {Ports: http(8080), Unhealthy: true, Hostname: "pod-3"},
		ip("10.1.0.4"): {Ports: http(8080), State: StateTerminating},
		ip("10.1.0.5"): {Ports: http(8080), State: StateQuarantined},
		ip("10.1.0.6"): {Ports: http(8080), State: StateMaintenance},
	}
	full := func(ann map[string]string) LocalService {
		s := svc(ann, backends)
		s.Labels = map[string]string{"app": "web"}
		s.Selector = map[string]string{"app": "web"}
		return s
	}
	published := &schema.ClusterService{
		Cluster: "c1", Namespace: "ns", Name: "svc",
		Frontends: map[netip.Addr]schema.PortConfiguration{ip("172.20.0.10"): http(80)},
		Backends: map[netip.Addr]schema.PortConfiguration{
			ip("10.1.0.1"): {"http": tcp(8080), "http-alt": tcp(8080)},
			ip("10.1.0.2"): http(8080),
		},
		Hostnames:       map[netip.Addr]string{ip("10.1.0.1"): "pod-1"},
		Zones:           map[netip.Addr]schema.BackendZone{ip("10.1.0.1"): {Zone: "a", ForZones: []schema.ForZone{{Name: "a"}}}},
		Labels:          map[string]string{"app": "web"},
		Selector:        map[string]string{"app": "web"},
		IncludeExternal: true,
		Shared:          true,
		ClusterID:       1,
	}
	tests := []struct {
		name    string
		svc     LocalService
		want    *schema.ClusterService
		wantErr error
	}{
		{name: "global: active healthy backends exported", svc: full(global), want: published},
		{name: "legacy global with affinity", svc: full(map[string]string{AnnotationGlobalLegacy: "true", AnnotationAffinityLegacy: "remote"}), want: published},
		{name: "not global: not published", svc: full(nil)},
		{name: "global false: not published", svc: full(map[string]string{AnnotationGlobal: "false"})},
		{name: "shared false: not published", svc: full(globalUnshared)},
		{name: "legacy shared false: not published", svc: full(map[string]string{AnnotationGlobal: "true", AnnotationSharedLegacy: "false"})},
		{name: "bad global: not published, error", svc: full(map[string]string{AnnotationGlobal: "yes"}), wantErr: ErrInvalidAnnotation},
		{name: "bad shared: not published, error", svc: full(map[string]string{AnnotationGlobal: "true", AnnotationShared: "no"}), wantErr: ErrInvalidAnnotation},
		{name: "bad affinity: published, error", svc: full(map[string]string{AnnotationGlobal: "true", AnnotationAffinity: "?"}), want: published, wantErr: ErrInvalidAnnotation},
		{name: "no name", svc: LocalService{Namespace: "ns", Annotations: global}, wantErr: ErrInvalidService},
		{
			name: "empty service: empty objects, not null",
			svc:  LocalService{Namespace: "ns", Name: "svc", Annotations: global},
			want: &schema.ClusterService{
				Cluster: "c1", Namespace: "ns", Name: "svc",
				Frontends: map[netip.Addr]schema.PortConfiguration{}, Backends: map[netip.Addr]schema.PortConfiguration{},
				Labels: map[string]string{}, Selector: map[string]string{},
				IncludeExternal: true, Shared: true, ClusterID: 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Publish(local, tt.svc)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, addrEqual); diff != "" {
				t.Errorf("Publish (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPublishWire checks that a published service encodes as Cilium's JSON
// and decodes back through the schema's validating decoder.
func TestPublishWire(t *testing.T) {
	s := svc(global, map[netip.Addr]LocalBackend{ip("10.1.0.1"): {Ports: http(8080)}})
	cs, err := Publish(local, s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cs.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"cluster":"c1","namespace":"ns","name":"svc",` +
		`"frontends":{"172.20.0.10":{"http":{"Protocol":"TCP","Port":80}}},` +
		`"backends":{"10.1.0.1":{"http":{"Protocol":"TCP","Port":8080}}},` +
		`"labels":{},"selector":{},"includeExternal":true,"shared":true,"clusterID":1}`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("wire (-want +got):\n%s", diff)
	}
	back, err := schema.DecodeClusterService(cs.Key(), b, schema.Origin{Cluster: "c1", ClusterID: 1, Max: identity.ClusterMax255})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cs, back, addrEqual); diff != "" {
		t.Errorf("round trip (-published +decoded):\n%s", diff)
	}
}

func TestPublishCopies(t *testing.T) {
	s := svc(global, map[netip.Addr]LocalBackend{ip("10.1.0.1"): {Ports: http(8080)}})
	s.Frontends = map[netip.Addr]schema.PortConfiguration{ip("172.20.0.10"): http(80)}
	s.Labels = map[string]string{"app": "web"}
	cs, err := Publish(local, s)
	if err != nil {
		t.Fatal(err)
	}
	cs.Frontends[ip("172.20.0.10")]["http"] = tcp(1)
	cs.Backends[ip("10.1.0.1")]["http"] = tcp(1)
	cs.Labels["app"] = "x"
	if s.Frontends[ip("172.20.0.10")]["http"] != tcp(80) || s.Backends[ip("10.1.0.1")].Ports["http"] != tcp(8080) || s.Labels["app"] != "web" {
		t.Error("modifying the published service changed the local service")
	}
}
