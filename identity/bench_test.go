package identity_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/identity"
	"github.com/strait-net/strait/internal/etcdtest"
)

// benchWorkers is the number of goroutines per agent.
const benchWorkers = 16

// runSplit runs fn(i) for i in [0, n) over agents×benchWorkers goroutines
// and reports the rate as unit/s.
func runSplit(b *testing.B, agents int, unit string, fn func(agent, i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for a := range agents {
		for range benchWorkers {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= b.N {
						return
					}
					if err := fn(a, i); err != nil {
						failed.Store(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit+"/s")
}

func benchLabels(run string, i int) identity.Labels {
	return identity.Labels{
		{Source: "k8s", Key: "app", Value: run + "-" + strconv.Itoa(i)},
		{Source: "k8s", Key: identity.ClusterLabel, Value: "c0"},
		{Source: "k8s", Key: "io.kubernetes.pod.namespace", Value: "default"},
	}
}

var benchRun atomic.Int64

// BenchmarkIdentityAllocateNew: two agents (own clients, own node names)
// allocating distinct new label sets in parallel; every op creates an
// identity in etcd.
func BenchmarkIdentityAllocateNew(b *testing.B) {
	srv := etcdtest.Start(b, etcdtest.Options{})
	as := []*agent{
		startAgent(b, srv, identity.AllocatorOptions{Node: "a"}, time.Minute),
		startAgent(b, srv, identity.AllocatorOptions{Node: "b"}, time.Minute),
	}
	run := fmt.Sprint(benchRun.Add(1))
	ctx := context.Background()
	runSplit(b, len(as), "ids", func(a, i int) error {
		_, isNew, err := as[a].a.Allocate(ctx, benchLabels(run, i))
		if err == nil && !isNew {
			err = fmt.Errorf("set %d was not new", i)
		}
		return err
	})
}

// BenchmarkIdentityRawTxn is the baseline for AllocateNew: the same
// create transaction (two compares, two puts, one leased) sent directly
// with clientv3 from two clients with the same parallelism.
func BenchmarkIdentityRawTxn(b *testing.B) {
	srv := etcdtest.Start(b, etcdtest.Options{})
	clis := []*clientv3.Client{srv.Client(b), srv.Client(b)}
	ctx := context.Background()
	var leases []clientv3.LeaseID
	for _, c := range clis {
		l, err := c.Grant(ctx, 60)
		if err != nil {
			b.Fatal(err)
		}
		leases = append(leases, l.ID)
	}
	run := fmt.Sprint(benchRun.Add(1))
	k := identity.Keys{Prefix: identity.KVStorePrefix}
	runSplit(b, len(clis), "txns", func(a, i int) error {
		labels := benchLabels(run, i).KVStoreString()
		idKey := k.IDKey(identity.NumericIdentity(256 + i))
		resp, err := clis[a].Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(k.RefPrefix(labels)), "=", 0).WithPrefix(),
			clientv3.Compare(clientv3.CreateRevision(idKey), "=", 0),
		).Then(
			clientv3.OpPut(idKey, labels),
			clientv3.OpPut(k.RefKey(labels, "n"), strconv.Itoa(256+i), clientv3.WithLease(leases[a])),
		).Else(
			clientv3.OpGet(k.RefPrefix(labels), clientv3.WithPrefix(), clientv3.WithLimit(1)),
		).Commit()
		if err == nil && !resp.Succeeded {
			err = fmt.Errorf("txn %d failed", i)
		}
		return err
	})
}

// BenchmarkIdentityLookup: cached lookups by ID and by labels, in
// parallel, over 1000 known identities. Never touches etcd.
func BenchmarkIdentityLookup(b *testing.B) {
	srv := etcdtest.Start(b, etcdtest.Options{})
	ag := startAgent(b, srv, identity.AllocatorOptions{Node: "a"}, time.Minute)
	const n = 1000
	ids := make([]identity.NumericIdentity, n)
	sets := make([]identity.Labels, n)
	for i := range n {
		sets[i] = benchLabels("lookup", i)
		id, _, err := ag.a.Allocate(context.Background(), sets[i])
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = id
	}
	for identity.CacheLen(ag.a) < n {
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportAllocs()
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if i%2 == 0 {
				if _, ok := ag.a.LookupByID(ids[i%n]); !ok {
					panic("identity missing from cache")
				}
			} else if _, ok := ag.a.LookupByLabels(sets[i%n]); !ok {
				panic("labels missing from cache")
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lookups/s")
}

// BenchmarkIdentityRawGet is the baseline for Lookup: the same lookups
// read from etcd with a Get of the id key each.
func BenchmarkIdentityRawGet(b *testing.B) {
	srv := etcdtest.Start(b, etcdtest.Options{})
	cli := srv.Client(b)
	k := identity.Keys{Prefix: identity.KVStorePrefix}
	ctx := context.Background()
	const n = 1000
	for i := range n {
		if _, err := cli.Put(ctx, k.IDKey(identity.NumericIdentity(256+i)), benchLabels("get", i).KVStoreString()); err != nil {
			b.Fatal(err)
		}
	}
	runSplit(b, 2, "gets", func(_, i int) error {
		resp, err := cli.Get(ctx, k.IDKey(identity.NumericIdentity(256+i%n)))
		if err == nil && len(resp.Kvs) != 1 {
			err = fmt.Errorf("id %d missing", 256+i%n)
		}
		return err
	})
}
