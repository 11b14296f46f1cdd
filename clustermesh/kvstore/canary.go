package kvstore

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/schema"
)

// WriteCanary marks the initial sync of prefix in cluster as complete: it
// writes schema.CanaryKey(cluster, prefix) = the current time in RFC3339,
// attached to the session lease (like the entries it vouches for).
func (c *Client) WriteCanary(ctx context.Context, cluster, prefix string) error {
	key := schema.CanaryKey(cluster, prefix)
	if err := c.PutLeased(ctx, key, []byte(nowRFC3339())); err != nil {
		return fmt.Errorf("write canary of %s: %w", prefix, err)
	}
	c.log.Info("Wrote sync canary", logKey, key)
	return nil
}

// WaitForCanary blocks until schema.CanaryKey(cluster, prefix) exists.
// Failed reads and watches are retried with capped backoff. It returns
// ctx's error, wrapped with the canary key and the last failure if any, or
// ErrClosed once the client is closed.
func (c *Client) WaitForCanary(ctx context.Context, cluster, prefix string) error {
	key := schema.CanaryKey(cluster, prefix)
	bo := c.newBackoff()
	var last error
	for {
		found, err := c.waitKeyOnce(ctx, key)
		if found {
			c.log.Debug("Sync canary present", logKey, key)
			return nil
		}
		if ctx.Err() != nil {
			if last != nil {
				return fmt.Errorf("kvstore: wait for canary %s: %w; last error: %w", key, ctx.Err(), last)
			}
			return fmt.Errorf("kvstore: wait for canary %s: %w", key, ctx.Err())
		}
		if c.ctx.Err() != nil {
			return ErrClosed
		}
		last = err
		d := bo.next()
		c.log.Warn("Waiting for canary failed, retrying", logKey, key, logBackoff, d, logError, err)
		sleep(ctx, d)
	}
}

// waitKeyOnce reads key and, if it is missing, watches it until it is
// written. It returns found=false with the error of a failed read/watch.
func (c *Client) waitKeyOnce(ctx context.Context, key string) (bool, error) {
	resp, err := c.cli.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("get %s: %w", key, err)
	}
	if len(resp.Kvs) > 0 {
		return true, nil
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range c.cli.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1)) {
		if err := wr.Err(); err != nil {
			return false, fmt.Errorf("watch %s: %w", key, err)
		}
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.PUT {
				return true, nil
			}
		}
	}
	return false, fmt.Errorf("watch %s: %w", key, errWatchClosed)
}

// WatchSynced is ListAndWatch of prefix for a consumer of cluster's etcd.
// With requireCanary (the remote's cluster config advertises
// syncedCanaries) it first waits for schema.CanaryKey(cluster, prefix), so a
// half-written prefix is never taken as complete; until then the channel
// stays silent. The channel closes when ctx ends.
func (c *Client) WatchSynced(ctx context.Context, cluster, prefix string, requireCanary bool) <-chan Event {
	if !requireCanary {
		return c.ListAndWatch(ctx, prefix)
	}
	out := make(chan Event, eventBuffer)
	go func() {
		defer close(out)
		if err := c.WaitForCanary(ctx, cluster, prefix); err != nil {
			return // only ctx ends the wait
		}
		for ev := range c.ListAndWatch(ctx, prefix) {
			select {
			case out <- ev:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

// RunHeartbeat writes schema.HeartbeatKey = the current time in RFC3339
// (leased) now and every interval until ctx ends, then returns nil. A failed
// write is logged and retried at the next tick: an unreachable etcd must not
// stop the heartbeat for good.
func (c *Client) RunHeartbeat(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("kvstore: heartbeat interval %v: must be positive", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		wctx, cancel := context.WithTimeout(ctx, interval)
		err := c.PutLeased(wctx, schema.HeartbeatKey, []byte(nowRFC3339()))
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Warn("Heartbeat write failed", logKey, schema.HeartbeatKey, logError, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func nowRFC3339() string { return time.Now().UTC().Format(time.RFC3339) }
