package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

var (
	// ErrInvalidEntry is returned by Upsert and Delete for an entry that
	// fails validation; the entry is not written and nothing else changes.
	ErrInvalidEntry = errors.New("publish: invalid entry")
	// ErrInvalidOptions is returned by the constructors for bad Options.
	ErrInvalidOptions = errors.New("publish: invalid options")
)

// Log keys.
const (
	logKind  = "kind"
	logKey   = "key"
	logError = "error"
)

// Options describe the cluster whose state is published. Every entry must
// belong to it.
type Options struct {
	// Cluster is this cluster's name.
	Cluster string
	// ClusterID is this cluster's ID, 1..Max.
	ClusterID identity.ClusterID
	// Max is the mesh's max-connected-clusters, 255 or 511.
	Max identity.ClusterMax
	// Metrics receives the publisher's metrics; nil keeps them unregistered.
	Metrics *Metrics
	// Owns, when not nil, names the keys this publisher owns among those
	// found in etcd at start (key is the whole etcd key): only those are
	// pruned after Synced when no longer upserted. Needed when several
	// writers share a prefix, e.g. every agent of a cluster writing
	// cilium/state/ip/v1/default: use OwnedByNode for a NodePublisher and
	// OwnedByHostIP for an IPCachePublisher. Nil: every key under the
	// publisher's prefix is its own (one writer per cluster).
	Owns func(key string, value []byte) bool
	// PersistentCanary writes the sync canary without the session lease,
	// so it stays when this writer stops. Set it whenever Owns is set:
	// with several writers, a canary under one writer's lease would vanish
	// with that writer and stall every reader of the prefix.
	PersistentCanary bool
}

// OwnedByNode is an Options.Owns for the NodePublisher of one agent: it
// owns only the key of node name of cluster.
func OwnedByNode(cluster, name string) func(key string, value []byte) bool {
	own := schema.NodeKey(cluster, name)
	return func(key string, _ []byte) bool { return key == own }
}

// OwnedByHostIP is an Options.Owns for the IPCachePublisher of one agent:
// it owns the entries whose "HostIP" is hostIP (its endpoints). Values that
// do not decode are not owned (never pruned by this writer).
func OwnedByHostIP(hostIP netip.Addr) func(key string, value []byte) bool {
	return func(_ string, value []byte) bool {
		var v struct {
			HostIP string `json:"HostIP"`
		}
		if json.Unmarshal(value, &v) != nil {
			return false
		}
		a, err := netip.ParseAddr(v.HostIP)
		return err == nil && a.Unmap() == hostIP.Unmap()
	}
}

