package kvstoremesh

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
)

// mirrorSet is the running mirror of one accepted remote config: the local
// cluster-config writer and one mirror per kind.
type mirrorSet struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// stop stops every goroutine of the set and waits for them. Keys written
// stay.
func (s *mirrorSet) stop() {
	s.cancel()
	s.wg.Wait()
}

// startMirrors writes the local cluster config and starts the per-kind
// mirrors: at once, or each when its remote canary appears if the remote
// advertises syncedCanaries.
// localConfig is the value written to the local cilium/cluster-config/<remote>:
// the remote's config with cached and syncedCanaries set.
func localConfig(cc *schema.ClusterConfig) ([]byte, error) {
	local := schema.ClusterConfig{Cluster: cc.Cluster, ID: cc.ID, Capabilities: cc.Capabilities}
	local.Capabilities.Cached = true
	local.Capabilities.SyncedCanaries = true
	return local.Marshal()
}

func (r *remote) startMirrors(ctx context.Context, client *kvstore.Client, cc *schema.ClusterConfig, value []byte) *mirrorSet {
	ctx, cancel := context.WithCancel(ctx)
	s := &mirrorSet{cancel: cancel}
	origin := schema.Origin{Cluster: r.name, ClusterID: cc.ID, Max: r.m.opts.ClusterMax}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		r.writeLocalConfig(ctx, value)
	}()
	go func() {
		defer s.wg.Done()
		if cc.Capabilities.SyncedCanaries {
			r.followCanaries(ctx, client, origin)
			return
		}
		var wg sync.WaitGroup
		for _, k := range AllKinds() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.mirror(ctx, client, origin, k, false)
			}()
		}
		wg.Wait()
	}()
	return s
}

// writeLocalConfig keeps cilium/cluster-config/<remote> written locally,
// attached to the local session lease, re-writing it when the lease is
// replaced, until ctx ends. The key is deleted by removal, not here.
func (r *remote) writeLocalConfig(ctx context.Context, value []byte) {
	key := schema.ClusterConfigKey(r.name)
	bo := backoff{min: r.m.opts.RetryMin, max: r.m.opts.RetryMax}
	for {
		_, lost, err := r.m.local.Lease(ctx)
		if err == nil {
			err = r.m.local.PutLeased(ctx, key, value)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.fail(ReasonLocalWrite, fmt.Errorf("write %s: %w", key, err))
			if !sleep(ctx, bo.next()) {
				return
			}
			continue
		}
		bo.reset()
		r.log.Debug("Wrote local cluster config", logKey, key)
		select {
		case <-ctx.Done():
			return
		case <-lost:
		}
	}
}

// followCanaries starts the mirror of a kind when the remote's canary
// cilium/synced/<remote>/<state prefix> exists, and stops it when the
// canary disappears (the remote is re-populating its etcd, e.g. after an
// apiserver restart): then the local canary is deleted and the cached
// entries are kept untouched until the canary is back and a new initial
// sync prunes what is stale.
func (r *remote) followCanaries(ctx context.Context, client *kvstore.Client, origin schema.Origin) {
	type run struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var running [numKinds]*run
	stopKind := func(k Kind) {
		running[k].cancel()
		<-running[k].done
		running[k] = nil
	}
	defer func() {
		for _, k := range AllKinds() {
			if running[k] != nil {
				stopKind(k)
			}
		}
	}()
	for _, k := range AllKinds() {
		if !r.deleteLocalCanary(ctx, k) {
			return
		}
		r.setKind(k, func(ks *KindStatus) { ks.State = PrefixWaitingCanary })
	}
	canaryKind := make(map[string]Kind, numKinds)
	for _, k := range AllKinds() {
		canaryKind[schema.CanaryKey(r.name, k.StatePrefix())] = k
	}
	var present [numKinds]bool
	listed := false
	for ev := range client.ListAndWatch(ctx, schema.SyncedPrefix+r.name+"/") {
		switch ev.Kind {
		case kvstore.EventUpsert, kvstore.EventDelete:
			k, ok := canaryKind[ev.Key]
			if !ok {
				continue
			}
			present[k] = ev.Kind == kvstore.EventUpsert
		case kvstore.EventListDone:
			listed = true
		}
		if !listed {
			continue
		}
		for _, k := range AllKinds() {
			switch {
			case present[k] && running[k] == nil:
				kctx, cancel := context.WithCancel(ctx)
				rn := &run{cancel: cancel, done: make(chan struct{})}
				running[k] = rn
				go func() {
					defer close(rn.done)
					r.mirror(kctx, client, origin, k, true)
				}()
			case !present[k] && running[k] != nil:
				stopKind(k)
				r.log.Warn("Remote sync canary gone: pausing the mirror, cached entries kept until the remote is synced again", logKind, k.String())
				if !r.deleteLocalCanary(ctx, k) {
					return
				}
				r.setKind(k, func(ks *KindStatus) { ks.State = PrefixWaitingCanary })
			}
		}
	}
}

