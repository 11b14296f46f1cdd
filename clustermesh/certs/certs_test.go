package certs

import (
	"bytes"
	"crypto/x509"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWriteClusterDirRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c1")
	now := time.Now()
	f, written, err := WriteClusterDir(ClusterDirOptions{Cluster: "c1", Dir: dir, Hosts: []string{"10.0.0.7", "apiserver.example.org"}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 10 {
		t.Errorf("wrote %d files, want 10: %v", len(written), written)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}

	ca, err := LoadCA(f.CACert, f.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := ca.Cert.Subject.CommonName; got != "strait-ca-c1" {
		t.Errorf("CA CN %q", got)
	}
	if len(ca.Cert.SubjectKeyId) == 0 {
		t.Error("CA has no SubjectKeyId")
	}
	if !ca.Cert.IsCA {
		t.Error("CA is not a CA")
	}

	tests := []struct {
		name      string
		cert, key string
		cn        string
		usage     x509.ExtKeyUsage
	}{
		{"server", f.ServerCert, f.ServerKey, "strait-apiserver-c1", x509.ExtKeyUsageServerAuth},
		{"admin", f.AdminCert, f.AdminKey, "admin-c1", x509.ExtKeyUsageClientAuth},
		{"local", f.LocalCert, f.LocalKey, "local-c1", x509.ExtKeyUsageClientAuth},
		{"remote", f.RemoteCert, f.RemoteKey, "remote", x509.ExtKeyUsageClientAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, err := LoadKeyPair(tt.cert, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if kp.Cert.Subject.CommonName != tt.cn {
				t.Errorf("CN %q, want %q", kp.Cert.Subject.CommonName, tt.cn)
			}
			if err := ca.Verify(kp.Cert, tt.usage, now); err != nil {
				t.Error(err)
			}
			if !bytes.Equal(kp.Cert.AuthorityKeyId, ca.Cert.SubjectKeyId) {
				t.Error("AuthorityKeyId does not name the CA")
			}
			checkMode(t, tt.key, 0o600)
			checkMode(t, tt.cert, 0o644)
		})
	}
	checkMode(t, f.CAKey, 0o600)

	srv, err := LoadCert(f.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"localhost", "c1.mesh.strait.io", "apiserver.example.org"}, srv.DNSNames); diff != "" {
		t.Errorf("server DNS SANs (-want +got):\n%s", diff)
	}
	var ips []string
	for _, ip := range srv.IPAddresses {
		ips = append(ips, ip.String())
	}
	if diff := cmp.Diff([]string{"127.0.0.1", "::1", "10.0.0.7"}, ips); diff != "" {
		t.Errorf("server IP SANs (-want +got):\n%s", diff)
	}
	if err := srv.VerifyHostname("c1.mesh.strait.io"); err != nil {
		t.Error(err)
	}
	if err := srv.VerifyHostname("c2.mesh.strait.io"); err == nil {
		t.Error("server certificate valid for another cluster's name")
	}

	// A client certificate of another CA does not verify.
	other, err := NewCA("c2", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := LoadCert(f.AdminCert)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Verify(admin, x509.ExtKeyUsageClientAuth, now); err == nil {
		t.Error("c1 admin certificate verified against c2's CA")
	}
	// A client certificate is not a server certificate.
	if err := ca.Verify(admin, x509.ExtKeyUsageServerAuth, now); err == nil {
		t.Error("client certificate verified for server auth")
	}
}

func checkMode(t *testing.T, file string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", file, got, want)
	}
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(data)
	}
	return out
}

func changed(before, after map[string]string) []string {
	var out []string
	for name, v := range after {
		if before[name] != v {
			out = append(out, name)
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			out = append(out, name+" (removed)")
		}
	}
	slices.Sort(out)
	return out
}

func TestWriteClusterDirIdempotent(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name    string
		mutate  func(t *testing.T, f Files)
		opts    func(o *ClusterDirOptions)
		changed []string
	}{
		{
			name:    "unchanged",
			changed: nil,
		},
		{
			name:    "missing leaf is reissued",
			mutate:  func(t *testing.T, f Files) { rm(t, f.LocalCert) },
			changed: []string{"local.crt", "local.key"},
		},
		{
			name:    "corrupt leaf is reissued",
			mutate:  func(t *testing.T, f Files) { write(t, f.RemoteKey, "garbage", 0o600) },
			changed: []string{"remote.crt", "remote.key"},
		},
		{
			name: "swapped key is reissued",
			mutate: func(t *testing.T, f Files) {
				data, err := os.ReadFile(f.LocalKey)
				if err != nil {
					t.Fatal(err)
				}
				write(t, f.AdminKey, string(data), 0o600)
			},
			changed: []string{"admin.crt", "admin.key"},
		},
		{
			name:    "world-readable key is reissued",
			mutate:  func(t *testing.T, f Files) { chmod(t, f.AdminKey, 0o644) },
			changed: []string{"admin.crt", "admin.key"},
		},
		{
			name:    "new host reissues only the server certificate",
			opts:    func(o *ClusterDirOptions) { o.Hosts = append(o.Hosts, "192.0.2.1") },
			changed: []string{"server.crt", "server.key"},
		},
		{
			name:    "leaf inside the renewal window is reissued",
			opts:    func(o *ClusterDirOptions) { o.Now = now.Add(DefaultLeafValidity - DefaultRenewBefore/2) },
			changed: []string{"admin.crt", "admin.key", "local.crt", "local.key", "remote.crt", "remote.key", "server.crt", "server.key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := ClusterDirOptions{Cluster: "c1", Dir: dir, Hosts: []string{"10.0.0.7"}, Now: now}
			f, _, err := WriteClusterDir(opts)
			if err != nil {
				t.Fatal(err)
			}
			if tt.mutate != nil {
				tt.mutate(t, f)
			}
			before := snapshot(t, dir)
			if tt.opts != nil {
				tt.opts(&opts)
			}
			_, written, err := WriteClusterDir(opts)
			if err != nil {
				t.Fatal(err)
			}
			after := snapshot(t, dir)
			if diff := cmp.Diff(tt.changed, changed(before, after)); diff != "" {
				t.Errorf("changed files (-want +got):\n%s", diff)
			}
			var names []string
			for _, w := range written {
				names = append(names, filepath.Base(w))
			}
			slices.Sort(names)
			if diff := cmp.Diff(tt.changed, names); diff != "" {
				t.Errorf("reported written files (-want +got):\n%s", diff)
			}
			// Whatever was rewritten still chains to the kept CA.
			ca, err := LoadCA(f.CACert, f.CAKey)
			if err != nil {
				t.Fatal(err)
			}
			kp, err := LoadKeyPair(f.AdminCert, f.AdminKey)
			if err != nil {
				t.Fatal(err)
			}
			if err := ca.Verify(kp.Cert, x509.ExtKeyUsageClientAuth, opts.Now); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestWriteClusterDirBadCA(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name    string
		mutate  func(t *testing.T, f Files)
		now     time.Time
		wantErr error
		inErr   string
	}{
		{"corrupt CA certificate", func(t *testing.T, f Files) { write(t, f.CACert, "not pem", 0o644) }, now, ErrNoCertificate, "ca.crt"},
		{"missing CA key", func(t *testing.T, f Files) { rm(t, f.CAKey) }, now, os.ErrNotExist, "ca.key"},
		{"CA key of another CA", func(t *testing.T, f Files) {
			data, err := os.ReadFile(f.AdminKey)
			if err != nil {
				t.Fatal(err)
			}
			write(t, f.CAKey, string(data), 0o600)
		}, now, ErrKeyMismatch, "ca.key"},
		{"expired CA", nil, now.Add(DefaultCAValidity + time.Hour), ErrExpired, "ca.crt"},
		{"CA file holds a leaf", func(t *testing.T, f Files) {
			copyFile(t, f.AdminCert, f.CACert)
			copyFile(t, f.AdminKey, f.CAKey)
		}, now, ErrNotCA, "ca.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f, _, err := WriteClusterDir(ClusterDirOptions{Cluster: "c1", Dir: dir, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if tt.mutate != nil {
				tt.mutate(t, f)
			}
			before := snapshot(t, dir)
			_, _, err = WriteClusterDir(ClusterDirOptions{Cluster: "c1", Dir: dir, Now: tt.now})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, tt.inErr)) {
				t.Errorf("error %q does not name %s", err, tt.inErr)
			}
			if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
				t.Errorf("files changed after a CA error (-before +after):\n%s", diff)
			}
		})
	}
}

func TestLoadErrorsNameFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.crt")
	if _, err := LoadCert(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("LoadCert(missing) = %v", err)
	}
	bad := filepath.Join(dir, "bad.crt")
	write(t, bad, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 0o644)
	if _, err := LoadCert(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("LoadCert(bad) = %v", err)
	}
}

func TestParseHosts(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		dns     []string
		ips     []netip.Addr
		wantErr bool
	}{
		{name: "mixed", in: []string{"127.0.0.1", "::1", "Foo.Example.org", "*.mesh.strait.io"},
			dns: []string{"foo.example.org", "*.mesh.strait.io"},
			ips: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}},
		{name: "v4-mapped unmapped", in: []string{"::ffff:10.0.0.1"}, ips: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		{name: "empty", in: []string{""}, wantErr: true},
		{name: "space", in: []string{"a b"}, wantErr: true},
		{name: "leading dash", in: []string{"-a.example"}, wantErr: true},
		{name: "empty label", in: []string{"a..b"}, wantErr: true},
		{name: "url", in: []string{"https://a"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dns, ips, err := ParseHosts(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidHost) {
					t.Fatalf("error %v, want ErrInvalidHost", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.dns, dns); diff != "" {
				t.Errorf("dns (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.ips, ips, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("ips (-want +got):\n%s", diff)
			}
		})
	}
}

func rm(t *testing.T, file string) {
	t.Helper()
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, file, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(file, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, file string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(file, mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(to)
	if err != nil {
		t.Fatal(err)
	}
	write(t, to, string(data), fi.Mode().Perm())
}
