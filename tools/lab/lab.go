package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/internal/binaries"
)

var (
	// ErrExists: the work directory already holds a lab record (a lab is up
	// or crashed there); Destroy it first.
	ErrExists = errors.New("lab: work directory holds a lab already")
	// ErrUnknown: a cluster, node or pod that is not part of the lab (or was
	// removed).
	ErrUnknown = errors.New("lab: unknown")
)

// Lab is a running lab. Its methods are safe for concurrent use.
type Lab struct {
	log  *slog.Logger
	spec Spec
	rec  *recorder

	clusters []Cluster
	nodes    []Node
	pods     []Pod // IP filled in when created

	mu         sync.Mutex
	apiservers map[int]*process
	agents     map[string]*process // by node netns
	removed    map[string]bool     // node netns
	closed     bool
}

// Up builds the lab described by spec (underlay, apiservers, connections
// when spec.Connect, agents, pods) and waits until it is ready: every agent
// sees every remote cluster ready and every other node as a peer, and
// every pod's address reached every agent. On any error it tears down what
// it built and returns the error (with the tail of the relevant log).
func Up(ctx context.Context, log *slog.Logger, spec Spec) (*Lab, error) {
	l, err := newLab(log, spec)
	if err != nil {
		return nil, err
	}
	if err := l.up(ctx); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if cerr := l.Close(cctx); cerr != nil {
			log.Error("lab teardown after failure", "err", cerr)
		}
		return nil, err
	}
	return l, nil
}

// up runs the steps of Up.
func (l *Lab) up(ctx context.Context) error {
	spec, log := l.spec, l.log
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"topology", l.upTopology},
		{"apiservers", l.upApiservers},
		{"connect", func(ctx context.Context) error {
			if !l.spec.Connect {
				return nil
			}
			return l.ConnectAll(ctx)
		}},
		{"agents", l.upAgents},
		{"pods", l.upPods},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("lab %s: %s: %w", spec.Name, s.name, err)
		}
		log.Info("lab step done", "lab", spec.Name, "step", s.name, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// newLab validates spec, claims the work directory and lays out the
// descriptions; nothing is created in the kernel yet.
func newLab(log *slog.Logger, spec Spec) (*Lab, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := mkdirs(spec.WorkDir); err != nil {
		return nil, err
	}
	need := []string{"strait-apiserver", "strait-agent", "strait-cni"}
	if spec.Encryption == EncryptionWireGuard {
		need = append(need, "strait-wireguard")
	}
	if err := binaries.Require(spec.BinDir, need...); err != nil {
		return nil, fmt.Errorf("spec bin dir: %w", err)
	}
	recPath := filepath.Join(spec.WorkDir, RecordFile)
	if _, err := os.Stat(recPath); err == nil {
		return nil, fmt.Errorf("%s: %w", recPath, ErrExists)
	}
	l := &Lab{
		log:        log,
		spec:       spec,
		rec:        &recorder{path: recPath, rec: record{Spec: spec}},
		apiservers: map[int]*process{},
		agents:     map[string]*process{},
		removed:    map[string]bool{},
	}
	if err := l.rec.writeLocked(); err != nil {
		return nil, err
	}
	for c := 1; c <= spec.Clusters; c++ {
		l.clusters = append(l.clusters, clusterDesc(spec, c))
		for n := 1; n <= spec.NodesPerCluster; n++ {
			l.nodes = append(l.nodes, nodeDesc(spec, c, n))
			for p := 1; p <= spec.PodsPerNode; p++ {
				l.pods = append(l.pods, podDesc(spec, c, n, p))
			}
		}
	}
	return l, nil
}

func (l *Lab) upTopology(ctx context.Context) error {
	if err := l.upUnderlay(ctx); err != nil {
		return err
	}
	for _, c := range l.clusters {
		if err := l.upAttached(ctx, c.Netns, fmt.Sprintf("c%dapi", c.ID), c.APIAddr); err != nil {
			return err
		}
	}
	for _, n := range l.nodes {
		if err := l.upAttached(ctx, n.Netns, fmt.Sprintf("c%dn%d", n.Cluster, n.Index), n.IP); err != nil {
			return err
		}
		if err := nodeSysctls(n.Netns); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) upApiservers(ctx context.Context) error {
	for _, c := range l.clusters {
		if err := l.upApiserver(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the agents, the WireGuard processes, the apiservers and
// deletes every namespace of the lab, then its record. The work directory
// (logs) stays. Calling it again does nothing.
func (l *Lab) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	agents := make([]*process, 0, len(l.agents))
	for _, p := range l.agents {
		agents = append(agents, p)
	}
	apis := make([]*process, 0, len(l.apiservers))
	for _, p := range l.apiservers {
		apis = append(apis, p)
	}
	l.mu.Unlock()
	var errs []error
	for _, p := range agents {
		if err := p.stop(syscall.SIGTERM, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	l.rec.mu.Lock()
	rec := l.rec.rec
	l.rec.mu.Unlock()
	for _, p := range apis {
		if err := p.stop(syscall.SIGTERM, 15*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := destroy(ctx, l.log, rec); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		os.Remove(l.rec.path)
	}
	return errors.Join(errs...)
}

// sortPidFiles orders agents before their WireGuard processes before
// apiservers.
func sortPidFiles(p []pidFile) {
	rank := map[string]int{"strait-agent": 0, "strait-wireguard": 1, "strait-apiserver": 2}
	slices.SortStableFunc(p, func(a, b pidFile) int { return rank[a.Binary] - rank[b.Binary] })
}

// Spec returns the lab's spec with defaults filled in.
func (l *Lab) Spec() Spec { return l.spec }

// Underlay is the namespace holding the underlay bridge BridgeName.
func (l *Lab) Underlay() string { return UnderlayNetns(l.spec.Name) }

// Clusters returns the clusters.
func (l *Lab) Clusters() []Cluster { return slices.Clone(l.clusters) }

// Nodes returns the nodes not removed.
func (l *Lab) Nodes() []Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Node
	for _, n := range l.nodes {
		if !l.removed[n.Netns] {
			out = append(out, n)
		}
	}
	return out
}

// Pods returns the pods of nodes not removed.
func (l *Lab) Pods() []Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Pod
	for _, p := range l.pods {
		if !l.removed[nodeDesc(l.spec, p.Cluster, p.Node).Netns] && p.IP.IsValid() {
			out = append(out, p)
		}
	}
	return out
}

// Cluster returns cluster id (1-based).
func (l *Lab) Cluster(id int) (Cluster, error) {
	if id < 1 || id > len(l.clusters) {
		return Cluster{}, fmt.Errorf("cluster %d: %w", id, ErrUnknown)
	}
	return l.clusters[id-1], nil
}

// Node returns node n of cluster c (both 1-based).
func (l *Lab) Node(c, n int) (Node, error) {
	for _, nd := range l.Nodes() {
		if nd.Cluster == c && nd.Index == n {
			return nd, nil
		}
	}
	return Node{}, fmt.Errorf("node %d of cluster %d: %w", n, c, ErrUnknown)
}

// NodeOf returns the node a pod runs on.
func (l *Lab) NodeOf(p Pod) Node { return nodeDesc(l.spec, p.Cluster, p.Node) }

// Agent returns an endpointapi client of node n's agent.
func (l *Lab) Agent(n Node) *endpointapi.Client { return endpointapi.NewClient(n.Socket) }

// AgentLog is the path of node n's agent log.
func (l *Lab) AgentLog(n Node) string { return filepath.Join(n.Dir, "agent.log") }
