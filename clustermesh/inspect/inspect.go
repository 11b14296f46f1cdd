package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// Kind is what to list.
type Kind string

// Kinds, as the straitctl inspect subcommands.
const (
	KindNodes      Kind = "nodes"
	KindIPCache    Kind = "ipcache"
	KindIdentities Kind = "identities"
	KindServices   Kind = "services"
	KindClusters   Kind = "clusters"
)

// Kinds lists every Kind.
func Kinds() []Kind {
	return []Kind{KindNodes, KindIPCache, KindIdentities, KindServices, KindClusters}
}

// Sources of an entry.
const (
	// SourceState: published by the cluster itself, under cilium/state/.
	SourceState = "state"
	// SourceCache: the apiserver's copy of a remote cluster, under cilium/cache/.
	SourceCache = "cache"
	// SourceConfig: a cluster config, cilium/cluster-config/<cluster>.
	SourceConfig = "config"
)

var (
	// ErrKind: an unknown Kind was asked for.
	ErrKind = errors.New("inspect: unknown kind")
	// ErrRead: the etcd could not be read.
	ErrRead = errors.New("inspect: read etcd")
)

// Report is the JSON form of `straitctl inspect KIND -o json` (README.md).
type Report struct {
	// Cluster is the cluster whose etcd was read.
	Cluster string `json:"cluster"`
	Kind    Kind   `json:"kind"`
	// Entries are the valid entries, local ones (source "state") first,
	// then cached remote ones, each group in key order.
	Entries []Entry `json:"entries"`
	// Invalid are the entries that fail validation, same order.
	Invalid []Invalid `json:"invalid"`
}

// Entry is one valid entry.
type Entry struct {
	// Cluster is the cluster the entry belongs to.
	Cluster string `json:"cluster"`
	Source  string `json:"source"`
	Key     string `json:"key"`
	// Value is the entry in Cilium's wire form, re-encoded from the
	// decoded value (byte-for-byte what Cilium writes). For identities it
	// is {"id":N,"labels":["source:key=value",...]}.
	Value json.RawMessage `json:"value"`
	// Synced (clusters only) lists the prefixes whose sync canary
	// cilium/synced/<cluster>/<prefix> exists.
	Synced []string `json:"synced,omitempty"`

	decoded any
}

// Invalid is an entry that fails validation.
type Invalid struct {
	Cluster string `json:"cluster"`
	Source  string `json:"source"`
	Key     string `json:"key"`
	// Reason is the decoder's error (it names the key and the field).
	Reason string `json:"reason"`
	// Value is the raw value as stored.
	Value string `json:"value"`
}

// KV is one etcd key and value.
type KV struct {
	Key   string
	Value []byte
}

// Getter lists a prefix; *clientv3.Client satisfies it through EtcdGetter.
type Getter interface {
	List(ctx context.Context, prefix string) ([]KV, error)
}

// EtcdGetter adapts a raw etcd client to Getter.
type EtcdGetter struct{ Client *clientv3.Client }

// List returns every key under prefix in key order.
func (g EtcdGetter) List(ctx context.Context, prefix string) ([]KV, error) {
	resp, err := g.Client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRead, prefix, err)
	}
	out := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = KV{Key: string(kv.Key), Value: kv.Value}
	}
	return out, nil
}

// Read lists kind in the etcd of the cluster self (whose name, ID and
// max-connected-clusters come from its context file) and validates every
// entry: local ones under self, cached ones under the remote cluster's
// config as cached in the same etcd.
func Read(ctx context.Context, g Getter, self schema.Origin, kind Kind) (*Report, error) {
	if err := self.Validate(); err != nil {
		return nil, err
	}
	statePrefix, cachePrefix, err := prefixes(kind)
	if err != nil {
		return nil, err
	}
	configs, err := g.List(ctx, schema.ClusterConfigPrefix)
	if err != nil {
		return nil, err
	}
	var local, cached, synced []KV
	if kind == KindClusters {
		if synced, err = g.List(ctx, schema.SyncedPrefix); err != nil {
			return nil, err
		}
	} else {
		if local, err = g.List(ctx, statePrefix); err != nil {
			return nil, err
		}
		if cached, err = g.List(ctx, cachePrefix); err != nil {
			return nil, err
		}
	}
	return Decode(self, kind, Input{Configs: configs, Local: local, Cached: cached, Synced: synced})
}

