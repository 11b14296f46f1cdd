package agent

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
	"github.com/strait-net/strait/internal/atomicfile"
)

// endpointsFileVersion is the version of endpoints.json written.
const endpointsFileVersion = 1

// maxEndpointsFile bounds endpoints.json.
const maxEndpointsFile = 64 << 20

// endpointsState is the JSON form of endpoints.json.
type endpointsState struct {
	Version   int                          `json:"version"`
	Endpoints []endpointapi.EndpointStatus `json:"endpoints"`
}

// DecodeEndpoints decodes and validates endpoints.json (name is the file
// for errors): every endpoint must pass Endpoint.Validate, and no two may
// share an ID (containerID/ifName) or an address. Errors name the file,
// the index and the field.
func DecodeEndpoints(name string, data []byte) ([]endpointapi.EndpointStatus, error) {
	if len(data) > maxEndpointsFile {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", name, len(data), maxEndpointsFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st endpointsState
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: data after the JSON document", name)
	}
	if st.Version != endpointsFileVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", name, st.Version, endpointsFileVersion)
	}
	ids := make(map[string]int)
	ips := make(map[string]int)
	for i, ep := range st.Endpoints {
		if err := ep.Validate(); err != nil {
			return nil, fmt.Errorf("%s: endpoint %d: %w", name, i, err)
		}
		id := ep.ContainerID + "/" + ep.IfName
		if j, dup := ids[id]; dup {
			return nil, fmt.Errorf("%s: endpoint %d: %s already is endpoint %d", name, i, id, j)
		}
		ids[id] = i
		if j, dup := ips[ep.IPv4.String()]; dup {
			return nil, fmt.Errorf("%s: endpoint %d: ipv4 %s already used by endpoint %d", name, i, ep.IPv4, j)
		}
		ips[ep.IPv4.String()] = i
	}
	return st.Endpoints, nil
}

// endpoints is the agent's endpointapi.Backend.
type endpoints struct {
	a    *Agent
	path string

	// mu serialises changes (and their etcd calls), so two requests for
	// one endpoint cannot interleave.
	mu    sync.Mutex
	byID  map[string]*endpointapi.EndpointStatus
	byIP  map[string]string // ipv4 → id
	label map[string]identity.Labels

	// count is len(byID), readable while mu is held by a change waiting
	// for etcd (Status must answer then).
	count atomic.Int64
}

func newEndpoints(a *Agent) *endpoints {
	return &endpoints{
		a:     a,
		path:  filepath.Join(a.cfg.StateDir, EndpointsFile),
		byID:  make(map[string]*endpointapi.EndpointStatus),
		byIP:  make(map[string]string),
		label: make(map[string]identity.Labels),
	}
}

// labels builds the identity labels of ep.
func (e *endpoints) labels(ep *endpointapi.Endpoint) (identity.Labels, error) {
	ls := []identity.Label{{Source: "k8s", Key: "io.kubernetes.pod.namespace", Value: ep.Namespace}}
	for k, v := range ep.Labels {
		if k == "io.kubernetes.pod.namespace" || k == "io.cilium.k8s.policy.cluster" {
			return nil, fmt.Errorf("labels: %q is set by the agent", k)
		}
		ls = append(ls, identity.Label{Source: "k8s", Key: k, Value: v})
	}
	out, err := identity.NewLabels(ls...)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	return out.WithCluster(e.a.cfg.Cluster), nil
}

// Node implements endpointapi.Backend.
func (e *endpoints) Node(context.Context) (endpointapi.NodeInfo, error) {
	mtu := e.a.cfg.UnderlayMTU
	if w := e.a.deps.WireGuard; w != nil {
		mtu = w.MTU
	}
	if e.a.deps.IPsec != nil {
		mtu = e.a.deps.Underlay.MTU - IPsecOverhead
	}
	return endpointapi.NodeInfo{
		Cluster: e.a.cfg.Cluster, ClusterID: uint32(e.a.cfg.ClusterID), Node: e.a.cfg.NodeName,
		NodeIP: e.a.cfg.NodeIP, PodCIDRv4: e.a.cfg.PodCIDR, PodMTU: mtu,
	}, nil
}

