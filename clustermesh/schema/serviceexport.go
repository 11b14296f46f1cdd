package schema

import (
	"encoding/json"
	"strconv"
	"time"
)

// ServiceExportType is the MCS-API ServiceImport type of an export.
type ServiceExportType string

// Export types Cilium writes.
const (
	ServiceExportClusterSetIP ServiceExportType = "ClusterSetIP"
	ServiceExportHeadless     ServiceExportType = "Headless"
)

// Session affinities of an export. Cilium writes "" for a Service that
// leaves spec.sessionAffinity unset (seen for headless services).
const (
	SessionAffinityNone     = "None"
	SessionAffinityClientIP = "ClientIP"
)

// ServicePort is a port of an exported service (MCS-API ServicePort).
type ServicePort struct {
	Name        string  `json:"name,omitempty"`
	Protocol    string  `json:"protocol,omitempty"`
	AppProtocol *string `json:"appProtocol,omitempty"`
	Port        int32   `json:"port"`
}

// SessionAffinityConfig is Kubernetes' SessionAffinityConfig.
type SessionAffinityConfig struct {
	ClientIP *ClientIPConfig `json:"clientIP,omitempty"`
}

// ClientIPConfig is Kubernetes' ClientIPConfig.
type ClientIPConfig struct {
	TimeoutSeconds *int32 `json:"timeoutSeconds,omitempty"`
}

// ServiceExport is an MCS-API service export of a cluster, stored at
// cilium/state/serviceexports/v1/<cluster>/<namespace>/<name> as Cilium's
// MCSAPIServiceSpec JSON.
type ServiceExport struct {
	Cluster     string
	Name        string
	Namespace   string
	Annotations map[string]string
	Labels      map[string]string
	// ExportCreationTimestamp decides conflicts (oldest export wins). It
	// travels with one-second precision in UTC, like metav1.Time.
	ExportCreationTimestamp time.Time
	Ports                   []ServicePort
	Type                    ServiceExportType
	SessionAffinity         string
	SessionAffinityConfig   *SessionAffinityConfig
}

type wireServiceExport struct {
	Cluster     string            `json:"cluster"`
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// Some Cilium versions also write capitalised copies of labels and
	// annotations; they are read when the lowercase ones are missing and
	// never written.
	LegacyLabels            map[string]string      `json:"Labels,omitempty"`
	LegacyAnnotations       map[string]string      `json:"Annotations,omitempty"`
	ExportCreationTimestamp *string                `json:"exportCreationTimestamp"`
	Ports                   []ServicePort          `json:"ports"`
	Type                    string                 `json:"type"`
	SessionAffinity         string                 `json:"sessionAffinity"`
	SessionAffinityConfig   *SessionAffinityConfig `json:"sessionAffinityConfig,omitempty"`
}

// Key is the state key of e.
func (e *ServiceExport) Key() string { return ServiceExportKey(e.Cluster, e.Namespace, e.Name) }

// Marshal encodes e as Cilium does.
func (e *ServiceExport) Marshal() ([]byte, error) {
	w := wireServiceExport{
		Cluster:               e.Cluster,
		Name:                  e.Name,
		Namespace:             e.Namespace,
		Annotations:           e.Annotations,
		Labels:                e.Labels,
		Ports:                 e.Ports,
		Type:                  string(e.Type),
		SessionAffinity:       e.SessionAffinity,
		SessionAffinityConfig: e.SessionAffinityConfig,
	}
	if !e.ExportCreationTimestamp.IsZero() {
		ts := e.ExportCreationTimestamp.UTC().Format(time.RFC3339)
		w.ExportCreationTimestamp = &ts
	}
	return json.Marshal(&w)
}

// DecodeServiceExport decodes and validates the export stored at key (a
// state or cache serviceexports key) read from the cluster from. It checks
// "cluster", "namespace" and "name" against the key and from, requires an
// RFC 3339 "exportCreationTimestamp", a "type" of ClusterSetIP or Headless,
// a "sessionAffinity" of "", None or ClientIP, and ports in 1..65535.
// Errors are *Error as for DecodeNode.
func DecodeServiceExport(key string, value []byte, from Origin) (*ServiceExport, error) {
	if err := from.Validate(); err != nil {
		return nil, originErr(key, err)
	}
	k, err := ParseKey(key)
	if err != nil {
		return nil, err
	}
	if k.Kind != KindServiceExport {
		return nil, errKey(key, "not a serviceexports key")
	}
	if err := from.checkCluster(key, "", k.Cluster); err != nil {
		return nil, err
	}
	var w wireServiceExport
	if err := decodeJSON(key, value, &w); err != nil {
		return nil, err
	}
	if err := checkNamespacedValue(key, k, w.Cluster, w.Namespace, w.Name); err != nil {
		return nil, err
	}
	e := &ServiceExport{
		Cluster:               w.Cluster,
		Name:                  w.Name,
		Namespace:             w.Namespace,
		Annotations:           w.Annotations,
		Labels:                w.Labels,
		Ports:                 w.Ports,
		Type:                  ServiceExportType(w.Type),
		SessionAffinity:       w.SessionAffinity,
		SessionAffinityConfig: w.SessionAffinityConfig,
	}
	if e.Annotations == nil {
		e.Annotations = w.LegacyAnnotations
	}
	if e.Labels == nil {
		e.Labels = w.LegacyLabels
	}
	// omitempty on the wire: an empty map is written as no map.
	if len(e.Annotations) == 0 {
		e.Annotations = nil
	}
	if len(e.Labels) == 0 {
		e.Labels = nil
	}
	if w.ExportCreationTimestamp == nil || *w.ExportCreationTimestamp == "" {
		return nil, errField(key, "exportCreationTimestamp", ErrInvalidValue, "must be set")
	}
	ts, err := time.Parse(time.RFC3339, *w.ExportCreationTimestamp)
	if err != nil {
		return nil, errCause(key, "exportCreationTimestamp", ErrInvalidValue, err, "value "+strconv.Quote(*w.ExportCreationTimestamp)+" is not an RFC 3339 time")
	}
	e.ExportCreationTimestamp = ts.Truncate(time.Second).UTC()
	if e.ExportCreationTimestamp.Year() < 1 || e.ExportCreationTimestamp.Year() > 9999 {
		return nil, errField(key, "exportCreationTimestamp", ErrInvalidValue, "value "+strconv.Quote(*w.ExportCreationTimestamp)+" is out of range")
	}
	switch e.Type {
	case ServiceExportClusterSetIP, ServiceExportHeadless:
	default:
		return nil, errField(key, "type", ErrInvalidValue, "unknown type "+strconv.Quote(w.Type))
	}
	switch e.SessionAffinity {
	case "", SessionAffinityNone, SessionAffinityClientIP:
	default:
		return nil, errField(key, "sessionAffinity", ErrInvalidValue, "unknown session affinity "+strconv.Quote(w.SessionAffinity))
	}
	for i, p := range e.Ports {
		if p.Port < 1 || p.Port > 65535 {
			return nil, errField(key, "ports["+strconv.Itoa(i)+"].port", ErrInvalidValue, "port "+strconv.Itoa(int(p.Port))+" is not in 1..65535")
		}
	}
	return e, nil
}
