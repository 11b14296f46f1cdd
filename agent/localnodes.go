package agent

import (
	"context"
	"log/slog"
	"maps"
	"strings"
	"sync"

	"github.com/strait-net/strait/agent/datapath"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
)

// localNodes follows the nodes of this cluster in the local etcd
// (cilium/state/nodes/v1/<cluster>/): meshstate follows only remote
// clusters. Every value is validated with schema.DecodeNode under this
// cluster's origin; a value that does not decode is a problem (and
// withdraws the node's earlier valid value).
type localNodes struct {
	c      *kvstore.Client
	log    *slog.Logger
	origin schema.Origin
	prefix string
	notify func()

	mu       sync.Mutex
	nodes    map[string]datapath.Node // by name
	problems map[string]string        // node name → reason
	synced   bool
}

func newLocalNodes(c *kvstore.Client, log *slog.Logger, origin schema.Origin, notify func()) *localNodes {
	return &localNodes{
		c: c, log: log, origin: origin, notify: notify,
		prefix:   schema.NodesPrefix + "/" + origin.Cluster + "/",
		nodes:    make(map[string]datapath.Node),
		problems: make(map[string]string),
	}
}

// run follows the prefix until ctx ends.
func (l *localNodes) run(ctx context.Context) error {
	for ev := range l.c.ListAndWatch(ctx, l.prefix) {
		l.apply(ev)
		l.notify()
	}
	if ctx.Err() != nil {
		return nil
	}
	return kvstore.ErrClosed
}

func (l *localNodes) apply(ev kvstore.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch ev.Kind {
	case kvstore.EventListDone:
		if !l.synced {
			l.log.Info("Local cluster nodes listed", logCount, len(l.nodes))
		}
		l.synced = true
		return
	case kvstore.EventDelete:
		name := strings.TrimPrefix(ev.Key, l.prefix)
		delete(l.nodes, name)
		delete(l.problems, name)
		return
	}
	name := strings.TrimPrefix(ev.Key, l.prefix)
	n, err := schema.DecodeNode(ev.Key, ev.Value, l.origin)
	if err != nil {
		delete(l.nodes, name)
		l.problems[name] = "node entry refused: " + err.Error()
		return
	}
	delete(l.problems, name)
	l.nodes[name] = datapath.FromSchema(n)
}

// snapshot returns the nodes, the problems and whether the first list is
// complete.
func (l *localNodes) snapshot() (map[string]datapath.Node, map[string]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.nodes), maps.Clone(l.problems), l.synced
}
