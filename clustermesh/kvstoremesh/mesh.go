package kvstoremesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/remoteconfig"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// Errors returned by New, Run and the ID claims of remote clusters.
var (
	// ErrOptions: New was given incomplete or invalid Options.
	ErrOptions = errors.New("kvstoremesh: invalid options")
	// ErrRunning: Run was called twice.
	ErrRunning = errors.New("kvstoremesh: already running")
	// ErrClash: a remote cluster's ID or name is the local cluster's or
	// another connected remote's; the remote is not mirrored (its Status
	// says which cluster holds the ID).
	ErrClash = errors.New("kvstoremesh: cluster ID or name already in use")
)

// Defaults of Options.
const (
	DefaultRemovalGrace   = 3 * time.Minute
	DefaultRetryMin       = 2 * time.Second
	DefaultRetryMax       = 32 * time.Second
	DefaultConnectTimeout = 15 * time.Second
	DefaultProbeInterval  = 10 * time.Second
)

// Log keys.
const (
	logCluster = "cluster"
	logKind    = "kind"
	logKey     = "key"
	logError   = "error"
	logReason  = "reason"
	logID      = "clusterID"
)

// Options configure a Mesh.
type Options struct {
	// Local is the client of the local etcd the copies are written to
	// (the apiserver's own, with write access to cilium/cache/,
	// cilium/synced/ and cilium/cluster-config/). Required; the Mesh does
	// not close it. Copies are attached to its session lease.
	Local *kvstore.Client
	// ClusterName, ClusterID and ClusterMax describe the local cluster; a
	// remote with the same name or ID is refused (ErrClash). ClusterMax is
	// our max-connected-clusters (255 or 511), remote configs must agree.
	ClusterName string
	ClusterID   identity.ClusterID
	ClusterMax  identity.ClusterMax
	// Metrics receives the Mesh's metrics; nil builds unregistered ones.
	Metrics *Metrics
	// RemovalGrace is how long cached data of a removed cluster stays
	// before it is deleted; re-adding the cluster meanwhile keeps it.
	// Default 3 min.
	RemovalGrace time.Duration
	// RetryMin and RetryMax bound the exponential backoff of retried
	// operations (connecting, deleting cached data); default 2 s and 32 s.
	RetryMin, RetryMax time.Duration
	// ConnectTimeout bounds one connection attempt to a remote etcd; a
	// failed attempt is reported in the status and retried. Default 15 s.
	ConnectTimeout time.Duration
	// ProbeInterval is how often a connected remote etcd is probed (a read
	// of cilium/.heartbeat) to report Connected; default 10 s.
	ProbeInterval time.Duration
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.RemovalGrace, DefaultRemovalGrace)
	def(&o.RetryMin, DefaultRetryMin)
	def(&o.RetryMax, DefaultRetryMax)
	def(&o.ConnectTimeout, DefaultConnectTimeout)
	def(&o.ProbeInterval, DefaultProbeInterval)
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	return o
}

// Mesh mirrors remote clusters' state into the local etcd. It implements
// remoteconfig.Handler, so a remoteconfig.Watcher drives it; Add, Update,
// Invalid and Remove may also be called directly. See the package doc for
// the lifecycle.
type Mesh struct {
	log     *slog.Logger
	opts    Options
	local   *kvstore.Client
	metrics *Metrics
	// after is time.After; tests replace it to fire the removal grace.
	after func(time.Duration) <-chan time.Time

	mu            sync.Mutex
	ctx           context.Context // Run's; nil before Run
	stopped       bool            // Run has returned
	remotes       map[string]*remote
	claims        map[identity.ClusterID]string // ID → remote holding it
	claimsChanged chan struct{}                 // closed and replaced on release
}

var _ remoteconfig.Handler = (*Mesh)(nil)