// PutEndpoint implements endpointapi.Backend: it allocates the identity,
// publishes the ipcache entry and persists the endpoint. Putting the same
// endpoint again changes nothing.
func (e *endpoints) PutEndpoint(ctx context.Context, ep endpointapi.Endpoint) (endpointapi.EndpointStatus, error) {
	if err := ep.Validate(); err != nil {
		return endpointapi.EndpointStatus{}, &endpointapi.BadRequest{Err: err}
	}
	if !e.a.cfg.PodCIDR.Contains(ep.IPv4) {
		return endpointapi.EndpointStatus{}, &endpointapi.BadRequest{Err: fmt.Errorf("ipv4 %s: outside the node's pod CIDR %s", ep.IPv4, e.a.cfg.PodCIDR)}
	}
	ls, err := e.labels(&ep)
	if err != nil {
		return endpointapi.EndpointStatus{}, &endpointapi.BadRequest{Err: err}
	}
	id := ep.ContainerID + "/" + ep.IfName
	e.mu.Lock()
	defer e.mu.Unlock()
	if other, used := e.byIP[ep.IPv4.String()]; used && other != id {
		return endpointapi.EndpointStatus{}, &endpointapi.BadRequest{Err: fmt.Errorf("ipv4 %s: already used by endpoint %s", ep.IPv4, other)}
	}
	st, err := e.put(ctx, id, ep, ls)
	if err != nil {
		return endpointapi.EndpointStatus{}, err
	}
	if err := e.save(); err != nil {
		return endpointapi.EndpointStatus{}, err
	}
	return st, nil
}

// put applies ep (e.mu held): allocate, publish, record.
func (e *endpoints) put(ctx context.Context, id string, ep endpointapi.Endpoint, ls identity.Labels) (endpointapi.EndpointStatus, error) {
	old, had := e.byID[id]
	if had && endpointEqual(old.Endpoint, ep) {
		return *old, nil
	}
	num, _, err := e.a.alloc.Allocate(ctx, ls)
	if err != nil {
		if errors.Is(err, identity.ErrMalformedLabel) || errors.Is(err, identity.ErrLabelsTooLarge) {
			return endpointapi.EndpointStatus{}, &endpointapi.BadRequest{Err: fmt.Errorf("endpoint %s: %w", id, err)}
		}
		return endpointapi.EndpointStatus{}, fmt.Errorf("endpoint %s: allocate identity: %w", id, err)
	}
	entry := &schema.IPIdentityPair{
		IP: ep.IPv4, HostIP: e.a.cfg.NodeIP, ID: num,
		K8sNamespace: ep.Namespace, K8sPodName: ep.PodName,
	}
	if err := e.a.ipPub.Upsert(entry); err != nil {
		e.release(ctx, id, ls)
		return endpointapi.EndpointStatus{}, fmt.Errorf("endpoint %s: %w", id, err)
	}
	if had {
		// Replaced: drop the old address and identity reference.
		if old.IPv4 != ep.IPv4 {
			_ = e.a.ipPub.Delete(old.IPv4)
			delete(e.byIP, old.IPv4.String())
		}
		e.release(ctx, id, e.label[id])
	}
	st := &endpointapi.EndpointStatus{Endpoint: ep, Identity: uint32(num)}
	e.byID[id] = st
	e.byIP[ep.IPv4.String()] = id
	e.label[id] = ls
	e.a.metrics.endpoints.Set(float64(len(e.byID)))
	e.count.Store(int64(len(e.byID)))
	e.a.log.Info("Endpoint published", "endpoint", id, logIP, ep.IPv4, logID, uint32(num))
	return *st, nil
}

func endpointEqual(a, b endpointapi.Endpoint) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// release drops one identity reference, logging a failure (the reference
// then stays until the lease ends; garbage collection takes it later).
func (e *endpoints) release(ctx context.Context, id string, ls identity.Labels) {
	if ls == nil {
		return
	}
	if _, err := e.a.alloc.Release(ctx, ls); err != nil {
		e.a.log.Warn("Releasing identity failed", "endpoint", id, logError, err)
	}
}

