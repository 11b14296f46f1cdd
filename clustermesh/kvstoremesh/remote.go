package kvstoremesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// PrefixState is where the mirror of one kind of one remote stands.
type PrefixState uint8

// Prefix states; see the state machine in the package doc.
const (
	// PrefixStopped: not mirroring (not connected, or no valid config).
	PrefixStopped PrefixState = iota
	// PrefixWaitingCanary: the remote advertises syncedCanaries and its
	// canary for this prefix is absent; nothing is read, nothing pruned.
	PrefixWaitingCanary
	// PrefixSyncing: listing the remote prefix and writing the copies.
	PrefixSyncing
	// PrefixSynced: the local copy is complete (stale entries pruned,
	// local canary written) and follows the remote's changes.
	PrefixSynced
)

func (s PrefixState) String() string {
	switch s {
	case PrefixStopped:
		return "stopped"
	case PrefixWaitingCanary:
		return "waiting-canary"
	case PrefixSyncing:
		return "syncing"
	case PrefixSynced:
		return "synced"
	}
	return fmt.Sprintf("PrefixState(%d)", uint8(s))
}

// KindStatus is the status of one mirrored prefix.
type KindStatus struct {
	Kind  Kind
	State PrefixState
	// Entries is the number of valid remote entries in the current (or
	// last) mirror of the prefix.
	Entries int
}

// Status is what a Mesh knows about one remote cluster.
type Status struct {
	Cluster string
	// Configured: the cluster has a config (Add/Update, not removed).
	Configured bool
	// Draining: the cluster was removed; its cached data is deleted when
	// the grace period ends.
	Draining bool
	// Connected: connected to the remote etcd and its last probe answered.
	Connected bool
	// Ready: every prefix is PrefixSynced.
	Ready bool
	// ClusterID and SyncedCanaries come from the remote's cluster config
	// in use (zero while none is accepted).
	ClusterID      identity.ClusterID
	SyncedCanaries bool
	Kinds          []KindStatus
	// Reason and LastError describe the current failure, if any (cleared
	// when the condition ends).
	Reason    Reason
	LastError string
	// InvalidEntries counts remote entries rejected by validation, the
	// last one described by LastInvalidEntry.
	InvalidEntries   uint64
	LastInvalidEntry string
}

// remote is one remote cluster: its config, its runner or drain goroutine,
// and its status.
type remote struct {
	m    *Mesh
	name string
	log  *slog.Logger

	// opMu serializes the lifecycle operations (configure, remove, Run's
	// start and stop); the goroutines never take it.
	opMu        sync.Mutex
	cfg         kvstore.Config
	hash        [sha256.Size]byte
	hasConfig   bool
	runCancel   context.CancelFunc
	runDone     chan struct{}
	drainCancel context.CancelFunc
	drainDone   chan struct{}

	mu sync.Mutex
	st Status
}

func newRemote(m *Mesh, name string) *remote {
	r := &remote{m: m, name: name, log: m.log.With(logCluster, name)}
	r.st.Cluster = name
	for _, k := range AllKinds() {
		r.st.Kinds = append(r.st.Kinds, KindStatus{Kind: k})
	}
	return r
}

func (r *remote) status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	st.Kinds = append([]KindStatus(nil), r.st.Kinds...)
	st.Ready = st.Configured
	for _, k := range st.Kinds {
		if k.State != PrefixSynced {
			st.Ready = false
		}
	}
	return st
}

// update changes the status under r.mu and refreshes the gauges.
func (r *remote) update(fn func(st *Status)) {
	r.mu.Lock()
	fn(&r.st)
	r.mu.Unlock()
	r.m.refreshGauges()
}

func (r *remote) setKind(k Kind, fn func(ks *KindStatus)) {
	r.update(func(st *Status) { fn(&st.Kinds[k]) })
}

// fail records a failure in the status, the metrics and the log.
func (r *remote) fail(reason Reason, err error) {
	r.m.metrics.fail(r.name, reason)
	r.log.Error("Remote cluster failure", logReason, string(reason), logError, err)
	r.update(func(st *Status) { st.Reason, st.LastError = reason, err.Error() })
}

// clear ends a failure of one of reasons.
func (r *remote) clear(reasons ...Reason) {
	r.update(func(st *Status) {
		for _, re := range reasons {
			if st.Reason == re {
				st.Reason, st.LastError = ReasonNone, ""
			}
		}
	})
}

func (r *remote) running() bool { return r.runCancel != nil }