// mirror copies the remote prefix of kind k into the local cache through a
// SyncStore until ctx ends. Stale copies of an earlier run are pruned by the
// store only after the remote prefix has been listed completely and every
// valid entry written; then the local canary is written.
//
// With canaries (the remote advertises syncedCanaries), a remote delete is
// applied only if the remote's canary still existed at the delete's
// revision: a remote whose etcd comes back half-populated deletes its
// canary and entries in one change, and the canary watcher (a separate
// watch) may see that change after this mirror does. Such deletes are
// skipped; the canary watcher then pauses this mirror, and the next initial
// sync prunes what is really gone. For the same reason a list is taken as
// complete (and stale copies pruned) only if the canary existed at the
// list's revision.
func (r *remote) mirror(ctx context.Context, client *kvstore.Client, origin schema.Origin, k Kind, canaries bool) {
	start := time.Now()
	r.setKind(k, func(ks *KindStatus) { ks.State = PrefixSyncing })
	if !r.deleteLocalCanary(ctx, k) {
		return
	}
	log := r.log.With(logKind, k.String())
	store := kvstore.NewSyncStore(r.m.local, log, kvstore.SyncStoreOptions{
		Prefix:       k.storePrefix(r.name),
		Cluster:      r.name,
		CanaryPrefix: k.CachePrefix(),
	})
	sctx, scancel := context.WithCancel(ctx)
	storeErr := make(chan error, 1)
	go func() { storeErr <- store.Run(sctx) }()
	defer func() {
		scancel()
		if storeErr != nil {
			<-storeErr
		}
	}()

	entries := r.m.metrics.Entries.WithLabelValues(r.name, k.String())
	names := make(map[string]string) // remote key → entry name
	var synced <-chan struct{}
	events := client.ListAndWatch(ctx, k.WatchPrefix(r.name))
	for {
		select {
		case err := <-storeErr:
			storeErr = nil
			if err != nil {
				r.fail(ReasonLocalWrite, fmt.Errorf("cache of %s %s: %w", r.name, k, err))
			}
			return
		case <-synced:
			synced = nil
			d := time.Since(start)
			r.m.metrics.SyncSeconds.WithLabelValues(k.String()).Observe(d.Seconds())
			r.setKind(k, func(ks *KindStatus) { ks.State = PrefixSynced })
			log.Info("Initial sync of remote prefix done", "entries", len(names), "duration", d)
			continue
		case ev, ok := <-events:
			if !ok {
				return
			}
			switch ev.Kind {
			case kvstore.EventUpsert:
				name, err := validateEntry(k, ev.Key, ev.Value, origin)
				if err != nil {
					r.invalidEntry(ev.Key, err)
					if old, ok := names[ev.Key]; ok {
						store.Delete(old)
						delete(names, ev.Key)
					}
					break
				}
				names[ev.Key] = name
				store.Upsert(name, ev.Value)
			case kvstore.EventDelete:
				name, ok := names[ev.Key]
				if !ok {
					break
				}
				if canaries && !r.canaryAt(ctx, client, k, ev.Revision) {
					log.Warn("Remote delete skipped: the remote's sync canary was gone at that revision", logKey, ev.Key, "revision", ev.Revision)
					break
				}
				store.Delete(name)
				delete(names, ev.Key)
			case kvstore.EventListDone:
				if canaries && !r.canaryAt(ctx, client, k, ev.Revision) {
					// Listed from a half-populated remote: nothing is
					// pruned; the canary watcher pauses this mirror.
					log.Warn("Remote listed without its sync canary: not pruning", "revision", ev.Revision)
					break
				}
				store.Synced()
				synced = store.InitialSyncDone()
			}
		}
		entries.Set(float64(len(names)))
		r.mu.Lock()
		r.st.Kinds[k].Entries = len(names)
		r.mu.Unlock()
	}
}

// invalidEntry records a rejected remote entry.
func (r *remote) invalidEntry(key string, err error) {
	r.m.metrics.fail(r.name, ReasonInvalidEntry)
	r.log.Error("Skipping invalid remote entry", logKey, key, logError, err)
	r.mu.Lock()
	r.st.InvalidEntries++
	r.st.LastInvalidEntry = err.Error()
	r.mu.Unlock()
}

// canaryAt reports whether the remote's sync canary of kind k existed at
// revision rev. Any doubt (read failed, revision compacted) is false: a
// delete is never applied from an uncertain view.
func (r *remote) canaryAt(ctx context.Context, client *kvstore.Client, k Kind, rev int64) bool {
	key := schema.CanaryKey(r.name, k.StatePrefix())
	resp, err := client.Etcd().Get(ctx, key, clientv3.WithRev(rev), clientv3.WithCountOnly())
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("Reading the remote's sync canary failed", logKey, key, "revision", rev, logError, err)
		}
		return false
	}
	return resp.Count > 0
}
