package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the agent's Prometheus metrics:
//
//	strait_agent_peers                        desired WireGuard peers (accepted nodes)
//	strait_agent_routes                       desired routes into the WireGuard device
//	strait_agent_problems                     entries refused (see Status.Problems)
//	strait_agent_endpoints                    local endpoints (pods) published
//	strait_agent_reconcile_errors_total{kind} failed reconciliations, kind peers|routes
type metrics struct {
	peers, routes, problems, endpoints prometheus.Gauge
	reconcileErrors                    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		peers:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "strait_agent_peers", Help: "Desired WireGuard peers (accepted nodes)."}),
		routes:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "strait_agent_routes", Help: "Desired routes into the WireGuard device."}),
		problems:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "strait_agent_problems", Help: "Entries refused by the agent (nodes without or with bad keys, conflicts)."}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strait_agent_endpoints", Help: "Local endpoints published."}),
		reconcileErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strait_agent_reconcile_errors_total", Help: "Failed datapath reconciliations, by kind (peers, routes).",
		}, []string{"kind"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.peers, m.routes, m.problems, m.endpoints, m.reconcileErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
