// Package apiserver runs the etcd front of one strait cluster: the core of
// cmd/strait-apiserver.
//
// A Server either starts an embedded etcd member
// (go.etcd.io/etcd/server/v3/embed) on Config.DataDir, serving clients over
// TLS with client-certificate authentication, or uses an external etcd
// cluster (Config.ExternalEndpoints). Then, through its own admin identity
// (a client certificate whose CN is admin-<cluster> or root), it:
//
//  1. creates the password-less users and the roles of the Cilium
//     ClusterMesh layout (see Users and Roles; clients authenticate by the
//     CN of their certificate), reconciling the roles' permissions to
//     exactly the wanted set, and enables etcd authentication;
//  2. writes its cluster config, cilium/cluster-config/<cluster>, under the
//     session lease of its kvstore client;
//  3. writes the heartbeat, cilium/.heartbeat, and keeps rewriting it every
//     Config.HeartbeatInterval;
//  4. when Config.ClusterMeshConfigDir is set, watches that directory
//     (clustermesh/remoteconfig, one file per remote cluster) and runs the
//     remote-cluster cache (clustermesh/kvstoremesh) through its admin
//     client, mirroring every connected remote into cilium/cache/ so agents
//     read only this etcd; RemoteStatuses reports each remote.
//
// Every step is idempotent, so a restart on the same data directory, or a
// second apiserver against the same external etcd, finds existing users,
// roles and auth and goes on.
//
// Lifecycle:
//
//	New(log, cfg) ──► Run(ctx) ──► [etcd up] ──► [auth set] ──► [config + heartbeat]
//	                                                                  │ Ready() closes
//	                  ctx done ◄── heartbeat every HeartbeatInterval ─┘
//	                      │
//	                      ▼ client closed (lease revoked: the cluster config goes),
//	                        embedded etcd stopped; Run returns nil
//
// Who uses it: cmd/strait-apiserver wires Config from flags and calls Run.
// Agents of this cluster read through the local-<cluster> user, other
// clusters (and their KVStoreMesh caches) through the remote user; both
// reach it with clustermesh/kvstore.
//
// Errors: New returns a *ConfigError (errors.Is ErrInvalidConfig) naming the
// Config field at fault. Run returns an error naming the step that failed;
// a busy listen address wraps syscall.EADDRINUSE, so a caller may pick
// another port and retry.
package apiserver