func (o Options) origin() (schema.Origin, error) {
	origin := schema.Origin{Cluster: o.Cluster, ClusterID: o.ClusterID, Max: o.Max}
	if err := origin.Validate(); err != nil {
		return origin, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	return origin, nil
}

// publisher is the part every kind shares: a SyncStore, the set of
// published names (for the entries gauge) and the metrics.
type publisher struct {
	kind    string
	store   *kvstore.SyncStore
	log     *slog.Logger
	metrics *Metrics

	mu    sync.Mutex
	names map[string]struct{}
}

func newPublisher(c *kvstore.Client, log *slog.Logger, kind string, opts Options, prefix, canaryPrefix string) *publisher {
	m := opts.Metrics
	if m == nil {
		m = newMetrics()
	}
	log = log.With(logKind, kind)
	return &publisher{
		kind: kind,
		store: kvstore.NewSyncStore(c, log, kvstore.SyncStoreOptions{
			Prefix:       prefix,
			Cluster:      opts.Cluster,
			CanaryPrefix: canaryPrefix,

			Owns:             opts.Owns,
			PersistentCanary: opts.PersistentCanary,
		}),
		log:     log,
		metrics: m,
		names:   make(map[string]struct{}),
	}
}

func (p *publisher) upsert(name string, value []byte) {
	p.mu.Lock()
	p.names[name] = struct{}{}
	n := len(p.names)
	p.mu.Unlock()
	p.store.Upsert(name, value)
	p.metrics.entries.WithLabelValues(p.kind).Set(float64(n))
}

func (p *publisher) delete(name string) {
	p.mu.Lock()
	delete(p.names, name)
	n := len(p.names)
	p.mu.Unlock()
	p.store.Delete(name)
	p.metrics.entries.WithLabelValues(p.kind).Set(float64(n))
}

// reject counts and wraps a validation failure.
func (p *publisher) reject(what string, err error) error {
	p.metrics.rejected.WithLabelValues(p.kind).Inc()
	return fmt.Errorf("%w: %s %s: %w", ErrInvalidEntry, p.kind, what, err)
}

// NodePublisher publishes this cluster's nodes at
// cilium/state/nodes/v1/<cluster>/<node>. An agent publishes its own node;
// the apiserver publishes every node of the cluster.
type NodePublisher struct {
	p      *publisher
	origin schema.Origin
}

// NewNodePublisher returns a node publisher writing through c. Errors:
// ErrInvalidOptions.
func NewNodePublisher(c *kvstore.Client, log *slog.Logger, opts Options) (*NodePublisher, error) {
	origin, err := opts.origin()
	if err != nil {
		return nil, err
	}
	prefix := schema.NodesPrefix + "/" + opts.Cluster
	return &NodePublisher{p: newPublisher(c, log, "nodes", opts, prefix, schema.NodesPrefix), origin: origin}, nil
}

// Upsert publishes n (or its new version). n must belong to this cluster
// (Cluster and ClusterID) and pass schema.DecodeNode; otherwise the error
// wraps ErrInvalidEntry and names the key and field. n is not retained.
func (np *NodePublisher) Upsert(n *schema.Node) error {
	if n == nil {
		return np.p.reject("<nil>", errors.New("nil node"))
	}
	key := n.Key()
	value, err := n.Marshal()
	if err != nil {
		return np.p.reject(key, err)
	}
	if _, err := schema.DecodeNode(key, value, np.origin); err != nil {
		return np.p.reject(key, err)
	}
	np.p.upsert(n.Name, value)
	return nil
}

// Delete withdraws node name. Errors: ErrInvalidEntry for a name that
// cannot be a key segment.
func (np *NodePublisher) Delete(name string) error {
	if err := checkSegment(name); err != nil {
		return np.p.reject(fmt.Sprintf("%q", name), err)
	}
	np.p.delete(name)
	return nil
}

// Synced tells the publisher every current node has been upserted.
func (np *NodePublisher) Synced() { np.p.store.Synced() }

// Published is closed once the nodes upserted before Synced are written
// (and stale ones of an earlier run deleted, and the canary written).
// Pass it as IPCacheOptions.After.
func (np *NodePublisher) Published() <-chan struct{} { return np.p.store.InitialSyncDone() }

// Run writes until ctx ends. It returns nil then, or kvstore.ErrClosed if
// the client is closed under it.
func (np *NodePublisher) Run(ctx context.Context) error { return np.p.store.Run(ctx) }

// IPCacheOptions configure an IPCachePublisher.
type IPCacheOptions struct {
	Options
	// After, when not nil, holds back every ipcache write until it is
	// closed: pass NodePublisher.Published so that a node's entry (with
	// its WireGuard public key) is in etcd before the first pod address
	// that tunnels to it.
	After <-chan struct{}
}

// IPCachePublisher publishes this cluster's endpoints' addresses at
// cilium/state/ip/v1/default/<ip> (or <ip>/<bits> for a CIDR entry).
type IPCachePublisher struct {
	p      *publisher
	origin schema.Origin
	after  <-chan struct{}
}

// ipNamePrefix is what precedes an entry's name in its key.
const ipNamePrefix = schema.IPPrefix + "/" + schema.AddressSpace + "/"

// NewIPCachePublisher returns an ipcache publisher writing through c.
// Errors: ErrInvalidOptions.
func NewIPCachePublisher(c *kvstore.Client, log *slog.Logger, opts IPCacheOptions) (*IPCachePublisher, error) {
	origin, err := opts.origin()
	if err != nil {
		return nil, err
	}
	prefix := schema.IPPrefix + "/" + schema.AddressSpace
	return &IPCachePublisher{
		p:      newPublisher(c, log, "ip", opts.Options, prefix, schema.IPPrefix),
		origin: origin,
		after:  opts.After,
	}, nil
}

// Upsert publishes e. It must pass schema.DecodeIPIdentityPair and its
// identity must be reserved (1..255, e.g. health) or inside this cluster's
// range; otherwise the error wraps ErrInvalidEntry (and the schema or
// identity error) and names the key. e is not retained.
func (ip *IPCachePublisher) Upsert(e *schema.IPIdentityPair) error {
	if e == nil {
		return ip.p.reject("<nil>", errors.New("nil entry"))
	}
	if !e.IP.IsValid() {
		return ip.p.reject("<no IP>", errors.New("field \"IP\": no address"))
	}
	key := e.Key()
	value, err := e.Marshal()
	if err != nil {
		return ip.p.reject(key, err)
	}
	if _, err := schema.DecodeIPIdentityPair(key, value, ip.origin); err != nil {
		return ip.p.reject(key, err)
	}
	if err := CheckEndpointIdentity(ip.origin.Max, ip.origin.ClusterID, e.ID); err != nil {
		return ip.p.reject(key, fmt.Errorf("field \"ID\": %w", err))
	}
	ip.p.upsert(strings.TrimPrefix(key, ipNamePrefix), value)
	return nil
}

// Delete withdraws the host entry of addr. Errors: ErrInvalidEntry for an
// invalid address.
func (ip *IPCachePublisher) Delete(addr netip.Addr) error {
	if !addr.IsValid() {
		return ip.p.reject("<no IP>", errors.New("invalid address"))
	}
	ip.p.delete(strings.TrimPrefix(schema.IPKey(addr), ipNamePrefix))
	return nil
}

// DeleteCIDR withdraws the CIDR entry of p (one written with a mask).
// Errors: ErrInvalidEntry for an invalid prefix.
func (ip *IPCachePublisher) DeleteCIDR(p netip.Prefix) error {
	if !p.IsValid() {
		return ip.p.reject("<no prefix>", errors.New("invalid prefix"))
	}
	ip.p.delete(strings.TrimPrefix(schema.IPPrefixKey(p), ipNamePrefix))
	return nil
}

// Synced tells the publisher every current entry has been upserted.
func (ip *IPCachePublisher) Synced() { ip.p.store.Synced() }

// Published is closed once the initial sync is written (see
// kvstore.SyncStore.InitialSyncDone).
func (ip *IPCachePublisher) Published() <-chan struct{} { return ip.p.store.InitialSyncDone() }

// Run waits for IPCacheOptions.After, then writes until ctx ends. It
// returns nil when ctx ends, or kvstore.ErrClosed if the client is closed
// under it.
func (ip *IPCachePublisher) Run(ctx context.Context) error {
	if ip.after != nil {
		select {
		case <-ip.after:
		case <-ctx.Done():
			return nil
		}
	}
	return ip.p.store.Run(ctx)
}

// ServicePublisher publishes this cluster's global services at
// cilium/state/services/v1/<cluster>/<namespace>/<name>.
type ServicePublisher struct {
	p      *publisher
	origin schema.Origin
}

// NewServicePublisher returns a service publisher writing through c.
// Errors: ErrInvalidOptions.
func NewServicePublisher(c *kvstore.Client, log *slog.Logger, opts Options) (*ServicePublisher, error) {
	origin, err := opts.origin()
	if err != nil {
		return nil, err
	}
	prefix := schema.ServicesPrefix + "/" + opts.Cluster
	return &ServicePublisher{p: newPublisher(c, log, "services", opts, prefix, schema.ServicesPrefix), origin: origin}, nil
}

// Upsert publishes s. It must belong to this cluster (cluster and
// clusterID) and pass schema.DecodeClusterService; otherwise the error wraps
// ErrInvalidEntry and names the key and field. s is not retained.
func (sp *ServicePublisher) Upsert(s *schema.ClusterService) error {
	if s == nil {
		return sp.p.reject("<nil>", errors.New("nil service"))
	}
	key := s.Key()
	value, err := s.Marshal()
	if err != nil {
		return sp.p.reject(key, err)
	}
	if _, err := schema.DecodeClusterService(key, value, sp.origin); err != nil {
		return sp.p.reject(key, err)
	}
	sp.p.upsert(s.Namespace+"/"+s.Name, value)
	return nil
}

// Delete withdraws service namespace/name. Errors: ErrInvalidEntry for
// names that cannot be key segments.
func (sp *ServicePublisher) Delete(namespace, name string) error {
	if err := errors.Join(checkSegment(namespace), checkSegment(name)); err != nil {
		return sp.p.reject(fmt.Sprintf("%q/%q", namespace, name), err)
	}
	sp.p.delete(namespace + "/" + name)
	return nil
}

// Synced tells the publisher every current service has been upserted.
func (sp *ServicePublisher) Synced() { sp.p.store.Synced() }

// Published is closed once the initial sync is written.
func (sp *ServicePublisher) Published() <-chan struct{} { return sp.p.store.InitialSyncDone() }

// Run writes until ctx ends. It returns nil then, or kvstore.ErrClosed if
// the client is closed under it.
func (sp *ServicePublisher) Run(ctx context.Context) error { return sp.p.store.Run(ctx) }

// checkSegment accepts a non-empty key segment without '/'.
func checkSegment(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if strings.Contains(s, "/") {
		return fmt.Errorf("name %q contains '/'", s)
	}
	return nil
}

// CheckEndpointIdentity reports whether id may label an endpoint address
// of cluster c: a reserved or well-known identity (1..255, e.g. health for
// health endpoints) or one inside c's allocation range. Errors wrap
// identity.ErrOutOfRange, identity.ErrNodeLocal or identity's option
// errors.
func CheckEndpointIdentity(m identity.ClusterMax, c identity.ClusterID, id identity.NumericIdentity) error {
	if id != identity.IdentityUnknown && id < identity.MinAllocatable {
		return nil
	}
	return identity.ValidateRemote(m, c, id)
}
