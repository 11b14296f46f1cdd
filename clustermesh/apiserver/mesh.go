package apiserver

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sync/errgroup"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/kvstoremesh"
	"github.com/strait-net/strait/clustermesh/remoteconfig"
)

// The remote-cluster cache (Cilium's KVStoreMesh) of a Server.
//
// With Config.ClusterMeshConfigDir set, Run starts, once the server is
// ready, a remoteconfig.Watcher on that directory driving a
// kvstoremesh.Mesh whose local client is the server's own admin client: every
// remote cluster's state is mirrored under cilium/cache/ of this cluster's
// etcd, with cilium/cluster-config/<remote> and the local canaries, all
// under the admin client's session lease. Both stop when Run's ctx ends,
// before the admin client is closed and etcd stopped.

// checkMeshConfigDir checks that dir, when set, is an existing directory.
func checkMeshConfigDir(dir string) error {
	if dir == "" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return &ConfigError{Field: "ClusterMeshConfigDir", Reason: err.Error(), Cause: err}
	}
	if !fi.IsDir() {
		return &ConfigError{Field: "ClusterMeshConfigDir", Reason: dir + " is not a directory", Cause: remoteconfig.ErrNotDirectory}
	}
	return nil
}

// runMesh runs the remote-cluster cache until ctx ends.
func (s *Server) runMesh(ctx context.Context, cli *kvstore.Client) error {
	m, err := kvstoremesh.New(s.log, kvstoremesh.Options{
		Local:        cli,
		ClusterName:  s.cfg.ClusterName,
		ClusterID:    s.cfg.ClusterID,
		ClusterMax:   s.cfg.Max,
		Metrics:      s.cfg.MeshMetrics,
		RemovalGrace: s.cfg.RemovalGrace,
	})
	if err != nil {
		return fmt.Errorf("apiserver: remote-cluster cache: %w", err)
	}
	w, err := remoteconfig.New(s.log, s.cfg.ClusterMeshConfigDir, m, remoteconfig.Options{})
	if err != nil {
		return fmt.Errorf("apiserver: watch %s: %w", s.cfg.ClusterMeshConfigDir, err)
	}
	s.mesh.Store(m)
	defer s.mesh.Store(nil)
	s.log.Info("remote-cluster cache started", logMeshConfigDir, s.cfg.ClusterMeshConfigDir)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := m.Run(gctx); err != nil {
			return fmt.Errorf("apiserver: remote-cluster cache: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := w.Run(gctx); err != nil {
			return fmt.Errorf("apiserver: watch %s: %w", s.cfg.ClusterMeshConfigDir, err)
		}
		return nil
	})
	err = g.Wait()
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// logMeshConfigDir is the log key of the remote-cluster config directory.
const logMeshConfigDir = "clustermeshConfig"

// RemoteStatuses returns the status of every remote cluster the cache knows,
// by name; nil when no remote-cluster cache runs (no ClusterMeshConfigDir,
// not ready yet, or stopped).
func (s *Server) RemoteStatuses() []kvstoremesh.Status {
	m := s.mesh.Load()
	if m == nil {
		return nil
	}
	return m.Statuses()
}

// RemoteStatus returns the status of one remote cluster; false when no
// cache runs or it does not know the cluster.
func (s *Server) RemoteStatus(name string) (kvstoremesh.Status, bool) {
	m := s.mesh.Load()
	if m == nil {
		return kvstoremesh.Status{}, false
	}
	return m.Status(name)
}
