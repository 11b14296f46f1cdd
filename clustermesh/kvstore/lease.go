package kvstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// session is one granted lease and its keep-alive.
//
//	granted ──keep-alive ends (expired, revoked, etcd unreachable > TTL)──▶ lost
//	   │                                                                    │
//	   └──────────── Close: revoked ──────────────────────────────────────▶ │
//
// A lost session is never reused: the next caller of Client.session grants
// a new one.
type session struct {
	id     clientv3.LeaseID
	lost   chan struct{} // closed once the lease is lost
	once   sync.Once
	cancel context.CancelFunc // stops the keep-alive
}

// LeaseID returns the session lease, granting it (and starting its
// keep-alive) if there is none or the previous one was lost. Errors come
// from the etcd Grant call, or ErrClosed after Close.
func (c *Client) LeaseID(ctx context.Context) (clientv3.LeaseID, error) {
	s, err := c.session(ctx)
	if err != nil {
		return clientv3.NoLease, err
	}
	return s.id, nil
}

// Lease is LeaseID plus a channel closed when that lease is lost. Writers
// that must keep their keys (SyncStore) wait on it and re-write their keys
// under the next lease.
func (c *Client) Lease(ctx context.Context) (clientv3.LeaseID, <-chan struct{}, error) {
	s, err := c.session(ctx)
	if err != nil {
		return clientv3.NoLease, nil, err
	}
	return s.id, s.lost, nil
}

func (c *Client) session(ctx context.Context) (*session, error) {
	c.leaseMu.Lock()
	defer c.leaseMu.Unlock()
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if c.lease != nil {
		return c.lease, nil
	}
	ttl := int64(math.Ceil(c.cfg.LeaseTTL.Seconds()))
	resp, err := c.cli.Grant(ctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("grant lease of %ds: %w", ttl, err)
	}
	kctx, cancel := context.WithCancel(c.ctx)
	ch, err := c.cli.KeepAlive(kctx, resp.ID)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("keep lease %s alive: %w", leaseString(resp.ID), err)
	}
	s := &session{id: resp.ID, lost: make(chan struct{}), cancel: cancel}
	c.lease = s
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for range ch {
			// Each response renewed the lease; nothing to do.
		}
		c.leaseLost(s, "keep-alive ended")
	}()
	c.log.Info("Granted lease", logLease, leaseString(resp.ID), logTTL, ttl)
	return s, nil
}

// leaseLost forgets s so the next caller grants a new lease, and signals
// s.lost. Calling it more than once for s is harmless.
func (c *Client) leaseLost(s *session, reason string) {
	c.leaseMu.Lock()
	if c.lease == s {
		c.lease = nil
	}
	c.leaseMu.Unlock()
	s.once.Do(func() {
		s.cancel()
		close(s.lost)
		if c.ctx.Err() == nil {
			c.log.Warn("Lease lost", logLease, leaseString(s.id), logReason, reason)
		}
	})
}

func isLeaseNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound)
}

func leaseString(id clientv3.LeaseID) string {
	return strconv.FormatInt(int64(id), 16)
}
