package kvstoremesh

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

func TestKindPrefixes(t *testing.T) {
	type row struct{ Name, State, Cache, Watch, Store, LocalCanary, RemoteCanary string }
	var got []row
	for _, k := range AllKinds() {
		got = append(got, row{
			k.String(), k.StatePrefix(), k.CachePrefix(), k.WatchPrefix("b"), k.storePrefix("b"),
			schema.CanaryKey("b", k.CachePrefix()), schema.CanaryKey("b", k.StatePrefix()),
		})
	}
	want := []row{
		{"nodes", "cilium/state/nodes/v1", "cilium/cache/nodes/v1", "cilium/state/nodes/v1/b/", "cilium/cache/nodes/v1/b",
			"cilium/synced/b/cilium/cache/nodes/v1", "cilium/synced/b/cilium/state/nodes/v1"},
		{"services", "cilium/state/services/v1", "cilium/cache/services/v1", "cilium/state/services/v1/b/", "cilium/cache/services/v1/b",
			"cilium/synced/b/cilium/cache/services/v1", "cilium/synced/b/cilium/state/services/v1"},
		{"serviceexports", "cilium/state/serviceexports/v1", "cilium/cache/serviceexports/v1", "cilium/state/serviceexports/v1/b/", "cilium/cache/serviceexports/v1/b",
			"cilium/synced/b/cilium/cache/serviceexports/v1", "cilium/synced/b/cilium/state/serviceexports/v1"},
		{"identities", "cilium/state/identities/v1", "cilium/cache/identities/v1", "cilium/state/identities/v1/id/", "cilium/cache/identities/v1/b",
			"cilium/synced/b/cilium/cache/identities/v1", "cilium/synced/b/cilium/state/identities/v1"},
		{"ip", "cilium/state/ip/v1", "cilium/cache/ip/v1", "cilium/state/ip/v1/default/", "cilium/cache/ip/v1/b",
			"cilium/synced/b/cilium/cache/ip/v1", "cilium/synced/b/cilium/state/ip/v1"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("prefixes (-want +got):\n%s", d)
	}
	if s := Kind(9).String(); s != "Kind(9)" {
		t.Errorf("Kind(9) = %q", s)
	}
}

func TestValidateEntry(t *testing.T) {
	b := &cluster{name: "b", id: 2}
	c := &cluster{name: "c", id: 3}
	from := schema.Origin{Cluster: "b", ClusterID: 2, Max: identity.ClusterMax255}
	nk, nv := b.node(t, "n1", "172.18.0.2")
	_, cnv := c.node(t, "n1", "172.18.0.2")
	ik, iv := b.ip(t, "10.1.0.5", b.identityID(100))
	_, civ := b.ip(t, "10.1.0.5", c.identityID(100))
	hk, hv := b.ip(t, "10.1.0.6", 4)
	sk, sv := b.service(t, "ns", "web")
	ek, ev := b.export(t, "ns", "web")
	idk, idv := b.identity(b.identityID(7), "web")
	cidk, cidv := c.identity(c.identityID(7), "web")
	tests := []struct {
		name     string
		kind     Kind
		key      string
		value    string
		wantName string
		wantErr  error // nil: valid
	}{
		{"node", KindNodes, nk, nv, "n1", nil},
		{"node of other cluster in value", KindNodes, nk, cnv, "", schema.ErrClusterMismatch},
		{"node key of other cluster", KindNodes, "cilium/state/nodes/v1/c/n1", cnv, "", schema.ErrClusterMismatch},
		{"node bad json", KindNodes, nk, "{", "", schema.ErrInvalidValue},
		{"ip", KindIP, ik, iv, "10.1.0.5", nil},
		{"ip reserved identity", KindIP, hk, hv, "10.1.0.6", nil},
		{"ip identity of other cluster", KindIP, ik, civ, "", identity.ErrOutOfRange},
		{"ip cidr", KindIP, "cilium/state/ip/v1/default/10.2.0.0/16", `{"IP":"10.2.0.0","Mask":"//8AAA==","ID":131172}`, "10.2.0.0/16", nil},
		{"service", KindServices, sk, sv, "ns/web", nil},
		{"service with other cluster ID", KindServices, sk, strings.Replace(sv, `"clusterID":2`, `"clusterID":3`, 1), "", schema.ErrClusterMismatch},
		{"export", KindServiceExports, ek, ev, "ns/web", nil},
		{"identity", KindIdentities, idk, idv, fmt.Sprintf("id/%d", b.identityID(7)), nil},
		{"identity of other cluster range", KindIdentities, cidk, cidv, "", identity.ErrOutOfRange},
		{"identity labelled other cluster", KindIdentities, idk, strings.Replace(idv, "=b;", "=c;", 1), "", schema.ErrClusterMismatch},
		{"identity reserved", KindIdentities, "cilium/state/identities/v1/id/4", "reserved:health;", "", identity.ErrOutOfRange},
		{"identity bad labels", KindIdentities, idk, "no-trailing-semicolon", "", identity.ErrMalformedLabel},
		{"identity reference", KindIdentities, "cilium/state/identities/v1/value/k8s:app=web;/10.0.0.1", "131079", "", schema.ErrInvalidKey},
		{"unknown kind", Kind(9), nk, nv, "", errUnknownKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, err := validateEntry(tt.kind, tt.key, []byte(tt.value), from)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("validateEntry: %v", err)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Fatalf("validateEntry: %v, want %v", err, tt.wantErr)
			} else if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("error %q does not name the key %s", err, tt.key)
			}
			if name != tt.wantName {
				t.Errorf("name = %q, want %q", name, tt.wantName)
			}
		})
	}
}

func TestNewMetricsRegisterError(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("second registration on the same registry succeeded")
	}
}

func TestPrefixStateString(t *testing.T) {
	got := []string{PrefixStopped.String(), PrefixWaitingCanary.String(), PrefixSyncing.String(), PrefixSynced.String(), PrefixState(9).String()}
	want := []string{"stopped", "waiting-canary", "syncing", "synced", "PrefixState(9)"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// FuzzValidateEntry feeds arbitrary keys and values of every kind to the
// validation of remote entries: it must never panic, and an accepted entry
// must map to a cache key below the kind's store prefix that maps back to
// the remote key.
func FuzzValidateEntry(f *testing.F) {
	f.Add(uint8(0), "cilium/state/nodes/v1/b/n1", []byte(`{"Name":"n1","Cluster":"b","ClusterID":2}`))
	f.Add(uint8(3), "cilium/state/identities/v1/id/131079", []byte("k8s:app=web;k8s:io.cilium.k8s.policy.cluster=b;"))
	f.Add(uint8(4), "cilium/state/ip/v1/default/10.1.0.5", []byte(`{"IP":"10.1.0.5","ID":131172}`))
	from := schema.Origin{Cluster: "b", ClusterID: 2, Max: identity.ClusterMax255}
	f.Fuzz(func(t *testing.T, kind uint8, key string, value []byte) {
		k := Kind(kind % uint8(numKinds+1))
		name, err := validateEntry(k, key, value, from)
		if err != nil {
			if name != "" {
				t.Fatalf("error %v with name %q", err, name)
			}
			return
		}
		cacheKey := k.storePrefix("b") + "/" + name
		cl, stateKey, err := schema.CacheToStateKey(cacheKey)
		if err != nil || cl != "b" || stateKey != key {
			t.Fatalf("%s → %s → (%q, %q, %v)", key, cacheKey, cl, stateKey, err)
		}
	})
}
