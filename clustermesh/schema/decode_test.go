package schema

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/strait-net/strait/identity"
)

// edit returns the golden file with JSON fields set (path "a.b" for nested
// objects); a nil value deletes the field.
func edit(t *testing.T, file string, set map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readGolden(t, file), &m); err != nil {
		t.Fatal(err)
	}
	for path, v := range set {
		obj := m
		parts := strings.Split(path, ".")
		for _, p := range parts[:len(parts)-1] {
			obj = obj[p].(map[string]any)
		}
		last := parts[len(parts)-1]
		if v == nil {
			delete(obj, last)
		} else {
			obj[last] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type invalidCase struct {
	name   string
	key    string
	value  []byte
	from   Origin
	decode decoder
	kind   error  // sentinel the error must match
	field  string // field the error must name ("" = none)
}

func runInvalid(t *testing.T, tests []invalidCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decode(tt.key, tt.value, tt.from)
			if err == nil {
				t.Fatalf("decoded %+v, want error", got)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("err = %v, want %v", err, tt.kind)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v is not *Error", err)
			}
			if e.Key != tt.key || !strings.HasPrefix(err.Error(), tt.key+": ") {
				t.Errorf("error %q does not name key %q", err, tt.key)
			}
			if e.Field != tt.field {
				t.Errorf("error %q names field %q, want %q", err, e.Field, tt.field)
			}
			if tt.field != "" && !strings.Contains(err.Error(), "field "+strconv.Quote(tt.field)+": ") {
				t.Errorf("error text %q does not name field %q", err, tt.field)
			}
		})
	}
}

func TestNodeErrorText(t *testing.T) {
	key := "cilium/state/nodes/v1/c1/n1"
	_, err := DecodeNode(key, []byte(`{"Name":"n1","Cluster":"c2","ClusterID":1}`), origin("c1", 1))
	want := `cilium/state/nodes/v1/c1/n1: field "Cluster": value "c2" does not match cluster "c1" of the key`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if !errors.Is(err, ErrClusterMismatch) {
		t.Errorf("err = %v, want ErrClusterMismatch", err)
	}
}

func TestDecodeNodeInvalid(t *testing.T) {
	key := "cilium/state/nodes/v1/cluster3/test-node-1"
	from := origin("cluster3", 3)
	f := "cilium-node-1.json"
	runInvalid(t, []invalidCase{
		{"not json", key, []byte("{"), from, decNode, ErrInvalidValue, ""},
		{"trailing garbage", key, append(readGolden(t, f), 'x'), from, decNode, ErrInvalidValue, ""},
		{"wrong type", key, edit(t, f, map[string]any{"ClusterID": "3"}), from, decNode, ErrInvalidValue, "ClusterID"},
		{"encryption key too big", key, edit(t, f, map[string]any{"EncryptionKey": 256}), from, decNode, ErrInvalidValue, "EncryptionKey"},
		{"cluster differs from key", key, edit(t, f, map[string]any{"Cluster": "cluster4"}), from, decNode, ErrClusterMismatch, "Cluster"},
		{"name differs from key", key, edit(t, f, map[string]any{"Name": "test-node-2"}), from, decNode, ErrKeyMismatch, "Name"},
		{"cluster ID differs from connection", key, edit(t, f, map[string]any{"ClusterID": 4}), from, decNode, ErrClusterMismatch, "ClusterID"},
		{"key of another cluster", "cilium/state/nodes/v1/cluster4/test-node-1", readGolden(t, f), from, decNode, ErrClusterMismatch, ""},
		{"not a nodes key", "cilium/state/services/v1/cluster3/a/b", readGolden(t, f), from, decNode, ErrInvalidKey, ""},
		{"bad key", "cilium/state/nodes/v1/cluster3", readGolden(t, f), from, decNode, ErrInvalidKey, ""},
		{"bad address", key, edit(t, f, map[string]any{"IPAddresses": []any{map[string]any{"Type": "InternalIP", "IP": "1.2.3"}}}), from, decNode, ErrInvalidValue, "IPAddresses[0].IP"},
		{"empty address", key, edit(t, f, map[string]any{"IPAddresses": []any{map[string]any{"Type": "InternalIP", "IP": ""}}}), from, decNode, ErrInvalidValue, "IPAddresses[0].IP"},
		{"address without type", key, edit(t, f, map[string]any{"IPAddresses": []any{map[string]any{"IP": "10.0.0.1"}}}), from, decNode, ErrInvalidValue, "IPAddresses[0].Type"},
		{"v6 CIDR as v4", key, edit(t, f, map[string]any{"IPv4AllocCIDR": map[string]any{"IP": "fd00::", "Mask": "//////////8AAAAAAAAAAA=="}}), from, decNode, ErrInvalidValue, "IPv4AllocCIDR"},
		{"mask of wrong length", key, edit(t, f, map[string]any{"IPv4AllocCIDR": map[string]any{"IP": "10.0.0.0", "Mask": "//////////8AAAAAAAAAAA=="}}), from, decNode, ErrInvalidValue, "IPv4AllocCIDR"},
		{"non-canonical mask", key, edit(t, f, map[string]any{"IPv4AllocCIDR": map[string]any{"IP": "10.0.0.0", "Mask": "AP///w=="}}), from, decNode, ErrInvalidValue, "IPv4AllocCIDR"},
		{"CIDR without IP", key, edit(t, f, map[string]any{"IPv6AllocCIDR": map[string]any{"Mask": "////AA=="}}), from, decNode, ErrInvalidValue, "IPv6AllocCIDR"},
		{"null secondary CIDR", key, edit(t, f, map[string]any{"IPv4SecondaryAllocCIDRs": []any{nil}}), from, decNode, ErrInvalidValue, "IPv4SecondaryAllocCIDRs[0]"},
		{"v4 health IP as v6", key, edit(t, f, map[string]any{"IPv6HealthIP": "10.0.0.1"}), from, decNode, ErrInvalidValue, "IPv6HealthIP"},
		{"ingress IP with zone", key, edit(t, f, map[string]any{"IPv6IngressIP": "fe80::1%eth0"}), from, decNode, ErrInvalidValue, "IPv6IngressIP"},
		{"bad wireguard key", key, edit(t, f, map[string]any{"WireguardPubKey": "not-a-key"}), from, decNode, ErrInvalidValue, "WireguardPubKey"},
		{"short wireguard key", key, edit(t, f, map[string]any{"WireguardPubKey": "AAAA"}), from, decNode, ErrInvalidValue, "WireguardPubKey"},
		{"bad origin", key, readGolden(t, f), Origin{Cluster: "cluster3", ClusterID: 3}, decNode, ErrInvalidOrigin, ""},
	})
}

