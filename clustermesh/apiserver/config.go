package apiserver

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"time"

	"github.com/strait-net/strait/clustermesh/kvstoremesh"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// DefaultHeartbeatInterval is Cilium's HeartbeatWriteInterval.
const DefaultHeartbeatInterval = time.Minute

var (
	// ErrInvalidConfig is matched by every *ConfigError.
	ErrInvalidConfig = errors.New("apiserver: invalid config")
)

// ConfigError names the Config field at fault.
type ConfigError struct {
	Field  string // Config field name, e.g. "ClusterID"
	Reason string
	Cause  error // optional, e.g. identity.ErrInvalidClusterID
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("apiserver: invalid config: %s: %s", e.Field, e.Reason)
}

// Unwrap lets errors.Is match ErrInvalidConfig and the cause.
func (e *ConfigError) Unwrap() []error {
	if e.Cause != nil {
		return []error{ErrInvalidConfig, e.Cause}
	}
	return []error{ErrInvalidConfig}
}

// Config of one apiserver. With ExternalEndpoints empty an etcd member is
// embedded (DataDir, ListenClientURLs, ListenPeerURL, ServerCertFile,
// ServerKeyFile needed); otherwise those must be empty.
type Config struct {
	// ClusterName and ClusterID identify this cluster; Max is the mesh's
	// max-connected-clusters (255 or 511).
	ClusterName string
	ClusterID   identity.ClusterID
	Max         identity.ClusterMax

	// DataDir is the embedded member's data directory (created 0700).
	DataDir string
	// ListenClientURLs are https URLs with host:port, e.g.
	// "https://127.0.0.1:2379". An unspecified host (0.0.0.0, [::]) listens
	// everywhere and is reached locally through loopback.
	ListenClientURLs []string
	// ListenPeerURL is the raft peer URL of the single member, e.g.
	// "http://127.0.0.1:2380". No peer ever connects to a one-member cluster;
	// keep it on loopback. https uses the server certificate and ClientCAFile.
	ListenPeerURL string
	// ExternalEndpoints, when set, are the client URLs of an external etcd
	// cluster used instead of an embedded member.
	ExternalEndpoints []string

	// ServerCertFile and ServerKeyFile: the embedded member's TLS identity.
	ServerCertFile, ServerKeyFile string
	// ClientCAFile verifies client certificates (embedded) and the etcd
	// server's certificate (both modes).
	ClientCAFile string
	// AdminCertFile and AdminKeyFile: the apiserver's own client identity;
	// its CN must be root or admin-<cluster>.
	AdminCertFile, AdminKeyFile string

	// HeartbeatInterval between writes of cilium/.heartbeat; 0 means
	// DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration

	// ClusterMeshConfigDir is the remote-cluster configuration directory
	// (Cilium's --clustermesh-config): one file per remote cluster, mirrored
	// into this cluster's etcd by a kvstoremesh.Mesh. Empty: no remote
	// clusters. See mesh.go.
	ClusterMeshConfigDir string
	// RemovalGrace is how long a removed remote cluster's cached data stays;
	// 0 means kvstoremesh.DefaultRemovalGrace.
	RemovalGrace time.Duration
	// MeshMetrics receives the remote-cluster cache's metrics; nil builds
	// unregistered ones.
	MeshMetrics *kvstoremesh.Metrics

	// SyncedCanaries are the state prefixes (schema.IdentitiesPrefix,
	// ServicesPrefix, ServiceExportsPrefix, ...) whose sync canary the
	// apiserver itself writes once it is ready, under its lease. In kvstore
	// mode nothing else vouches for them: identities are allocated in etcd
	// itself (the prefix is always complete), and with no Kubernetes source
	// yet the services and service exports are complete when empty. Nodes
	// and ipcache entries are vouched for by the agents that publish them.
	// Nil: none (see DefaultSyncedCanaries).
	SyncedCanaries []string
}

// DefaultSyncedCanaries are the prefixes an apiserver in kvstore mode (no
// Kubernetes source) vouches for; see Config.SyncedCanaries.
var DefaultSyncedCanaries = []string{schema.IdentitiesPrefix, schema.ServicesPrefix, schema.ServiceExportsPrefix}

