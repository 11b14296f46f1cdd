package meshstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

var (
	// ErrInvalidOptions is returned by New for bad Options.
	ErrInvalidOptions = errors.New("meshstate: invalid options")
	// ErrAlreadyRunning is returned by a second concurrent Run.
	ErrAlreadyRunning = errors.New("meshstate: already running")
)

// Log keys.
const (
	logCluster = "cluster"
	logKind    = "kind"
	logKey     = "key"
	logError   = "error"
	logCount   = "count"
	logTTL     = "ttl"
)

// Options configure a State.
type Options struct {
	// Cluster, ClusterID and Max describe the local cluster: its own
	// config is skipped, and Max (255 or 511) bounds every remote ID.
	Cluster   string
	ClusterID identity.ClusterID
	Max       identity.ClusterMax
	// CacheTTL is how long a disconnected cluster's state (its config was
	// deleted or became unusable) is kept before it is revoked; 0 keeps it
	// until the agent stops, as Cilium's clustermesh-cache-ttl does.
	CacheTTL time.Duration
	// Metrics receives the state's metrics; nil keeps them unregistered.
	Metrics *Metrics
}

// State is the agent's validated view of every remote cluster, read from
// the KVStoreMesh cache in the local etcd. See the package documentation.
type State struct {
	client  *kvstore.Client
	log     *slog.Logger
	opts    Options
	metrics *Metrics
	running atomic.Bool

	nodes      *spec[string, *schema.Node]
	ips        *spec[netip.Prefix, IPEntry]
	identities *spec[identity.NumericIdentity, identity.Labels]
	services   *spec[ServiceName, *schema.ClusterService]
	runners    [numKinds]runner

	// mu guards the fields below; it is never held while a table lock is
	// taken by the same goroutine in the other order.
	mu       sync.Mutex
	remotes  map[string]*remote
	initial  []string      // remotes connected when the config list completed
	listed   chan struct{} // closed once the config list completed
	changed  chan struct{} // closed and replaced whenever a session starts
	listDone bool
}

// remote is one remote cluster known from its config; owned by Run, read
// under State.mu.
type remote struct {
	name string
	id   identity.ClusterID
	sess *session // nil while disconnected
	gen  uint64   // bumped on every connect/disconnect; stale timers check it
	ttl  *time.Timer
}

// session is one period of watching a remote's cache prefixes.
type session struct {
	origin   schema.Origin
	canaries bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	synced   [numKinds]chan struct{}
	stopped  chan struct{}
}

func (s *session) ready() bool {
	for _, ch := range s.synced {
		select {
		case <-ch:
		default:
			return false
		}
	}
	return true
}

// New returns a State reading through c (a client of the local etcd).
// Errors: ErrInvalidOptions naming the field.
func New(c *kvstore.Client, log *slog.Logger, opts Options) (*State, error) {
	if err := (schema.Origin{Cluster: opts.Cluster, ClusterID: opts.ClusterID, Max: opts.Max}).Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if opts.CacheTTL < 0 {
		return nil, fmt.Errorf("%w: CacheTTL %v is negative", ErrInvalidOptions, opts.CacheTTL)
	}
	m := opts.Metrics
	if m == nil {
		m = newMetrics()
	}
	s := &State{
		client:     c,
		log:        log,
		opts:       opts,
		metrics:    m,
		nodes:      newNodeSpec(),
		ips:        newIPSpec(),
		identities: newIdentitySpec(),
		services:   newServiceSpec(),
		remotes:    make(map[string]*remote),
		listed:     make(chan struct{}),
		changed:    make(chan struct{}),
	}
	s.runners = [numKinds]runner{KindNodes: s.nodes, KindIPCache: s.ips, KindIdentities: s.identities, KindServices: s.services}
	return s, nil
}

// expiry is a TTL timer firing for a disconnected remote.
type expiry struct {
	name string
	gen  uint64
}

