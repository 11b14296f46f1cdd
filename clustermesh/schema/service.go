package schema

import (
	"encoding/json"
	"net/netip"
	"strconv"

	"github.com/strait-net/strait/identity"
)

// L4Addr is a port and its protocol ("Protocol","Port" on the wire).
type L4Addr struct {
	Protocol string `json:"Protocol"`
	Port     uint16 `json:"Port"`
}

// L4 protocols Cilium's loadbalancer.L4Type knows.
const (
	ProtocolTCP  = "TCP"
	ProtocolUDP  = "UDP"
	ProtocolSCTP = "SCTP"
	ProtocolAny  = "ANY"
	ProtocolNone = "NONE"
)

// PortConfiguration maps port names to their L4 address.
type PortConfiguration map[string]L4Addr

// ForZone names a zone a backend should be consumed in.
type ForZone struct {
	Name string `json:"name"`
}

// BackendZone locates a backend in a zone and lists the zones it serves.
type BackendZone struct {
	Zone     string    `json:"zone"`
	ForZones []ForZone `json:"forZones"`
}

// ClusterService is a global service of a cluster, stored at
// cilium/state/services/v1/<cluster>/<namespace>/<name> as Cilium's
// pkg/clustermesh/store.ClusterService JSON. Map keys are addresses; nil and
// empty maps stay distinct (null vs {}) as in Cilium's output.
type ClusterService struct {
	Cluster   string
	Namespace string
	Name      string

	Frontends map[netip.Addr]PortConfiguration
	Backends  map[netip.Addr]PortConfiguration
	Hostnames map[netip.Addr]string
	Zones     map[netip.Addr]BackendZone

	Labels   map[string]string
	Selector map[string]string

	// IncludeExternal: the service is global (includes remote backends).
	IncludeExternal bool
	// Shared: the service's backends are exported to other clusters.
	Shared    bool
	ClusterID identity.ClusterID
}

type wireClusterService struct {
	Cluster         string                        `json:"cluster"`
	Namespace       string                        `json:"namespace"`
	Name            string                        `json:"name"`
	Frontends       map[string]map[string]*L4Addr `json:"frontends"`
	Backends        map[string]map[string]*L4Addr `json:"backends"`
	Hostnames       map[string]string             `json:"hostnames,omitempty"`
	Zones           map[string]BackendZone        `json:"zones,omitempty"`
	Labels          map[string]string             `json:"labels"`
	Selector        map[string]string             `json:"selector"`
	IncludeExternal bool                          `json:"includeExternal"`
	Shared          bool                          `json:"shared"`
	ClusterID       int64                         `json:"clusterID"`
}

// Key is the state key of s.
func (s *ClusterService) Key() string { return ServiceKey(s.Cluster, s.Namespace, s.Name) }

func toWirePorts(m map[netip.Addr]PortConfiguration) map[string]map[string]*L4Addr {
	if m == nil {
		return nil
	}
	out := make(map[string]map[string]*L4Addr, len(m))
	for addr, pc := range m {
		var ports map[string]*L4Addr
		if pc != nil {
			ports = make(map[string]*L4Addr, len(pc))
			for name, l4 := range pc {
				ports[name] = &L4Addr{Protocol: l4.Protocol, Port: l4.Port}
			}
		}
		out[addrString(addr)] = ports
	}
	return out
}

func toWireAddrMap[V any](m map[netip.Addr]V) map[string]V {
	if m == nil {
		return nil
	}
	out := make(map[string]V, len(m))
	for addr, v := range m {
		out[addrString(addr)] = v
	}
	return out
}

// Marshal encodes s exactly as Cilium does (map keys sorted).
func (s *ClusterService) Marshal() ([]byte, error) {
	return json.Marshal(&wireClusterService{
		Cluster:         s.Cluster,
		Namespace:       s.Namespace,
		Name:            s.Name,
		Frontends:       toWirePorts(s.Frontends),
		Backends:        toWirePorts(s.Backends),
		Hostnames:       toWireAddrMap(s.Hostnames),
		Zones:           toWireAddrMap(s.Zones),
		Labels:          s.Labels,
		Selector:        s.Selector,
		IncludeExternal: s.IncludeExternal,
		Shared:          s.Shared,
		ClusterID:       int64(s.ClusterID),
	})
}