// New returns a Mesh writing to opts.Local. Nothing happens until Run.
// Errors wrap ErrOptions and name the field.
func New(log *slog.Logger, opts Options) (*Mesh, error) {
	if opts.Local == nil {
		return nil, fmt.Errorf("%w: Local is nil", ErrOptions)
	}
	if err := opts.ClusterMax.Validate(); err != nil {
		return nil, fmt.Errorf("%w: ClusterMax: %w", ErrOptions, err)
	}
	if err := opts.ClusterID.Validate(opts.ClusterMax); err != nil {
		return nil, fmt.Errorf("%w: ClusterID: %w", ErrOptions, err)
	}
	if err := schema.ValidateClusterName(opts.ClusterName, opts.ClusterID); err != nil {
		return nil, fmt.Errorf("%w: ClusterName: %w", ErrOptions, err)
	}
	opts = opts.withDefaults()
	m := &Mesh{
		log:           log,
		opts:          opts,
		local:         opts.Local,
		metrics:       opts.Metrics,
		after:         time.After,
		remotes:       make(map[string]*remote),
		claims:        make(map[identity.ClusterID]string),
		claimsChanged: make(chan struct{}),
	}
	if m.metrics == nil {
		m.metrics, _ = NewMetrics(nil) // registers nothing, cannot fail
	}
	return m, nil
}

// Run starts the remote clusters added so far and those added later, and
// returns nil once ctx ends and every remote has stopped. Stopping keeps
// every key written (copies, canaries, cluster configs): they stay under
// the local client's session lease, and a later Mesh on the same etcd
// prunes what is stale after its own initial sync. Removal grace periods
// still pending are abandoned (their data is kept). Run returns ErrRunning
// when called twice.
func (m *Mesh) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.ctx != nil {
		m.mu.Unlock()
		return ErrRunning
	}
	m.ctx = ctx
	rs := m.remoteList()
	m.mu.Unlock()
	for _, r := range rs {
		r.opMu.Lock()
		r.startLocked()
		r.opMu.Unlock()
	}
	m.refreshGauges()
	<-ctx.Done()

	m.mu.Lock()
	m.stopped = true
	rs = m.remoteList()
	m.mu.Unlock()
	for _, r := range rs {
		r.opMu.Lock()
		r.stopRunLocked()
		r.stopDrainLocked()
		r.opMu.Unlock()
	}
	return nil
}

// remoteList returns the remotes sorted by name; m.mu must be held.
func (m *Mesh) remoteList() []*remote {
	rs := make([]*remote, 0, len(m.remotes))
	for _, r := range m.remotes {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b *remote) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return rs
}

// runCtx returns Run's ctx, or nil before Run or after it returned.
func (m *Mesh) runCtx() context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil
	}
	return m.ctx
}

// getOrCreate returns the remote named name, creating it if needed.
func (m *Mesh) getOrCreate(name string) *remote {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.remotes[name]
	if !ok {
		r = newRemote(m, name)
		m.remotes[name] = r
	}
	return r
}

// Add connects to a newly configured remote cluster (remoteconfig.Handler).
// If the cluster was removed and its cached data is still within the
// removal grace, the deletion is cancelled and the data is kept (and
// re-synced). Add on a configured cluster is Update. It returns at once;
// connecting happens in the background. ctx is not used: remotes live as
// long as Run's ctx.
func (m *Mesh) Add(_ context.Context, rc remoteconfig.RemoteCluster) {
	m.configure(rc)
}

// Update reconnects a remote cluster with a changed config
// (remoteconfig.Handler). An Update with the Hash already in use (after an
// Invalid) only clears the invalid-file status.
func (m *Mesh) Update(_ context.Context, rc remoteconfig.RemoteCluster) {
	m.configure(rc)
}

func (m *Mesh) configure(rc remoteconfig.RemoteCluster) {
	r := m.getOrCreate(rc.Name)
	r.opMu.Lock()
	defer r.opMu.Unlock()
	r.stopDrainLocked()
	m.mu.Lock()
	m.remotes[rc.Name] = r // the finished drain may have removed it
	m.mu.Unlock()
	if r.hasConfig && r.hash == rc.Hash && r.running() {
		r.update(func(st *Status) {
			if st.Reason == ReasonInvalidConfigFile {
				st.Reason, st.LastError = ReasonNone, ""
			}
		})
		return
	}
	r.stopRunLocked()
	r.cfg, r.hash, r.hasConfig = rc.Config, rc.Hash, true
	r.update(func(st *Status) {
		st.Configured, st.Draining = true, false
		if st.Reason == ReasonInvalidConfigFile {
			st.Reason, st.LastError = ReasonNone, ""
		}
	})
	r.log.Info("Remote cluster configured", "endpoints", rc.Config.Endpoints)
	r.startLocked()
	m.refreshGauges()
}

