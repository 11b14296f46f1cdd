package mesh

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/meshstate"
	"github.com/strait-net/strait/internal/etcdtest"
)

// Raw baseline keys: put in A under rawPrefix, relayed by a raw watcher to
// B under relayPrefix, observed by a raw watcher on B.
const (
	rawPrefix   = "bench/raw/"
	relayPrefix = "bench/relay/"
)

// BenchmarkPropagation measures publish-in-A to event-in-an-agent-of-B
// latency through the cache, at STRAIT_BENCH_MESH_CLUSTERS clusters (8) ×
// STRAIT_BENCH_MESH_NODES simulated nodes (50) with STRAIT_BENCH_MESH_RATE
// endpoint changes per second across the mesh (500), for
// STRAIT_BENCH_MESH_DURATION (25s, the first 3s discarded as warm-up).
// Beside it, in the same run and under the same load, a raw etcd relay over
// the same hops. One iteration is the whole run: use -benchtime 1x.
//
//	go test -run '^$' -bench BenchmarkPropagation -benchtime 1x ./tools/bench/mesh/
func BenchmarkPropagation(b *testing.B) {
	nClusters := envInt(b, "STRAIT_BENCH_MESH_CLUSTERS", 8)
	nNodes := envInt(b, "STRAIT_BENCH_MESH_NODES", 50)
	rate := envInt(b, "STRAIT_BENCH_MESH_RATE", 500)
	dur := envDuration(b, "STRAIT_BENCH_MESH_DURATION", 25*time.Second)
	const warmup = 3 * time.Second
	const podsPerNode = 20 // ipcache keys per node: each change rewrites one
	if nClusters < 2 || nNodes > 250 {
		b.Fatalf("want ≥ 2 clusters and ≤ 250 nodes per cluster")
	}

	// Clusters, their configs and their meshes.
	members := make([]*member, nClusters)
	for i := range members {
		name := clusterName(i + 1)
		srv := etcdtest.Start(b, etcdtest.Options{Name: name})
		members[i] = &member{name: name, id: identityID(i + 1), endpoints: srv.Endpoints(), raw: srv.Client(b)}
		members[i].writeConfig(b)
	}
	for _, m := range members {
		waitMeshReady(b, startMesh(b, m, members), nClusters-1)
	}
	a, bm := members[0], members[1]

	// The measured agent in B, and the raw relay A → B.
	var measureFrom atomic.Int64 // unix nanos; samples sent before are warm-up
	measureFrom.Store(time.Now().Add(time.Hour).UnixNano())
	var meshLat, rawLat samples
	agent := startAgent(b, bm, func(ev meshstate.IPCacheEvent) {
		if ev.Cluster != a.name || ev.Op != meshstate.OpUpsert {
			return
		}
		now := time.Now()
		if t, ok := sentAt(ev.Value.PodName); ok && t.UnixNano() >= measureFrom.Load() {
			meshLat.add(now.Sub(t))
		}
	})
	waitAgentSynced(b, agent, bm, members)
	startRawRelay(b, a.raw, bm.raw)
	startRawObserver(b, bm.raw, func(value string) {
		now := time.Now()
		if t, ok := sentAt(value); ok && t.UnixNano() >= measureFrom.Load() {
			rawLat.add(now.Sub(t))
		}
	})

	// Load: each cluster's publisher (one kvstore client standing for its
	// nNodes nodes) makes rate/nClusters leased ipcache upserts per second;
	// cluster A additionally makes as many raw puts for the baseline.
	b.ResetTimer()
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	start := time.Now()
	measureFrom.Store(start.Add(warmup).UnixNano())
	var sent, skipped, failed atomic.Int64
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) * float64(nClusters) / float64(rate))
	for ci, m := range members {
		pub := newClient(b, m.endpoints)
		wg.Add(1)
		go func() {
			defer wg.Done()
			inflight := make(chan struct{}, 16)
			var pw sync.WaitGroup
			defer pw.Wait()
			// Stagger the clusters over one interval.
			next := start.Add(interval * time.Duration(ci) / time.Duration(nClusters))
			for k := 0; ; k++ {
				if d := time.Until(next); d > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				} else if ctx.Err() != nil {
					return
				}
				next = next.Add(interval)
				select {
				case inflight <- struct{}{}:
				default:
					skipped.Add(1) // 16 puts of this cluster outstanding
					continue
				}
				n, p := k%nNodes, (k/nNodes)%podsPerNode
				pw.Add(1)
				go func() {
					defer pw.Done()
					defer func() { <-inflight }()
					now := time.Now()
					pair := m.ipPair(n, p, now)
					v, err := pair.Marshal()
					if err != nil {
						b.Error(err)
						return
					}
					pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer pcancel()
					if err := pub.PutLeased(pctx, pair.Key(), v); err != nil {
						failed.Add(1)
						return
					}
					sent.Add(1)
					if m == a {
						rawKey := rawPrefix + pair.IP.String()
						if _, err := a.raw.Put(pctx, rawKey, "p"+strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
							failed.Add(1)
						}
					}
				}()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Let the last changes arrive before reading the samples.
	time.Sleep(2 * time.Second)
	b.StopTimer()

	ml, rl := meshLat.sorted(), rawLat.sorted()
	if len(ml) == 0 || len(rl) == 0 {
		b.Fatalf("no samples: mesh %d, raw %d", len(ml), len(rl))
	}
	mp50, mp99 := quantile(ml, 0.50), quantile(ml, 0.99)
	rp50, rp99 := quantile(rl, 0.50), quantile(rl, 0.99)
	b.ReportMetric(float64(sent.Load())/elapsed.Seconds(), "changes/s")
	b.ReportMetric(float64(skipped.Load()), "skipped")
	b.ReportMetric(float64(failed.Load()), "failed")
	b.ReportMetric(float64(len(ml)), "mesh-samples")
	b.ReportMetric(ms(mp50), "mesh-p50-ms")
	b.ReportMetric(ms(mp99), "mesh-p99-ms")
	b.ReportMetric(ms(ml[len(ml)-1]), "mesh-max-ms")
	b.ReportMetric(float64(len(rl)), "raw-samples")
	b.ReportMetric(ms(rp50), "raw-p50-ms")
	b.ReportMetric(ms(rp99), "raw-p99-ms")
	b.ReportMetric(float64(mp50)/float64(rp50), "p50-ratio")
	b.ReportMetric(float64(mp99)/float64(rp99), "p99-ratio")
}

// startRawRelay re-puts every put under rawPrefix in from into to under
// relayPrefix: the raw equivalent of the kvstoremesh hop.
func startRawRelay(tb testing.TB, from, to *clientv3.Client) {
	background(tb, func(ctx context.Context) error {
		for resp := range from.Watch(ctx, rawPrefix, clientv3.WithPrefix()) {
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				key := relayPrefix + strings.TrimPrefix(string(ev.Kv.Key), rawPrefix)
				if _, err := to.Put(ctx, key, string(ev.Kv.Value)); err != nil && ctx.Err() == nil {
					tb.Errorf("raw relay put %s: %v", key, err)
				}
			}
		}
		return nil
	})
}

// startRawObserver calls fn with the value of every put under relayPrefix.
func startRawObserver(tb testing.TB, c *clientv3.Client, fn func(value string)) {
	ready := make(chan struct{})
	background(tb, func(ctx context.Context) error {
		wch := c.Watch(clientv3.WithRequireLeader(ctx), relayPrefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		for resp := range wch {
			if resp.Created {
				close(ready)
			}
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut {
					fn(string(ev.Kv.Value))
				}
			}
		}
		return nil
	})
	<-ready
}
