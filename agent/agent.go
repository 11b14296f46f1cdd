package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/strait-net/strait/agent/datapath"
	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/agent/route"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/meshstate"
	"github.com/strait-net/strait/clustermesh/publish"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/encryption/ipsec"
	"github.com/strait-net/strait/encryption/wireguard"
	"github.com/strait-net/strait/identity"
)

// Log keys.
const (
	logNode   = "node"
	logReason = "reason"
	logError  = "error"
	logCount  = "count"
	logIP     = "ip"
	logID     = "identity"
)

// Agent is one node's agent. See the package documentation.
type Agent struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	origin  schema.Origin
	metrics *metrics

	nodePub *publish.NodePublisher
	ipPub   *publish.IPCachePublisher
	alloc   *identity.Allocator
	mesh    *meshstate.State
	local   *localNodes
	checks  *remoteChecks
	peers   *wireguard.PeerReconciler
	routes  *route.Reconciler
	eps     *endpoints

	wake chan struct{} // capacity 1: "something changed, reconcile"

	// passes counts reconciliations, prunedPasses those with pruning
	// allowed (tests wait on them).
	passes, prunedPasses atomic.Int64
	// ipsecSPI is the advertised IPsec key index (0: none).
	ipsecSPI atomic.Uint32

	// remote is the remote state the datapath needs, fed by meshstate
	// subscriptions (whose callbacks must not block).
	remoteMu    sync.Mutex
	remoteNodes map[string]map[string]datapath.Node // cluster → name → node
	remoteIPs   map[netip.Prefix]datapath.Endpoint

	// pruneOK: local nodes listed and meshstate synced.
	meshSynced chan struct{}

	// kvHealth is the outcome of the latest local etcd probe ("ok" or the
	// error), kept by probeKV so that Status never waits on etcd.
	kvHealth atomic.Pointer[string]

	// last is the outcome of the latest reconciliation, for Status.
	lastMu   sync.Mutex
	last     datapath.Desired
	problems []datapath.Problem
	lastErr  error
	byKey    map[wgtypes.Key]string // peer key → node
}

// New validates cfg and deps and builds the agent; nothing runs until Run.
// Errors: ErrInvalidConfig naming the field.
func New(log *slog.Logger, cfg Config, deps Deps) (*Agent, error) {
	if cfg.Resync == 0 {
		cfg.Resync = 30 * time.Second
	}
	if err := cfg.validate(deps); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg: cfg, deps: deps,
		log:         log.With("cluster", cfg.Cluster, logNode, cfg.NodeName),
		origin:      schema.Origin{Cluster: cfg.Cluster, ClusterID: cfg.ClusterID, Max: cfg.Max},
		wake:        make(chan struct{}, 1),
		remoteNodes: make(map[string]map[string]datapath.Node),
		remoteIPs:   make(map[netip.Prefix]datapath.Endpoint),
		meshSynced:  make(chan struct{}),
	}
	a.ipsecSPI.Store(uint32(deps.IPsecAdvertised))
	var err error
	if a.metrics, err = newMetrics(deps.Registry); err != nil {
		return nil, fmt.Errorf("agent metrics: %w", err)
	}
	var pm *publish.Metrics
	var mm *meshstate.Metrics
	if deps.Registry != nil {
		if pm, err = publish.NewMetrics(deps.Registry); err != nil {
			return nil, fmt.Errorf("publish metrics: %w", err)
		}
		if mm, err = meshstate.NewMetrics(deps.Registry); err != nil {
			return nil, fmt.Errorf("meshstate metrics: %w", err)
		}
	}
	popts := publish.Options{Cluster: cfg.Cluster, ClusterID: cfg.ClusterID, Max: cfg.Max, Metrics: pm, PersistentCanary: true}
	popts.Owns = publish.OwnedByNode(cfg.Cluster, cfg.NodeName)
	if a.nodePub, err = publish.NewNodePublisher(deps.KV, a.log, popts); err != nil {
		return nil, err
	}
	popts.Owns = publish.OwnedByHostIP(cfg.NodeIP)
	if a.ipPub, err = publish.NewIPCachePublisher(deps.KV, a.log, publish.IPCacheOptions{Options: popts, After: a.nodePub.Published()}); err != nil {
		return nil, err
	}
	if a.alloc, err = identity.NewAllocator(a.log, deps.KV, identity.AllocatorOptions{
		Node: cfg.NodeName, Cluster: cfg.ClusterID, ClusterMax: cfg.Max,
	}); err != nil {
		return nil, fmt.Errorf("%w: identity allocator: %w", ErrInvalidConfig, err)
	}
	if a.mesh, err = meshstate.New(deps.KV, a.log, meshstate.Options{
		Cluster: cfg.Cluster, ClusterID: cfg.ClusterID, Max: cfg.Max, Metrics: mm,
	}); err != nil {
		return nil, err
	}
	a.local = newLocalNodes(deps.KV, a.log, a.origin, a.poke)
	a.checks = newRemoteChecks(deps.KV, a.poke)
	if w := deps.WireGuard; w != nil {
		a.peers = wireguard.NewPeerReconciler(w.Client, w.Device, a.log)
	}
	if deps.Routes != nil {
		a.routes = route.New(deps.Routes, a.log)
	}
	a.eps = newEndpoints(a)
	return a, nil
}

