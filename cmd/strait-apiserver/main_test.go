package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/clustermesh/certs"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
)

func execute(t *testing.T, ctx context.Context, out io.Writer, args ...string) error {
	t.Helper()
	cmd := newRootCommand(out, io.Discard)
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// TestFlagValidation: every bad flag gives an error naming it, before any
// file or socket is touched.
func TestFlagValidation(t *testing.T) {
	certDir := t.TempDir() // empty: the commands below must fail before reading it
	run := func(extra ...string) []string {
		args := []string{"run", "--cluster-name", "c1", "--cluster-id", "1", "--data-dir", filepath.Join(t.TempDir(), "d"), "--cert-dir", certDir}
		return append(args, extra...)
	}
	tests := []struct {
		name     string
		args     []string
		wantFlag string
	}{
		{"bad cluster name", run("--cluster-name", "Bad_Name"), "--cluster-name"},
		{"long cluster name", run("--cluster-name", strings.Repeat("a", 33)), "--cluster-name"},
		{"default name with ID", run("--cluster-name", "default"), "--cluster-name"},
		{"missing cluster name", []string{"run", "--cluster-id", "1", "--data-dir", "x", "--cert-dir", certDir}, "--cluster-name"},
		{"cluster ID 0", run("--cluster-id", "0"), "--cluster-id"},
		{"cluster ID above max", run("--cluster-id", "256"), "--cluster-id"},
		{"cluster ID not a number", run("--cluster-id", "one"), "--cluster-id"},
		{"cluster ID negative", run("--cluster-id", "-1"), "--cluster-id"},
		{"bad max", run("--max-connected-clusters", "300"), "--max-connected-clusters"},
		{"ID fits 511 but max 255", run("--cluster-id", "400"), "--cluster-id"},
		{"plain http listen URL", run("--listen-client-urls", "http://127.0.0.1:2379"), "--listen-client-urls"},
		{"peer URL without port", run("--listen-peer-url", "http://127.0.0.1"), "--listen-peer-url"},
		{"no data dir", []string{"run", "--cluster-name", "c1", "--cluster-id", "1", "--cert-dir", certDir}, "--data-dir"},
		{"no cert dir", []string{"run", "--cluster-name", "c1", "--cluster-id", "1", "--data-dir", "x"}, "--cert-dir"},
		{"external with data dir", run("--etcd-endpoints", "https://etcd:2379"), "--data-dir"},
		{"external plain http", []string{"run", "--cluster-name", "c1", "--cluster-id", "1", "--cert-dir", certDir, "--etcd-endpoints", "http://etcd:2379"}, "--etcd-endpoints"},
		{"negative heartbeat", run("--heartbeat-interval", "-1s"), "--heartbeat-interval"},
		{"bad log level", run("--log-level", "loud"), "--log-level"},
		{"cert dir without files", run(), "--cert-dir"},
		{"certs: bad cluster name", []string{"certs", "generate", "--cluster-name", "-x", "--out", t.TempDir()}, "--cluster-name"},
		{"certs: no out", []string{"certs", "generate", "--cluster-name", "c1"}, "--out"},
		{"certs: bad host", []string{"certs", "generate", "--cluster-name", "c1", "--out", t.TempDir(), "--hosts", "a b"}, "--hosts"},
		{"run-local: no dir", []string{"run-local"}, "--dir"},
		{"run-local: non-loopback", []string{"run-local", "--dir", t.TempDir(), "--client-addr", "0.0.0.0:2379"}, "--client-addr"},
		{"run-local: bad peer addr", []string{"run-local", "--dir", t.TempDir(), "--peer-addr", "nope"}, "--peer-addr"},
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
	entries, err := os.ReadDir(certDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("flag validation wrote into the cert dir: %v", entries)
	}
}

func TestCertsGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c1")
	var out bytes.Buffer
	if err := execute(t, context.Background(), &out, "certs", "generate", "--cluster-name", "c1", "--out", dir, "--hosts", "10.1.2.3,c1.example.org"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "wrote "); got != 10 {
		t.Errorf("wrote %d files:\n%s", got, out.String())
	}
	f := certs.FilesIn(dir)
	srv, err := certs.LoadCert(f.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"10.1.2.3", "c1.example.org", "c1.mesh.strait.io", "127.0.0.1"} {
		if err := srv.VerifyHostname(h); err != nil {
			t.Error(err)
		}
	}
	out.Reset()
	if err := execute(t, context.Background(), &out, "certs", "generate", "--cluster-name", "c1", "--out", dir, "--hosts", "10.1.2.3,c1.example.org"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "nothing written") {
		t.Errorf("second run: %s", out.String())
	}
}

// lineWriter hands each Write to a channel as well as keeping it.
type lineWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	ch  chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	select {
	case w.ch <- string(p):
	default: // only the first write is awaited
	}
	return len(p), nil
}

// TestRunLocal runs run-local on free ports, follows the printed
// instructions with the kvstore client, stops it, and runs it again on the
// same directory.
func TestRunLocal(t *testing.T) {
	dir := t.TempDir()
	// The second round asks for a busy client port and must fall back.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for round, clientAddr := range []string{"127.0.0.1:0", busy.Addr().String()} {
		ctx, cancel := context.WithCancel(context.Background())
		w := &lineWriter{ch: make(chan string, 1)}
		done := make(chan error, 1)
		go func() {
			done <- execute(t, ctx, w, "run-local", "--dir", dir, "--client-addr", clientAddr, "--peer-addr", "127.0.0.1:0")
		}()
		var printed string
		select {
		case printed = <-w.ch:
		case err := <-done:
			cancel()
			t.Fatalf("run-local returned before printing: %v", err)
		}

		ep := regexp.MustCompile(`--endpoints (\S+) `).FindStringSubmatch(printed)
		if ep == nil {
			t.Fatalf("no etcdctl line in:\n%s", printed)
		}
		if ep[1] == "https://"+busy.Addr().String() {
			t.Errorf("run-local printed the busy address %s", ep[1])
		}
		f := certs.FilesIn(filepath.Join(dir, "certs"))
		for _, want := range []string{
			"etcdctl --endpoints " + ep[1] + " --cacert " + f.CACert + " --cert " + f.AdminCert + " --key " + f.AdminKey + " get --prefix cilium/",
			`TrustedCAFile: "` + f.CACert + `"`,
		} {
			if !strings.Contains(printed, want) {
				t.Errorf("output lacks %q:\n%s", want, printed)
			}
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		c, err := kvstore.New(ctx, log, kvstore.Config{Endpoints: []string{ep[1]}, TrustedCAFile: f.CACert, CertFile: f.RemoteCert, KeyFile: f.RemoteKey})
		if err != nil {
			t.Fatal(err)
		}
		v, found, err := c.Get(ctx, schema.ClusterConfigKey("local"))
		if err != nil || !found {
			t.Fatalf("cluster config: found=%v err=%v", found, err)
		}
		want := `{"id":1,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255,"serviceExportsEnabled":false}}`
		if diff := cmp.Diff(want, string(v)); diff != "" {
			t.Errorf("cluster config (-want +got):\n%s", diff)
		}
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run-local round %d: %v", round, err)
		}
	}
	var names []string
	entries, err := os.ReadDir(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	wantNames := []string{"admin.crt", "admin.key", "ca.crt", "ca.key", "local.crt", "local.key", "remote.crt", "remote.key", "server.crt", "server.key"}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("cert dir (-want +got):\n%s", diff)
	}
}
