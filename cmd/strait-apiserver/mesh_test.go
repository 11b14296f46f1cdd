package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strait-net/strait/clustermesh/certs"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestMeshFlagValidation: the remote-cluster cache and metrics flags are
// named in their errors.
func TestMeshFlagValidation(t *testing.T) {
	f, _, err := certs.WriteClusterDir(certs.ClusterDirOptions{Cluster: "c1", Dir: filepath.Join(t.TempDir(), "certs")})
	if err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	run := func(extra ...string) []string {
		args := []string{"run", "--cluster-name", "c1", "--cluster-id", "1", "--data-dir", filepath.Join(t.TempDir(), "d"), "--cert-dir", f.Dir}
		return append(args, extra...)
	}
	tests := []struct {
		name     string
		args     []string
		wantFlag string
	}{
		{"negative removal grace", run("--cluster-removal-grace", "-1s"), "--cluster-removal-grace"},
		{"missing clustermesh config dir", run("--clustermesh-config", filepath.Join(t.TempDir(), "absent")), "--clustermesh-config"},
		{"clustermesh config is a file", run("--clustermesh-config", f.CACert), "--clustermesh-config"},
		{"metrics address busy", run("--metrics-addr", busy.Addr().String()), "--metrics-addr"},
		{"metrics address invalid", run("--metrics-addr", "nope"), "--metrics-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := execute(t, context.Background(), io.Discard, tt.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.wantFlag) {
				t.Errorf("error %q does not name %s", err, tt.wantFlag)
			}
		})
	}
}

// TestMetricsServed: with --metrics-addr and --clustermesh-config, a
// running apiserver serves the remote-cluster cache's metrics, and stops
// cleanly while a remote is unreachable.
func TestMetricsServed(t *testing.T) {
	f, _, err := certs.WriteClusterDir(certs.ClusterDirOptions{Cluster: "c1", Dir: filepath.Join(t.TempDir(), "certs")})
	if err != nil {
		t.Fatal(err)
	}
	// One remote cluster, unreachable: the configured gauge shows that the
	// config watcher and the cache run (they start once the apiserver is
	// ready).
	meshDir := t.TempDir()
	remote := fmt.Sprintf("endpoints:\n- https://%s\ntrusted-ca-file: %s\n", freePort(t), f.CACert)
	if err := os.WriteFile(filepath.Join(meshDir, "c2"), []byte(remote), 0o600); err != nil {
		t.Fatal(err)
	}
	metricsAddr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- execute(t, ctx, io.Discard, "run", "--cluster-name", "c1", "--cluster-id", "1",
			"--data-dir", filepath.Join(t.TempDir(), "d"), "--cert-dir", f.Dir,
			"--listen-client-urls", "https://"+freePort(t), "--listen-peer-url", "http://"+freePort(t),
			"--clustermesh-config", meshDir, "--metrics-addr", metricsAddr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("run ended: %v", err)
		default:
		}
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(body)
			if strings.Contains(last, "strait_kvstoremesh_remote_clusters 1") && strings.Contains(last, "go_goroutines") {
				return
			}
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("metrics not served; last: %.500s", last)
}
