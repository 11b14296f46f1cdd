package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"

	"github.com/strait-net/strait/agent/datapath"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
)

// remoteChecks explains remote nodes the mesh state refuses: meshstate
// drops a node whose WireGuard key is not well-formed (schema.DecodeNode
// rejects it) and only counts it in a metric, so the agent would not know
// why a node has no peer. This watch of cilium/cache/nodes/v1/ reads only
// the cluster, name and key of each entry and records a Problem for a
// malformed key or a value that is not JSON; it never feeds the datapath.
type remoteChecks struct {
	c      *kvstore.Client
	notify func()

	mu  sync.Mutex
	bad map[string]datapath.Problem // etcd key → problem
}

func newRemoteChecks(c *kvstore.Client, notify func()) *remoteChecks {
	return &remoteChecks{c: c, notify: notify, bad: make(map[string]datapath.Problem)}
}

func (r *remoteChecks) run(ctx context.Context) error {
	for ev := range r.c.ListAndWatch(ctx, schema.CacheNodesPrefix+"/") {
		if ev.Kind == kvstore.EventListDone {
			continue
		}
		p, bad := checkRemoteNode(ev)
		r.mu.Lock()
		_, had := r.bad[ev.Key]
		if bad {
			r.bad[ev.Key] = p
		} else {
			delete(r.bad, ev.Key)
		}
		r.mu.Unlock()
		if bad || had {
			r.notify()
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return kvstore.ErrClosed
}

// checkRemoteNode returns the problem of a cached remote node entry, if
// its key is malformed or it is not JSON.
func checkRemoteNode(ev kvstore.Event) (datapath.Problem, bool) {
	k, err := schema.ParseKey(ev.Key)
	if err != nil || k.Kind != schema.KindNode || ev.Kind == kvstore.EventDelete {
		return datapath.Problem{}, false
	}
	id := k.Cluster + "/" + k.Name
	var v struct {
		WireguardPubKey string `json:"WireguardPubKey"`
	}
	if err := json.Unmarshal(ev.Value, &v); err != nil {
		return datapath.Problem{Node: id, Reason: "node entry refused: not JSON: " + err.Error()}, true
	}
	if v.WireguardPubKey == "" {
		return datapath.Problem{}, false // the datapath reports it
	}
	// What schema.DecodeNode (hence meshstate) rejects; an all-zero key
	// passes it and the datapath reports that one.
	if _, err := datapath.ParsePublicKey(v.WireguardPubKey); err != nil && !errors.Is(err, datapath.ErrZeroKey) {
		return datapath.Problem{Node: id, Reason: "node entry refused: " + err.Error()}, true
	}
	return datapath.Problem{}, false
}

func (r *remoteChecks) problems() []datapath.Problem {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]datapath.Problem, 0, len(r.bad))
	for _, p := range r.bad {
		out = append(out, p)
	}
	return out
}

func sortProblems(ps []datapath.Problem) {
	slices.SortFunc(ps, func(a, b datapath.Problem) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Reason, b.Reason))
	})
}
