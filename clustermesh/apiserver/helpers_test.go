package apiserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/strait-net/strait/clustermesh/certs"
	"github.com/strait-net/strait/identity"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// clusterCerts lays out a certificate directory for cluster.
func clusterCerts(t testing.TB, cluster string) certs.Files {
	t.Helper()
	f, _, err := certs.WriteClusterDir(certs.ClusterDirOptions{Cluster: cluster, Dir: filepath.Join(t.TempDir(), "certs-"+cluster)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// embeddedConfig is the Config of an embedded apiserver for cluster with
// certificates f; ports are filled in by start.
func embeddedConfig(t testing.TB, cluster string, id identity.ClusterID, f certs.Files) Config {
	return Config{
		ClusterName:       cluster,
		ClusterID:         id,
		Max:               identity.ClusterMax255,
		DataDir:           filepath.Join(t.TempDir(), "etcd-"+cluster),
		ServerCertFile:    f.ServerCert,
		ServerKeyFile:     f.ServerKey,
		ClientCAFile:      f.CACert,
		AdminCertFile:     f.AdminCert,
		AdminKeyFile:      f.AdminKey,
		HeartbeatInterval: time.Hour, // the first heartbeat is written before Ready
	}
}

// running is a Server running in the background.
type running struct {
	*Server
	cfg    Config
	cancel context.CancelFunc
	done   chan error
}

// stop ends Run and checks that it returned nil.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	if err, ok := <-r.done; ok && err != nil {
		t.Errorf("Run of %s returned %v", r.cfg.ClusterName, err)
	}
}

// start runs cfg until the test ends. For an embedded server with no
// listen URLs it picks free loopback ports, retrying on a bind clash.
func start(t testing.TB, cfg Config) *running {
	t.Helper()
	pick := cfg.Embedded() && len(cfg.ListenClientURLs) == 0
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if pick {
			cfg.ListenClientURLs = []string{"https://" + freeAddr(t)}
			cfg.ListenPeerURL = "http://" + freeAddr(t)
		}
		s, err := New(testkit.Logger(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &running{Server: s, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
		go func() {
			r.done <- s.Run(ctx)
			close(r.done)
		}()
		select {
		case <-s.Ready():
			t.Cleanup(func() { r.stop(t) })
			return r
		case err := <-r.done:
			cancel()
			lastErr = err
			if pick && errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			t.Fatalf("Run of %s: %v", cfg.ClusterName, err)
		}
	}
	t.Fatalf("Run of %s: %v", cfg.ClusterName, lastErr)
	return nil
}

// etcdClient is a raw etcd client authenticating with certFile/keyFile
// (none when empty), trusting caFile.
func etcdClient(t testing.TB, endpoints []string, caFile, certFile, keyFile string) *clientv3.Client {
	t.Helper()
	info := transport.TLSInfo{TrustedCAFile: caFile, CertFile: certFile, KeyFile: keyFile}
	tc, err := info.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// opCtx bounds one etcd request of a test so a hang fails instead of
// blocking the whole run.
func opCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