// Run watches cilium/cluster-config/ in the local etcd and follows every
// cached remote cluster until ctx ends. It then stops every watch and
// returns nil (the state stays readable), or kvstore.ErrClosed if the
// client was closed under it, or ErrAlreadyRunning.
func (s *State) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer s.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	expired := make(chan expiry)
	defer func() {
		cancel()
		s.mu.Lock()
		var stop []*session
		for _, r := range s.remotes {
			if r.ttl != nil {
				r.ttl.Stop()
				r.ttl = nil
			}
			if r.sess != nil {
				stop = append(stop, r.sess)
				r.sess = nil
			}
		}
		s.mu.Unlock()
		for _, sess := range stop {
			sess.stop()
		}
		s.updateClusterGauges()
	}()
	events := s.client.ListAndWatch(ctx, schema.ClusterConfigPrefix)
	defer func() {
		cancel()
		for range events { // let the watch goroutine end
		}
	}()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return kvstore.ErrClosed
			}
			s.handleConfig(ctx, ev, expired)
		case e := <-expired:
			s.handleExpiry(e)
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *State) handleConfig(ctx context.Context, ev kvstore.Event, expired chan<- expiry) {
	if ev.Kind == kvstore.EventListDone {
		s.mu.Lock()
		if !s.listDone {
			s.listDone = true
			for name, r := range s.remotes {
				if r.sess != nil {
					s.initial = append(s.initial, name)
				}
			}
			close(s.listed)
		}
		s.mu.Unlock()
		s.log.Info("Remote cluster configs listed", logCount, len(s.initial))
		return
	}
	name := strings.TrimPrefix(ev.Key, schema.ClusterConfigPrefix)
	if name == s.opts.Cluster {
		return
	}
	if ev.Kind == kvstore.EventDelete {
		s.log.Info("Remote cluster config deleted", logCluster, name)
		s.disconnect(ctx, name, expired)
		return
	}
	origin := schema.Origin{Cluster: name, Max: s.opts.Max}
	cfg, err := schema.DecodeClusterConfig(ev.Key, ev.Value, origin)
	if err == nil && !cfg.Capabilities.Cached {
		err = fmt.Errorf("%s: config is not a KVStoreMesh copy (cached is false)", ev.Key)
		s.metrics.invalid.WithLabelValues(name, "cluster-config", reasonNotCached).Inc()
		s.log.Warn("Ignoring remote cluster config", logCluster, name, logKey, ev.Key, logError, err)
		s.disconnect(ctx, name, expired)
		return
	}
	if err != nil {
		if strings.Contains(name, "/") || name == "" {
			name = ev.Key // not a cluster: label it by key
		}
		s.metrics.invalid.WithLabelValues(name, "cluster-config", reasonOf(err)).Inc()
		s.log.Warn("Invalid remote cluster config", logKey, ev.Key, logError, err)
		s.disconnect(ctx, name, expired)
		return
	}
	s.connect(ctx, cfg)
}

// connect starts (or keeps) following cfg's cluster.
func (s *State) connect(ctx context.Context, cfg *schema.ClusterConfig) {
	name := cfg.Cluster
	canaries := cfg.Capabilities.SyncedCanaries
	s.mu.Lock()
	r := s.remotes[name]
	if r == nil {
		r = &remote{name: name}
		s.remotes[name] = r
	}
	if r.sess != nil && r.id == cfg.ID && r.sess.canaries == canaries {
		s.mu.Unlock()
		return // unchanged
	}
	old := r.sess
	r.sess = nil
	if r.ttl != nil {
		r.ttl.Stop()
		r.ttl = nil
	}
	r.gen++
	idChanged := r.id != 0 && r.id != cfg.ID
	r.id = cfg.ID
	s.mu.Unlock()

	if old != nil {
		old.stop()
	}
	if idChanged {
		// Every entry was validated against the old ID.
		s.log.Warn("Remote cluster ID changed, revoking its state", logCluster, name)
		s.revoke(name)
	}
	sess := &session{
		origin:   schema.Origin{Cluster: name, ClusterID: cfg.ID, Max: s.opts.Max},
		canaries: canaries,
		stopped:  make(chan struct{}),
	}
	for i := range sess.synced {
		sess.synced[i] = make(chan struct{})
	}
	sctx, cancel := context.WithCancel(ctx)
	sess.cancel = cancel
	for _, k := range kinds {
		sess.wg.Add(1)
		go func() {
			defer sess.wg.Done()
			s.runners[k].run(sctx, s, sess)
		}()
	}
	s.mu.Lock()
	r.sess = sess
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.log.Info("Following remote cluster", logCluster, name, "id", uint32(cfg.ID), "syncedCanaries", canaries)
	s.updateClusterGauges()
}

