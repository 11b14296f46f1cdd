package connect

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/kvstoremesh"
	"github.com/strait-net/strait/clustermesh/remoteconfig"
	"github.com/strait-net/strait/clustermesh/schema"
)

// Status is the state of every cluster straitctl status was given. Its JSON
// form is the stable output of `straitctl status -o json` (README.md).
type Status struct {
	Clusters []ClusterStatus `json:"clusters"`
	// Ready: every cluster reachable, every remote configured, connected
	// and ready, every agent reachable and seeing every remote ready.
	Ready bool `json:"ready"`
}

// ClusterStatus is one cluster.
type ClusterStatus struct {
	Name      string   `json:"name"`
	ID        uint32   `json:"id"`
	Endpoints []string `json:"endpoints"`
	// Reachable: the apiserver answered the admin client.
	Reachable bool `json:"reachable"`
	// Remotes: every remote cluster configured (a valid cluster file in
	// clustermeshConfigDir) or cached (cilium/cluster-config/<remote>),
	// sorted by name.
	Remotes []RemoteStatus `json:"remotes"`
	// Configured, Connected and Ready count Remotes with that flag.
	Configured int          `json:"configured"`
	Connected  int          `json:"connected"`
	Ready      int          `json:"ready"`
	Agents     AgentSummary `json:"agents"`
	// Errors are problems found, each with a hint.
	Errors []Problem `json:"errors"`
}

// RemoteStatus is one remote cluster as a cluster's apiserver caches it.
type RemoteStatus struct {
	Name string `json:"name"`
	// Configured: a valid cluster file exists in clustermeshConfigDir.
	Configured bool `json:"configured"`
	// Connected: cilium/cluster-config/<name> with "cached": true is in the
	// local etcd (the apiserver's cache is connected to the remote).
	Connected bool `json:"connected"`
	// Ready: every sync canary cilium/synced/<name>/cilium/cache/<kind>/v1
	// is present (the cache holds a complete copy).
	Ready bool `json:"ready"`
	// ID is the remote's cluster ID from its cached config (0 if none).
	ID uint32 `json:"id"`
	// Pending lists the kinds whose canary is still missing.
	Pending []string `json:"pending"`
}

// AgentSummary is the agents' view, from their endpoint API sockets.
type AgentSummary struct {
	Total     int `json:"total"`
	Reachable int `json:"reachable"`
	// Connected and Ready summarise, over reachable agents, how many remote
	// clusters each has connected / ready; null when no agent answered.
	Connected *MinAvgMax    `json:"connected"`
	Ready     *MinAvgMax    `json:"ready"`
	Nodes     []AgentStatus `json:"nodes"`
}

// MinAvgMax summarises a count over agents.
type MinAvgMax struct {
	Min int     `json:"min"`
	Avg float64 `json:"avg"`
	Max int     `json:"max"`
}