// startLocked starts the runner (configured) or the drain (removed) if Run
// is running; otherwise Run starts it later. r.opMu must be held.
func (r *remote) startLocked() {
	ctx := r.m.runCtx()
	if ctx == nil {
		return
	}
	if r.hasConfig {
		if r.runCancel != nil {
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		r.runCancel, r.runDone = cancel, done
		cfg := r.cfg
		go func() {
			defer close(done)
			r.run(ctx, cfg)
		}()
		return
	}
	r.mu.Lock()
	draining := r.st.Draining
	r.mu.Unlock()
	if draining && r.drainCancel == nil {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		r.drainCancel, r.drainDone = cancel, done
		go func() {
			defer close(done)
			r.drain(ctx)
		}()
	}
}

// stopRunLocked stops the runner and waits for it. r.opMu must be held.
func (r *remote) stopRunLocked() {
	if r.runCancel == nil {
		return
	}
	r.runCancel()
	<-r.runDone
	r.runCancel, r.runDone = nil, nil
}

// stopDrainLocked cancels a pending drain and waits for it, so that no
// deletion runs once it returns. r.opMu must be held.
func (r *remote) stopDrainLocked() {
	if r.drainCancel == nil {
		return
	}
	r.drainCancel()
	<-r.drainDone
	r.drainCancel, r.drainDone = nil, nil
}

// run connects and mirrors until ctx ends.
func (r *remote) run(ctx context.Context, cfg kvstore.Config) {
	bo := backoff{min: r.m.opts.RetryMin, max: r.m.opts.RetryMax}
	for {
		cctx, cancel := context.WithTimeout(ctx, r.m.opts.ConnectTimeout)
		client, err := kvstore.New(cctx, r.log, cfg)
		cancel()
		if err == nil {
			r.log.Info("Connected to remote cluster")
			r.update(func(st *Status) { st.Connected = true })
			r.clear(ReasonConnectError, ReasonUnreachable)
			r.serve(ctx, client)
			if err := client.Close(); err != nil {
				r.log.Debug("Closing remote client", logError, err)
			}
			r.update(func(st *Status) { st.Connected = false })
			return
		}
		if ctx.Err() != nil {
			return
		}
		r.fail(ReasonConnectError, fmt.Errorf("connect to %s: %w", r.name, err))
		if !sleep(ctx, bo.next()) {
			return
		}
	}
}

// configEvent is the remote's cluster config value; found false: absent.
type configEvent struct {
	value []byte
	found bool
}

// serve follows the remote's cluster config and mirrors while it is valid
// and its ID is ours to use. It returns when ctx ends.
func (r *remote) serve(ctx context.Context, client *kvstore.Client) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(2)
	go func() { defer wg.Done(); r.probe(ctx, client) }()
	configs := make(chan configEvent, 1)
	go func() { defer wg.Done(); r.watchConfig(ctx, client, configs) }()

	var (
		latest   configEvent
		have     bool
		cur      []byte // accepted config in use, nil when not mirroring
		mirrors  *mirrorSet
		clashing <-chan struct{}
	)
	stop := func() {
		if mirrors == nil {
			return
		}
		mirrors.stop()
		mirrors, cur = nil, nil
		r.m.release(r.name)
		r.update(func(st *Status) {
			st.ClusterID, st.SyncedCanaries = 0, false
			for i := range st.Kinds {
				st.Kinds[i].State = PrefixStopped
			}
		})
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case latest = <-configs:
			have = true
		case <-clashing:
		}
		clashing = nil
		if !have || (mirrors != nil && latest.found && bytes.Equal(latest.value, cur)) {
			continue
		}
		wasActive := mirrors != nil
		stop()
		refuse := func(reason Reason, err error) {
			r.fail(reason, err)
			if wasActive {
				// Local consumers must stop using the cluster; the cached
				// data stays until the removal grace or the next sync.
				r.deleteLocalConfig(ctx)
			}
		}
		key := schema.ClusterConfigKey(r.name)
		if !latest.found {
			refuse(ReasonMissingConfig, fmt.Errorf("%s not found in the remote etcd", key))
			continue
		}
		cc, err := schema.DecodeClusterConfig(key, latest.value, schema.Origin{Cluster: r.name, Max: r.m.opts.ClusterMax})
		if err != nil {
			refuse(ReasonInvalidConfig, err)
			continue
		}
		value, err := localConfig(cc)
		if err != nil {
			refuse(ReasonInvalidConfig, fmt.Errorf("encode local %s: %w", key, err))
			continue
		}
		clashing = r.m.claimsWait() // taken before claim: no release is missed
		if err := r.m.claim(r.name, cc.ID); err != nil {
			refuse(ReasonConfigClash, err)
			continue
		}
		clashing = nil
		r.clear(ReasonMissingConfig, ReasonInvalidConfig, ReasonConfigClash)
		r.update(func(st *Status) { st.ClusterID, st.SyncedCanaries = cc.ID, cc.Capabilities.SyncedCanaries })
		r.log.Info("Remote cluster config accepted", logID, cc.ID, "syncedCanaries", cc.Capabilities.SyncedCanaries)
		cur = latest.value
		mirrors = r.startMirrors(ctx, client, cc, value)
	}
}

