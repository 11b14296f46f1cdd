package kvstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/schema"
)

// SyncStoreOptions configure a SyncStore.
type SyncStoreOptions struct {
	// Prefix the store owns, without a trailing slash, e.g.
	// "cilium/state/nodes/v1/c1". Entry name n lives at Prefix + "/" + n.
	Prefix string
	// Cluster names the sync canary written after the initial sync,
	// schema.CanaryKey(Cluster, CanaryPrefix). Empty: no canary.
	Cluster string
	// CanaryPrefix is the prefix named in the canary key; default Prefix.
	// Cilium's stores use the prefix without the cluster, e.g.
	// schema.NodesPrefix for "cilium/state/nodes/v1/<cluster>".
	CanaryPrefix string
	// Owns, when not nil, tells which keys found under Prefix at start
	// belong to this store (key is the whole etcd key): only those are
	// pruned after Synced when not desired. Several writers sharing one
	// prefix (every agent of a cluster publishing into
	// cilium/state/ip/v1/default) each prune only their own stale keys.
	// Nil: every key under Prefix is the store's.
	Owns func(key string, value []byte) bool
	// PersistentCanary writes the sync canary without the session lease,
	// so it outlives this writer. Use it when several writers share a
	// prefix: a canary under one writer's lease would vanish when that
	// writer stops and make every reader wait for the prefix again.
	PersistentCanary bool
}

// SyncStore keeps a desired set of entries written, under the session
// lease, below a prefix it owns:
//
//   - Upsert and Delete change the desired set and return at once; Run
//     writes the changes, retrying failures with capped backoff.
//   - When the lease is lost (expired while etcd was unreachable, or
//     revoked), Run takes a new lease and re-writes every entry (and the
//     canary) under it.
//   - Keys found under the prefix when Run starts (left by an earlier run of
//     the same writer) are deleted only once the caller has called Synced,
//     i.e. has upserted everything it currently wants, and only if they are
//     not desired by then. Then the canary is written and InitialSyncDone
//     closes. Nothing is pruned before that. With SyncStoreOptions.Owns only
//     the keys it claims are candidates; other writers' keys under the same
//     prefix are never touched.
type SyncStore struct {
	c      *Client
	log    *slog.Logger
	prefix string // with trailing slash
	canary string // canary key, "" for none
	owns   func(key string, value []byte) bool
	// persistentCanary: write the canary without a lease.
	persistentCanary bool

	mu      sync.Mutex
	desired map[string][]byte   // name → value
	dirty   map[string]struct{} // names to write or delete
	synced  bool

	wake chan struct{} // capacity 1: "dirty or synced changed"
	done chan struct{} // closed after the initial sync
}

// NewSyncStore returns a store writing through c. Nothing is written until
// Run.
func NewSyncStore(c *Client, log *slog.Logger, opts SyncStoreOptions) *SyncStore {
	prefix := strings.TrimSuffix(opts.Prefix, "/")
	s := &SyncStore{
		c:       c,
		log:     log.With(logPrefix, prefix),
		prefix:  prefix + "/",
		owns:    opts.Owns,
		desired: make(map[string][]byte),
		dirty:   make(map[string]struct{}),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),

		persistentCanary: opts.PersistentCanary,
	}
	if opts.Cluster != "" {
		cp := opts.CanaryPrefix
		if cp == "" {
			cp = prefix
		}
		s.canary = schema.CanaryKey(opts.Cluster, cp)
	}
	return s
}

// Key is the etcd key of entry name.
func (s *SyncStore) Key(name string) string { return s.prefix + name }

// Upsert makes name → value desired. Upserting an unchanged value does
// nothing. value must not be modified afterwards.
func (s *SyncStore) Upsert(name string, value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.desired[name]; ok && bytes.Equal(old, value) {
		return
	}
	s.desired[name] = value
	s.dirty[name] = struct{}{}
	s.poke()
}

// Delete makes name undesired; its key is deleted.
func (s *SyncStore) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.desired, name)
	s.dirty[name] = struct{}{}
	s.poke()
}

// Synced tells the store that every entry the caller wants has been
// upserted, so stale keys of an earlier run may be deleted and the canary
// written.
func (s *SyncStore) Synced() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.synced = true
	s.poke()
}

// InitialSyncDone is closed once, after Synced, every desired entry has
// been written, the stale keys deleted and the canary written.
func (s *SyncStore) InitialSyncDone() <-chan struct{} { return s.done }