func TestDecodeIPIdentityPairInvalid(t *testing.T) {
	key := "cilium/state/ip/v1/default/10.244.2.74"
	from := origin("cluster3", 3)
	f := "cilium-ip-pod.json"
	runInvalid(t, []invalidCase{
		{"not json", key, []byte("[]"), from, decIP, ErrInvalidValue, ""},
		{"IP differs from key", key, edit(t, f, map[string]any{"IP": "10.244.2.75"}), from, decIP, ErrKeyMismatch, "IP"},
		{"mask not in key", key, edit(t, f, map[string]any{"Mask": "////AA=="}), from, decIP, ErrKeyMismatch, "IP"},
		{"mask of wrong length", "cilium/state/ip/v1/default/10.244.2.74/24", edit(t, f, map[string]any{"Mask": "//////////8AAAAAAAAAAA=="}), from, decIP, ErrInvalidValue, "Mask"},
		{"bad IP", key, edit(t, f, map[string]any{"IP": "10.244.2"}), from, decIP, ErrInvalidValue, "IP"},
		{"no IP", key, edit(t, f, map[string]any{"IP": nil}), from, decIP, ErrInvalidValue, "IP"},
		{"bad host IP", key, edit(t, f, map[string]any{"HostIP": "node-1"}), from, decIP, ErrInvalidValue, "HostIP"},
		{"identity zero", key, edit(t, f, map[string]any{"ID": 0}), from, decIP, ErrInvalidValue, "ID"},
		{"node-local identity", key, edit(t, f, map[string]any{"ID": 1 << 24}), from, decIP, ErrInvalidValue, "ID"},
		{"negative identity", key, edit(t, f, map[string]any{"ID": -1}), from, decIP, ErrInvalidValue, "ID"},
		{"named port without name", key, edit(t, f, map[string]any{"NamedPorts": []any{map[string]any{"Port": 80, "Protocol": "TCP"}}}), from, decIP, ErrInvalidValue, "NamedPorts[0].Name"},
		{"named port zero", key, edit(t, f, map[string]any{"NamedPorts": []any{map[string]any{"Name": "x", "Protocol": "TCP"}}}), from, decIP, ErrInvalidValue, "NamedPorts[0].Port"},
		{"cache key of another cluster", "cilium/cache/ip/v1/cluster4/10.244.2.74", readGolden(t, f), from, decIP, ErrClusterMismatch, ""},
		{"wrong address space", "cilium/state/ip/v1/cluster3/10.244.2.74", readGolden(t, f), from, decIP, ErrInvalidKey, ""},
	})
}

