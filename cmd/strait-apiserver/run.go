package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/strait-net/strait/clustermesh/apiserver"
	"github.com/strait-net/strait/clustermesh/certs"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// configFlags maps apiserver.Config fields to the flag that sets them.
var configFlags = map[string]string{
	"ClusterName":       "cluster-name",
	"ClusterID":         "cluster-id",
	"Max":               "max-connected-clusters",
	"DataDir":           "data-dir",
	"ListenClientURLs":  "listen-client-urls",
	"ListenPeerURL":     "listen-peer-url",
	"ExternalEndpoints": "etcd-endpoints",
	"ServerCertFile":    "cert-dir",
	"ServerKeyFile":     "cert-dir",
	"ClientCAFile":      "cert-dir",
	"AdminCertFile":     "cert-dir",
	"AdminKeyFile":      "cert-dir",
	"HeartbeatInterval": "heartbeat-interval",

	"ClusterMeshConfigDir": "clustermesh-config",
	"RemovalGrace":         "cluster-removal-grace",
}

// asFlagError rewrites an *apiserver.ConfigError to name the flag.
func asFlagError(err error) error {
	var ce *apiserver.ConfigError
	if errors.As(err, &ce) {
		if flag, ok := configFlags[ce.Field]; ok {
			return flagError(flag, err)
		}
	}
	return err
}

type runFlags struct {
	clusterName       string
	clusterID         uint32
	max               uint32
	dataDir           string
	listenClientURLs  []string
	listenPeerURL     string
	etcdEndpoints     []string
	certDir           string
	heartbeatInterval time.Duration
	syncedCanaries    []string
	mesh              meshFlags
}

// canaryKinds maps --synced-canaries names to state prefixes.
var canaryKinds = map[string]string{
	"nodes":          schema.NodesPrefix,
	"identities":     schema.IdentitiesPrefix,
	"ip":             schema.IPPrefix,
	"services":       schema.ServicesPrefix,
	"serviceexports": schema.ServiceExportsPrefix,
}

// config builds and validates the apiserver.Config; errors name the flag.
func (f *runFlags) config(cmd *cobra.Command) (apiserver.Config, error) {
	if f.certDir == "" {
		return apiserver.Config{}, flagError("cert-dir", errors.New("required (lay one out with `strait-apiserver certs generate`)"))
	}
	files := certs.FilesIn(f.certDir)
	cfg := apiserver.Config{
		ClusterName:       f.clusterName,
		ClusterID:         identity.ClusterID(f.clusterID),
		Max:               identity.ClusterMax(f.max),
		DataDir:           f.dataDir,
		ListenClientURLs:  f.listenClientURLs,
		ListenPeerURL:     f.listenPeerURL,
		ExternalEndpoints: f.etcdEndpoints,
		ServerCertFile:    files.ServerCert,
		ServerKeyFile:     files.ServerKey,
		ClientCAFile:      files.CACert,
		AdminCertFile:     files.AdminCert,
		AdminKeyFile:      files.AdminKey,
		HeartbeatInterval: f.heartbeatInterval,

		ClusterMeshConfigDir: f.mesh.configDir,
		RemovalGrace:         f.mesh.removalGrace,
	}
	for _, k := range f.syncedCanaries {
		p, ok := canaryKinds[k]
		if !ok {
			return cfg, flagError("synced-canaries", fmt.Errorf("%q: not one of nodes, identities, ip, services, serviceexports", k))
		}
		cfg.SyncedCanaries = append(cfg.SyncedCanaries, p)
	}
	if len(f.etcdEndpoints) > 0 {
		// The embedded member's flags have defaults; with an external etcd
		// they are dropped unless given explicitly, which is a mistake.
		for _, name := range []string{"listen-client-urls", "listen-peer-url", "data-dir"} {
			if cmd.Flags().Changed(name) {
				return cfg, flagError(name, errors.New("must not be set with --etcd-endpoints"))
			}
		}
		cfg.ListenClientURLs, cfg.ListenPeerURL, cfg.DataDir = nil, "", ""
		cfg.ServerCertFile, cfg.ServerKeyFile = "", ""
	}
	if err := cfg.Validate(); err != nil {
		return cfg, asFlagError(err)
	}
	return cfg, nil
}

func newRunCommand(g *globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the apiserver of one cluster (embedded etcd unless --etcd-endpoints)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			return runWithMetrics(cmd.Context(), log, f.mesh.metricsAddr, &cfg, func(ctx context.Context) error {
				s, err := apiserver.New(log, cfg)
				if err != nil {
					return asFlagError(err)
				}
				return s.Run(ctx)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.clusterName, "cluster-name", "", "cluster name: lower-case alphanumerics and '-', at most 32 characters (required)")
	fl.Uint32Var(&f.clusterID, "cluster-id", 0, "cluster ID, 1..max-connected-clusters (required)")
	fl.Uint32Var(&f.max, "max-connected-clusters", uint32(identity.ClusterMax255), "255 or 511; equal in every cluster of the mesh")
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory of the embedded etcd (required unless --etcd-endpoints)")
	fl.StringSliceVar(&f.listenClientURLs, "listen-client-urls", []string{"https://127.0.0.1:2379"}, "https URLs the embedded etcd serves clients on")
	fl.StringVar(&f.listenPeerURL, "listen-peer-url", "http://127.0.0.1:2380", "raft peer URL of the embedded etcd (single member; keep it on loopback)")
	fl.StringSliceVar(&f.etcdEndpoints, "etcd-endpoints", nil, "https endpoints of an external etcd to use instead of embedding one")
	fl.StringVar(&f.certDir, "cert-dir", "", "directory laid out by `certs generate`: ca.crt, server.crt/key, admin.crt/key (required)")
	fl.DurationVar(&f.heartbeatInterval, "heartbeat-interval", apiserver.DefaultHeartbeatInterval, "interval between writes of cilium/.heartbeat")
	fl.StringSliceVar(&f.syncedCanaries, "synced-canaries", []string{"identities", "services", "serviceexports"}, "kinds whose sync canary the apiserver writes itself (kvstore mode: nothing else vouches for them); nodes and ip are written by the agents")
	f.mesh.register(fl)
	return cmd
}

func newCertsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Certificate tools",
	}
	cmd.AddCommand(newCertsGenerateCommand(g))
	return cmd
}

func newCertsGenerateCommand(g *globals) *cobra.Command {
	var cluster, out string
	var hosts []string
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Lay out a cluster's CA, server and client certificates (existing valid files are kept)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateClusterName(cluster); err != nil {
				return flagError("cluster-name", err)
			}
			if out == "" {
				return flagError("out", errors.New("required"))
			}
			if _, _, err := certs.ParseHosts(hosts); err != nil {
				return flagError("hosts", err)
			}
			files, written, err := certs.WriteClusterDir(certs.ClusterDirOptions{Cluster: cluster, Dir: out, Hosts: hosts})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if len(written) == 0 {
				fmt.Fprintf(w, "%s: every certificate is valid, nothing written\n", files.Dir)
				return nil
			}
			for _, name := range written {
				fmt.Fprintf(w, "wrote %s\n", name)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cluster, "cluster-name", "", "cluster name (required)")
	fl.StringVar(&out, "out", "", "directory to lay out (created 0700 if absent) (required)")
	fl.StringSliceVar(&hosts, "hosts", nil, "extra server certificate SANs, IPs or DNS names, comma-separated (127.0.0.1, ::1, localhost and <cluster>.mesh.strait.io are always included)")
	return cmd
}