// poke asks the reconcile loop for a pass.
func (a *Agent) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Backend is the endpoint API backend of the agent.
func (a *Agent) Backend() endpointapi.Backend { return a.eps }

// selfNode is the schema.Node this agent publishes.
func (a *Agent) selfNode() *schema.Node {
	n := &schema.Node{
		Name:          a.cfg.NodeName,
		Cluster:       a.cfg.Cluster,
		ClusterID:     a.cfg.ClusterID,
		IPAddresses:   []schema.Address{{Type: schema.AddressInternalIP, IP: a.cfg.NodeIP}},
		IPv4AllocCIDR: a.cfg.PodCIDR,
		Source:        "kvstore",
		BootID:        a.cfg.BootID,
	}
	if w := a.deps.WireGuard; w != nil {
		n.WireguardPubKey = base64.StdEncoding.EncodeToString(w.PublicKey[:])
	}
	n.EncryptionKey = uint8(a.ipsecSPI.Load())
	return n
}

// AdvertiseIPsecKey publishes spi as this node's IPsec key index
// (schema.Node.EncryptionKey); it is the Advertise callback of the IPsec
// manager. Errors: publish.ErrInvalidEntry.
func (a *Agent) AdvertiseIPsecKey(_ context.Context, spi uint8) error {
	a.ipsecSPI.Store(uint32(spi))
	if err := a.nodePub.Upsert(a.selfNode()); err != nil {
		return fmt.Errorf("advertise IPsec key %d: %w", spi, err)
	}
	a.log.Info("Advertising IPsec key", "spi", spi)
	return nil
}

