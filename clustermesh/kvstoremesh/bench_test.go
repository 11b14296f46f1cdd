package kvstoremesh

import (
	"fmt"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkPropagation measures the end-to-end latency of one remote
// change: a Put of a node in the remote etcd until its copy's event arrives
// from the local etcd (remote watch → validation → SyncStore → local Put).
func BenchmarkPropagation(b *testing.B) {
	l := startLocal(b)
	rc := startCluster(b, "b", 2, true)
	rc.writeAllCanaries(b)
	tm := startMesh(b, l.client(b), nil)
	tm.add(rc)
	tm.waitReady(b, "b")

	ctx := testkit.Context(b, 3*time.Minute)
	events := l.cli.Watch(ctx, "cilium/cache/nodes/v1/b/", clientv3.WithPrefix())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key, value := rc.node(b, fmt.Sprintf("n%d", i), "172.18.0.2")
		if _, err := rc.cli.Put(ctx, key, value); err != nil {
			b.Fatal(err)
		}
		want := fmt.Sprintf("cilium/cache/nodes/v1/b/n%d", i)
		for got := false; !got; {
			wr, ok := <-events
			if !ok {
				b.Fatal("local watch closed")
			}
			for _, ev := range wr.Events {
				got = got || string(ev.Kv.Key) == want
			}
		}
	}
}
