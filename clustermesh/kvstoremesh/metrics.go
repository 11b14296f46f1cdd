package kvstoremesh

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reason classifies a failure, in Status.Reason and in the "reason" label
// of the failures counter.
type Reason string

// Failure reasons.
const (
	// ReasonNone: no failure.
	ReasonNone Reason = ""
	// ReasonInvalidConfigFile: the watcher reported the cluster's file as
	// invalid; the last good config stays in use.
	ReasonInvalidConfigFile Reason = "invalid_config_file"
	// ReasonConnectError: connecting to the remote etcd failed.
	ReasonConnectError Reason = "connect_error"
	// ReasonUnreachable: the remote etcd stopped answering after the
	// connection was made; cached data is kept.
	ReasonUnreachable Reason = "unreachable"
	// ReasonMissingConfig: the remote has no cilium/cluster-config/<name>.
	ReasonMissingConfig Reason = "missing_config"
	// ReasonInvalidConfig: the remote cluster config failed validation
	// (ID out of range, different max-connected-clusters, ...).
	ReasonInvalidConfig Reason = "invalid_config"
	// ReasonConfigClash: the remote's cluster ID (or name) is the local
	// cluster's or another connected remote's.
	ReasonConfigClash Reason = "config_clash"
	// ReasonInvalidEntry: a remote entry failed validation and was skipped.
	ReasonInvalidEntry Reason = "invalid_entry"
	// ReasonLocalWrite: writing or deleting in the local etcd failed (and
	// is retried).
	ReasonLocalWrite Reason = "local_write"
)

// Metrics are the Prometheus metrics of a Mesh. Build them with NewMetrics;
// one Metrics serves one Mesh.
type Metrics struct {
	// Configured, Connected and Ready count remote clusters: configured
	// (in the config directory), connected (the last probe of the remote
	// etcd succeeded), ready (every prefix finished its initial sync).
	Configured prometheus.Gauge
	Connected  prometheus.Gauge
	Ready      prometheus.Gauge
	// Entries is the number of cached entries per cluster and kind.
	Entries *prometheus.GaugeVec
	// Failures counts failures per cluster and Reason.
	Failures *prometheus.CounterVec
	// SyncSeconds observes, per kind, the time from starting a prefix
	// (remote canary seen, or connection made without canaries) to its
	// local initial sync being complete: every entry written, stale
	// entries pruned, local canary written. It is the bootstrap latency of
	// a remote cluster's data in the local etcd.
	SyncSeconds *prometheus.HistogramVec
}

// Metric names.
const (
	metricNamespace = "strait"
	metricSubsystem = "kvstoremesh"
)

// NewMetrics builds the metrics and registers them on reg. A nil reg
// registers nothing (the metrics still count). Errors come from
// reg.Register (e.g. a name already registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: metricNamespace, Subsystem: metricSubsystem, Name: name, Help: help})
	}
	m := &Metrics{
		Configured: gauge("remote_clusters", "Remote clusters configured."),
		Connected:  gauge("remote_clusters_connected", "Remote clusters whose etcd answered the last probe."),
		Ready:      gauge("remote_clusters_ready", "Remote clusters whose every prefix finished its initial sync."),
		Entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: "entries",
			Help: "Cached entries per remote cluster and kind.",
		}, []string{"cluster", "kind"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: "failures_total",
			Help: "Failures per remote cluster and reason.",
		}, []string{"cluster", "reason"}),
		SyncSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: "initial_sync_seconds",
			Help:    "Time from starting to mirror a remote prefix to its complete local copy.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}, []string{"kind"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.Configured, m.Connected, m.Ready, m.Entries, m.Failures, m.SyncSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register kvstoremesh metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) fail(cluster string, r Reason) {
	m.Failures.WithLabelValues(cluster, string(r)).Inc()
}