func TestDecodeClusterServiceInvalid(t *testing.T) {
	key := "cilium/state/services/v1/cluster3/ns-alpha/echo-service"
	from := origin("cluster3", 3)
	f := "cilium-service.json"
	runInvalid(t, []invalidCase{
		{"not json", key, []byte(`"x"`), from, decService, ErrInvalidValue, ""},
		{"cluster differs", key, edit(t, f, map[string]any{"cluster": "cluster4"}), from, decService, ErrClusterMismatch, "cluster"},
		{"namespace differs", key, edit(t, f, map[string]any{"namespace": "ns-beta"}), from, decService, ErrKeyMismatch, "namespace"},
		{"name differs", key, edit(t, f, map[string]any{"name": "other"}), from, decService, ErrKeyMismatch, "name"},
		{"cluster ID differs", key, edit(t, f, map[string]any{"clusterID": 0}), from, decService, ErrClusterMismatch, "clusterID"},
		{"frontend not an IP", key, edit(t, f, map[string]any{"frontends": map[string]any{"web": map[string]any{}}}), from, decService, ErrInvalidValue, `frontends["web"]`},
		{"null port", key, edit(t, f, map[string]any{"backends": map[string]any{"10.0.0.1": map[string]any{"http": nil}}}), from, decService, ErrInvalidValue, `backends["10.0.0.1"]["http"]`},
		{"unknown protocol", key, edit(t, f, map[string]any{"backends": map[string]any{"10.0.0.1": map[string]any{"http": map[string]any{"Protocol": "ICMP", "Port": 1}}}}), from, decService, ErrInvalidValue, `backends["10.0.0.1"]["http"].Protocol`},
		{"hostname key not an IP", key, edit(t, f, map[string]any{"hostnames": map[string]any{"pod": "x"}}), from, decService, ErrInvalidValue, `hostnames["pod"]`},
		{"key of another cluster", "cilium/state/services/v1/cluster4/ns-alpha/echo-service", readGolden(t, f), from, decService, ErrClusterMismatch, ""},
	})
}

// The duplicate-backend case names one of two map keys, whichever Go's map
// iteration meets second; runInvalid cannot know which, so it is checked here.
func TestDecodeClusterServiceDuplicateNamesField(t *testing.T) {
	key := "cilium/state/services/v1/cluster3/ns-alpha/echo-service"
	_, err := DecodeClusterService(key, edit(t, "cilium-service.json", map[string]any{"backends": map[string]any{"10.0.0.1": nil, "::ffff:10.0.0.1": nil}}), origin("cluster3", 3))
	var e *Error
	if !errors.As(err, &e) || (e.Field != `backends["10.0.0.1"]` && e.Field != `backends["::ffff:10.0.0.1"]`) {
		t.Fatalf("err = %v, want a field naming one of the duplicate backends", err)
	}
}

func TestDecodeServiceExportInvalid(t *testing.T) {
	key := "cilium/state/serviceexports/v1/cluster1/default/basic"
	from := origin("cluster1", 1)
	f := "cilium-serviceexport-basic.json"
	runInvalid(t, []invalidCase{
		{"not json", key, []byte(`nul`), from, decServiceExport, ErrInvalidValue, ""},
		{"cluster differs", key, edit(t, f, map[string]any{"cluster": "cluster2"}), from, decServiceExport, ErrClusterMismatch, "cluster"},
		{"namespace differs", key, edit(t, f, map[string]any{"namespace": "kube-system"}), from, decServiceExport, ErrKeyMismatch, "namespace"},
		{"name differs", key, edit(t, f, map[string]any{"name": "other"}), from, decServiceExport, ErrKeyMismatch, "name"},
		{"no timestamp", key, edit(t, f, map[string]any{"exportCreationTimestamp": nil}), from, decServiceExport, ErrInvalidValue, "exportCreationTimestamp"},
		{"bad timestamp", key, edit(t, f, map[string]any{"exportCreationTimestamp": "yesterday"}), from, decServiceExport, ErrInvalidValue, "exportCreationTimestamp"},
		{"unknown type", key, edit(t, f, map[string]any{"type": "LoadBalancer"}), from, decServiceExport, ErrInvalidValue, "type"},
		{"unknown affinity", key, edit(t, f, map[string]any{"sessionAffinity": "Cookie"}), from, decServiceExport, ErrInvalidValue, "sessionAffinity"},
		{"port zero", key, edit(t, f, map[string]any{"ports": []any{map[string]any{"name": "x", "port": 0}}}), from, decServiceExport, ErrInvalidValue, "ports[0].port"},
		{"port too big", key, edit(t, f, map[string]any{"ports": []any{map[string]any{"name": "x", "port": 70000}}}), from, decServiceExport, ErrInvalidValue, "ports[0].port"},
		{"key of another cluster", "cilium/state/serviceexports/v1/cluster2/default/basic", readGolden(t, f), from, decServiceExport, ErrClusterMismatch, ""},
	})
}

