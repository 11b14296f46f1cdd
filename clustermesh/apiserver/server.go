package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"golang.org/x/sync/errgroup"

	"github.com/strait-net/strait/clustermesh/certs"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/kvstoremesh"
	"github.com/strait-net/strait/clustermesh/schema"
)

// Log keys of this package.
const (
	logCluster   = "cluster"
	logEndpoints = "endpoints"
	logDataDir   = "dataDir"
	logUser      = "user"
	logRole      = "role"
	logKey       = "key"
	logRangeEnd  = "rangeEnd"
)

// etcdStartTimeout bounds how long Run waits for the embedded member to
// become ready (a fresh member is ready in well under a second; replaying a
// large WAL takes longer).
const etcdStartTimeout = 5 * time.Minute

var (
	// ErrAlreadyRun is returned by a second call of Run.
	ErrAlreadyRun = errors.New("apiserver: Run called twice")
	// ErrAdminIdentity is returned when the admin certificate's CN is
	// neither root nor admin-<cluster>.
	ErrAdminIdentity = errors.New("apiserver: admin certificate must be for root or admin-<cluster>")
)

// Server is one cluster's apiserver. Create it with New, start it with Run.
type Server struct {
	cfg Config
	log *slog.Logger

	ready     chan struct{} // closed once auth, cluster config and heartbeat are in place
	endpoints []string      // written before ready is closed, read-only after

	mu  sync.Mutex
	ran bool

	stopping atomic.Bool // set before the embedded etcd is closed; quiets its logs

	mesh atomic.Pointer[kvstoremesh.Mesh] // set while the remote-cluster cache runs
}

// New validates cfg (a *ConfigError names the field at fault) and checks
// that the admin certificate carries an admin identity.
func New(log *slog.Logger, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	admin, err := certs.LoadCert(cfg.AdminCertFile)
	if err != nil {
		return nil, &ConfigError{Field: "AdminCertFile", Reason: err.Error(), Cause: err}
	}
	if cn := admin.Subject.CommonName; cn != certs.RootUser && cn != certs.AdminUser(cfg.ClusterName) {
		return nil, &ConfigError{Field: "AdminCertFile",
			Reason: fmt.Sprintf("%s has CN %q, want %q or %q", cfg.AdminCertFile, cn, certs.RootUser, certs.AdminUser(cfg.ClusterName)),
			Cause:  ErrAdminIdentity}
	}
	if err := checkMeshConfigDir(cfg.ClusterMeshConfigDir); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, log: log.With(logCluster, cfg.ClusterName), ready: make(chan struct{})}, nil
}

// Ready is closed once etcd serves, users, roles and auth are set up, and
// the cluster config and a first heartbeat are written.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Endpoints are the client URLs to reach this cluster's etcd from this
// host; valid once Ready is closed.
func (s *Server) Endpoints() []string {
	select {
	case <-s.ready:
		return slices.Clone(s.endpoints)
	default:
		return nil
	}
}

// ClientConfig is a kvstore.Config reaching this cluster's etcd with the
// client certificate certFile/keyFile; valid once Ready is closed.
func (s *Server) ClientConfig(certFile, keyFile string) kvstore.Config {
	return kvstore.Config{
		Endpoints:     s.Endpoints(),
		TrustedCAFile: s.cfg.ClientCAFile,
		CertFile:      certFile,
		KeyFile:       keyFile,
	}
}

