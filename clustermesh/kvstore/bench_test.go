package kvstore

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/internal/etcdtest"
)

// benchValue is an ipcache entry of realistic size (IPIdentityPair JSON).
func benchValue(i int) string {
	return fmt.Sprintf(`{"IP":"10.%d.%d.%d","Mask":null,"HostIP":"172.18.0.%d","ID":%d,"Key":0,"Metadata":"","K8sNamespace":"default","K8sPodName":"pod-%d","NamedPorts":null}`,
		(i>>16)&255, (i>>8)&255, i&255, i%250+2, 199472+i%1000, i)
}

func benchKey(i int) string {
	return fmt.Sprintf("%s/default/10.%d.%d.%d", schema.IPPrefix, (i>>16)&255, (i>>8)&255, i&255)
}

// BenchmarkPutToEvent measures the time from a Put until the watcher sees
// it, through ListAndWatch ("strait") and through the raw etcd client's
// Watch ("raw"), on the same embedded etcd. "interleaved" alternates both in
// each iteration and reports each latency and their ratio.
func BenchmarkPutToEvent(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := etcdtest.Start(b, etcdtest.Options{Name: "bench-latency"})
	c := newTestClient(b, srv, Config{})
	raw := srv.Client(b)
	value := benchValue(1)

	straitWatch := func(prefix string) <-chan Event {
		ch := c.ListAndWatch(ctx, prefix)
		for ev := range ch {
			if ev.Kind == EventListDone {
				break
			}
		}
		return ch
	}
	rawWatch := func(prefix string) clientv3.WatchChan {
		ch := raw.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		<-ch // created
		return ch
	}
	putStrait := func(ch <-chan Event, key string) {
		if _, err := raw.Put(ctx, key, value); err != nil {
			b.Fatal(err)
		}
		if ev := <-ch; ev.Key != key {
			b.Fatalf("event for %q, want %q", ev.Key, key)
		}
	}
	putRaw := func(ch clientv3.WatchChan, key string) {
		if _, err := raw.Put(ctx, key, value); err != nil {
			b.Fatal(err)
		}
		if wr := <-ch; len(wr.Events) != 1 || string(wr.Events[0].Kv.Key) != key {
			b.Fatalf("watch response %+v, want one event for %q", wr, key)
		}
	}

	b.Run("strait", func(b *testing.B) {
		ch := straitWatch("bench/strait/")
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			putStrait(ch, "bench/strait/k")
		}
	})
	b.Run("raw", func(b *testing.B) {
		ch := rawWatch("bench/raw/")
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			putRaw(ch, "bench/raw/k")
		}
	})
	b.Run("interleaved", func(b *testing.B) {
		sch := straitWatch("bench/istrait/")
		rch := rawWatch("bench/iraw/")
		var ds, dr time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			putRaw(rch, "bench/iraw/k")
			t1 := time.Now()
			putStrait(sch, "bench/istrait/k")
			ds += time.Since(t1)
			dr += t1.Sub(t0)
		}
		b.ReportMetric(float64(dr.Nanoseconds())/float64(b.N), "raw-ns/event")
		b.ReportMetric(float64(ds.Nanoseconds())/float64(b.N), "strait-ns/event")
		b.ReportMetric(float64(ds)/float64(dr), "strait/raw")
	})
}

const benchKeys = 100_000

// loadKeys writes benchKeys ipcache entries in transactions of 100 puts.
func loadKeys(ctx context.Context, b *testing.B, raw *clientv3.Client) {
	ops := make([]clientv3.Op, 0, 100)
	for i := 0; i < benchKeys; i++ {
		ops = append(ops, clientv3.OpPut(benchKey(i), benchValue(i)))
		if len(ops) == cap(ops) || i == benchKeys-1 {
			if _, err := raw.Txn(ctx).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Benchmark100k lists and watches 100k ipcache keys from an embedded etcd:
//   - ListAndWatch: time until EventListDone (one op = one full list);
//   - WatchCacheHeap: heap growth per entry of a Cache fed by ListAndWatch,
//     including the watcher's own key → revision map (the watch stays up).
func Benchmark100k(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := etcdtest.Start(b, etcdtest.Options{Name: "bench-100k"})
	c := newTestClient(b, srv, Config{})
	loadKeys(ctx, b, srv.Client(b))
	prefix := schema.IPPrefix + "/default/"

	b.Run("ListAndWatch", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			wctx, wcancel := context.WithCancel(ctx)
			n := 0
			for ev := range c.ListAndWatch(wctx, prefix) {
				if ev.Kind == EventListDone {
					break
				}
				n++
			}
			wcancel()
			if n != benchKeys {
				b.Fatalf("listed %d keys, want %d", n, benchKeys)
			}
		}
		b.ReportMetric(float64(benchKeys), "keys/op")
	})
	b.Run("WatchCacheHeap", func(b *testing.B) {
		var perEntry float64
		for i := 0; i < b.N; i++ {
			before := heapAlloc()
			wctx, wcancel := context.WithCancel(ctx)
			cache := NewCache()
			done := make(chan struct{})
			go func() { defer close(done); cache.Run(wctx, c.ListAndWatch(wctx, prefix)) }()
			<-cache.Synced()
			after := heapAlloc()
			if cache.Len() != benchKeys {
				b.Fatalf("cache has %d keys", cache.Len())
			}
			perEntry += (float64(after) - float64(before)) / benchKeys
			wcancel()
			<-done
		}
		b.ReportMetric(perEntry/float64(b.N), "B/entry")
	})
}

// BenchmarkCacheHeap is the heap growth per entry of a Cache alone, fed
// 100k ipcache events from memory (keys of 35 bytes, values of ~150).
func BenchmarkCacheHeap(b *testing.B) {
	events := make([]Event, benchKeys)
	payload := 0
	for i := range events {
		events[i] = Event{Kind: EventUpsert, Key: benchKey(i), Value: []byte(benchValue(i)), Revision: int64(i + 1)}
		payload += len(events[i].Key) + len(events[i].Value)
	}
	var perEntry float64
	for i := 0; i < b.N; i++ {
		before := heapAlloc()
		cache := NewCache()
		for _, ev := range events {
			// A watcher allocates every key it delivers; count it here.
			ev.Key = strings.Clone(ev.Key)
			cache.Apply(ev)
		}
		after := heapAlloc()
		perEntry += (float64(after) - float64(before)) / benchKeys
		runtime.KeepAlive(cache)
	}
	b.ReportMetric(perEntry/float64(b.N), "B/entry")
	b.ReportMetric(float64(payload)/benchKeys, "payload-B/entry")
}