// Run runs the agent until ctx ends; see the package documentation.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.nodePub.Upsert(a.selfNode()); err != nil {
		return fmt.Errorf("publish own node: %w", err)
	}
	a.nodePub.Synced()
	a.log.Info("Publishing own node", "ip", a.cfg.NodeIP, "podCIDR", a.cfg.PodCIDR, "publicKey", a.selfNode().WireguardPubKey)

	cancelNodes := a.mesh.SubscribeNodes(a.onRemoteNode)
	defer cancelNodes()
	cancelIPs := a.mesh.SubscribeIPCache(a.onRemoteIP)
	defer cancelIPs()

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.nodePub.Run(ctx) })
	g.Go(func() error { return a.ipPub.Run(ctx) })
	g.Go(func() error { return a.alloc.Run(ctx) })
	g.Go(func() error { return a.mesh.Run(ctx) })
	g.Go(func() error { return a.local.run(ctx) })
	g.Go(func() error { return a.checks.run(ctx) })
	g.Go(func() error {
		if err := a.mesh.Synced(ctx, meshstate.KindNodes, meshstate.KindIPCache); err != nil {
			return nil // ctx ended
		}
		a.log.Info("Remote clusters synced")
		close(a.meshSynced)
		a.poke()
		return nil
	})
	g.Go(func() error { return a.eps.restore(ctx) })
	g.Go(func() error { a.probeKV(ctx); return nil })
	if a.deps.IPsec != nil {
		g.Go(func() error { return a.deps.IPsec.Run(ctx) })
	}
	if a.routes != nil {
		g.Go(func() error { return a.reconcileLoop(ctx) })
	}
	err := g.Wait()
	if errors.Is(err, kvstore.ErrClosed) {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (a *Agent) onRemoteNode(ev meshstate.NodeEvent) {
	a.remoteMu.Lock()
	switch ev.Op {
	case meshstate.OpUpsert:
		m := a.remoteNodes[ev.Cluster]
		if m == nil {
			m = make(map[string]datapath.Node)
			a.remoteNodes[ev.Cluster] = m
		}
		m[ev.Key] = datapath.FromSchema(ev.Value)
	case meshstate.OpDelete:
		delete(a.remoteNodes[ev.Cluster], ev.Key)
	}
	a.remoteMu.Unlock()
	a.poke()
}

func (a *Agent) onRemoteIP(ev meshstate.IPCacheEvent) {
	if !ev.Key.IsSingleIP() {
		return
	}
	a.remoteMu.Lock()
	switch ev.Op {
	case meshstate.OpUpsert:
		if ev.Value.HostIP.IsValid() {
			a.remoteIPs[ev.Key] = datapath.Endpoint{Cluster: ev.Cluster, IP: ev.Key.Addr(), HostIP: ev.Value.HostIP}
		} else {
			delete(a.remoteIPs, ev.Key)
		}
	case meshstate.OpDelete:
		delete(a.remoteIPs, ev.Key)
	}
	a.remoteMu.Unlock()
	a.poke()
}

// input gathers the datapath input; prev are the nodes accepted last time.
func (a *Agent) input(prev map[string]bool) (datapath.Input, map[string]string, bool) {
	self := a.selfNode()
	in := datapath.Input{Local: datapath.FromSchema(self), Accepted: prev}
	if w := a.deps.WireGuard; w != nil {
		in.Port = uint16(w.Port)
	}
	// IPsec and no encryption both route remote pod CIDRs via the node's
	// address on the underlay, with no WireGuard peers.
	in.IPsec = a.deps.IPsec != nil || a.cfg.Encryption == EncryptionNone
	locals, localProblems, localSynced := a.local.snapshot()
	for _, n := range locals {
		in.Nodes = append(in.Nodes, n)
	}
	a.remoteMu.Lock()
	for _, m := range a.remoteNodes {
		for _, n := range m {
			in.Nodes = append(in.Nodes, n)
		}
	}
	for _, e := range a.remoteIPs {
		in.Endpoints = append(in.Endpoints, e)
	}
	a.remoteMu.Unlock()
	return in, localProblems, localSynced
}

// synced reports whether stale peers and routes may be pruned.
func (a *Agent) synced(localSynced bool) bool {
	select {
	case <-a.meshSynced:
		return localSynced
	default:
		return false
	}
}

// reconcileLoop reconciles after every change and every Resync.
func (a *Agent) reconcileLoop(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Resync)
	defer t.Stop()
	// The device as the previous agent left it: who was working.
	working := a.deviceEndpoints()
	var prev map[string]bool
	for {
		prev = a.reconcile(ctx, prev, working)
		if a.prunedPasses.Load() > 0 {
			working = nil // from now on prev holds the decisions
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		case <-t.C:
		}
	}
}

// deviceEndpoints returns the endpoint address of every peer on the
// device (nil without WireGuard or when it cannot be read).
func (a *Agent) deviceEndpoints() map[wgtypes.Key]netip.Addr {
	w := a.deps.WireGuard
	if w == nil {
		return nil
	}
	dev, err := w.Client.Device(w.Device)
	if err != nil {
		return nil // the reconciler reports it
	}
	on := make(map[wgtypes.Key]netip.Addr, len(dev.Peers))
	for _, p := range dev.Peers {
		if p.Endpoint != nil {
			if ip, ok := netip.AddrFromSlice(p.Endpoint.IP); ok {
				on[p.PublicKey] = ip.Unmap()
			}
		}
	}
	return on
}

