// Package meshtest holds the multi-cluster end-to-end tests of the cluster
// mesh control plane; it has no non-test code.
//
// Every test runs real parts only: one embedded strait-apiserver per cluster
// (clustermesh/apiserver: etcd over TLS with client-certificate auth, certificates
// laid out by clustermesh/certs), each with a remote-cluster config directory
// (clustermesh/remoteconfig) holding one file per other cluster — that
// cluster's endpoint, its CA and a "remote"-user client certificate issued by
// its CA — driving the apiserver's remote-cluster cache
// (clustermesh/kvstoremesh). Each cluster's state is written by
// clustermesh/publish publishers through the admin certificate, and read by
// in-process "agents": clustermesh/meshstate instances connected to their own
// cluster's apiserver as the local-<cluster> user, so every remote entry
// travels publisher → remote etcd → cache → local etcd → agent.
//
// Scenarios: join (every cluster sees every other), leave and re-join
// (cluster-config removed at once, cached data after the removal grace,
// agent state after its cache TTL, and not before), an entry claiming
// another cluster (rejected and counted), and an apiserver restarted with a
// half-populated etcd (never taken as complete until its canaries return).
//
// Tests wait for conditions with generous deadlines and never assert on how
// long something took, except lower bounds ("not before") that slowness
// cannot break. Ports are free loopback ports, retried on a bind clash.
package meshtest
