package publish

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the publishers' Prometheus metrics:
//
//	strait_publish_entries{kind}          entries currently desired
//	strait_publish_rejected_total{kind}   entries refused by validation
//
// kind is "nodes", "ip" or "services". One Metrics may be shared by the
// publishers of one process.
type Metrics struct {
	entries  *prometheus.GaugeVec
	rejected *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg. Errors come
// from reg.Register (e.g. registered twice).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := newMetrics()
	for _, c := range []prometheus.Collector{m.entries, m.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func newMetrics() *Metrics {
	return &Metrics{
		entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "strait", Subsystem: "publish", Name: "entries",
			Help: "Entries this process publishes to its cluster's etcd, by kind.",
		}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strait", Subsystem: "publish", Name: "rejected_total",
			Help: "Entries refused by validation before publishing, by kind.",
		}, []string{"kind"}),
	}
}