// stop cancels the session's watches and waits for them to end.
func (sess *session) stop() {
	sess.cancel()
	sess.wg.Wait()
	close(sess.stopped)
}

// disconnect stops following name and, with a CacheTTL, schedules the
// revocation of its state.
func (s *State) disconnect(ctx context.Context, name string, expired chan<- expiry) {
	s.mu.Lock()
	r := s.remotes[name]
	if r == nil || r.sess == nil {
		s.mu.Unlock()
		return
	}
	old := r.sess
	r.sess = nil
	r.gen++
	gen := r.gen
	if ttl := s.opts.CacheTTL; ttl > 0 {
		r.ttl = time.AfterFunc(ttl, func() {
			select {
			case expired <- expiry{name: name, gen: gen}:
			case <-ctx.Done():
			}
		})
	}
	s.mu.Unlock()
	old.stop()
	s.log.Info("Stopped following remote cluster, keeping its state", logCluster, name, logTTL, s.opts.CacheTTL)
	s.updateClusterGauges()
}

func (s *State) handleExpiry(e expiry) {
	s.mu.Lock()
	r := s.remotes[e.name]
	if r == nil || r.sess != nil || r.gen != e.gen {
		s.mu.Unlock()
		return // reconnected or already gone
	}
	delete(s.remotes, e.name)
	s.mu.Unlock()
	s.log.Info("Cache TTL of disconnected cluster expired, revoking its state", logCluster, e.name, logTTL, s.opts.CacheTTL)
	s.revoke(e.name)
	s.updateClusterGauges()
}

// revoke deletes every entry of cluster, delivering the deletes.
func (s *State) revoke(cluster string) {
	for _, k := range kinds {
		s.runners[k].drop(cluster)
		s.metrics.entries.DeleteLabelValues(cluster, k.String())
	}
}

// invalid counts and logs an entry that failed validation.
func (s *State) invalid(log *slog.Logger, cluster string, kind Kind, key string, err error) {
	s.metrics.invalid.WithLabelValues(cluster, kind.String(), reasonOf(err)).Inc()
	log.Warn("Skipping invalid entry", logKey, key, logError, err)
}

func (s *State) updateClusterGauges() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var configured, ready int
	for _, r := range s.remotes {
		if r.sess == nil {
			continue
		}
		configured++
		if r.sess.ready() {
			ready++
		}
	}
	s.metrics.clusters.Set(float64(configured))
	s.metrics.ready.Set(float64(ready))
}

// Synced waits until every remote cluster whose config existed when Run
// first listed the configs has synced the given kinds (all kinds when
// none are given), like Cilium's ClustersSynced and NodesSynced. A cluster
// disconnected meanwhile is not waited for. It returns ctx's error if ctx
// ends first.
func (s *State) Synced(ctx context.Context, ks ...Kind) error {
	if len(ks) == 0 {
		ks = kinds[:]
	}
	select {
	case <-s.listed:
	case <-ctx.Done():
		return fmt.Errorf("meshstate: wait for cluster configs: %w", ctx.Err())
	}
	s.mu.Lock()
	names := slices.Clone(s.initial)
	s.mu.Unlock()
	for _, name := range names {
		if err := s.waitCluster(ctx, name, ks, false); err != nil {
			return err
		}
	}
	return nil
}

// ClusterSynced waits until cluster is followed and has synced the given
// kinds (all when none are given). It waits for a cluster not configured
// yet, and across reconnections, until ctx ends (returning its error).
func (s *State) ClusterSynced(ctx context.Context, cluster string, ks ...Kind) error {
	if len(ks) == 0 {
		ks = kinds[:]
	}
	return s.waitCluster(ctx, cluster, ks, true)
}

