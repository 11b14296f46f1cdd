package globalsvc

import (
	"fmt"
	"maps"
	"net/netip"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// Cluster names the local cluster.
type Cluster struct {
	Name string
	ID   identity.ClusterID
}

// State is the load-balancing state of a backend, as Cilium's
// loadbalancer.BackendState. Only active backends get new connections.
type State uint8

const (
	// StateActive: the backend takes new connections (the zero value).
	StateActive State = iota
	// StateTerminating: the backend is going away; existing connections
	// drain, new ones go elsewhere.
	StateTerminating
	// StateQuarantined: the backend failed health checks.
	StateQuarantined
	// StateMaintenance: the backend is taken out by an operator.
	StateMaintenance
)

// String returns the lowercase name of s.
func (s State) String() string {
	switch s {
	case StateActive:
		return "active"
	case StateTerminating:
		return "terminating"
	case StateQuarantined:
		return "quarantined"
	case StateMaintenance:
		return "maintenance"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// LocalBackend is one backend address of a local service.
type LocalBackend struct {
	// Ports maps the service's port names to the backend's L4 address.
	// Several names may map to the same L4 address (several service ports
	// with one targetPort, Cilium #45109).
	Ports schema.PortConfiguration
	// State is the backend's load-balancing state.
	State State
	// Unhealthy: a health check failed. Unhealthy backends are never
	// selected and never exported, whatever their State.
	Unhealthy bool
	// Hostname and Zone are exported as the ClusterService's hostnames
	// and zones when set.
	Hostname string
	Zone     *schema.BackendZone
}

// LocalService is a Service of the local cluster with its backends, as the
// Kubernetes source (or a test) sees it.
type LocalService struct {
	Namespace, Name string
	// Annotations of the Service; see ParseAnnotations.
	Annotations map[string]string
	// Frontends maps each service IP to the service's ports.
	Frontends map[netip.Addr]schema.PortConfiguration
	// Backends maps each backend IP to its ports and state.
	Backends map[netip.Addr]LocalBackend
	// Labels and Selector are exported as they are.
	Labels, Selector map[string]string
}

func (s *LocalService) validate() error {
	if s.Namespace == "" || s.Name == "" {
		return fmt.Errorf("%w: local service %q/%q lacks its namespace or name", ErrInvalidService, s.Namespace, s.Name)
	}
	return nil
}

// Publish returns the ClusterService to store under
// cilium/state/services/v1/<cluster>/<namespace>/<name> for svc, or nil when
// svc must not be published: it is not global, or it is global but not
// shared (a publisher then deletes any key it wrote before). The error is
// ErrInvalidService for a service without namespace or name (and the
// result is nil), or the joined *AnnotationErrors of ParseAnnotations (and
// the result follows the fallbacks they name).
//
// Only backends that are active and healthy are exported: the wire format
// has no backend state, so a remote cluster would send new connections to
// anything it receives. Frontends, backends, labels and selector are
// written as empty objects rather than null when empty, as Cilium does. The
// result shares no map with svc.
func Publish(local Cluster, svc LocalService) (*schema.ClusterService, error) {
	if err := svc.validate(); err != nil {
		return nil, err
	}
	cfg, err := ParseAnnotations(svc.Namespace, svc.Name, svc.Annotations)
	if !cfg.Global || !cfg.Shared {
		return nil, err
	}
	out := &schema.ClusterService{
		Cluster:         local.Name,
		Namespace:       svc.Namespace,
		Name:            svc.Name,
		Frontends:       make(map[netip.Addr]schema.PortConfiguration, len(svc.Frontends)),
		Backends:        make(map[netip.Addr]schema.PortConfiguration, len(svc.Backends)),
		Labels:          make(map[string]string, len(svc.Labels)),
		Selector:        make(map[string]string, len(svc.Selector)),
		IncludeExternal: true,
		Shared:          true,
		ClusterID:       local.ID,
	}
	for addr, pc := range svc.Frontends {
		out.Frontends[addr] = copyPorts(pc)
	}
	for addr, b := range svc.Backends {
		if b.State != StateActive || b.Unhealthy {
			continue
		}
		out.Backends[addr] = copyPorts(b.Ports)
		if b.Hostname != "" {
			if out.Hostnames == nil {
				out.Hostnames = make(map[netip.Addr]string)
			}
			out.Hostnames[addr] = b.Hostname
		}
		if b.Zone != nil {
			if out.Zones == nil {
				out.Zones = make(map[netip.Addr]schema.BackendZone)
			}
			z := *b.Zone
			if z.ForZones != nil {
				z.ForZones = append([]schema.ForZone(nil), z.ForZones...)
			}
			out.Zones[addr] = z
		}
	}
	maps.Copy(out.Labels, svc.Labels)
	maps.Copy(out.Selector, svc.Selector)
	return out, err
}

func copyPorts(pc schema.PortConfiguration) schema.PortConfiguration {
	if pc == nil {
		return schema.PortConfiguration{}
	}
	return maps.Clone(pc)
}