// DeleteEndpoint implements endpointapi.Backend.
func (e *endpoints) DeleteEndpoint(ctx context.Context, containerID, ifName string) error {
	id := containerID + "/" + ifName
	e.mu.Lock()
	defer e.mu.Unlock()
	old, ok := e.byID[id]
	if !ok {
		return nil
	}
	if err := e.a.ipPub.Delete(old.IPv4); err != nil {
		return fmt.Errorf("endpoint %s: %w", id, err)
	}
	e.release(ctx, id, e.label[id])
	delete(e.byID, id)
	delete(e.byIP, old.IPv4.String())
	delete(e.label, id)
	e.a.metrics.endpoints.Set(float64(len(e.byID)))
	e.count.Store(int64(len(e.byID)))
	e.a.log.Info("Endpoint withdrawn", "endpoint", id, logIP, old.IPv4)
	return e.save()
}

// Endpoints implements endpointapi.Backend.
func (e *endpoints) Endpoints(context.Context) ([]endpointapi.EndpointStatus, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.list(), nil
}

// list returns the endpoints sorted by ID (e.mu held).
func (e *endpoints) list() []endpointapi.EndpointStatus {
	out := make([]endpointapi.EndpointStatus, 0, len(e.byID))
	for _, st := range e.byID {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b endpointapi.EndpointStatus) int {
		return cmp.Or(cmp.Compare(a.ContainerID, b.ContainerID), cmp.Compare(a.IfName, b.IfName))
	})
	return out
}

// save writes endpoints.json atomically (e.mu held).
func (e *endpoints) save() error {
	data, err := json.MarshalIndent(endpointsState{Version: endpointsFileVersion, Endpoints: e.list()}, "", "  ")
	if err != nil {
		return fmt.Errorf("endpoint state: %w", err)
	}
	if err := writeFileAtomic(e.path, append(data, '\n')); err != nil {
		return fmt.Errorf("endpoint state: %w", err)
	}
	return nil
}

// restore re-publishes the endpoints of endpoints.json, then tells the
// ipcache publisher it is synced (so the entries of an earlier run that
// are gone get pruned). Endpoints outside the pod CIDR are dropped.
func (e *endpoints) restore(ctx context.Context) error {
	data, err := os.ReadFile(e.path)
	var eps []endpointapi.EndpointStatus
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("endpoint state: %w", err)
	default:
		if eps, err = DecodeEndpoints(e.path, data); err != nil {
			// A corrupt file must not stop the node: start empty, keep
			// the file aside for inspection.
			e.a.log.Error("Endpoint state unreadable, starting without it", logError, err)
			_ = os.Rename(e.path, e.path+".bad")
			eps = nil
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	restored := 0
	for _, st := range eps {
		id := st.ContainerID + "/" + st.IfName
		if _, ok := e.byID[id]; ok {
			continue // the CNI plugin was faster
		}
		if !e.a.cfg.PodCIDR.Contains(st.IPv4) {
			e.a.log.Warn("Dropping saved endpoint outside the pod CIDR", "endpoint", id, logIP, st.IPv4)
			continue
		}
		if other, used := e.byIP[st.IPv4.String()]; used {
			e.a.log.Warn("Dropping saved endpoint: address taken", "endpoint", id, logIP, st.IPv4, "by", other)
			continue
		}
		ls, err := e.labels(&st.Endpoint)
		if err != nil {
			e.a.log.Warn("Dropping saved endpoint", "endpoint", id, logError, err)
			continue
		}
		if _, err := e.put(ctx, id, st.Endpoint, ls); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e.a.log.Warn("Restoring endpoint failed", "endpoint", id, logError, err)
			continue
		}
		restored++
	}
	if err := e.save(); err != nil {
		e.a.log.Warn("Saving endpoint state failed", logError, err)
	}
	e.a.ipPub.Synced()
	e.a.log.Info("Endpoints restored", logCount, restored)
	return nil
}

// writeFileAtomic writes data (0600) to path, creating its directory, so
// a crash leaves the old or the new content.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}
