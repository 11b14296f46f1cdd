package globalsvc

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// benchCache holds services local services, each global with the given
// affinity and backends backends per cluster, in the local cluster and
// clusters-1 remote ones. Every backend serves two port names on one L4
// address.
func benchCache(b *testing.B, services, clusters, backends int, affinity string) *Cache {
	b.Helper()
	c := newCache(b)
	ann := map[string]string{AnnotationGlobal: "true", AnnotationAffinity: affinity}
	ports := schema.PortConfiguration{"http": tcp(8080), "http-alt": tcp(8080)}
	for s := range services {
		name := fmt.Sprintf("svc-%d", s)
		lbs := make(map[netip.Addr]LocalBackend, backends)
		for i := range backends {
			lbs[netip.AddrFrom4([4]byte{10, 1, byte(s % 256), byte(i)})] = LocalBackend{Ports: ports}
		}
		if err := c.UpsertLocal(LocalService{Namespace: "ns", Name: name, Annotations: ann,
			Frontends: map[netip.Addr]schema.PortConfiguration{netip.AddrFrom4([4]byte{172, 20, byte(s >> 8), byte(s)}): http(80)},
			Backends:  lbs}); err != nil {
			b.Fatal(err)
		}
		for cl := 2; cl <= clusters; cl++ {
			rs := &schema.ClusterService{Cluster: fmt.Sprintf("c%d", cl), Namespace: "ns", Name: name,
				Backends: make(map[netip.Addr]schema.PortConfiguration, backends), Shared: true, IncludeExternal: true,
				ClusterID: identity.ClusterID(cl)}
			for i := range backends {
				rs.Backends[netip.AddrFrom4([4]byte{10, byte(cl), byte(s % 256), byte(i)})] = ports
			}
			if err := c.Upsert(rs); err != nil {
				b.Fatal(err)
			}
		}
	}
	return c
}

// BenchmarkList merges 1000 services × 8 clusters × 10 backends per
// cluster (80,000 backends) per iteration.
func BenchmarkList(b *testing.B) {
	for _, aff := range []string{"none", "local"} {
		b.Run("affinity="+aff, func(b *testing.B) {
			c := benchCache(b, 1000, 8, 10, aff)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if got := c.List(); len(got) != 1000 {
					b.Fatalf("List: %d services", len(got))
				}
			}
		})
	}
}

// BenchmarkGet merges one service of 8 clusters × 10 backends.
func BenchmarkGet(b *testing.B) {
	c := benchCache(b, 1000, 8, 10, "none")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, ok := c.Get("ns", "svc-500"); !ok {
			b.Fatal("Get: not found")
		}
	}
}
