// Package certs generates and loads the X.509 material of one strait
// cluster: a cluster CA (ECDSA P-256), the etcd server certificate and the
// client certificates whose Common Name is the etcd user they authenticate
// as (root, admin-<cluster>, local-<cluster>, remote).
//
// Everything is done with crypto/x509; nothing shells out. Keys are written
// PKCS#8 PEM with mode 0600, certificates PEM with mode 0644, each file
// written to a temporary name and renamed, so a reader never sees half a file.
//
// Who uses it: cmd/strait-apiserver ("certs generate", "run-local") lays out
// a cluster directory with WriteClusterDir; the apiserver and the kvstore
// client only read the files (by path, through crypto/tls). Tests use it to
// build TLS etcd servers.
//
// Lifecycle: WriteClusterDir is idempotent. A file that exists and is valid
// (parses, key matches, chains to the CA, right CN, covers the requested
// hosts, not about to expire) is kept; leaf certificates that are missing or
// invalid are issued anew. The CA is never replaced silently: a CA that is
// present but unreadable, mismatched or expired is an error naming the file.
//
// Errors: every load error names the file. ErrNoCertificate, ErrKeyMismatch
// and ErrExpired are matched with errors.Is.
package certs