// poke wakes Run; s.mu must be held.
func (s *SyncStore) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run writes the desired entries until ctx ends, then returns nil. It
// returns ErrClosed if the client is closed under it.
func (s *SyncStore) Run(ctx context.Context) error {
	bo := s.c.newBackoff()
	sess, err := s.acquire(ctx, bo)
	if err != nil || sess == nil {
		return err
	}
	stale, err := s.listOwned(ctx, bo)
	if err != nil || stale == nil {
		return err
	}
	initialDone := false // stale keys deleted
	canaryDirty := false
	doneClosed := false // s.done closed: initial sync and canary written
	for {
		select {
		case <-sess.lost:
			s.log.Info("Lease lost, re-writing entries under a new lease", logLease, leaseString(sess.id))
			if sess, err = s.acquire(ctx, bo); err != nil || sess == nil {
				return err
			}
			s.mu.Lock()
			for name := range s.desired {
				s.dirty[name] = struct{}{}
			}
			s.mu.Unlock()
			canaryDirty = initialDone
		default:
		}

		failed := s.flush(ctx, sess)
		if !failed && !initialDone {
			s.mu.Lock()
			synced := s.synced
			s.mu.Unlock()
			if synced {
				if err := s.deleteStale(ctx, stale); err != nil {
					failed = true
					if ctx.Err() == nil {
						s.log.Warn("Deleting stale keys failed, retrying", logError, err)
					}
				} else {
					stale = nil
					canaryDirty = s.canary != ""
					initialDone = true
				}
			}
		}
		if !failed && canaryDirty {
			if err := s.putCanary(ctx, sess); err != nil {
				failed = true
				if ctx.Err() == nil {
					s.log.Warn("Writing canary failed, retrying", logKey, s.canary, logError, err)
				}
			} else {
				canaryDirty = false
			}
		}
		if !failed && initialDone && !doneClosed {
			doneClosed = true
			close(s.done)
			s.log.Info("Initial sync done")
		}
		if ctx.Err() != nil {
			return nil
		}
		if failed {
			sleep(ctx, bo.next())
			continue
		}
		bo.reset()
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-sess.lost:
		}
	}
}

// acquire returns the client's session lease, retrying until ctx ends.
func (s *SyncStore) acquire(ctx context.Context, bo *backoff) (*session, error) {
	for {
		sess, err := s.c.session(ctx)
		if err == nil {
			return sess, nil
		}
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		d := bo.next()
		s.log.Warn("Lease grant failed, retrying", logBackoff, d, logError, err)
		sleep(ctx, d)
	}
}

// putCanary writes the canary, under sess unless it is persistent.
func (s *SyncStore) putCanary(ctx context.Context, sess *session) error {
	if !s.persistentCanary {
		return s.putLeased(ctx, sess, s.canary, []byte(nowRFC3339()))
	}
	if _, err := s.c.cli.Put(ctx, s.canary, nowRFC3339()); err != nil {
		return fmt.Errorf("put %s: %w", s.canary, err)
	}
	s.log.Debug("Wrote persistent canary", logKey, s.canary)
	return nil
}

// listOwned returns the names of the keys under the prefix now that the
// store owns (all of them without an Owns function).
func (s *SyncStore) listOwned(ctx context.Context, bo *backoff) (map[string]struct{}, error) {
	for {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if s.owns == nil {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		resp, err := s.c.cli.Get(ctx, s.prefix, opts...)
		if err == nil {
			names := make(map[string]struct{}, len(resp.Kvs))
			for _, kv := range resp.Kvs {
				if s.owns != nil && !s.owns(string(kv.Key), kv.Value) {
					continue
				}
				names[strings.TrimPrefix(string(kv.Key), s.prefix)] = struct{}{}
			}
			s.log.Debug("Listed owned keys", logCount, len(names))
			return names, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		d := bo.next()
		s.log.Warn("Listing owned keys failed, retrying", logBackoff, d, logError, err)
		sleep(ctx, d)
	}
}

// flush writes or deletes every dirty name; names that fail stay dirty. It
// reports whether anything failed.
func (s *SyncStore) flush(ctx context.Context, sess *session) bool {
	s.mu.Lock()
	dirty := s.dirty
	s.dirty = make(map[string]struct{})
	s.mu.Unlock()
	failed := false
	for name := range dirty {
		s.mu.Lock()
		value, want := s.desired[name]
		s.mu.Unlock()
		key := s.prefix + name
		var err error
		if want {
			err = s.putLeased(ctx, sess, key, value)
		} else {
			if _, err = s.c.cli.Delete(ctx, key); err == nil {
				s.log.Debug("Deleted entry", logKey, key)
			}
		}
		if err != nil {
			failed = true
			if ctx.Err() == nil {
				s.log.Warn("Writing entry failed, retrying", logKey, key, logError, err)
			}
			s.mu.Lock()
			s.dirty[name] = struct{}{}
			s.mu.Unlock()
		}
	}
	return failed
}

// putLeased writes key under sess; a lease etcd no longer knows marks the
// session lost so Run re-writes everything under a new one.
func (s *SyncStore) putLeased(ctx context.Context, sess *session, key string, value []byte) error {
	_, err := s.c.cli.Put(ctx, key, string(value), clientv3.WithLease(sess.id))
	if err != nil {
		if isLeaseNotFound(err) {
			s.c.leaseLost(sess, "lease not found on put")
		}
		return fmt.Errorf("put %s: %w", key, err)
	}
	s.log.Debug("Wrote entry", logKey, key, logLease, leaseString(sess.id))
	return nil
}

// deleteStale deletes the keys listed at start that are not desired now.
func (s *SyncStore) deleteStale(ctx context.Context, stale map[string]struct{}) error {
	for name := range stale {
		s.mu.Lock()
		_, want := s.desired[name]
		s.mu.Unlock()
		if want {
			continue
		}
		key := s.prefix + name
		if _, err := s.c.cli.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete stale %s: %w", key, err)
		}
		delete(stale, name)
		s.log.Debug("Deleted stale entry", logKey, key)
	}
	return nil
}
