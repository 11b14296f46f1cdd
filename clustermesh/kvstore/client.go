package kvstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultDialTimeout = 5 * time.Second
	DefaultLeaseTTL    = 15 * time.Minute // Cilium's KVstoreLeaseTTL
	DefaultMaxBackoff  = 30 * time.Second

	// minBackoff is the first retry delay; it doubles up to MaxBackoff.
	minBackoff = 50 * time.Millisecond
	// closeTimeout bounds the lease revocation done by Close.
	closeTimeout = 5 * time.Second
)

// Log keys used by this package.
const (
	logEndpoints = "endpoints"
	logError     = "error"
	logReason    = "reason"
	logTTL       = "ttl"
	logKey       = "key"
	logPrefix    = "prefix"
	logLease     = "lease"
	logRevision  = "revision"
	logAttempt   = "attempt"
	logBackoff   = "backoff"
	logCount     = "count"
)

var (
	// ErrConfig is returned by New for an invalid Config (no endpoints,
	// half-configured TLS, scheme not matching the TLS setting).
	ErrConfig = errors.New("kvstore: invalid config")
	// ErrClosed is returned by operations on a closed Client.
	ErrClosed = errors.New("kvstore: client closed")
)

// Config tells New where etcd is and how to talk to it.
type Config struct {
	// Endpoints of the etcd cluster, e.g. "https://127.0.0.1:2379".
	Endpoints []string
	// TrustedCAFile verifies the server; CertFile and KeyFile are the
	// client certificate. All empty means plaintext; CA alone means TLS
	// without a client certificate; a certificate needs its key and a CA.
	TrustedCAFile, CertFile, KeyFile string
	// DialTimeout bounds each connection attempt; default 5s.
	DialTimeout time.Duration
	// LeaseTTL is the TTL of the session lease; default 15m.
	LeaseTTL time.Duration
	// MaxBackoff caps the exponential retry backoff; default 30s.
	MaxBackoff time.Duration
}

// withDefaults returns cfg with zero durations replaced by defaults.
func (cfg Config) withDefaults() Config {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	return cfg
}

// validate checks cfg and returns an error wrapping ErrConfig that names
// the offending field or endpoint.
func (cfg Config) validate() error {
	if len(cfg.Endpoints) == 0 {
		return fmt.Errorf("%w: Endpoints is empty", ErrConfig)
	}
	switch {
	case cfg.CertFile != "" && cfg.KeyFile == "":
		return fmt.Errorf("%w: CertFile is set but KeyFile is missing", ErrConfig)
	case cfg.KeyFile != "" && cfg.CertFile == "":
		return fmt.Errorf("%w: KeyFile is set but CertFile is missing", ErrConfig)
	case cfg.CertFile != "" && cfg.TrustedCAFile == "":
		return fmt.Errorf("%w: CertFile is set but TrustedCAFile is missing", ErrConfig)
	}
	useTLS := cfg.TrustedCAFile != ""
	for _, ep := range cfg.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			return fmt.Errorf("%w: endpoint %q: want scheme://host:port", ErrConfig, ep)
		}
		switch u.Scheme {
		case "https":
			if !useTLS {
				return fmt.Errorf("%w: endpoint %s is https but TrustedCAFile is missing", ErrConfig, ep)
			}
		case "http":
			if useTLS {
				return fmt.Errorf("%w: endpoint %s is http but TLS files are set", ErrConfig, ep)
			}
		default:
			return fmt.Errorf("%w: endpoint %s: scheme %q is neither http nor https", ErrConfig, ep, u.Scheme)
		}
	}
	return nil
}

// tlsConfig loads the TLS files, or returns nil for plaintext.
func (cfg Config) tlsConfig() (*tls.Config, error) {
	if cfg.TrustedCAFile == "" {
		return nil, nil
	}
	info := transport.TLSInfo{
		TrustedCAFile: cfg.TrustedCAFile,
		CertFile:      cfg.CertFile,
		KeyFile:       cfg.KeyFile,
	}
	tc, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load TLS files (ca %q, cert %q, key %q): %w",
			cfg.TrustedCAFile, cfg.CertFile, cfg.KeyFile, err)
	}
	return tc, nil
}