// addrKey parses a map key that must be an IP address. Non-canonical
// spellings are accepted like Cilium does (netip.ParseAddr), but two keys
// naming the same address are an error.
func addrKey[V any](key, field, s string, seen map[netip.Addr]V) (netip.Addr, error) {
	a, err := parseAddr(s)
	if err != nil {
		return netip.Addr{}, errCause(key, field, ErrInvalidValue, err, "map key: "+err.Error())
	}
	if _, dup := seen[a]; dup {
		return netip.Addr{}, errField(key, field, ErrInvalidValue, "address "+a.String()+" appears twice")
	}
	return a, nil
}

func portsField(key, field string, m map[string]map[string]*L4Addr) (map[netip.Addr]PortConfiguration, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[netip.Addr]PortConfiguration, len(m))
	for s, ports := range m {
		f := field + "[" + strconv.Quote(s) + "]"
		addr, err := addrKey(key, f, s, out)
		if err != nil {
			return nil, err
		}
		var pc PortConfiguration
		if ports != nil {
			pc = make(PortConfiguration, len(ports))
			for name, l4 := range ports {
				pf := f + "[" + strconv.Quote(name) + "]"
				if l4 == nil {
					return nil, errField(key, pf, ErrInvalidValue, "null port")
				}
				switch l4.Protocol {
				case ProtocolTCP, ProtocolUDP, ProtocolSCTP, ProtocolAny, ProtocolNone:
				default:
					return nil, errField(key, pf+".Protocol", ErrInvalidValue, "unknown protocol "+strconv.Quote(l4.Protocol))
				}
				pc[name] = *l4
			}
		}
		out[addr] = pc
	}
	return out, nil
}

func addrMapField[V any](key, field string, m map[string]V) (map[netip.Addr]V, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[netip.Addr]V, len(m))
	for s, v := range m {
		addr, err := addrKey(key, field+"["+strconv.Quote(s)+"]", s, out)
		if err != nil {
			return nil, err
		}
		out[addr] = v
	}
	return out, nil
}

// DecodeClusterService decodes and validates the ClusterService stored at
// key (a state or cache services key) read from the cluster from. It checks
// that "cluster", "namespace" and "name" match the key, the key's cluster
// and "clusterID" match from, and that every frontend, backend, hostname
// and zone is keyed by an IP address with known port protocols. Errors are
// *Error as for DecodeNode.
func DecodeClusterService(key string, value []byte, from Origin) (*ClusterService, error) {
	if err := from.Validate(); err != nil {
		return nil, originErr(key, err)
	}
	k, err := ParseKey(key)
	if err != nil {
		return nil, err
	}
	if k.Kind != KindService {
		return nil, errKey(key, "not a services key")
	}
	if err := from.checkCluster(key, "", k.Cluster); err != nil {
		return nil, err
	}
	var w wireClusterService
	if err := decodeJSON(key, value, &w); err != nil {
		return nil, err
	}
	if err := checkNamespacedValue(key, k, w.Cluster, w.Namespace, w.Name); err != nil {
		return nil, err
	}
	if err := from.checkClusterID(key, "clusterID", w.ClusterID); err != nil {
		return nil, err
	}
	s := &ClusterService{
		Cluster:         w.Cluster,
		Namespace:       w.Namespace,
		Name:            w.Name,
		Labels:          w.Labels,
		Selector:        w.Selector,
		IncludeExternal: w.IncludeExternal,
		Shared:          w.Shared,
		ClusterID:       identity.ClusterID(w.ClusterID),
	}
	if s.Frontends, err = portsField(key, "frontends", w.Frontends); err != nil {
		return nil, err
	}
	if s.Backends, err = portsField(key, "backends", w.Backends); err != nil {
		return nil, err
	}
	if s.Hostnames, err = addrMapField(key, "hostnames", w.Hostnames); err != nil {
		return nil, err
	}
	if s.Zones, err = addrMapField(key, "zones", w.Zones); err != nil {
		return nil, err
	}
	return s, nil
}

// checkNamespacedValue checks the lowercase cluster/namespace/name fields
// shared by services and service exports against the key.
func checkNamespacedValue(key string, k Key, cluster, namespace, name string) error {
	if cluster != k.Cluster {
		return mismatch(key, "cluster", ErrClusterMismatch, cluster, "cluster", k.Cluster, "key")
	}
	if namespace != k.Namespace {
		return mismatch(key, "namespace", ErrKeyMismatch, namespace, "namespace", k.Namespace, "key")
	}
	if name != k.Name {
		return mismatch(key, "name", ErrKeyMismatch, name, "name", k.Name, "key")
	}
	return nil
}