// AgentStatus is one agent.
type AgentStatus struct {
	Node      string `json:"node"`
	Socket    string `json:"socket"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Connected and Ready count the remote clusters the agent has.
	Connected int `json:"connected"`
	Ready     int `json:"ready"`
}

// Problem is an error with what to do about it.
type Problem struct {
	Message string `json:"message"`
	Hint    string `json:"hint"`
}

// StatusOptions configure CollectStatus.
type StatusOptions struct {
	// DialTimeout bounds reaching one apiserver or agent; 0 means 5s.
	DialTimeout time.Duration
}

// CollectStatus reads the status of every cluster of cs. It fails only on
// a cancelled ctx; every other failure is reported in the Status.
func CollectStatus(ctx context.Context, log *slog.Logger, cs []*Context, opts StatusOptions) (*Status, error) {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	st := &Status{Ready: true}
	for _, c := range cs {
		cst := collectCluster(ctx, log, c, opts)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !cst.ready() {
			st.Ready = false
		}
		st.Clusters = append(st.Clusters, cst)
	}
	return st, nil
}

func (c *ClusterStatus) ready() bool {
	if !c.Reachable || len(c.Errors) > 0 {
		return false
	}
	for _, r := range c.Remotes {
		if !r.Configured || !r.Connected || !r.Ready {
			return false
		}
	}
	return c.Agents.Reachable == c.Agents.Total
}

func collectCluster(ctx context.Context, log *slog.Logger, c *Context, opts StatusOptions) ClusterStatus {
	cs := ClusterStatus{Name: c.Cluster, ID: uint32(c.ID), Endpoints: c.Endpoints, Remotes: []RemoteStatus{}, Errors: []Problem{}}
	remotes := map[string]*RemoteStatus{}
	get := func(name string) *RemoteStatus {
		if r := remotes[name]; r != nil {
			return r
		}
		r := &RemoteStatus{Name: name, Pending: []string{}}
		remotes[name] = r
		return r
	}
	snap, err := remoteconfig.Scan(c.ClustermeshConfigDir)
	if err != nil {
		cs.Errors = append(cs.Errors, Problem{
			Message: fmt.Sprintf("clustermeshConfigDir of %s: %v", c.Cluster, err),
			Hint:    fmt.Sprintf("fix %q in %s: the directory its strait-apiserver watches (--clustermesh-config)", FieldClustermeshConfigDir, c.Name()),
		})
	}
	for name := range snap.Clusters {
		get(name).Configured = true
	}
	for _, name := range sortedKeys(snap.Invalid) {
		cs.Errors = append(cs.Errors, Problem{
			Message: fmt.Sprintf("cluster file %s of %s is invalid: %v", name, c.Cluster, snap.Invalid[name]),
			Hint:    fmt.Sprintf("fix it, or run \"straitctl disconnect\" and \"straitctl connect\" for %s and %s again", c.Cluster, name),
		})
	}

	dctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	cfg := c.AdminConfig()
	cfg.DialTimeout = opts.DialTimeout / 2
	cli, err := kvstore.New(dctx, log, cfg)
	if err != nil {
		cs.Errors = append(cs.Errors, Problem{
			Message: fmt.Sprintf("apiserver of %s unreachable: %v", c.Cluster, err),
			Hint:    fmt.Sprintf("check that the strait-apiserver of %s runs and listens on %s, and that %q in %s holds its ca.crt and admin.crt/key", c.Cluster, strings.Join(c.Endpoints, ","), FieldCertDir, c.Name()),
		})
	} else {
		defer cli.Close()
		cs.Reachable = true
		if err := readRemotes(dctx, cli, c, get); err != nil {
			cs.Reachable = false
			cs.Errors = append(cs.Errors, Problem{
				Message: fmt.Sprintf("read the etcd of %s: %v", c.Cluster, err),
				Hint:    fmt.Sprintf("check the strait-apiserver log of %s", c.Cluster),
			})
		}
	}
	for _, name := range sortedKeys(remotes) {
		r := remotes[name]
		cs.Remotes = append(cs.Remotes, *r)
		if r.Configured {
			cs.Configured++
		}
		if r.Connected {
			cs.Connected++
		}
		if r.Ready {
			cs.Ready++
		}
		if !cs.Reachable {
			continue
		}
		switch {
		case r.Configured && !r.Connected:
			cs.Errors = append(cs.Errors, Problem{
				Message: fmt.Sprintf("%s: remote cluster %s is configured but not connected", c.Cluster, name),
				Hint:    fmt.Sprintf("check that the apiserver of %s is reachable from the apiserver of %s (its log, strait_kvstoremesh_failures_total)", name, c.Cluster),
			})
		case r.Connected && !r.Ready:
			cs.Errors = append(cs.Errors, Problem{
				Message: fmt.Sprintf("%s: synchronization in progress for remote cluster %s: %s", c.Cluster, name, strings.Join(r.Pending, ", ")),
				Hint:    "wait (straitctl status --wait); if it persists, check that the publishers of " + name + " write their sync canaries",
			})
		case r.Connected && !r.Configured:
			cs.Errors = append(cs.Errors, Problem{
				Message: fmt.Sprintf("%s: remote cluster %s is cached but not configured", c.Cluster, name),
				Hint:    fmt.Sprintf("its cluster file was removed from %s; the cache goes within a few seconds", c.ClustermeshConfigDir),
			})
		}
	}
	cs.Agents = collectAgents(ctx, c, opts, &cs)
	return cs
}

// readRemotes reads the cached cluster configs and canaries of the local etcd.
func readRemotes(ctx context.Context, cli *kvstore.Client, c *Context, get func(string) *RemoteStatus) error {
	var connected []*RemoteStatus
	resp, err := cli.Etcd().Get(ctx, schema.ClusterConfigPrefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("list %s: %w", schema.ClusterConfigPrefix, err)
	}
	for _, kv := range resp.Kvs {
		name := strings.TrimPrefix(string(kv.Key), schema.ClusterConfigPrefix)
		if name == c.Cluster {
			continue
		}
		cc, err := schema.DecodeClusterConfig(string(kv.Key), kv.Value, schema.Origin{Cluster: name, Max: c.Max})
		if err != nil || !cc.Capabilities.Cached {
			continue
		}
		r := get(name)
		r.Connected, r.ID = true, uint32(cc.ID)
		connected = append(connected, r)
	}
	resp, err = cli.Etcd().Get(ctx, schema.SyncedPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("list %s: %w", schema.SyncedPrefix, err)
	}
	canaries := map[string]bool{}
	for _, kv := range resp.Kvs {
		canaries[string(kv.Key)] = true
	}
	for _, r := range connected {
		for _, k := range kvstoremesh.AllKinds() {
			if !canaries[schema.CanaryKey(r.Name, k.CachePrefix())] {
				r.Pending = append(r.Pending, k.String())
			}
		}
		r.Ready = len(r.Pending) == 0
	}
	return nil
}

func collectAgents(ctx context.Context, c *Context, opts StatusOptions, cs *ClusterStatus) AgentSummary {
	sum := AgentSummary{Total: len(c.Agents), Nodes: []AgentStatus{}}
	var conn, ready []int
	for _, a := range c.Agents {
		as := AgentStatus{Node: a.Node, Socket: a.Socket}
		actx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
		st, err := endpointapi.NewClient(a.Socket).Status(actx)
		cancel()
		if err != nil {
			as.Error = err.Error()
			cs.Errors = append(cs.Errors, Problem{
				Message: fmt.Sprintf("agent of node %s (%s) unreachable: %v", a.Node, a.Socket, err),
				Hint:    fmt.Sprintf("check that strait-agent runs on node %s with --socket %s", a.Node, a.Socket),
			})
		} else {
			as.Reachable = true
			sum.Reachable++
			for _, rc := range st.Clusters {
				if rc.Connected {
					as.Connected++
				}
				if rc.Ready {
					as.Ready++
				}
			}
			conn, ready = append(conn, as.Connected), append(ready, as.Ready)
			for _, pr := range st.Problems {
				what := pr.Key
				if pr.Node != "" {
					what = "node " + pr.Node
				}
				cs.Errors = append(cs.Errors, Problem{
					Message: fmt.Sprintf("agent of node %s refused %s: %s", a.Node, orNone(what), pr.Reason),
					Hint:    "fix the entry at its source (see straitctl inspect) or the strait-agent log of node " + a.Node,
				})
			}
			if as.Ready < cs.Ready {
				cs.Errors = append(cs.Errors, Problem{
					Message: fmt.Sprintf("agent of node %s has %d of %d remote clusters ready", a.Node, as.Ready, cs.Ready),
					Hint:    fmt.Sprintf("wait (straitctl status --wait); if it persists, check the strait-agent log of node %s", a.Node),
				})
			}
		}
		sum.Nodes = append(sum.Nodes, as)
	}
	sum.Connected, sum.Ready = summarize(conn), summarize(ready)
	return sum
}

func orNone(s string) string {
	if s == "" {
		return "an entry"
	}
	return s
}

func summarize(v []int) *MinAvgMax {
	if len(v) == 0 {
		return nil
	}
	m := &MinAvgMax{Min: v[0], Max: v[0]}
	total := 0
	for _, x := range v {
		m.Min, m.Max = min(m.Min, x), max(m.Max, x)
		total += x
	}
	m.Avg = float64(total) / float64(len(v))
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// WaitStatus collects the status every interval, calling progress with
// each, until it is Ready (returned) or ctx ends (the last status and an
// error wrapping ErrNotReady).
func WaitStatus(ctx context.Context, log *slog.Logger, cs []*Context, opts StatusOptions, interval time.Duration, progress func(*Status)) (*Status, error) {
	var last *Status
	for {
		st, err := CollectStatus(ctx, log, cs, opts)
		if err != nil {
			if last == nil {
				last = &Status{}
			}
			return last, fmt.Errorf("%w: %w", ErrNotReady, err)
		}
		last = st
		if progress != nil {
			progress(st)
		}
		if st.Ready {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("%w: %w", ErrNotReady, ctx.Err())
		case <-time.After(interval):
		}
	}
}