// Client is a connection to one etcd cluster with a session lease.
//
// The lease is granted lazily by LeaseID, kept alive in the background and
// granted anew when it is lost (expired, revoked, or not renewed while etcd
// was unreachable). Close revokes it, which deletes every key written with
// PutLeased.
type Client struct {
	log *slog.Logger
	cfg Config
	cli *clientv3.Client

	// ctx ends when Close is called; background goroutines watch it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	leaseMu sync.Mutex
	lease   *session // nil until granted or after it was lost
}

// New validates cfg, loads the TLS files and connects to etcd. It retries
// with capped exponential backoff (with jitter) until one endpoint answers
// or ctx ends. Errors:
//   - ErrConfig for an invalid cfg, naming the field or endpoint;
//   - a TLS file error naming the files;
//   - when ctx ends first, an error wrapping ctx.Err() that names the
//     endpoints and the reason of the last failed attempt (e.g. "connection
//     refused" or "x509: certificate signed by unknown authority").
func New(ctx context.Context, log *slog.Logger, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("kvstore: %w", err)
	}
	log = log.With(logEndpoints, strings.Join(cfg.Endpoints, ","))
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		TLS:                  tc,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: cfg.DialTimeout,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("kvstore: create etcd client for %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{log: log, cfg: cfg, cli: cli, ctx: cctx, cancel: cancel}
	if err := c.connect(ctx, tc); err != nil {
		cancel()
		cli.Close()
		return nil, err
	}
	log.Info("Connected to etcd")
	return c, nil
}

// diagnoseTimeout bounds the direct dial that explains a failed attempt.
const diagnoseTimeout = 2 * time.Second

// connect probes the endpoints until one answers a Status request.
func (c *Client) connect(ctx context.Context, tc *tls.Config) error {
	bo := c.newBackoff()
	// last is the reason of the last attempt that ran to its end; an
	// attempt cut short by ctx only knows that it was cut short.
	var last error
	fail := func(err error) error {
		if last == nil {
			last = err
		}
		return fmt.Errorf("kvstore: connect to %s: %w; last attempt: %w",
			strings.Join(c.cfg.Endpoints, ","), ctx.Err(), last)
	}
	for attempt := 1; ; attempt++ {
		err := c.probe(ctx, tc)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fail(err)
		}
		last = err
		d := bo.next()
		c.log.Warn("etcd not reachable, retrying", logAttempt, attempt, logBackoff, d, logError, err)
		if !sleep(ctx, d) {
			return fail(err)
		}
	}
}

// probe asks every endpoint for its status, one attempt bounded by
// DialTimeout. It returns nil when any endpoint answers, else an error per
// endpoint naming it and the reason.
func (c *Client) probe(ctx context.Context, tc *tls.Config) error {
	var errs []error
	for _, ep := range c.cfg.Endpoints {
		actx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
		_, err := c.cli.Status(actx, ep)
		cancel()
		if err == nil {
			return nil
		}
		// The gRPC error for a failed TLS handshake or refused connection
		// is often only "context deadline exceeded"; dial the endpoint
		// directly to learn why. The diagnosis runs even when ctx has just
		// ended (the Status call may have used it up), bounded on its own,
		// so the caller's error names the real reason, not a timeout.
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), min(c.cfg.DialTimeout, diagnoseTimeout))
		reason := diagnose(dctx, ep, tc, c.cfg.DialTimeout)
		dcancel()
		if reason != nil {
			err = reason
		}
		errs = append(errs, fmt.Errorf("endpoint %s: %w", ep, err))
	}
	return errors.Join(errs...)
}

// Close stops the keep-alive and revokes the session lease under a fresh
// context bounded to 5s, so entries written with PutLeased disappear at
// once. It then closes the etcd connection. Closing twice is harmless.
func (c *Client) Close() error { return c.close(true) }