// stateCanaryPrefixes are the prefixes Config.SyncedCanaries may name.
var stateCanaryPrefixes = []string{schema.NodesPrefix, schema.IdentitiesPrefix, schema.IPPrefix, schema.ServicesPrefix, schema.ServiceExportsPrefix}

// Embedded reports whether cfg runs an embedded etcd member.
func (cfg Config) Embedded() bool { return len(cfg.ExternalEndpoints) == 0 }

// Validate returns a *ConfigError naming the first field at fault.
func (cfg Config) Validate() error {
	if err := schema.ValidateClusterName(cfg.ClusterName, cfg.ClusterID); err != nil {
		return &ConfigError{Field: "ClusterName", Reason: err.Error(), Cause: err}
	}
	if err := cfg.Max.Validate(); err != nil {
		return &ConfigError{Field: "Max", Reason: err.Error(), Cause: err}
	}
	if err := cfg.ClusterID.Validate(cfg.Max); err != nil {
		return &ConfigError{Field: "ClusterID", Reason: err.Error(), Cause: err}
	}
	if cfg.Embedded() {
		if cfg.DataDir == "" {
			return &ConfigError{Field: "DataDir", Reason: "required for an embedded etcd"}
		}
		if len(cfg.ListenClientURLs) == 0 {
			return &ConfigError{Field: "ListenClientURLs", Reason: "required for an embedded etcd"}
		}
		for _, u := range cfg.ListenClientURLs {
			if err := checkURL(u, "https"); err != nil {
				return &ConfigError{Field: "ListenClientURLs", Reason: err.Error()}
			}
		}
		if cfg.ListenPeerURL == "" {
			return &ConfigError{Field: "ListenPeerURL", Reason: "required for an embedded etcd"}
		}
		if err := checkURL(cfg.ListenPeerURL, "http", "https"); err != nil {
			return &ConfigError{Field: "ListenPeerURL", Reason: err.Error()}
		}
		if cfg.ServerCertFile == "" {
			return &ConfigError{Field: "ServerCertFile", Reason: "required for an embedded etcd"}
		}
		if cfg.ServerKeyFile == "" {
			return &ConfigError{Field: "ServerKeyFile", Reason: "required for an embedded etcd"}
		}
	} else {
		for _, u := range cfg.ExternalEndpoints {
			if err := checkURL(u, "https"); err != nil {
				return &ConfigError{Field: "ExternalEndpoints", Reason: err.Error()}
			}
		}
		for field, set := range map[string]bool{
			"DataDir":          cfg.DataDir != "",
			"ListenClientURLs": len(cfg.ListenClientURLs) != 0,
			"ListenPeerURL":    cfg.ListenPeerURL != "",
		} {
			if set {
				return &ConfigError{Field: field, Reason: "must be empty with ExternalEndpoints"}
			}
		}
	}
	if cfg.ClientCAFile == "" {
		return &ConfigError{Field: "ClientCAFile", Reason: "required"}
	}
	if cfg.AdminCertFile == "" {
		return &ConfigError{Field: "AdminCertFile", Reason: "required"}
	}
	if cfg.AdminKeyFile == "" {
		return &ConfigError{Field: "AdminKeyFile", Reason: "required"}
	}
	if cfg.HeartbeatInterval < 0 {
		return &ConfigError{Field: "HeartbeatInterval", Reason: fmt.Sprintf("negative: %s", cfg.HeartbeatInterval)}
	}
	if cfg.RemovalGrace < 0 {
		return &ConfigError{Field: "RemovalGrace", Reason: fmt.Sprintf("negative: %s", cfg.RemovalGrace)}
	}
	for _, p := range cfg.SyncedCanaries {
		if !slices.Contains(stateCanaryPrefixes, p) {
			return &ConfigError{Field: "SyncedCanaries", Reason: fmt.Sprintf("%q: not one of %v", p, stateCanaryPrefixes)}
		}
	}
	return nil
}

func checkURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	if !slices.Contains(schemes, u.Scheme) {
		return fmt.Errorf("%q: scheme must be %v", raw, schemes)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return fmt.Errorf("%q: want host:port", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("%q: unexpected path", raw)
	}
	return nil
}

// dialURL turns a listen URL into one a local client can dial: an
// unspecified host becomes the loopback address of its family.
func dialURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return raw
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	u.Host = net.JoinHostPort(host, port)
	u.Path = ""
	return u.String()
}
