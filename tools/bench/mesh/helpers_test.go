package mesh

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/kvstoremesh"
	"github.com/strait-net/strait/clustermesh/meshstate"
	"github.com/strait-net/strait/clustermesh/remoteconfig"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// clusterMax is the mesh's max-connected-clusters in every benchmark.
const clusterMax = identity.ClusterMax255

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// envInt reads a positive integer knob, def when unset.
func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// envDuration reads a positive duration knob, def when unset.
func envDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		tb.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}

// background runs fn until the benchmark ends, then cancels it and waits.
func background(tb testing.TB, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			tb.Errorf("background run: %v", err)
		}
	})
}

// newClient connects a kvstore client (with its session lease) to endpoints.
func newClient(tb testing.TB, endpoints []string) *kvstore.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kvstore.New(ctx, discardLog(), kvstore.Config{Endpoints: endpoints, MaxBackoff: time.Second})
	if err != nil {
		tb.Fatalf("kvstore.New %v: %v", endpoints, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// member is one simulated cluster as the benchmarks see it.
type member struct {
	name      string
	id        identity.ClusterID
	endpoints []string
	raw       *clientv3.Client
}

func clusterName(i int) string { return fmt.Sprintf("c%d", i) }

// writeConfig writes the cluster's own cilium/cluster-config/<name> key,
// which every kvstoremesh connecting to it reads first.
func (m *member) writeConfig(tb testing.TB) {
	tb.Helper()
	cc := schema.ClusterConfig{Cluster: m.name, ID: m.id, Capabilities: schema.Capabilities{MaxConnectedClusters: clusterMax}}
	v, err := cc.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.raw.Put(ctx, schema.ClusterConfigKey(m.name), string(v)); err != nil {
		tb.Fatalf("write cluster config of %s: %v", m.name, err)
	}
}

// startMesh starts the kvstoremesh of self, mirroring every other member
// into self's etcd, and returns it (it runs until the benchmark ends).
func startMesh(tb testing.TB, self *member, all []*member) *kvstoremesh.Mesh {
	tb.Helper()
	local := newClient(tb, self.endpoints)
	m, err := kvstoremesh.New(discardLog(), kvstoremesh.Options{
		Local: local, ClusterName: self.name, ClusterID: self.id, ClusterMax: clusterMax,
		RetryMin: 200 * time.Millisecond, RetryMax: 2 * time.Second,
	})
	if err != nil {
		tb.Fatalf("kvstoremesh.New %s: %v", self.name, err)
	}
	for _, o := range all {
		if o == self {
			continue
		}
		m.Add(context.Background(), remoteconfig.RemoteCluster{
			Name: o.name, Path: "/bench/" + o.name,
			Config: kvstore.Config{Endpoints: o.endpoints},
		})
	}
	background(tb, m.Run)
	return m
}

// waitMeshReady waits until m reports every remote cluster Ready.
func waitMeshReady(tb testing.TB, m *kvstoremesh.Mesh, remotes int) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ready := 0
		for _, s := range m.Statuses() {
			if s.Ready {
				ready++
			}
		}
		if ready == remotes {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kvstoremesh: %d of %d remotes ready after 60s: %+v", ready, remotes, m.Statuses())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startAgent starts a meshstate agent of self on its local etcd; sub, when
// not nil, receives its IPCache events.
func startAgent(tb testing.TB, self *member, sub func(meshstate.IPCacheEvent)) *meshstate.State {
	tb.Helper()
	c := newClient(tb, self.endpoints)
	s, err := meshstate.New(c, discardLog(), meshstate.Options{Cluster: self.name, ClusterID: self.id, Max: clusterMax})
	if err != nil {
		tb.Fatalf("meshstate.New %s: %v", self.name, err)
	}
	if sub != nil {
		s.SubscribeIPCache(sub)
	}
	background(tb, s.Run)
	return s
}

// waitAgentSynced waits until agent s has every kind of every other member.
func waitAgentSynced(tb testing.TB, s *meshstate.State, self *member, all []*member) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for _, o := range all {
		if o == self {
			continue
		}
		if err := s.ClusterSynced(ctx, o.name); err != nil {
			tb.Fatalf("agent of %s: cluster %s not synced: %v", self.name, o.name, err)
		}
	}
}

// ipPair is the ipcache entry of pod p on node n of cluster m, with the
// send time encoded in the pod name ("p<unix-nanos>").
func (m *member) ipPair(n, p int, sent time.Time) *schema.IPIdentityPair {
	first, _, _ := clusterMax.Range(m.id)
	return &schema.IPIdentityPair{
		IP:           netip.AddrFrom4([4]byte{10, byte(m.id), byte(n), byte(p)}),
		HostIP:       netip.AddrFrom4([4]byte{172, 16, byte(m.id), byte(n)}),
		ID:           first + identity.NumericIdentity(1+p%50),
		K8sNamespace: "bench",
		K8sPodName:   "p" + strconv.FormatInt(sent.UnixNano(), 10),
	}
}

// sentAt decodes the send time of podName ("p<unix-nanos>").
func sentAt(podName string) (time.Time, bool) {
	if len(podName) < 2 || podName[0] != 'p' {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(podName[1:], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// samples collects latencies from several goroutines.
type samples struct {
	mu  sync.Mutex
	lat []time.Duration
}

func (s *samples) add(d time.Duration) {
	s.mu.Lock()
	s.lat = append(s.lat, d)
	s.mu.Unlock()
}

func (s *samples) sorted() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]time.Duration(nil), s.lat...)
	slices.Sort(out)
	return out
}

// quantile of a sorted slice (nearest rank); 0 when empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func identityID(i int) identity.ClusterID { return identity.ClusterID(i) }
