package schema

import (
	"encoding/json"
	"strconv"

	"github.com/strait-net/strait/identity"
)

// EndpointSlicesExportMode says whether a cluster exports legacy services,
// endpoint slices, or both.
type EndpointSlicesExportMode string

// Export modes. The empty mode is an older cluster: services only.
const (
	ExportServicesOnly              EndpointSlicesExportMode = ""
	ExportServicesAndEndpointSlices EndpointSlicesExportMode = "services-and-endpointslices"
	ExportEndpointSlicesOnly        EndpointSlicesExportMode = "endpointslices-only"
)

// Capabilities is what a cluster advertises in its config.
type Capabilities struct {
	// SyncedCanaries: the cluster writes per-prefix sync canaries; consumers
	// start a prefix only once its canary exists.
	SyncedCanaries bool `json:"syncedCanaries,omitempty"`
	// Cached: the cluster's data is a KVStoreMesh copy under cilium/cache/.
	Cached bool `json:"cached,omitempty"`
	// MaxConnectedClusters is 255 or 511; 0 when not advertised (older
	// clusters, meaning 255).
	MaxConnectedClusters identity.ClusterMax `json:"maxConnectedClusters,omitempty"`
	// ServiceExportsEnabled is nil when the cluster does not support
	// MCS-API exports at all, else whether it has them enabled.
	ServiceExportsEnabled    *bool                    `json:"serviceExportsEnabled,omitempty"`
	EndpointSlicesExportMode EndpointSlicesExportMode `json:"endpointSlicesExportMode,omitempty"`
}

// ClusterConfig is a cluster's CiliumClusterConfig, stored at
// cilium/cluster-config/<cluster>, e.g.
// {"id":3,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255,"serviceExportsEnabled":false}}.
type ClusterConfig struct {
	// Cluster is the cluster the config belongs to. It is not part of the
	// value: DecodeClusterConfig fills it from the key and Key uses it.
	Cluster      string             `json:"-"`
	ID           identity.ClusterID `json:"id,omitempty"`
	Capabilities Capabilities       `json:"capabilities"`
}

// Key is cilium/cluster-config/<Cluster>.
func (c *ClusterConfig) Key() string { return ClusterConfigKey(c.Cluster) }

// Marshal encodes c exactly as Cilium does.
func (c *ClusterConfig) Marshal() ([]byte, error) { return json.Marshal(c) }

// DecodeClusterConfig decodes and validates the config stored at key
// (cilium/cluster-config/<cluster>) read from the cluster from, the checks
// of Cilium's ValidateRemoteConfig plus ours:
//
//   - the key's cluster is from.Cluster and a valid, non-"default" name;
//   - "id" is in 1..from.Max (our max-connected-clusters), and equals
//     from.ClusterID unless that is 0 (not known yet);
//   - "maxConnectedClusters", when set, is 255 or 511, and equals from.Max
//     when we run the extended 511 mode (ErrIncompatibleConfig);
//   - "endpointSlicesExportMode" is a known mode (ErrIncompatibleConfig).
//
// Errors are *Error naming key and field.
func DecodeClusterConfig(key string, value []byte, from Origin) (*ClusterConfig, error) {
	if err := from.validate(true); err != nil {
		return nil, originErr(key, err)
	}
	k, err := ParseKey(key)
	if err != nil {
		return nil, err
	}
	if k.Kind != KindClusterConfig {
		return nil, errKey(key, "not a cluster-config key")
	}
	if err := from.checkCluster(key, "", k.Cluster); err != nil {
		return nil, err
	}
	var w struct {
		ID           int64 `json:"id"`
		Capabilities struct {
			SyncedCanaries           bool   `json:"syncedCanaries"`
			Cached                   bool   `json:"cached"`
			MaxConnectedClusters     int64  `json:"maxConnectedClusters"`
			ServiceExportsEnabled    *bool  `json:"serviceExportsEnabled"`
			EndpointSlicesExportMode string `json:"endpointSlicesExportMode"`
		} `json:"capabilities"`
	}
	if err := decodeJSON(key, value, &w); err != nil {
		return nil, err
	}
	idStr := strconv.FormatInt(w.ID, 10)
	if w.ID < 0 || w.ID > int64(from.Max) {
		return nil, errCause(key, "id", ErrInvalidValue, identity.ErrInvalidClusterID, "cluster ID "+idStr+" is not in 1.."+strconv.Itoa(int(from.Max)))
	}
	id := identity.ClusterID(w.ID)
	if err := id.Validate(from.Max); err != nil {
		return nil, errCause(key, "id", ErrInvalidValue, err, "cluster ID "+idStr+" is not in 1.."+strconv.Itoa(int(from.Max)))
	}
	if from.ClusterID != 0 && id != from.ClusterID {
		return nil, errField(key, "id", ErrClusterMismatch, "value "+idStr+" does not match cluster ID "+strconv.Itoa(int(from.ClusterID))+" of the connection to "+strconv.Quote(from.Cluster))
	}
	if err := ValidateClusterName(k.Cluster, id); err != nil {
		return nil, errCause(key, "", ErrInvalidKey, err, err.Error())
	}
	max := w.Capabilities.MaxConnectedClusters
	if max != 0 {
		if max < 0 || max > int64(identity.ClusterMax511) || identity.ClusterMax(max).Validate() != nil {
			return nil, errCause(key, "capabilities.maxConnectedClusters", ErrInvalidValue, identity.ErrInvalidClusterMax, "value "+strconv.FormatInt(max, 10)+" is not 255 or 511")
		}
	}
	if from.Max != identity.ClusterMax255 && max != int64(from.Max) {
		return nil, errField(key, "capabilities.maxConnectedClusters", ErrIncompatibleConfig,
			"value "+strconv.FormatInt(max, 10)+" does not match our max-connected-clusters "+strconv.Itoa(int(from.Max)))
	}
	mode := EndpointSlicesExportMode(w.Capabilities.EndpointSlicesExportMode)
	switch mode {
	case ExportServicesOnly, ExportServicesAndEndpointSlices, ExportEndpointSlicesOnly:
	default:
		return nil, errField(key, "capabilities.endpointSlicesExportMode", ErrIncompatibleConfig, "unknown mode "+strconv.Quote(string(mode)))
	}
	return &ClusterConfig{
		Cluster: k.Cluster,
		ID:      id,
		Capabilities: Capabilities{
			SyncedCanaries:           w.Capabilities.SyncedCanaries,
			Cached:                   w.Capabilities.Cached,
			MaxConnectedClusters:     identity.ClusterMax(max),
			ServiceExportsEnabled:    w.Capabilities.ServiceExportsEnabled,
			EndpointSlicesExportMode: mode,
		},
	}, nil
}
