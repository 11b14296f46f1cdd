// Package globalsvc merges global services across the clusters of a mesh
// with Cilium ClusterMesh semantics: a Service with the same namespace and
// name in several clusters, annotated service.cilium.io/global: "true",
// load-balances to the backends of all of them.
//
// # What it holds
//
//   - ParseAnnotations reads the annotations of a local Service into a
//     Config: service.cilium.io/global (legacy io.cilium/global-service),
//     service.cilium.io/shared (legacy io.cilium/shared-service; defaults to
//     true for global services, ignored otherwise) and
//     service.cilium.io/affinity (legacy io.cilium/service-affinity:
//     local, remote or none). The current name wins over the legacy one.
//   - Publish turns a LocalService (annotations, frontends, backends with
//     state and health) into the schema.ClusterService this cluster
//     publishes, or nil when it must not publish one (not global, or global
//     with shared: "false").
//   - Merge is the pure merge of one local service with the remote
//     clusters' ClusterService entries and health marks into a Merged: the
//     local frontends, the backends that take new connections and the
//     excluded ones with their reason.
//   - Cache keeps namespace/name → cluster → entry for a running agent
//     (UpsertLocal, DeleteLocal, Upsert, Delete, DeleteCluster,
//     SetUnhealthy) and merges on demand (Get, List).
//
// # Semantics
//
// A service has a merged form only if it exists locally; only a global
// local service gets remote backends. Remote entries with shared false are
// dropped on arrival (Cache.Upsert removes the cluster's previous entry);
// a local service with shared "false" keeps consuming remote backends but
// Publish returns nil for it. Backend selection, "usable" meaning active
// and not unhealthy:
//
//	not global       local backends only
//	affinity none    local and remote (Cilium 1.18 dropped remote, #46623)
//	affinity local   local; remote only while no local backend is usable
//	affinity remote  remote; local only while no remote backend is usable
//
// Unhealthy, terminating, quarantined and maintenance backends are never
// selected; they are reported in Merged.Excluded. Cilium's affinity
// "remote" counts terminating remote backends as present; strait counts
// only usable ones, the exact mirror of "local" (remote backends arrive
// active anyway, since the wire format has no state, so the two differ
// only in theory). A backend is one L4 address of one cluster; every port
// name mapping to it is kept in Backend.PortNames, so several service
// ports with one targetPort do not lose backends (#45109).
//
// Results are deterministic: backends are sorted by cluster name, address,
// protocol and port; port names are sorted and unique.
//
// # Who feeds it, who consumes it
//
// The Kubernetes source (or the CNI-side service source) feeds local
// services; the ClusterService publisher calls Publish and writes the
// result through clustermesh/kvstore. The agent's mesh state feeds remote
// entries decoded by schema.DecodeClusterService into Cache.Upsert/Delete,
// and calls DeleteCluster when a cluster's state is revoked. The load
// balancer's desired-state function reads Cache.Get/List. The package does
// no I/O and starts no goroutines; Merge, Publish and ParseAnnotations are
// pure, and Cache is safe for concurrent use.
//
// # Errors
//
//   - ErrInvalidAnnotation (*AnnotationError): an annotation value is not
//     understood. Never fatal: the service is handled with the fallback the
//     error names (false for global and shared, none for affinity — what
//     Cilium does with the same value), so the caller logs it and goes on.
//   - ErrInvalidService: a service without namespace or name, or a remote
//     entry without cluster; nothing is stored.
//   - ErrLocalCluster: a remote entry names the local cluster; it is not
//     stored.
package globalsvc
