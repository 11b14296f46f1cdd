// Package remoteconfig reads and watches the remote-cluster configuration
// directory, strait's equivalent of Cilium's --clustermesh-config
// (/var/lib/cilium/clustermesh). Each remote cluster has one file, named
// after the cluster, holding an etcd client config in YAML:
//
//	endpoints:
//	- https://cluster2.mesh.cilium.io:2379
//	trusted-ca-file: /var/lib/cilium/clustermesh/common-etcd-client-ca.crt
//	key-file: /var/lib/cilium/clustermesh/common-etcd-client.key
//	cert-file: /var/lib/cilium/clustermesh/common-etcd-client.crt
//	cilium-host-aliases:          # optional, kept but not acted on
//	- hostname: cluster2.mesh.cilium.io
//	  ips: [192.0.2.10]
//
// The files are the ones Cilium's Helm chart and CLI write, so one
// Kubernetes secret can serve Cilium and strait agents.
//
// # Which files count
//
// Like Cilium, a file is a cluster file when its content contains
// "endpoints:"; certificates and keys may therefore share the directory.
// Names starting with "." are skipped (dotfiles and the "..data" and
// "..<timestamp>" entries of a Kubernetes secret projection, whose
// user-visible files are symlinks through "..data"), and so are
// directories. A cluster file's name must be a valid cluster name
// (ValidateClusterName: ^([a-z0-9][-a-z0-9]*)?[a-z0-9]$, at most 32
// characters, not "default").
//
// # Validation
//
// Parse checks the content alone: endpoints are http(s)://host:port;
// https needs trusted-ca-file, http forbids it; cert-file and key-file
// come together and need trusted-ca-file (the rules of kvstore.Config, so
// a bad file fails here with its file and field named, not later at
// connect time). etcd's deprecated ca-file is accepted as an alias of
// trusted-ca-file; other keys of etcd's client YAML are ignored. Load
// also reads the referenced files, resolving relative paths against the
// config directory (Cilium leaves them relative to its working directory;
// Helm writes absolute paths): each must be a readable regular file, the
// CA must hold a PEM certificate and the certificate must match the key.
// RemoteCluster.Hash covers the file and every referenced TLS file, so a
// rotated certificate is a changed config.
//
// # Watching
//
// Watcher (fed by the file system through fsnotify; consumed by the
// agent's and strait-apiserver's remote-cluster managers through the
// Handler interface, whose doc draws the per-cluster call sequence) is
// built with New(log, dir, handler, Options) and run once with Run(ctx).
// It scans the directory when Run starts and reports every file, then
// closes Synced (the gate for "every configured cluster is known"). It
// rescans after each burst of events (debounced by Options.Debounce, at
// most Options.MaxDelay late, so a burst longer than that may show
// intermediate states) and every Options.Rescan as a fallback for events
// fsnotify misses. Every scan compares the whole directory with what the
// Handler was told, so merged events never lose the final state, an
// identical rewrite reports nothing, and a Kubernetes atomic "..data"
// symlink swap reports just the change it carries. Besides the directory
// it watches the directories of all referenced TLS files.
//
// Run returns nil when its ctx ends; no Handler call follows. Scan is the
// one-shot equivalent for tools that need no updates.
//
// A bad edit never disconnects: Invalid is reported and the cluster keeps
// its last good config until a valid file (Update) or the file's removal
// (Remove). The directory must exist when New is called; if it later
// disappears the last state is kept and the directory is watched again by
// the first scan that finds it back (after an event in a watched TLS
// directory, or the periodic rescan).
//
// # Errors
//
// Load and Parse errors wrap one sentinel (ErrInvalidName,
// ErrNotClusterFile, ErrSyntax, ErrNoEndpoints, ErrInvalidEndpoint,
// ErrTLSFields, ErrHostAlias, ErrCertificate, ErrTooLarge) or a file
// read error, and name the file, the field and the value at fault. New
// fails on a missing directory (fs.ErrNotExist) or a non-directory
// (ErrNotDirectory); Run fails only when fsnotify cannot be set up
// (or on a second call, ErrRunning).
package remoteconfig
