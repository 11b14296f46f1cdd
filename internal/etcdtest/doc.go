// Package etcdtest starts real, in-process etcd servers
// (go.etcd.io/etcd/server/v3/embed) on free loopback ports for tests.
//
// Several servers may run at once (one per simulated cluster). Each keeps its
// data directory in t.TempDir(), so Stop followed by Restart brings the same
// server back on the same ports with its data intact, which is how tests
// simulate an etcd outage. Every server is stopped by t.Cleanup.
//
// It is imported only from tests and from tools/bench; no runtime package
// depends on it.
package etcdtest
