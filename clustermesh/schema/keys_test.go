package schema

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/identity"
)

func TestBuilders(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"node", NodeKey("c1", "n1"), "cilium/state/nodes/v1/c1/n1"},
		{"service", ServiceKey("c1", "ns", "svc"), "cilium/state/services/v1/c1/ns/svc"},
		{"serviceexport", ServiceExportKey("c1", "ns", "svc"), "cilium/state/serviceexports/v1/c1/ns/svc"},
		{"ip v4", IPKey(netip.MustParseAddr("10.0.0.1")), "cilium/state/ip/v1/default/10.0.0.1"},
		{"ip v6", IPKey(netip.MustParseAddr("fd00::1")), "cilium/state/ip/v1/default/fd00::1"},
		{"ip prefix keeps host bits", IPPrefixKey(netip.MustParsePrefix("10.0.0.1/8")), "cilium/state/ip/v1/default/10.0.0.1/8"},
		{"cluster config", ClusterConfigKey("c1"), "cilium/cluster-config/c1"},
		{"canary", CanaryKey("c1", NodesPrefix), "cilium/synced/c1/cilium/state/nodes/v1"},
		{"canary trims slash", CanaryKey("c1", IPPrefix+"/"), "cilium/synced/c1/cilium/state/ip/v1"},
		{"cache prefix", StateToCachePrefix(ServicesPrefix), CacheServicesPrefix},
		{"cache prefix of other", StateToCachePrefix(SyncedPrefix), SyncedPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		want Key
	}{
		{"node", "cilium/state/nodes/v1/c1/n1", Key{Kind: KindNode, Cluster: "c1", Name: "n1"}},
		{"cached node", "cilium/cache/nodes/v1/c1/n1.example", Key{Kind: KindNode, Cached: true, Cluster: "c1", Name: "n1.example"}},
		{"service", "cilium/state/services/v1/c1/ns/svc", Key{Kind: KindService, Cluster: "c1", Namespace: "ns", Name: "svc"}},
		{"cached service", "cilium/cache/services/v1/c1/ns/svc", Key{Kind: KindService, Cached: true, Cluster: "c1", Namespace: "ns", Name: "svc"}},
		{"serviceexport", "cilium/state/serviceexports/v1/c1/ns/svc", Key{Kind: KindServiceExport, Cluster: "c1", Namespace: "ns", Name: "svc"}},
		{"ip", "cilium/state/ip/v1/default/10.0.0.1", Key{Kind: KindIPIdentity, IP: "10.0.0.1"}},
		{"ip cidr", "cilium/state/ip/v1/default/fd00::/64", Key{Kind: KindIPIdentity, IP: "fd00::/64"}},
		{"cached ip", "cilium/cache/ip/v1/c1/10.0.0.1", Key{Kind: KindIPIdentity, Cached: true, Cluster: "c1", IP: "10.0.0.1"}},
		{"identity id", "cilium/state/identities/v1/id/196609", Key{Kind: KindIdentity, Rest: "id/196609"}},
		{"identity value", "cilium/state/identities/v1/value/k8s:a=b;/10.0.0.1", Key{Kind: KindIdentity, Rest: "value/k8s:a=b;/10.0.0.1"}},
		{"cached identity", "cilium/cache/identities/v1/c1/id/196609", Key{Kind: KindIdentity, Cached: true, Cluster: "c1", Rest: "id/196609"}},
		{"cluster config", "cilium/cluster-config/c1", Key{Kind: KindClusterConfig, Cluster: "c1"}},
		{"canary", "cilium/synced/c1/cilium/state/nodes/v1", Key{Kind: KindCanary, Cluster: "c1", Prefix: NodesPrefix}},
		{"cache canary", "cilium/synced/c1/cilium/cache/ip/v1", Key{Kind: KindCanary, Cluster: "c1", Prefix: CacheIPPrefix}},
		{"heartbeat", HeartbeatKey, Key{Kind: KindHeartbeat}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKey(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if s := got.String(); s != tt.key {
				t.Errorf("String() = %q, want %q", s, tt.key)
			}
		})
	}
}

func TestParseKeyInvalid(t *testing.T) {
	tests := []struct {
		name string
		key  string
	}{
		{"not cilium", "foo/bar"},
		{"unknown kind", "cilium/state/pods/v1/c1/p"},
		{"no version", "cilium/state/nodes/c1/n1"},
		{"node without name", "cilium/state/nodes/v1/c1"},
		{"node name with slash", "cilium/state/nodes/v1/c1/a/b"},
		{"empty node name", "cilium/state/nodes/v1/c1/"},
		{"bad cluster name", "cilium/state/nodes/v1/C1/n1"},
		{"cluster name too long", "cilium/state/nodes/v1/" + strings.Repeat("a", 33) + "/n1"},
		{"service without name", "cilium/state/services/v1/c1/ns"},
		{"service empty namespace", "cilium/state/services/v1/c1//svc"},
		{"ip wrong address space", "cilium/state/ip/v1/c1/10.0.0.1"},
		{"ip not an address", "cilium/state/ip/v1/default/pod-1"},
		{"ip not canonical", "cilium/state/ip/v1/default/fd00:0::1"},
		{"ip mapped", "cilium/state/ip/v1/default/::ffff:10.0.0.1"},
		{"ip zone", "cilium/state/ip/v1/default/fe80::1%eth0"},
		{"ip prefix too long", "cilium/state/ip/v1/default/10.0.0.0/33"},
		{"ip prefix leading zero", "cilium/state/ip/v1/default/10.0.0.0/08"},
		{"cached ip bad cluster", "cilium/cache/ip/v1/-c/10.0.0.1"},
		{"identity other", "cilium/state/identities/v1/foo/1"},
		{"identity empty id", "cilium/state/identities/v1/id/"},
		{"cached identity value", "cilium/cache/identities/v1/c1/value/x/y"},
		{"cluster config bad name", "cilium/cluster-config/c_1"},
		{"cluster config empty", "cilium/cluster-config/"},
		{"canary without prefix", "cilium/synced/c1"},
		{"canary outside state", "cilium/synced/c1/cilium/cluster-config/c1"},
		{"canary trailing slash", "cilium/synced/c1/cilium/state/nodes/v1/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKey(tt.key)
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("err = %v, want ErrInvalidKey", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Key != tt.key || !strings.HasPrefix(err.Error(), tt.key+": ") {
				t.Errorf("error %q does not name key %q", err, tt.key)
			}
		})
	}
}

