package meshstate

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the mesh state's Prometheus metrics:
//
//	strait_meshstate_entries{cluster,kind}                   entries held
//	strait_meshstate_remote_clusters                         remote clusters followed (config present)
//	strait_meshstate_remote_clusters_ready                   of those, fully synced
//	strait_meshstate_invalid_entries_total{cluster,kind,reason}  entries (and configs, kind "cluster-config") rejected
//	strait_meshstate_event_processing_seconds{kind}          from receiving an etcd event to having
//	                                                         decoded, stored and delivered it to every subscriber
//
// The last one measures this process only, not the time since the remote
// cluster wrote the entry: neither Cilium's values nor KVStoreMesh's copies
// carry a write time, and clocks of different clusters are not comparable.
type Metrics struct {
	entries    *prometheus.GaugeVec
	clusters   prometheus.Gauge
	ready      prometheus.Gauge
	invalid    *prometheus.CounterVec
	processing *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them on reg. Errors come
// from reg.Register.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := newMetrics()
	for _, c := range []prometheus.Collector{m.entries, m.clusters, m.ready, m.invalid, m.processing} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func newMetrics() *Metrics {
	const ns, sub = "strait", "meshstate"
	return &Metrics{
		entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "entries",
			Help: "Validated entries held per remote cluster and kind.",
		}, []string{"cluster", "kind"}),
		clusters: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "remote_clusters",
			Help: "Remote clusters followed (their cached config is present).",
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "remote_clusters_ready",
			Help: "Remote clusters followed whose every kind has synced.",
		}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "invalid_entries_total",
			Help: "Remote entries and cluster configs rejected by validation, by reason.",
		}, []string{"cluster", "kind", "reason"}),
		processing: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "event_processing_seconds",
			Help:    "Time from receiving an etcd event to its delivery to every subscriber.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
		}, []string{"kind"}),
	}
}