// Invalid records that the cluster's config file is invalid
// (remoteconfig.Handler). A running cluster keeps its last good config.
func (m *Mesh) Invalid(_ context.Context, name string, err error) {
	r := m.getOrCreate(name)
	m.metrics.fail(name, ReasonInvalidConfigFile)
	r.log.Error("Remote cluster config file invalid, keeping the last good config", logError, err)
	r.update(func(st *Status) {
		st.Reason, st.LastError = ReasonInvalidConfigFile, err.Error()
	})
}

// Remove disconnects a remote cluster (remoteconfig.Handler): its local
// cilium/cluster-config/<name> is deleted at once, so local consumers stop
// using it; its cached data is deleted after Options.RemovalGrace unless
// the cluster is added again meanwhile. It returns once the connection is
// closed; the deletions happen in the background.
func (m *Mesh) Remove(_ context.Context, name string) {
	m.mu.Lock()
	r, ok := m.remotes[name]
	m.mu.Unlock()
	if !ok {
		return
	}
	r.opMu.Lock()
	defer r.opMu.Unlock()
	r.stopRunLocked()
	if !r.hasConfig {
		// Only ever seen invalid: nothing was connected or written.
		m.mu.Lock()
		if m.remotes[name] == r {
			delete(m.remotes, name)
		}
		m.mu.Unlock()
		return
	}
	r.hasConfig = false
	r.update(func(st *Status) {
		st.Configured, st.Draining, st.Connected = false, true, false
		st.Reason, st.LastError = ReasonNone, ""
	})
	r.log.Info("Remote cluster removed; cached data will be deleted after the grace period", "grace", m.opts.RemovalGrace)
	r.startLocked()
	m.refreshGauges()
}

// Status returns the status of the named remote cluster; false if the Mesh
// does not know it (never configured, or removed and drained).
func (m *Mesh) Status(name string) (Status, bool) {
	m.mu.Lock()
	r, ok := m.remotes[name]
	m.mu.Unlock()
	if !ok {
		return Status{}, false
	}
	return r.status(), true
}

// Statuses returns the status of every known remote cluster, by name.
func (m *Mesh) Statuses() []Status {
	m.mu.Lock()
	rs := m.remoteList()
	m.mu.Unlock()
	out := make([]Status, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.status())
	}
	return out
}

// refreshGauges recomputes the cluster-count gauges from the statuses.
func (m *Mesh) refreshGauges() {
	var configured, connected, ready int
	for _, st := range m.Statuses() {
		if st.Configured {
			configured++
		}
		if st.Configured && st.Connected {
			connected++
		}
		if st.Configured && st.Ready {
			ready++
		}
	}
	m.metrics.Configured.Set(float64(configured))
	m.metrics.Connected.Set(float64(connected))
	m.metrics.Ready.Set(float64(ready))
}

// claim reserves id for the remote name. It fails with ErrClash when the
// name or ID is the local cluster's or id is held by another remote.
func (m *Mesh) claim(name string, id identity.ClusterID) error {
	if name == m.opts.ClusterName {
		return fmt.Errorf("%w: remote cluster %q has the local cluster's name", ErrClash, name)
	}
	if id == m.opts.ClusterID {
		return fmt.Errorf("%w: cluster ID %d of %q is the local cluster %q's", ErrClash, id, name, m.opts.ClusterName)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if other, ok := m.claims[id]; ok && other != name {
		return fmt.Errorf("%w: cluster ID %d of %q is already used by remote cluster %q", ErrClash, id, name, other)
	}
	m.claims[id] = name
	return nil
}

// release frees every ID held by name and wakes remotes waiting on a clash.
func (m *Mesh) release(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	freed := false
	for id, n := range m.claims {
		if n == name {
			delete(m.claims, id)
			freed = true
		}
	}
	if freed {
		close(m.claimsChanged)
		m.claimsChanged = make(chan struct{})
	}
}

// claimsWait returns a channel closed at the next release.
func (m *Mesh) claimsWait() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.claimsChanged
}

// backoff is a capped exponential backoff without jitter.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