// incumbents adds to in.Accepted the nodes whose published key and address
// were a peer on the device when the agent started: after a restart (no
// earlier decision of this process) they are the ones that worked, and win
// conflicts against newcomers.
func incumbents(in *datapath.Input, working map[wgtypes.Key]netip.Addr) {
	if len(working) == 0 {
		return
	}
	acc := make(map[string]bool, len(in.Accepted))
	for id := range in.Accepted {
		acc[id] = true
	}
	for _, n := range in.Nodes {
		if k, err := datapath.ParsePublicKey(n.PublicKey); err == nil {
			if ip, ok := working[k]; ok && ip == n.IP {
				acc[n.ID()] = true
			}
		}
	}
	in.Accepted = acc
}

// devicePeerIPs returns the allowed IPs of every peer on the device (nil
// if it cannot be read: the reconciler reports that).
func (a *Agent) devicePeerIPs() map[wgtypes.Key][]netip.Prefix {
	w := a.deps.WireGuard
	dev, err := w.Client.Device(w.Device)
	if err != nil {
		return nil
	}
	out := make(map[wgtypes.Key][]netip.Prefix, len(dev.Peers))
	for _, p := range dev.Peers {
		for _, n := range p.AllowedIPs {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				ones, _ := n.Mask.Size()
				out[p.PublicKey] = append(out[p.PublicKey], netip.PrefixFrom(ip.Unmap(), ones))
			}
		}
	}
	return out
}

// keepUnsynced adjusts the desired peers before the sync, when the view is
// partial (nodes and ipcache entries still arriving): a desired peer keeps
// the allowed IPs it already has on the device that no other desired peer
// claims (the peer reconciler would otherwise take IPs missing from the
// partial view away), and takes no IP another key holds on the device (a
// newcomer seen before the node that owns the address must not steal it).
// After the sync the full view decides.
func keepUnsynced(peers []wireguard.Peer, onDevice map[wgtypes.Key][]netip.Prefix) []wireguard.Peer {
	if len(onDevice) == 0 {
		return peers
	}
	out := make([]wireguard.Peer, len(peers))
	var claimed []netip.Prefix
	for i, p := range peers {
		out[i] = p
		out[i].AllowedIPs = nil
		for _, ip := range p.AllowedIPs {
			if heldByOther(onDevice, p.PublicKey, ip) {
				continue
			}
			out[i].AllowedIPs = append(out[i].AllowedIPs, ip)
		}
		claimed = append(claimed, out[i].AllowedIPs...)
	}
	for i := range out {
		own := make(map[netip.Prefix]bool, len(out[i].AllowedIPs))
		for _, a := range out[i].AllowedIPs {
			own[a] = true
		}
		for _, ip := range onDevice[out[i].PublicKey] {
			if own[ip] {
				continue
			}
			free := true
			for _, c := range claimed {
				if c.Overlaps(ip) {
					free = false
					break
				}
			}
			if free {
				out[i].AllowedIPs = append(out[i].AllowedIPs, ip)
				claimed = append(claimed, ip)
			}
		}
	}
	return out
}

// heldByOther reports whether a peer other than key holds an allowed IP
// overlapping ip on the device.
func heldByOther(onDevice map[wgtypes.Key][]netip.Prefix, key wgtypes.Key, ip netip.Prefix) bool {
	for k, ips := range onDevice {
		if k == key {
			continue
		}
		for _, o := range ips {
			if o.Overlaps(ip) {
				return true
			}
		}
	}
	return false
}

func ipsecRef(n datapath.Node) ipsec.NodeRef {
	return ipsec.NodeRef{Cluster: n.Cluster, Name: n.Name, IP: n.IP, BootID: n.BootID, PodCIDRs: n.PodCIDRs, EncryptionKey: n.EncryptionKey}
}

