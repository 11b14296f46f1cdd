package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"
)

// clusterConfigPrefix holds cilium/cluster-config/<cluster> keys.
const clusterConfigPrefix = "cilium/cluster-config/"

// upApiserver generates certificates and starts cluster c's apiserver.
func (l *Lab) upApiserver(ctx context.Context, c Cluster) error {
	if err := mkdirs(c.Dir, c.MeshDir, filepath.Join(c.Dir, "etcd")); err != nil {
		return err
	}
	bin := filepath.Join(l.spec.BinDir, "strait-apiserver")
	if err := runCmd(ctx, bin, "certs", "generate", "--cluster-name", c.Name, "--out", c.CertDir, "--hosts", c.APIAddr.String()); err != nil {
		return fmt.Errorf("certificates of %s: %w", c.Name, err)
	}
	if err := l.writeContext(c); err != nil {
		return err
	}
	return l.ApiserverStart(ctx, c)
}

// ApiserverStart starts cluster c's strait-apiserver (again) and waits
// until it serves its cluster config.
func (l *Lab) ApiserverStart(ctx context.Context, c Cluster) error {
	l.mu.Lock()
	if p := l.apiservers[c.ID]; p != nil && p.running() {
		l.mu.Unlock()
		return fmt.Errorf("apiserver of %s: already running", c.Name)
	}
	l.mu.Unlock()
	bin := filepath.Join(l.spec.BinDir, "strait-apiserver")
	pidPath := filepath.Join(c.Dir, "apiserver.pid")
	if err := l.rec.addPidFile(pidPath, "strait-apiserver"); err != nil {
		return err
	}
	p, err := startProcess("apiserver of "+c.Name, "strait-apiserver", filepath.Join(c.Dir, "apiserver.log"), pidPath, nil,
		"ip", "netns", "exec", c.Netns, bin, "--log-level", l.spec.LogLevel, "run",
		"--cluster-name", c.Name,
		"--cluster-id", strconv.Itoa(c.ID),
		"--cert-dir", c.CertDir,
		"--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", c.Endpoint,
		"--clustermesh-config", c.MeshDir,
		"--cluster-removal-grace", "10s",
	)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.apiservers[c.ID] = p
	l.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cli, err := etcdClient(c)
	if err != nil {
		return err
	}
	defer cli.Close()
	err = waitFor(wctx, 200*time.Millisecond, "apiserver of "+c.Name+" ready", func(ctx context.Context) (bool, string, error) {
		if !p.running() {
			return false, "", p.exitErr()
		}
		keys, err := etcdKeys(ctx, cli, clusterConfigPrefix+c.Name)
		if err != nil {
			return false, err.Error(), nil
		}
		return slices.Contains(keys, clusterConfigPrefix+c.Name), fmt.Sprintf("keys %v", keys), nil
	})
	if err != nil {
		return fmt.Errorf("%w; log %s:\n%s", err, p.logPath, logTail(p.logPath, 20))
	}
	return nil
}

// ApiserverStop stops cluster c's apiserver with SIGTERM.
func (l *Lab) ApiserverStop(ctx context.Context, c Cluster) error {
	l.mu.Lock()
	p := l.apiservers[c.ID]
	l.mu.Unlock()
	if p == nil {
		return fmt.Errorf("apiserver of %s: not started", c.Name)
	}
	return p.stop(syscall.SIGTERM, 15*time.Second)
}

// remoteConfig is one clustermesh/remoteconfig file.
type remoteConfig struct {
	Endpoints     []string `json:"endpoints"`
	TrustedCAFile string   `json:"trusted-ca-file"`
	CertFile      string   `json:"cert-file"`
	KeyFile       string   `json:"key-file"`
}