// watchConfig sends the remote's cluster config on out (latest value wins)
// until ctx ends. It reads and watches the single key, which is all the
// remote's "remote" user may read under cilium/cluster-config/.
func (r *remote) watchConfig(ctx context.Context, client *kvstore.Client, out chan configEvent) {
	key := schema.ClusterConfigKey(r.name)
	send := func(ev configEvent) {
		for {
			select {
			case out <- ev:
				return
			case <-ctx.Done():
				return
			case <-out: // drop the stale value; the newest wins
			}
		}
	}
	bo := backoff{min: 100 * time.Millisecond, max: r.m.opts.RetryMax}
	for ctx.Err() == nil {
		resp, err := client.Etcd().Get(ctx, key)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Debug("Reading remote cluster config failed, retrying", logKey, key, logError, err)
			}
			sleep(ctx, bo.next())
			continue
		}
		bo.reset()
		ev := configEvent{}
		if len(resp.Kvs) > 0 {
			ev = configEvent{value: resp.Kvs[0].Value, found: true}
		}
		send(ev)
		for wr := range client.Etcd().Watch(clientv3.WithRequireLeader(ctx), key, clientv3.WithRev(resp.Header.Revision+1)) {
			if err := wr.Err(); err != nil {
				r.log.Debug("Watching remote cluster config failed, re-reading", logKey, key, logError, err)
				break
			}
			for _, e := range wr.Events {
				if e.Type == clientv3.EventTypeDelete {
					send(configEvent{})
				} else {
					send(configEvent{value: e.Kv.Value, found: true})
				}
			}
		}
		sleep(ctx, bo.next())
	}
}

// probe reads the remote heartbeat key every ProbeInterval and reports the
// outcome as Connected. It never disconnects: the watches retry on their
// own and cached data is kept.
func (r *remote) probe(ctx context.Context, client *kvstore.Client) {
	t := time.NewTicker(r.m.opts.ProbeInterval)
	defer t.Stop()
	connected := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, r.m.opts.ProbeInterval)
		_, _, err := client.Get(pctx, schema.HeartbeatKey)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && connected:
			connected = false
			r.update(func(st *Status) { st.Connected = false })
			r.fail(ReasonUnreachable, fmt.Errorf("remote etcd of %s unreachable, keeping cached data: %w", r.name, err))
		case err == nil && !connected:
			connected = true
			r.log.Info("Remote cluster reachable again")
			r.update(func(st *Status) { st.Connected = true })
			r.clear(ReasonUnreachable)
		}
	}
}

// localRetry runs op until it succeeds or ctx ends, backing off between
// attempts and recording failures. It reports whether op succeeded.
func (r *remote) localRetry(ctx context.Context, what string, op func(ctx context.Context) error) bool {
	bo := backoff{min: r.m.opts.RetryMin, max: r.m.opts.RetryMax}
	for {
		err := op(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		r.fail(ReasonLocalWrite, fmt.Errorf("%s: %w", what, err))
		if !sleep(ctx, bo.next()) {
			return false
		}
	}
}

// deleteLocalConfig deletes cilium/cluster-config/<name> locally.
func (r *remote) deleteLocalConfig(ctx context.Context) bool {
	key := schema.ClusterConfigKey(r.name)
	return r.localRetry(ctx, "delete "+key, func(ctx context.Context) error {
		return r.m.local.Delete(ctx, key)
	})
}

// deleteLocalCanary deletes the local canary of kind k of this remote.
func (r *remote) deleteLocalCanary(ctx context.Context, k Kind) bool {
	key := schema.CanaryKey(r.name, k.CachePrefix())
	return r.localRetry(ctx, "delete "+key, func(ctx context.Context) error {
		return r.m.local.Delete(ctx, key)
	})
}

// drain deletes the local cluster config at once and the cached data
// after the removal grace, unless ctx ends first (re-added, or Run ended).
func (r *remote) drain(ctx context.Context) {
	if !r.deleteLocalConfig(ctx) {
		return
	}
	r.log.Info("Deleted local cluster config of removed cluster")
	select {
	case <-ctx.Done():
		r.log.Info("Deletion of cached data cancelled")
		return
	case <-r.m.after(r.m.opts.RemovalGrace):
	}
	for _, k := range AllKinds() {
		prefix := k.storePrefix(r.name) + "/"
		if !r.localRetry(ctx, "delete "+prefix, func(ctx context.Context) error { return r.m.local.DeletePrefix(ctx, prefix) }) {
			return
		}
		if !r.deleteLocalCanary(ctx, k) {
			return
		}
		r.m.metrics.Entries.DeleteLabelValues(r.name, k.String())
	}
	r.log.Info("Deleted cached data of removed cluster")
	m := r.m
	m.mu.Lock()
	if m.remotes[r.name] == r && ctx.Err() == nil {
		delete(m.remotes, r.name)
	}
	m.mu.Unlock()
	m.refreshGauges()
}