// reconcile runs one pass and returns the accepted nodes.
func (a *Agent) reconcile(ctx context.Context, prev map[string]bool, working map[wgtypes.Key]netip.Addr) map[string]bool {
	in, localProblems, localSynced := a.input(prev)
	incumbents(&in, working)
	d := datapath.Compute(in)
	prune := a.synced(localSynced)

	problems := append([]datapath.Problem(nil), d.Problems...)
	for name, reason := range localProblems {
		problems = append(problems, datapath.Problem{Node: a.cfg.Cluster + "/" + name, Reason: reason})
	}
	problems = append(problems, a.checks.problems()...)
	sortProblems(problems)

	var errs []error
	var pst wireguard.ReconcileStats
	dev := route.Device{Index: a.deps.Underlay.Index, MTU: a.deps.Underlay.MTU - IPsecOverhead}
	if a.cfg.Encryption == EncryptionNone {
		dev.MTU = a.deps.Underlay.MTU
	}
	byKey := make(map[wgtypes.Key]string, len(d.Peers))
	if w := a.deps.WireGuard; w != nil {
		dev = route.Device{Index: w.Index, MTU: w.MTU}
		peers := make([]wireguard.Peer, 0, len(d.Peers))
		for _, p := range d.Peers {
			// A keepalive makes the handshake happen when the peer is
			// added (see wireguard.PersistentKeepalive).
			peers = append(peers, wireguard.Peer{PublicKey: p.PublicKey, Endpoint: p.Endpoint, AllowedIPs: p.AllowedIPs,
				Keepalive: wireguard.PersistentKeepalive})
			byKey[p.PublicKey] = p.Node
		}
		if !prune {
			peers = keepUnsynced(peers, a.devicePeerIPs())
		}
		var err error
		if pst, err = a.peers.Reconcile(ctx, peers, prune); err != nil {
			errs = append(errs, fmt.Errorf("peers: %w", err))
			a.metrics.reconcileErrors.WithLabelValues("peers").Inc()
		}
	}
	if a.deps.IPsec != nil && prune {
		// Only a complete view: a partial one would remove XFRM states
		// of nodes not listed yet.
		local := ipsecRef(in.Local)
		remotes := make([]ipsec.NodeRef, 0, len(d.Nodes))
		for _, n := range d.Nodes {
			remotes = append(remotes, ipsecRef(n))
		}
		local.BootID = a.cfg.BootID
		local.EncryptionKey = uint8(a.ipsecSPI.Load())
		a.deps.IPsec.SetNodes(local, remotes)
	}
	rts := make([]route.Route, 0, len(d.Routes))
	for _, r := range d.Routes {
		rts = append(rts, route.Route{Dst: r.Dst, Via: r.Via})
	}
	rst, err := a.routes.Set(ctx, rts, dev, prune)
	if err != nil {
		errs = append(errs, fmt.Errorf("routes: %w", err))
		a.metrics.reconcileErrors.WithLabelValues("routes").Inc()
	}
	rerr := errors.Join(errs...)
	if rerr != nil && ctx.Err() == nil {
		a.log.Warn("Reconcile failed, retrying at the next change or resync", logError, rerr)
	}
	if pst.Added+pst.Updated+pst.Removed+rst.Added+rst.Replaced+rst.Removed > 0 {
		a.log.Info("Datapath reconciled", "peersAdded", pst.Added, "peersUpdated", pst.Updated, "peersRemoved", pst.Removed,
			"routesAdded", rst.Added, "routesReplaced", rst.Replaced, "routesRemoved", rst.Removed, "prune", prune)
	}

	a.lastMu.Lock()
	old := make(map[datapath.Problem]bool, len(a.problems))
	for _, p := range a.problems {
		old[p] = true
	}
	a.last, a.problems, a.lastErr, a.byKey = d, problems, rerr, byKey
	a.lastMu.Unlock()
	for _, p := range problems {
		if !old[p] {
			a.log.Warn("Refusing entry", logNode, p.Node, logReason, p.Reason)
		}
	}
	a.passes.Add(1)
	if prune {
		a.prunedPasses.Add(1)
	}
	a.metrics.peers.Set(float64(len(d.Peers)))
	a.metrics.routes.Set(float64(len(d.Routes)))
	a.metrics.problems.Set(float64(len(problems)))
	if !prune {
		// A partial view's decisions are not kept: until the sync only the
		// device says who was working.
		return prev
	}
	return d.Accepted
}
