// Command straitctl operates strait cluster meshes: connect and
// disconnect clusters (clustermesh/connect), show their status, and
// inspect the entries of a cluster's etcd (clustermesh/inspect). See
// README.md for every command, flag and JSON schema.
package main