// Input is what Decode works on: the etcd content Read lists.
type Input struct {
	// Configs: cilium/cluster-config/ (every cluster).
	Configs []KV
	// Local: the kind's state prefix; Cached: its cache prefix.
	Local, Cached []KV
	// Synced: cilium/synced/ (clusters only).
	Synced []KV
}

func prefixes(kind Kind) (state, cache string, err error) {
	switch kind {
	case KindNodes:
		return schema.NodesPrefix + "/", schema.CacheNodesPrefix + "/", nil
	case KindIPCache:
		return schema.IPPrefix + "/", schema.CacheIPPrefix + "/", nil
	case KindIdentities:
		return schema.IdentitiesPrefix + "/id/", schema.CacheIdentitiesPrefix + "/", nil
	case KindServices:
		return schema.ServicesPrefix + "/", schema.CacheServicesPrefix + "/", nil
	case KindClusters:
		return "", "", nil
	}
	return "", "", fmt.Errorf("%w: %q: want one of %s", ErrKind, kind, kindList())
}

func kindList() string {
	var s []string
	for _, k := range Kinds() {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// Decode validates the listed content; it is pure.
func Decode(self schema.Origin, kind Kind, in Input) (*Report, error) {
	if _, _, err := prefixes(kind); err != nil {
		return nil, err
	}
	r := &Report{Cluster: self.Cluster, Kind: kind, Entries: []Entry{}, Invalid: []Invalid{}}
	remoteIDs := map[string]identity.ClusterID{}
	for _, kv := range in.Configs {
		name := strings.TrimPrefix(kv.Key, schema.ClusterConfigPrefix)
		if name == self.Cluster {
			continue
		}
		if cc, err := schema.DecodeClusterConfig(kv.Key, kv.Value, schema.Origin{Cluster: name, Max: self.Max}); err == nil {
			remoteIDs[name] = cc.ID
		}
	}
	if kind == KindClusters {
		decodeClusters(r, self, in)
		return r, nil
	}
	for _, kv := range in.Local {
		r.add(SourceState, self.Cluster, kv, func() (any, []byte, error) { return decodeOne(kind, kv, self) })
	}
	for _, kv := range in.Cached {
		cluster := cacheCluster(kv.Key)
		if kind == KindIdentities && !isIDCacheKey(kv.Key, cluster) {
			continue // references (value/...) are not identities
		}
		r.add(SourceCache, cluster, kv, func() (any, []byte, error) {
			id, ok := remoteIDs[cluster]
			if !ok {
				return nil, nil, fmt.Errorf("%s: no %s in this etcd: the remote cluster is not connected (its cache is being removed?), its entries cannot be checked",
					kv.Key, schema.ClusterConfigKey(cluster))
			}
			return decodeOne(kind, kv, schema.Origin{Cluster: cluster, ClusterID: id, Max: self.Max})
		})
	}
	return r, nil
}

func (r *Report) add(source, cluster string, kv KV, dec func() (any, []byte, error)) {
	v, wire, err := dec()
	if err != nil {
		r.Invalid = append(r.Invalid, Invalid{Cluster: cluster, Source: source, Key: kv.Key, Reason: err.Error(), Value: string(kv.Value)})
		return
	}
	r.Entries = append(r.Entries, Entry{Cluster: cluster, Source: source, Key: kv.Key, Value: wire, decoded: v})
}

// cacheCluster is the <cluster> of cilium/cache/<kind>/v1/<cluster>/...
func cacheCluster(key string) string {
	parts := strings.SplitN(strings.TrimPrefix(key, schema.CachePrefix), "/", 4)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

func isIDCacheKey(key, cluster string) bool {
	return strings.HasPrefix(key, schema.CacheIdentitiesPrefix+"/"+cluster+"/id/")
}

// IdentityValue is the Value of an identity entry.
type IdentityValue struct {
	ID     identity.NumericIdentity `json:"id"`
	Labels []string                 `json:"labels"`
}

// decodeOne decodes one entry of kind under from and returns the decoded
// value with its wire form.
func decodeOne(kind Kind, kv KV, from schema.Origin) (any, []byte, error) {
	switch kind {
	case KindNodes:
		n, err := schema.DecodeNode(kv.Key, kv.Value, from)
		if err != nil {
			return nil, nil, err
		}
		b, err := n.Marshal()
		return n, b, err
	case KindIPCache:
		p, err := schema.DecodeIPIdentityPair(kv.Key, kv.Value, from)
		if err != nil {
			return nil, nil, err
		}
		if p.ID >= identity.MinAllocatable {
			if err := identity.ValidateRemote(from.Max, from.ClusterID, p.ID); err != nil {
				return nil, nil, fmt.Errorf("%s: field \"ID\": %w", kv.Key, err)
			}
		}
		b, err := p.Marshal()
		return p, b, err
	case KindServices:
		s, err := schema.DecodeClusterService(kv.Key, kv.Value, from)
		if err != nil {
			return nil, nil, err
		}
		b, err := s.Marshal()
		return s, b, err
	case KindIdentities:
		prefix := schema.IdentitiesPrefix
		if strings.HasPrefix(kv.Key, schema.CachePrefix) {
			prefix = schema.CacheIdentitiesPrefix + "/" + from.Cluster
		}
		id, err := identity.Keys{Prefix: prefix}.ParseIDKey(kv.Key)
		if err != nil {
			return nil, nil, err
		}
		if err := identity.ValidateRemote(from.Max, from.ClusterID, id); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		ls, err := identity.ParseLabels(string(kv.Value))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		if c, ok := ls.Cluster(); ok && c != from.Cluster {
			return nil, nil, fmt.Errorf("%s: %w: cluster label %q, expected %q", kv.Key, schema.ErrClusterMismatch, c, from.Cluster)
		}
		iv := IdentityValue{ID: id, Labels: make([]string, len(ls))}
		for i, l := range ls {
			iv.Labels[i] = l.String()
		}
		b, err := json.Marshal(iv)
		return iv, b, err
	}
	return nil, nil, fmt.Errorf("%w: %q", ErrKind, kind)
}

// decodeClusters lists every cluster config with its canaries.
func decodeClusters(r *Report, self schema.Origin, in Input) {
	synced := map[string][]string{}
	for _, kv := range in.Synced {
		rest := strings.TrimPrefix(kv.Key, schema.SyncedPrefix)
		cluster, prefix, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		if _, err := schema.DecodeCanary(kv.Key, kv.Value, schema.Origin{Cluster: cluster, ClusterID: 1, Max: self.Max}); err != nil {
			continue
		}
		synced[cluster] = append(synced[cluster], prefix)
	}
	for _, kv := range in.Configs {
		name := strings.TrimPrefix(kv.Key, schema.ClusterConfigPrefix)
		from := schema.Origin{Cluster: name, Max: self.Max}
		if name == self.Cluster {
			from.ClusterID = self.ClusterID
		}
		cc, err := schema.DecodeClusterConfig(kv.Key, kv.Value, from)
		if err != nil {
			r.Invalid = append(r.Invalid, Invalid{Cluster: name, Source: SourceConfig, Key: kv.Key, Reason: err.Error(), Value: string(kv.Value)})
			continue
		}
		b, err := cc.Marshal()
		if err != nil {
			r.Invalid = append(r.Invalid, Invalid{Cluster: name, Source: SourceConfig, Key: kv.Key, Reason: err.Error(), Value: string(kv.Value)})
			continue
		}
		r.Entries = append(r.Entries, Entry{Cluster: name, Source: SourceConfig, Key: kv.Key, Value: b, Synced: synced[name], decoded: cc})
	}
}
