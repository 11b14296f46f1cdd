// Package connect joins strait clusters into a mesh and reports on it:
// the library behind `straitctl connect`, `disconnect` and `status`.
//
// # Context files (contract §9)
//
// Each cluster is described by one YAML context file (LoadContext,
// ParseContext; relative paths are relative to the file's directory):
//
//	cluster: cluster1              # name: ^([a-z0-9][-a-z0-9]*)?[a-z0-9]$, ≤ 32 chars, not "default"
//	id: 1                          # 1..maxConnectedClusters
//	maxConnectedClusters: 255      # 255 (default) or 511
//	endpoints: ["https://198.18.1.1:2379"]   # the cluster's strait-apiserver
//	certDir: certs                 # `strait-apiserver certs generate` output: ca.crt, admin.crt/key, remote.crt/key
//	clustermeshConfigDir: mesh     # the directory its strait-apiserver watches (--clustermesh-config)
//	agents:                        # optional, for status
//	  - node: node1
//	    socket: /path/to/agent.sock
//
// Unknown fields are refused; every error names the file and the field.
//
// # What connect writes
//
// For each direction L → R (L's apiserver caches R; Pairs lists them per
// Mode), four files go into L's clustermeshConfigDir, each written to a
// dotfile and renamed (the remoteconfig watcher skips dotfiles), the cluster
// file last so the watcher never sees it without its certificates:
//
//	R.etcd-client-ca.crt  trust bundle for R's apiserver (see "CAs" below)   0644
//	R.etcd-client.crt     R's remote.crt: CN "remote", issued by R's CA     0644
//	R.etcd-client.key     R's remote.key                                    0600
//	R                     endpoints: R's endpoints; trusted-ca-file, cert-file,
//	                      key-file: the three names above (relative to the dir) 0600
//
// So L authenticates to R's etcd as R's read-only "remote" user with a
// certificate R issued; nothing is written into any etcd and no etcd user
// or role changes. The strait-apiserver of L (clustermesh/remoteconfig +
// clustermesh/kvstoremesh) picks the file up and mirrors R into L's etcd
// (cilium/cluster-config/R with "cached": true, cilium/cache/...).
//
// # Checks before any change
//
// Connect refuses, with an error naming the clusters and the fix, when:
// a context is invalid (ErrContext); names clash (ErrNameClash); IDs
// clash (ErrIDClash); an ID is above a peer's max (ErrIDRange); maxes differ
// (ErrMaxMismatch); a clustermeshConfigDir is missing; ca.crt or remote.crt/key
// are unusable (ErrCertificate); an apiserver cannot be reached
// (ErrUnreachable, naming cluster, endpoint and reason); its
// cilium/cluster-config/<name> is missing or disagrees with the context on
// ID or max (ErrClusterConfig); pod CIDRs overlap (ErrPodCIDROverlap,
// naming both clusters, nodes and CIDRs; the CIDRs are the IPv4/IPv6
// primary and secondary alloc CIDRs of every valid
// cilium/state/nodes/v1/<cluster>/* entry); the CAs do not match
// (ErrCAMismatch, below); or a clustermeshConfigDir already holds a
// different file of the pair (ErrAlreadyConnected). A pair whose four files
// are byte-identical to what connect would write is left alone (no-op).
//
// # CAs
//
// Cilium shares one CA between clusters and, with --allow-mismatching-ca,
// adds both clusters' CAs to the bundle. In strait every cluster has its own
// CA and hands its peers a client certificate issued by that CA, so the CA
// that matters is the one L trusts for R's server certificate. The rule:
//
//   - the trust bundle L writes for R is R's ca.crt; with AllowMismatchingCA
//     it is R's ca.crt followed by L's ca.crt (both CAs);
//   - the server certificate R's apiserver actually presents (read with a
//     TLS handshake on its endpoint) must verify, for server auth, against
//     that bundle. "CAs match" means it does. If it does not, Connect
//     refuses with ErrCAMismatch; when the certificate was issued by L's CA
//     the message says to pass --allow-mismatching-ca (or reissue the
//     server certificate with R's own CA), otherwise to point certDir at
//     the directory R's apiserver really runs with;
//   - R's remote.crt must be issued by R's ca.crt (client auth) with CN
//     "remote" (ErrCertificate otherwise).
//
// # Rollback and disconnect
//
// Files are written in a fixed order; if one write fails every file written
// before it is restored to its previous state (ErrApply says so, or that
// the undo failed too and what to fix by hand). Disconnect removes, per
// direction, exactly the four files named above (cluster file first) and
// nothing else; it needs only the context files, so a dead cluster can be
// disconnected. Connect followed by Disconnect leaves every directory
// byte-identical to before.
//
// # Status
//
// CollectStatus reads, per cluster: the apiserver (admin dial), the cluster
// files in clustermeshConfigDir (configured), cilium/cluster-config/<remote>
// with "cached": true in its etcd (connected), the sync canaries
// cilium/synced/<remote>/cilium/cache/<kind>/v1 of every kind the cache
// mirrors (ready), and each listed agent's endpoint API Status (remote
// clusters connected/ready per agent, summarised min/avg/max). Every problem
// is reported with a hint, never returned as an error. WaitStatus repeats it
// until everything is ready or ctx ends (ErrNotReady).
//
// Who uses it: cmd/straitctl; straitctl demo (Connect, CollectStatus,
// WaitStatus). It reads etcd through clustermesh/kvstore and decodes with
// clustermesh/schema. Nothing here runs in the background: every call
// returns when done, closing its etcd clients.
package connect
