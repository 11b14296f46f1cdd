// Command strait-apiserver is the etcd front of one strait cluster: an
// embedded (or external) etcd with TLS client-certificate authentication,
// the users and roles of the Cilium ClusterMesh layout, the cluster config
// and the heartbeat (all of it in clustermesh/apiserver), plus certificate
// generation (clustermesh/certs) and a one-command local run.
//
// Subcommands: run, run-local, certs generate. Wiring is by hand in
// main.go, run.go and runlocal.go: flags → apiserver.Config → New → Run.
// Flag errors name the flag. Run returns when SIGINT or SIGTERM arrives,
// after stopping etcd. See README.md.
package main