func TestCacheKeys(t *testing.T) {
	tests := []struct {
		name     string
		cluster  string
		state    string
		cache    string
		wantKind error // error of StateToCacheKey; nil for success
	}{
		{"node", "c1", "cilium/state/nodes/v1/c1/n1", "cilium/cache/nodes/v1/c1/n1", nil},
		{"service", "c1", "cilium/state/services/v1/c1/ns/s", "cilium/cache/services/v1/c1/ns/s", nil},
		{"serviceexport", "c1", "cilium/state/serviceexports/v1/c1/ns/s", "cilium/cache/serviceexports/v1/c1/ns/s", nil},
		{"ip", "c1", "cilium/state/ip/v1/default/10.0.0.1", "cilium/cache/ip/v1/c1/10.0.0.1", nil},
		{"ip cidr", "c1", "cilium/state/ip/v1/default/10.0.0.0/8", "cilium/cache/ip/v1/c1/10.0.0.0/8", nil},
		{"identity", "c1", "cilium/state/identities/v1/id/65537", "cilium/cache/identities/v1/c1/id/65537", nil},
		{"node of another cluster", "c2", "cilium/state/nodes/v1/c1/n1", "", ErrClusterMismatch},
		{"identity value key", "c1", "cilium/state/identities/v1/value/a/b", "", ErrInvalidKey},
		{"cluster config", "c1", "cilium/cluster-config/c1", "", ErrInvalidKey},
		{"already cached", "c1", "cilium/cache/nodes/v1/c1/n1", "", ErrInvalidKey},
		{"bad cluster", "C1", "cilium/state/ip/v1/default/10.0.0.1", "", ErrInvalidClusterName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StateToCacheKey(tt.cluster, tt.state)
			if tt.wantKind != nil {
				if !errors.Is(err, tt.wantKind) || !strings.HasPrefix(err.Error(), tt.state+": ") {
					t.Fatalf("err = %v, want %v naming the key", err, tt.wantKind)
				}
				return
			}
			if err != nil || got != tt.cache {
				t.Fatalf("StateToCacheKey = %q, %v; want %q", got, err, tt.cache)
			}
			cluster, state, err := CacheToStateKey(got)
			if err != nil || cluster != tt.cluster || state != tt.state {
				t.Errorf("CacheToStateKey = %q, %q, %v; want %q, %q", cluster, state, err, tt.cluster, tt.state)
			}
		})
	}
	if _, _, err := CacheToStateKey("cilium/state/nodes/v1/c1/n1"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("CacheToStateKey of a state key: err = %v, want ErrInvalidKey", err)
	}
}

func TestValidateClusterName(t *testing.T) {
	tests := []struct {
		name    string
		cluster string
		id      identity.ClusterID
		ok      bool
	}{
		{"simple", "c1", 1, true},
		{"single char", "a", 1, true},
		{"dashes inside", "a-b--c", 1, true},
		{"32 chars", strings.Repeat("a", 32), 1, true},
		{"default without id", "default", 0, true},
		{"default with id", "default", 1, false},
		{"empty", "", 1, false},
		{"33 chars", strings.Repeat("a", 33), 1, false},
		{"upper case", "Cluster", 1, false},
		{"leading dash", "-c", 1, false},
		{"trailing dash", "c-", 1, false},
		{"single dash", "-", 1, false},
		{"dot", "c.1", 1, false},
		{"underscore", "c_1", 1, false},
		{"slash", "c/1", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateClusterName(tt.cluster, tt.id)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidClusterName) {
				t.Errorf("err = %v, want ErrInvalidClusterName", err)
			}
		})
	}
}

func TestOriginValidate(t *testing.T) {
	tests := []struct {
		name  string
		o     Origin
		cause error
	}{
		{"ok", Origin{"c1", 1, 255}, nil},
		{"ok 511", Origin{"c1", 511, 511}, nil},
		{"id zero", Origin{"c1", 0, 255}, identity.ErrInvalidClusterID},
		{"id above max", Origin{"c1", 256, 255}, identity.ErrInvalidClusterID},
		{"bad max", Origin{"c1", 1, 256}, identity.ErrInvalidClusterMax},
		{"default name", Origin{"default", 1, 255}, ErrInvalidClusterName},
		{"bad name", Origin{"C", 1, 255}, ErrInvalidClusterName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if tt.cause == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidOrigin) || !errors.Is(err, tt.cause) {
				t.Errorf("err = %v, want ErrInvalidOrigin and %v", err, tt.cause)
			}
		})
	}
}
