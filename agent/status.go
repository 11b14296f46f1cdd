package agent

import (
	"cmp"
	"context"
	"encoding/base64"
	"net/netip"
	"slices"
	"time"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/clustermesh/meshstate"
	"github.com/strait-net/strait/clustermesh/schema"
)

// kvstoreProbeTimeout bounds the etcd read of each health probe, and
// kvstoreProbeInterval separates the probes.
const (
	kvstoreProbeTimeout  = 2 * time.Second
	kvstoreProbeInterval = 5 * time.Second
)

// probeKV reads the cluster's config key every kvstoreProbeInterval and
// keeps the outcome for Status, until ctx ends.
func (a *Agent) probeKV(ctx context.Context) {
	t := time.NewTicker(kvstoreProbeInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, kvstoreProbeTimeout)
		_, _, err := a.deps.KV.Get(pctx, schema.ClusterConfigKey(a.cfg.Cluster))
		cancel()
		if ctx.Err() != nil {
			return
		}
		h := "ok"
		if err != nil {
			h = err.Error()
		}
		a.kvHealth.Store(&h)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Status implements endpointapi.Backend.
func (e *endpoints) Status(ctx context.Context) (endpointapi.Status, error) {
	return e.a.Status(ctx), nil
}

// Status reports the agent's state: remote clusters, peers (with
// handshake and byte counters read from the device), problems and the
// health of the local etcd.
func (a *Agent) Status(ctx context.Context) endpointapi.Status {
	st := endpointapi.Status{
		Cluster: a.cfg.Cluster, ClusterID: uint32(a.cfg.ClusterID), Node: a.cfg.NodeName,
		NodeIP: a.cfg.NodeIP.String(), Encryption: a.cfg.Encryption,
		Clusters: []endpointapi.ClusterStatus{}, Peers: []endpointapi.PeerStatus{}, Problems: []endpointapi.Problem{},
	}
	select {
	case <-a.meshSynced:
		st.MeshSynced = true
	default:
	}
	// The probe runs in the background: Status answers at once even while
	// etcd is unreachable.
	st.KVStore = "not probed yet"
	if h := a.kvHealth.Load(); h != nil {
		st.KVStore = *h
	}
	for _, c := range a.mesh.Status() {
		st.Clusters = append(st.Clusters, endpointapi.ClusterStatus{
			Name: c.Name, ID: uint32(c.ID), Connected: c.Connected, Ready: c.Ready,
			Nodes: c.Entries[meshstate.KindNodes], Endpoints: c.Entries[meshstate.KindIPCache],
		})
	}
	st.Endpoints = int(a.eps.count.Load())

	a.lastMu.Lock()
	byKey := a.byKey
	for _, p := range a.problems {
		st.Problems = append(st.Problems, endpointapi.Problem{Node: p.Node, Reason: p.Reason})
	}
	desired := a.last.Peers
	nodes := a.last.Nodes
	a.lastMu.Unlock()

	w := a.deps.WireGuard
	if w == nil {
		if a.deps.IPsec != nil {
			// IPsec peers: every accepted node, with its advertised key.
			for _, n := range nodes {
				st.Peers = append(st.Peers, endpointapi.PeerStatus{
					Node: n.ID(), Endpoint: n.IP.String(), AllowedIPs: prefixStrings(n.PodCIDRs),
				})
			}
		}
		return st
	}
	st.Device, st.DeviceType = w.Device, w.Type
	st.PublicKey = base64.StdEncoding.EncodeToString(w.PublicKey[:])
	dev, err := w.Client.Device(w.Device)
	if err != nil {
		// The device cannot be read: report the desired peers only.
		st.Problems = append(st.Problems, endpointapi.Problem{Reason: "wireguard device " + w.Device + ": " + err.Error()})
		for _, p := range desired {
			st.Peers = append(st.Peers, endpointapi.PeerStatus{
				Node: p.Node, PublicKey: base64.StdEncoding.EncodeToString(p.PublicKey[:]),
				Endpoint: p.Endpoint.String(), AllowedIPs: prefixStrings(p.AllowedIPs),
			})
		}
		return st
	}
	for _, p := range dev.Peers {
		ps := endpointapi.PeerStatus{
			Node:          byKey[p.PublicKey],
			PublicKey:     p.PublicKey.String(),
			LastHandshake: p.LastHandshakeTime,
			RxBytes:       p.ReceiveBytes,
			TxBytes:       p.TransmitBytes,
			AllowedIPs:    []string{},
		}
		if p.Endpoint != nil {
			ps.Endpoint = p.Endpoint.String()
		}
		for _, n := range p.AllowedIPs {
			if pf, ok := netip.AddrFromSlice(n.IP); ok {
				ones, _ := n.Mask.Size()
				ps.AllowedIPs = append(ps.AllowedIPs, netip.PrefixFrom(pf.Unmap(), ones).String())
			}
		}
		slices.Sort(ps.AllowedIPs)
		st.Peers = append(st.Peers, ps)
	}
	slices.SortFunc(st.Peers, func(a, b endpointapi.PeerStatus) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.PublicKey, b.PublicKey))
	})
	return st
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}
