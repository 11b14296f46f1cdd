package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Options change how a server is started. The zero value is a plain-HTTP
// server on loopback.
type Options struct {
	// TLS, when set, serves clients over HTTPS with these files. With
	// ClientCertAuth the server demands a client certificate signed by
	// TLS.TrustedCAFile.
	TLS *transport.TLSInfo
	// Name is the etcd member name; defaults to "etcdtest".
	Name string
}

// Server is one embedded etcd member.
type Server struct {
	tb      testing.TB
	opts    Options
	dataDir string
	client  url.URL
	peer    url.URL

	mu   sync.Mutex
	etcd *embed.Etcd
}

// Start starts a server and registers its shutdown with tb.Cleanup.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Name == "" {
		opts.Name = "etcdtest"
	}
	scheme := "http"
	if opts.TLS != nil {
		scheme = "https"
	}
	s := &Server{tb: tb, opts: opts, dataDir: tb.TempDir()}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s.client = url.URL{Scheme: scheme, Host: freeAddr(tb)}
		s.peer = url.URL{Scheme: "http", Host: freeAddr(tb)}
		if lastErr = s.start(); lastErr == nil {
			tb.Cleanup(s.Stop)
			return s
		}
	}
	tb.Fatalf("etcdtest: start embedded etcd: %v", lastErr)
	return nil
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("etcdtest: find free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *Server) start() error {
	cfg := embed.NewConfig()
	cfg.Name = s.opts.Name
	cfg.Dir = s.dataDir
	cfg.ListenClientUrls = []url.URL{s.client}
	cfg.AdvertiseClientUrls = []url.URL{s.client}
	cfg.ListenPeerUrls = []url.URL{s.peer}
	cfg.AdvertisePeerUrls = []url.URL{s.peer}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, s.peer.String())
	cfg.InitialClusterToken = "etcdtest"
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	if s.opts.TLS != nil {
		cfg.ClientTLSInfo = *s.opts.TLS
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("etcd %s not ready after 30s", s.client.Host)
	case err := <-e.Err():
		e.Close()
		return err
	}
	s.mu.Lock()
	s.etcd = e
	s.mu.Unlock()
	return nil
}

// Endpoint is the client URL, e.g. "http://127.0.0.1:40123".
func (s *Server) Endpoint() string { return s.client.String() }

// Endpoints is Endpoint as a slice, for clientv3.Config.
func (s *Server) Endpoints() []string { return []string{s.client.String()} }

// DataDir is the member's data directory.
func (s *Server) DataDir() string { return s.dataDir }

// Etcd returns the running embedded server, or nil while stopped.
func (s *Server) Etcd() *embed.Etcd {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etcd
}

// Stop stops the server; the data directory is kept for Restart. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	e := s.etcd
	s.etcd = nil
	s.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Restart starts a stopped server again on the same ports and data.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // port may still be in TIME_WAIT
	}
	s.tb.Fatalf("etcdtest: restart %s: %v", s.client.Host, err)
}

// Client returns a raw etcd client (no TLS, no auth) closed by tb.Cleanup.
// For TLS servers build the client yourself.
func (s *Server) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   s.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		tb.Fatalf("etcdtest: client for %s: %v", s.Endpoint(), err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