// Run starts etcd (or connects to the external one), sets up auth, writes
// the cluster config and keeps the heartbeat until ctx ends. It then closes
// its client WITHOUT revoking its lease (the cluster config, heartbeat,
// canaries and remote-cluster cache stay until the lease TTL, so a restart
// does not disturb agents) and stops the embedded member, returning nil. Any failure before that is
// returned, naming the step.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return ErrAlreadyRun
	}
	s.ran = true
	s.mu.Unlock()

	var etcdErr <-chan error
	endpoints := s.cfg.ExternalEndpoints
	if s.cfg.Embedded() {
		e, err := s.startEtcd(ctx)
		if err != nil {
			return err
		}
		defer func() {
			s.stopping.Store(true)
			e.Close()
			s.log.Info("embedded etcd stopped")
		}()
		etcdErr = e.Err()
		endpoints = nil
		for _, u := range s.cfg.ListenClientURLs {
			endpoints = append(endpoints, dialURL(u))
		}
	}

	cli, err := kvstore.New(ctx, s.log, kvstore.Config{
		Endpoints:     endpoints,
		TrustedCAFile: s.cfg.ClientCAFile,
		CertFile:      s.cfg.AdminCertFile,
		KeyFile:       s.cfg.AdminKeyFile,
	})
	if err != nil {
		return fmt.Errorf("apiserver: connect to etcd as admin: %w", err)
	}
	// On stop the lease is kept (it expires on its TTL): revoking it
	// would delete, while agents still watch, the cached remote state
	// and the configs and canaries written under it, and every agent of
	// the cluster would drop its peers to the remote clusters. A restart
	// re-writes all of it under a new lease.
	defer cli.CloseKeepLease()

	if err := SetupAuth(ctx, s.log, cli.Etcd(), s.cfg.ClusterName); err != nil {
		return fmt.Errorf("apiserver: set up etcd auth on %s: %w", strings.Join(endpoints, ","), err)
	}
	cc, err := s.clusterConfig()
	if err != nil {
		return err
	}
	key := schema.ClusterConfigKey(s.cfg.ClusterName)
	if err := cli.PutLeased(ctx, key, cc); err != nil {
		return fmt.Errorf("apiserver: write %s: %w", key, err)
	}
	if err := cli.PutLeased(ctx, schema.HeartbeatKey, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("apiserver: write %s: %w", schema.HeartbeatKey, err)
	}

	for _, p := range s.cfg.SyncedCanaries {
		if err := cli.WriteCanary(ctx, s.cfg.ClusterName, p); err != nil {
			return fmt.Errorf("apiserver: %w", err)
		}
	}

	s.endpoints = endpoints
	close(s.ready)
	s.log.Info("apiserver ready", logEndpoints, endpoints)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cli.RunHeartbeat(gctx, s.cfg.HeartbeatInterval) })
	if s.cfg.ClusterMeshConfigDir != "" {
		g.Go(func() error { return s.runMesh(gctx, cli) })
	}
	if etcdErr != nil {
		g.Go(func() error {
			select {
			case err, ok := <-etcdErr:
				if ok && err != nil {
					return fmt.Errorf("apiserver: embedded etcd: %w", err)
				}
				return nil
			case <-gctx.Done():
				return nil
			}
		})
	}
	return g.Wait()
}

// startEtcd starts the embedded member and waits until it serves.
func (s *Server) startEtcd(ctx context.Context) (*embed.Etcd, error) {
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("apiserver: create data dir: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "strait-" + s.cfg.ClusterName
	cfg.Dir = s.cfg.DataDir
	cfg.InitialClusterToken = "strait-" + s.cfg.ClusterName
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(s.log, &s.stopping))
	// NewConfig leaves this 0, which logs every request as slow.
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	var clientURLs, advertise []url.URL
	for _, raw := range s.cfg.ListenClientURLs {
		u, _ := url.Parse(raw) // validated
		clientURLs = append(clientURLs, *u)
		a, _ := url.Parse(dialURL(raw))
		advertise = append(advertise, *a)
	}
	peer, _ := url.Parse(s.cfg.ListenPeerURL)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = clientURLs, advertise
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.ClientTLSInfo = transport.TLSInfo{
		CertFile:       s.cfg.ServerCertFile,
		KeyFile:        s.cfg.ServerKeyFile,
		TrustedCAFile:  s.cfg.ClientCAFile,
		ClientCertAuth: true,
	}
	if peer.Scheme == "https" {
		cfg.PeerTLSInfo = cfg.ClientTLSInfo
	}

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("apiserver: start embedded etcd on %s: %w", strings.Join(s.cfg.ListenClientURLs, ","), err)
	}
	timer := time.NewTimer(etcdStartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		s.log.Info("embedded etcd serving", logEndpoints, s.cfg.ListenClientURLs, logDataDir, s.cfg.DataDir)
		return e, nil
	case err := <-e.Err():
		s.stopping.Store(true)
		e.Close()
		return nil, fmt.Errorf("apiserver: embedded etcd: %w", err)
	case <-timer.C:
		s.stopping.Store(true)
		e.Close()
		return nil, fmt.Errorf("apiserver: embedded etcd on %s not ready after %s", s.cfg.DataDir, etcdStartTimeout)
	case <-ctx.Done():
		s.stopping.Store(true)
		e.Close()
		return nil, fmt.Errorf("apiserver: start embedded etcd: %w", ctx.Err())
	}
}

// clusterConfig is the JSON of cilium/cluster-config/<cluster>, e.g.
// {"id":3,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255,"serviceExportsEnabled":false}}:
// canaries on, no MCS-API exports (no service exports are written yet).
func (s *Server) clusterConfig() ([]byte, error) {
	exports := false
	cc := schema.ClusterConfig{
		Cluster: s.cfg.ClusterName,
		ID:      s.cfg.ClusterID,
		Capabilities: schema.Capabilities{
			SyncedCanaries:        true,
			MaxConnectedClusters:  s.cfg.Max,
			ServiceExportsEnabled: &exports,
		},
	}
	data, err := cc.Marshal()
	if err != nil {
		return nil, fmt.Errorf("apiserver: encode cluster config: %w", err)
	}
	return data, nil
}
