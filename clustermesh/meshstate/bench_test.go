package meshstate

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// BenchmarkIPCacheHeap loads N remote ipcache entries (default 100,000;
// STRAIT_BENCH_IPCACHE_ENTRIES=1000000 for the 1M goal) into the mesh
// state through the same decode-validate-store path the watch uses, and
// reports the live heap they occupy per entry.
//
//	STRAIT_BENCH_IPCACHE_ENTRIES=1000000 go test -run '^$' -bench BenchmarkIPCacheHeap -benchtime 1x ./clustermesh/meshstate/
func BenchmarkIPCacheHeap(b *testing.B) {
	n := 100_000
	if v := os.Getenv("STRAIT_BENCH_IPCACHE_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("STRAIT_BENCH_IPCACHE_ENTRIES=%q: want a positive number", v)
		}
	}
	const cluster = "c2"
	origin := schema.Origin{Cluster: cluster, ClusterID: 2, Max: identity.ClusterMax255}
	// Encoded values, built before the measurement (they are etcd's, not
	// ours); 250 pods per node, 50 namespaces, 1000 identities.
	type kv struct {
		key   string
		value []byte
	}
	events := make([]kv, n)
	for i := range n {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if i >= 1<<24 {
			b.Fatal("too many entries for 10.0.0.0/8")
		}
		p := schema.IPIdentityPair{
			IP:            addr,
			HostIP:        netip.AddrFrom4([4]byte{172, 18, byte(i / 250 >> 8), byte(i / 250)}),
			ID:            identity.NumericIdentity(2<<16 | (i%1000 + 1)),
			EncryptionKey: 3,
			K8sNamespace:  "namespace-" + strconv.Itoa(i%50),
			K8sPodName:    "deployment-7d9f8b6c5-" + strconv.Itoa(i),
			K8sPodUID:     "0b9c3a4e-6f1d-4c2b-9e8a-" + strconv.Itoa(i),
		}
		v, err := p.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		events[i] = kv{key: schema.CacheIPPrefix + "/" + cluster + "/" + addr.String(), value: v}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.ResetTimer()
	var perEntry float64
	for range b.N {
		b.StopTimer()
		s, err := New((*kvstore.Client)(nil), log, Options{Cluster: "c1", ClusterID: 1, Max: identity.ClusterMax255})
		if err != nil {
			b.Fatal(err)
		}
		before := liveHeap()
		b.StartTimer()
		sp := s.ips
		for _, ev := range events {
			k, err := sp.keyOf(ev.key, cluster)
			if err != nil {
				b.Fatal(err)
			}
			v, err := sp.decode(ev.key, ev.value, origin)
			if err != nil {
				b.Fatal(err)
			}
			sp.table.upsert(cluster, k, v)
		}
		b.StopTimer()
		after := liveHeap()
		if got := sp.table.len(cluster); got != n {
			b.Fatalf("%d entries stored, want %d", got, n)
		}
		perEntry = float64(after-before) / float64(n)
		runtime.KeepAlive(s)
	}
	b.ReportMetric(perEntry, "heap-bytes/entry")
	b.ReportMetric(float64(n), "entries")
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