// CloseKeepLease closes c like Close but leaves the session lease to
// expire on its TTL instead of revoking it: the entries written under it
// stay in etcd while the process restarts, and the next session re-writes
// them under its own lease. Servers and agents use it on a normal stop, so
// a restart never deletes what others are watching.
func (c *Client) CloseKeepLease() error { return c.close(false) }

func (c *Client) close(revoke bool) error {
	c.cancel()
	c.leaseMu.Lock()
	s := c.lease
	c.lease = nil
	c.leaseMu.Unlock()
	var err error
	if s != nil && revoke {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		if _, rerr := c.cli.Revoke(ctx, s.id); rerr != nil && !errors.Is(rerr, context.Canceled) {
			err = fmt.Errorf("kvstore: revoke lease %x: %w", int64(s.id), rerr)
		}
		cancel()
	}
	c.wg.Wait()
	if cerr := c.cli.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) && err == nil {
		err = fmt.Errorf("kvstore: close etcd client: %w", cerr)
	}
	return err
}

// Etcd is the raw etcd client, for transactions. It stays owned by c.
func (c *Client) Etcd() *clientv3.Client { return c.cli }

// Get reads key. found is false when the key does not exist.
func (c *Client) Get(ctx context.Context, key string) (value []byte, found bool, err error) {
	resp, err := c.cli.Get(ctx, key)
	if err != nil {
		return nil, false, fmt.Errorf("kvstore: get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	return resp.Kvs[0].Value, true, nil
}

// Put writes key without a lease: it survives this client.
func (c *Client) Put(ctx context.Context, key string, value []byte) error {
	if _, err := c.cli.Put(ctx, key, string(value)); err != nil {
		return fmt.Errorf("kvstore: put %s: %w", key, err)
	}
	c.log.Debug("Put key", logKey, key)
	return nil
}

// PutLeased writes key attached to the session lease, so it disappears when
// this client dies. If the lease was lost meanwhile, a new one is granted
// and the write is retried once. Callers that must survive a lease loss
// (keys written once and expected to stay) use a SyncStore, which re-writes
// its keys under every new lease.
func (c *Client) PutLeased(ctx context.Context, key string, value []byte) error {
	for try := 0; ; try++ {
		s, err := c.session(ctx)
		if err != nil {
			return fmt.Errorf("kvstore: put %s: %w", key, err)
		}
		_, err = c.cli.Put(ctx, key, string(value), clientv3.WithLease(s.id))
		if err == nil {
			c.log.Debug("Put leased key", logKey, key, logLease, leaseString(s.id))
			return nil
		}
		if isLeaseNotFound(err) && try == 0 {
			c.leaseLost(s, "lease not found on put")
			continue
		}
		return fmt.Errorf("kvstore: put %s with lease %s: %w", key, leaseString(s.id), err)
	}
}

// Delete removes key; deleting a missing key is not an error.
func (c *Client) Delete(ctx context.Context, key string) error {
	if _, err := c.cli.Delete(ctx, key); err != nil {
		return fmt.Errorf("kvstore: delete %s: %w", key, err)
	}
	c.log.Debug("Deleted key", logKey, key)
	return nil
}

// DeletePrefix removes every key starting with prefix.
func (c *Client) DeletePrefix(ctx context.Context, prefix string) error {
	resp, err := c.cli.Delete(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("kvstore: delete prefix %s: %w", prefix, err)
	}
	c.log.Debug("Deleted prefix", logPrefix, prefix, logCount, resp.Deleted)
	return nil
}

// backoff is a capped exponential backoff with jitter: the n-th delay is
// uniformly drawn from [d/2, d] where d = min(minBackoff·2^n, max).
type backoff struct {
	max time.Duration
	cur time.Duration
}

func (c *Client) newBackoff() *backoff { return newBackoff(c.cfg.MaxBackoff) }

func newBackoff(max time.Duration) *backoff { return &backoff{max: max} }

func (b *backoff) next() time.Duration {
	switch {
	case b.cur == 0:
		b.cur = minBackoff
	case b.cur < b.max:
		b.cur *= 2
	}
	if b.cur > b.max {
		b.cur = b.max
	}
	half := b.cur / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