// waitCluster waits for the kinds of cluster's current session; a stopped
// or absent session ends the wait unless wait is set.
func (s *State) waitCluster(ctx context.Context, name string, ks []Kind, wait bool) error {
	for {
		s.mu.Lock()
		var sess *session
		if r := s.remotes[name]; r != nil {
			sess = r.sess
		}
		changed := s.changed
		s.mu.Unlock()
		if sess == nil {
			if !wait {
				return nil
			}
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return fmt.Errorf("meshstate: wait for cluster %s: %w", name, ctx.Err())
			}
		}
		stopped := false
		for _, k := range ks {
			select {
			case <-sess.synced[k]:
			case <-sess.stopped:
				stopped = true
			case <-ctx.Done():
				return fmt.Errorf("meshstate: wait for %s of cluster %s: %w", k, name, ctx.Err())
			}
			if stopped {
				break
			}
		}
		if !stopped {
			return nil
		}
		if !wait {
			return nil
		}
	}
}

// ClusterStatus describes one remote cluster.
type ClusterStatus struct {
	Name string
	ID   identity.ClusterID
	// Connected: its config is present and its prefixes are watched.
	Connected bool
	// Ready: connected and every kind has synced.
	Ready bool
	// Entries per kind.
	Entries [numKinds]int
}

// Status lists every remote cluster whose state is held, by name.
func (s *State) Status() []ClusterStatus {
	s.mu.Lock()
	var out []ClusterStatus
	for _, r := range s.remotes {
		out = append(out, ClusterStatus{Name: r.name, ID: r.id, Connected: r.sess != nil, Ready: r.sess != nil && r.sess.ready()})
	}
	s.mu.Unlock()
	for i := range out {
		for _, k := range kinds {
			out[i].Entries[k] = s.runners[k].len(out[i].Name)
		}
	}
	slices.SortFunc(out, func(a, b ClusterStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Subscriptions. Each Subscribe* call first replays the current state to
// fn (an OpUpsert per entry, then OpSynced for each cluster whose kind
// has synced), then delivers every change until the returned cancel is
// called. Ordering: events of one kind are delivered to every subscriber
// in the order they were applied, which for one cluster is etcd's order;
// a key's deletes follow its upserts; OpSynced of a cluster follows every
// upsert of its initial list and precedes the deletes of entries a
// re-join's list no longer holds. fn runs with the kind's lock held: it
// must return quickly and must not call methods of State (it would
// deadlock); hand the event to a queue or channel instead.

// SubscribeNodes subscribes to remote nodes.
func (s *State) SubscribeNodes(fn func(NodeEvent)) (cancel func()) {
	return s.nodes.table.subscribe(fn)
}

// SubscribeIPCache subscribes to remote ipcache entries.
func (s *State) SubscribeIPCache(fn func(IPCacheEvent)) (cancel func()) {
	return s.ips.table.subscribe(fn)
}

// SubscribeIdentities subscribes to remote identities.
func (s *State) SubscribeIdentities(fn func(IdentityEvent)) (cancel func()) {
	return s.identities.table.subscribe(fn)
}

// SubscribeServices subscribes to remote services.
func (s *State) SubscribeServices(fn func(ServiceEvent)) (cancel func()) {
	return s.services.table.subscribe(fn)
}

// Node returns node name of cluster. The value is shared: do not modify.
func (s *State) Node(cluster, name string) (*schema.Node, bool) {
	return s.nodes.table.get(cluster, name)
}

// Nodes returns a copy of cluster's node map (values shared).
func (s *State) Nodes(cluster string) map[string]*schema.Node {
	return s.nodes.table.snapshot(cluster)
}

// LookupIP returns the remote ipcache entry of p (use the full-length
// prefix for an address) and the cluster holding it.
func (s *State) LookupIP(p netip.Prefix) (cluster string, e IPEntry, ok bool) {
	return s.ips.table.find(p)
}

// Identity returns the labels of a remote identity and its cluster.
func (s *State) Identity(id identity.NumericIdentity) (cluster string, ls identity.Labels, ok bool) {
	return s.identities.table.find(id)
}

// Service returns service n of cluster. The value is shared: do not
// modify.
func (s *State) Service(cluster string, n ServiceName) (*schema.ClusterService, bool) {
	return s.services.table.get(cluster, n)
}
