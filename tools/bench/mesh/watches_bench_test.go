package mesh

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/etcdtest"
)

// BenchmarkWatchesOnEtcd counts the watches held on cluster A's etcd while
// the agents (one meshstate State with its own kvstore client per simulated
// node) in the STRAIT_BENCH_MESH_WATCH_REMOTES other clusters (3) grow
// through STRAIT_BENCH_MESH_WATCH_NODES (10,100,1000). A's etcd runs in a
// child process so its etcd_debugging_mvcc_* gauges are its own; every
// cluster runs a kvstoremesh mirroring all the others. A has no agent of
// its own until the last step, which adds one to show what a local agent
// costs A. One iteration is the whole run: use -benchtime 1x.
//
//	go test -run '^$' -bench BenchmarkWatchesOnEtcd -benchtime 1x ./tools/bench/mesh/
func BenchmarkWatchesOnEtcd(b *testing.B) {
	nRemotes := envInt(b, "STRAIT_BENCH_MESH_WATCH_REMOTES", 3)
	steps := []int{10, 100, 1000}
	if v := os.Getenv("STRAIT_BENCH_MESH_WATCH_NODES"); v != "" {
		steps = steps[:0]
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n <= 0 || (len(steps) > 0 && n < steps[len(steps)-1]) {
				b.Fatalf("STRAIT_BENCH_MESH_WATCH_NODES=%q: want increasing positive numbers", v)
			}
			steps = append(steps, n)
		}
	}

	child := startChildEtcd(b)
	a := &member{name: clusterName(1), id: identityID(1), endpoints: []string{child.endpoint}}
	a.raw = newClient(b, a.endpoints).Etcd()
	a.writeConfig(b)
	members := []*member{a}
	for i := range nRemotes {
		name := clusterName(i + 2)
		srv := etcdtest.Start(b, etcdtest.Options{Name: name})
		m := &member{name: name, id: identityID(i + 2), endpoints: srv.Endpoints(), raw: srv.Client(b)}
		m.writeConfig(b)
		members = append(members, m)
	}
	report := func(label string, nodes int) {
		// Watches are opened asynchronously after a sync; let them settle.
		time.Sleep(time.Second)
		c := child.counts(b)
		b.Logf("%-28s remote agents %4d: watchers on A %4d, watch streams %3d, TCP conns %3d", label, nodes, c.watchers, c.streams, c.conns)
		b.ReportMetric(float64(c.watchers), "watchers-on-A@"+label)
	}
	report("bare", 0)
	for _, m := range members {
		waitMeshReady(b, startMesh(b, m, members), nRemotes)
	}
	report("meshes", 0)

	agents := 0
	for _, n := range steps {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		for ; agents < n; agents++ {
			self := members[1+agents%nRemotes]
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				s := startAgent(b, self, nil)
				waitAgentSynced(b, s, self, members)
			}()
		}
		wg.Wait()
		report(strconv.Itoa(n)+"-nodes", n)
	}
	s := startAgent(b, a, nil)
	waitAgentSynced(b, s, a, members)
	report("plus-1-agent-in-A", agents)
}
