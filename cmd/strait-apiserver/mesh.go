package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/strait-net/strait/clustermesh/apiserver"
	"github.com/strait-net/strait/clustermesh/kvstoremesh"
)

// meshFlags are the remote-cluster cache and metrics flags of `run`.
type meshFlags struct {
	configDir    string
	removalGrace time.Duration
	metricsAddr  string
}

func (f *meshFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.configDir, "clustermesh-config", "", "remote-cluster config directory, one etcd client file per remote cluster, as Cilium's --clustermesh-config (empty: no remote clusters)")
	fl.DurationVar(&f.removalGrace, "cluster-removal-grace", kvstoremesh.DefaultRemovalGrace, "how long a removed remote cluster's cached data stays before it is deleted")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "host:port serving Prometheus metrics on /metrics (empty: off)")
}

// logMetricsAddr is the log key of the metrics listen address.
const logMetricsAddr = "metricsAddr"

// metricsShutdownTimeout bounds the graceful stop of the metrics server.
const metricsShutdownTimeout = 5 * time.Second

// runWithMetrics runs run; with addr set it first registers the Go and
// process collectors and the remote-cluster cache metrics (stored in
// cfg.MeshMetrics) on a new registry and serves it on addr/metrics until
// run returns. A listen failure names the flag.
func runWithMetrics(ctx context.Context, log *slog.Logger, addr string, cfg *apiserver.Config, run func(context.Context) error) error {
	if addr == "" {
		return run(ctx)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return fmt.Errorf("register go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return fmt.Errorf("register process collector: %w", err)
	}
	m, err := kvstoremesh.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("register remote-cluster cache metrics: %w", err)
	}
	cfg.MeshMetrics = m

	l, err := net.Listen("tcp", addr)
	if err != nil {
		return flagError("metrics-addr", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving metrics", logMetricsAddr, l.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve metrics on %s: %w", addr, err)
		}
		return nil
	})
	g.Go(func() error {
		err := run(gctx)
		sctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
		defer cancel()
		if serr := srv.Shutdown(sctx); serr != nil && err == nil {
			err = fmt.Errorf("stop metrics server: %w", serr)
		}
		return err
	})
	return g.Wait()
}