func TestDecodeClusterConfigInvalid(t *testing.T) {
	key := "cilium/cluster-config/cluster3"
	from := origin("cluster3", 0)
	f := "cilium-clusterconfig.json"
	from511 := Origin{Cluster: "cluster3", Max: identity.ClusterMax511}
	runInvalid(t, []invalidCase{
		{"not json", key, []byte(`{"id":`), from, decClusterConfig, ErrInvalidValue, ""},
		{"id missing", key, edit(t, f, map[string]any{"id": nil}), from, decClusterConfig, identity.ErrInvalidClusterID, "id"},
		{"id above max", key, edit(t, f, map[string]any{"id": 256}), from, decClusterConfig, ErrInvalidValue, "id"},
		{"id negative", key, edit(t, f, map[string]any{"id": -1}), from, decClusterConfig, ErrInvalidValue, "id"},
		{"id differs from connection", key, readGolden(t, f), origin("cluster3", 4), decClusterConfig, ErrClusterMismatch, "id"},
		{"invalid max", key, edit(t, f, map[string]any{"capabilities.maxConnectedClusters": 300}), from, decClusterConfig, identity.ErrInvalidClusterMax, "capabilities.maxConnectedClusters"},
		{"255 remote in 511 mesh", key, readGolden(t, f), from511, decClusterConfig, ErrIncompatibleConfig, "capabilities.maxConnectedClusters"},
		{"unadvertised max in 511 mesh", key, edit(t, f, map[string]any{"capabilities.maxConnectedClusters": nil}), from511, decClusterConfig, ErrIncompatibleConfig, "capabilities.maxConnectedClusters"},
		{"unknown export mode", key, edit(t, f, map[string]any{"capabilities.endpointSlicesExportMode": "slices"}), from, decClusterConfig, ErrIncompatibleConfig, "capabilities.endpointSlicesExportMode"},
		{"capabilities not an object", key, edit(t, f, map[string]any{"capabilities": 1}), from, decClusterConfig, ErrInvalidValue, "capabilities"},
		{"key of another cluster", "cilium/cluster-config/cluster4", readGolden(t, f), from, decClusterConfig, ErrClusterMismatch, ""},
		{"default cluster", "cilium/cluster-config/default", readGolden(t, f), Origin{Cluster: "default", Max: 255}, decClusterConfig, ErrInvalidOrigin, ""},
	})
}

func TestDecodeClusterConfigCompatible(t *testing.T) {
	key := "cilium/cluster-config/cluster3"
	tests := []struct {
		name  string
		value string
		from  Origin
	}{
		{"511 remote in 255 mesh with small ID", `{"id":3,"capabilities":{"maxConnectedClusters":511}}`, origin("cluster3", 0)},
		{"old remote without capabilities", `{"id":3}`, origin("cluster3", 3)},
		{"511 mesh", `{"id":300,"capabilities":{"maxConnectedClusters":511}}`, Origin{Cluster: "cluster3", Max: 511}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeClusterConfig(key, []byte(tt.value), tt.from); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDecodeCanaryInvalid(t *testing.T) {
	key := "cilium/synced/cluster3/cilium/state/nodes/v1"
	from := origin("cluster3", 3)
	runInvalid(t, []invalidCase{
		{"not a time", key, []byte("now"), from, decCanary, ErrInvalidValue, ""},
		{"empty", key, nil, from, decCanary, ErrInvalidValue, ""},
		{"date only", key, []byte("2026-01-01"), from, decCanary, ErrInvalidValue, ""},
		{"other cluster", "cilium/synced/cluster4/cilium/state/nodes/v1", []byte("2026-01-01T00:00:00Z"), from, decCanary, ErrClusterMismatch, ""},
		{"not a canary key", NodesPrefix + "/cluster3/n", []byte("2026-01-01T00:00:00Z"), from, decCanary, ErrInvalidKey, ""},
	})
}