// connectPair writes into a's clustermesh config dir the files that make a's
// apiserver cache b, laid out as straitctl connect does: b's CA and b's
// remote.crt/key copied beside the config file named after b.
func connectPair(a, b Cluster) error {
	files := []struct{ src, dst string }{
		{filepath.Join(b.CertDir, "ca.crt"), b.Name + ".etcd-client-ca.crt"},
		{filepath.Join(b.CertDir, "remote.crt"), b.Name + ".etcd-client.crt"},
		{filepath.Join(b.CertDir, "remote.key"), b.Name + ".etcd-client.key"},
	}
	for _, f := range files {
		if err := copyFile(f.src, filepath.Join(a.MeshDir, f.dst), 0o600); err != nil {
			return fmt.Errorf("connect %s to %s: %w", a.Name, b.Name, err)
		}
	}
	out, err := yaml.Marshal(remoteConfig{
		Endpoints:     []string{b.Endpoint},
		TrustedCAFile: files[0].dst,
		CertFile:      files[1].dst,
		KeyFile:       files[2].dst,
	})
	if err != nil {
		return fmt.Errorf("connect %s to %s: %w", a.Name, b.Name, err)
	}
	// Written last and atomically: the watcher sees a complete config.
	tmp := filepath.Join(a.MeshDir, "."+b.Name+".tmp")
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return fmt.Errorf("connect %s to %s: %w", a.Name, b.Name, err)
	}
	if err := os.Rename(tmp, filepath.Join(a.MeshDir, b.Name)); err != nil {
		return fmt.Errorf("connect %s to %s: %w", a.Name, b.Name, err)
	}
	return nil
}

// ConnectAll connects every cluster with every other one and waits until
// each cluster's etcd caches every remote's cluster config.
func (l *Lab) ConnectAll(ctx context.Context) error {
	for _, a := range l.clusters {
		for _, b := range l.clusters {
			if a.ID != b.ID {
				if err := connectPair(a, b); err != nil {
					return err
				}
			}
		}
	}
	return l.WaitConnected(ctx)
}

// WaitConnected waits until every cluster's etcd holds
// cilium/cluster-config/<remote> of every other cluster (the apiserver's
// cache of each remote is up).
func (l *Lab) WaitConnected(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, a := range l.clusters {
		cli, err := etcdClient(a)
		if err != nil {
			return err
		}
		err = waitFor(wctx, 250*time.Millisecond, "cluster "+a.Name+" caching its remotes", func(ctx context.Context) (bool, string, error) {
			keys, err := etcdKeys(ctx, cli, clusterConfigPrefix)
			if err != nil {
				return false, err.Error(), nil
			}
			for _, b := range l.clusters {
				if !slices.Contains(keys, clusterConfigPrefix+b.Name) {
					return false, fmt.Sprintf("keys %v", keys), nil
				}
			}
			return true, "", nil
		})
		cli.Close()
		if err != nil {
			return fmt.Errorf("%w; log %s:\n%s", err, filepath.Join(a.Dir, "apiserver.log"), logTail(filepath.Join(a.Dir, "apiserver.log"), 20))
		}
	}
	return nil
}

// contextFile is the straitctl context (contract §9).
type contextFile struct {
	Cluster              string         `json:"cluster"`
	ID                   int            `json:"id"`
	MaxConnectedClusters int            `json:"maxConnectedClusters"`
	Endpoints            []string       `json:"endpoints"`
	CertDir              string         `json:"certDir"`
	ClustermeshConfigDir string         `json:"clustermeshConfigDir"`
	Agents               []contextAgent `json:"agents,omitempty"`
}

type contextAgent struct {
	Node   string `json:"node"`
	Socket string `json:"socket"`
}

// writeContext writes cluster c's straitctl context file.
func (l *Lab) writeContext(c Cluster) error {
	cf := contextFile{
		Cluster:              c.Name,
		ID:                   c.ID,
		MaxConnectedClusters: 255,
		Endpoints:            []string{c.Endpoint},
		CertDir:              "certs",
		ClustermeshConfigDir: "mesh",
	}
	for _, n := range l.nodes {
		if n.Cluster == c.ID {
			cf.Agents = append(cf.Agents, contextAgent{Node: n.Name, Socket: n.Socket})
		}
	}
	out, err := yaml.Marshal(cf)
	if err != nil {
		return fmt.Errorf("context of %s: %w", c.Name, err)
	}
	if err := os.WriteFile(c.ContextFile, out, 0o600); err != nil {
		return fmt.Errorf("context of %s: %w", c.Name, err)
	}
	return nil
}
