// Package mesh holds the end-to-end cluster-mesh benchmarks of strait
// (issue 5): several clusters, each with its own real embedded etcd
// (internal/etcdtest), its own kvstoremesh.Mesh mirroring every other
// cluster, and meshstate agents reading only their local etcd.
//
// It has no runtime code; everything is in the _test.go files and runs with
// `go test -bench`:
//
//   - BenchmarkPropagation: latency from a leased ipcache put in cluster A's
//     etcd to the IPCache event in a meshstate agent of cluster B (A's etcd →
//     B's kvstoremesh → B's etcd cilium/cache/... → B's agent), under a
//     mesh-wide load of endpoint changes, beside a raw etcd relay over the
//     same hops (put in A → raw watch → put in B → raw watch) in the same run.
//   - BenchmarkWatchesOnEtcd: the number of watches held on cluster A's etcd
//     while the number of agents in the other clusters grows. A's etcd runs
//     in a child process (this test binary, re-executed with
//     STRAIT_BENCH_ETCD_CHILD set, see TestMain) so that its process-global
//     etcd_debugging_mvcc_* gauges, scraped from /metrics on its client URL,
//     count A's watches only.
//
// Who feeds it: the developer (docs/benchmarks.md has the commands and the
// figures). Who consumes it: nobody; no package imports it.
//
// Lifecycle: every etcd, client, Mesh and agent is stopped by the
// benchmark's Cleanup (the child etcd is killed by its process id and its
// data directory removed). Errors of setup fail the benchmark with b.Fatal;
// nothing here asserts a timing, figures are reported with b.ReportMetric.
package mesh
