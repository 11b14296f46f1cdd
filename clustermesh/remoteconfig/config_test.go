package remoteconfig

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/strait-net/strait/clustermesh/kvstore"
)

func TestValidateClusterName(t *testing.T) {
	tests := []struct {
		name  string
		input string
		ok    bool
	}{
		{name: "simple", input: "cluster1", ok: true},
		{name: "single char", input: "a", ok: true},
		{name: "digits and dash", input: "0-9", ok: true},
		{name: "32 chars", input: strings.Repeat("a", 32), ok: true},
		{name: "33 chars", input: strings.Repeat("a", 33)},
		{name: "empty", input: ""},
		{name: "default reserved", input: "default"},
		{name: "uppercase", input: "Cluster1"},
		{name: "leading dash", input: "-c1"},
		{name: "trailing dash", input: "c1-"},
		{name: "dot", input: "c1.etcd-client.crt"},
		{name: "underscore", input: "c_1"},
		{name: "dotdot data", input: "..data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateClusterName(tt.input)
			if tt.ok && err != nil {
				t.Fatalf("ValidateClusterName(%q) = %v, want nil", tt.input, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ValidateClusterName(%q) = %v, want ErrInvalidName", tt.input, err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    File
		wantErr error
		// wantMsg must appear in the error: the field at fault.
		wantMsg string
	}{
		{
			name:  "helm tls file",
			input: "endpoints:\n- https://c2.mesh.cilium.io:2379\ntrusted-ca-file: /var/lib/cilium/clustermesh/common-etcd-client-ca.crt\nkey-file: /var/lib/cilium/clustermesh/common-etcd-client.key\ncert-file: /var/lib/cilium/clustermesh/common-etcd-client.crt\n",
			want: File{
				Endpoints:     []string{"https://c2.mesh.cilium.io:2379"},
				TrustedCAFile: "/var/lib/cilium/clustermesh/common-etcd-client-ca.crt",
				CertFile:      "/var/lib/cilium/clustermesh/common-etcd-client.crt",
				KeyFile:       "/var/lib/cilium/clustermesh/common-etcd-client.key",
			},
		},
		{
			name:  "plaintext several endpoints ipv6",
			input: "endpoints: [\"http://10.0.0.1:2379\", \"http://[fd00::1]:2379/\"]\n",
			want:  File{Endpoints: []string{"http://10.0.0.1:2379", "http://[fd00::1]:2379/"}},
		},
		{
			name:  "ca only",
			input: "endpoints:\n- https://a:1\ntrusted-ca-file: ca.crt\n",
			want:  File{Endpoints: []string{"https://a:1"}, TrustedCAFile: "ca.crt"},
		},
		{
			name:  "deprecated ca-file alias",
			input: "endpoints:\n- https://a:1\nca-file: ca.crt\n",
			want:  File{Endpoints: []string{"https://a:1"}, TrustedCAFile: "ca.crt"},
		},
		{
			name:  "host aliases and unknown etcd keys",
			input: "endpoints:\n- http://c2.mesh.cilium.io:2379\ndial-timeout: 5000000000\ncilium-host-aliases:\n- hostname: c2.mesh.cilium.io\n  ips: [192.0.2.10, \"2001:db8::1\"]\n",
			want: File{
				Endpoints: []string{"http://c2.mesh.cilium.io:2379"},
				HostAliases: []HostAlias{{
					Hostname: "c2.mesh.cilium.io",
					IPs:      []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::1")},
				}},
			},
		},
		{name: "missing endpoints", input: "trusted-ca-file: ca.crt\n", wantErr: ErrNoEndpoints, wantMsg: "endpoints"},
		{name: "empty endpoints", input: "endpoints: []\n", wantErr: ErrNoEndpoints, wantMsg: "endpoints"},
		{name: "empty file", input: "", wantErr: ErrNoEndpoints, wantMsg: "endpoints"},
		{name: "bad yaml", input: "endpoints: [\n", wantErr: ErrSyntax},
		{name: "yaml tabs", input: "endpoints:\n\t- http://a:1\n", wantErr: ErrSyntax},
		{name: "endpoints not a list", input: "endpoints: {a: b}\n", wantErr: ErrSyntax, wantMsg: "endpoints"},
		{name: "scheme ftp", input: "endpoints:\n- ftp://a:21\n", wantErr: ErrInvalidEndpoint, wantMsg: `endpoints[0] "ftp://a:21"`},
		{name: "no scheme", input: "endpoints:\n- 10.0.0.1:2379\n", wantErr: ErrInvalidEndpoint, wantMsg: "endpoints[0]"},
		{name: "missing port", input: "endpoints:\n- http://a\n", wantErr: ErrInvalidEndpoint, wantMsg: "missing port"},
		{name: "port zero", input: "endpoints:\n- http://a:0\n", wantErr: ErrInvalidEndpoint, wantMsg: "port"},
		{name: "port too big", input: "endpoints:\n- http://a:65536\n", wantErr: ErrInvalidEndpoint, wantMsg: "port"},
		{name: "missing host", input: "endpoints:\n- http://:2379\n", wantErr: ErrInvalidEndpoint, wantMsg: "missing host"},
		{name: "path", input: "endpoints:\n- http://a:1/v3\n", wantErr: ErrInvalidEndpoint, wantMsg: "path"},
		{name: "user info", input: "endpoints:\n- http://u:p@a:1\n", wantErr: ErrInvalidEndpoint, wantMsg: "user"},
		{name: "second endpoint bad", input: "endpoints:\n- http://a:1\n- http//b:2\n", wantErr: ErrInvalidEndpoint, wantMsg: "endpoints[1]"},
		{name: "https without ca", input: "endpoints:\n- https://a:1\n", wantErr: ErrTLSFields, wantMsg: "trusted-ca-file"},
		{name: "http with ca", input: "endpoints:\n- http://a:1\ntrusted-ca-file: ca\n", wantErr: ErrTLSFields, wantMsg: "trusted-ca-file"},
		{name: "mixed schemes", input: "endpoints:\n- https://a:1\n- http://b:1\ntrusted-ca-file: ca\n", wantErr: ErrTLSFields, wantMsg: "endpoints[1]"},
		{name: "cert without key", input: "endpoints:\n- https://a:1\ntrusted-ca-file: ca\ncert-file: c\n", wantErr: ErrTLSFields, wantMsg: "key-file"},
		{name: "key without cert", input: "endpoints:\n- https://a:1\ntrusted-ca-file: ca\nkey-file: k\n", wantErr: ErrTLSFields, wantMsg: "cert-file"},
		{name: "cert without ca", input: "endpoints:\n- http://a:1\ncert-file: c\nkey-file: k\n", wantErr: ErrTLSFields, wantMsg: "trusted-ca-file"},
		{name: "ca-file disagrees", input: "endpoints:\n- https://a:1\ntrusted-ca-file: a\nca-file: b\n", wantErr: ErrTLSFields, wantMsg: "ca-file"},
		{name: "alias empty hostname", input: "endpoints:\n- http://a:1\ncilium-host-aliases:\n- ips: [192.0.2.1]\n", wantErr: ErrHostAlias, wantMsg: "cilium-host-aliases[0]"},
		{name: "alias no ips", input: "endpoints:\n- http://a:1\ncilium-host-aliases:\n- hostname: a\n", wantErr: ErrHostAlias, wantMsg: "no ips"},
		{name: "alias duplicate", input: "endpoints:\n- http://a:1\ncilium-host-aliases:\n- {hostname: a, ips: [192.0.2.1]}\n- {hostname: a, ips: [192.0.2.2]}\n", wantErr: ErrHostAlias, wantMsg: "cilium-host-aliases[1]"},
		{name: "alias bad ip", input: "endpoints:\n- http://a:1\ncilium-host-aliases:\n- {hostname: a, ips: [300.1.1.1]}\n", wantErr: ErrSyntax, wantMsg: "300.1.1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.input))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Parse() error = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Parse() error = %q, want it to name %q", err, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Fatalf("Parse() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t)
	certDir := t.TempDir()
	p.writeFiles(t, certDir)
	if err := os.WriteFile(filepath.Join(certDir, "other.key"), other.key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certDir, "garbage.crt"), []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(certDir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	abs := func(name string) string { return filepath.Join(certDir, name) }

	tests := []struct {
		name    string
		file    string // cluster file name
		content string
		// want is the expected Config; Name and Path are checked too.
		want    kvstore.Config
		wantErr error
		wantMsg []string
	}{
		{
			name:    "absolute paths",
			file:    "c1",
			content: string(tlsConfig("https://c1.mesh.cilium.io:2379", certDir)),
			want: kvstore.Config{
				Endpoints:     []string{"https://c1.mesh.cilium.io:2379"},
				TrustedCAFile: abs("ca.crt"), CertFile: abs("tls.crt"), KeyFile: abs("tls.key"),
			},
		},
		{
			name:    "relative paths resolve against the directory",
			file:    "c2",
			content: "endpoints:\n- https://a:2379\ntrusted-ca-file: certs/ca.crt\ncert-file: ./certs/tls.crt\nkey-file: certs/../certs/tls.key\n",
			want: kvstore.Config{
				Endpoints:     []string{"https://a:2379"},
				TrustedCAFile: "<dir>/certs/ca.crt", CertFile: "<dir>/certs/tls.crt", KeyFile: "<dir>/certs/tls.key",
			},
		},
		{
			name:    "plaintext",
			file:    "c3",
			content: "endpoints:\n- http://127.0.0.1:2379\n",
			want:    kvstore.Config{Endpoints: []string{"http://127.0.0.1:2379"}},
		},
		{
			name:    "missing cert file",
			file:    "c1",
			content: "endpoints:\n- https://a:1\ntrusted-ca-file: " + abs("ca.crt") + "\ncert-file: " + abs("missing.crt") + "\nkey-file: " + abs("tls.key") + "\n",
			wantErr: ErrCertificate,
			wantMsg: []string{"cert-file", abs("missing.crt"), "<dir>/c1"},
		},
		{
			name:    "missing ca file",
			file:    "c1",
			content: "endpoints:\n- https://a:1\ntrusted-ca-file: nope/ca.crt\n",
			wantErr: fs.ErrNotExist,
			wantMsg: []string{"trusted-ca-file", "<dir>/nope/ca.crt"},
		},
		{
			name:    "cert path is a directory",
			file:    "c1",
			content: "endpoints:\n- https://a:1\ntrusted-ca-file: " + abs("adir") + "\n",
			wantErr: ErrCertificate,
			wantMsg: []string{"trusted-ca-file", abs("adir"), "is a directory"},
		},
		{
			name:    "ca not pem",
			file:    "c1",
			content: "endpoints:\n- https://a:1\ntrusted-ca-file: " + abs("garbage.crt") + "\n",
			wantErr: ErrCertificate,
			wantMsg: []string{"trusted-ca-file", abs("garbage.crt"), "no PEM certificate"},
		},
		{
			name:    "key does not match cert",
			file:    "c1",
			content: "endpoints:\n- https://a:1\ntrusted-ca-file: " + abs("ca.crt") + "\ncert-file: " + abs("tls.crt") + "\nkey-file: " + abs("other.key") + "\n",
			wantErr: ErrCertificate,
			wantMsg: []string{"cert-file", "key-file", abs("other.key")},
		},
		{
			name:    "bad url names file and field",
			file:    "c1",
			content: "endpoints:\n- https//a:1\n",
			wantErr: ErrInvalidEndpoint,
			wantMsg: []string{"<dir>/c1", "endpoints[0]"},
		},
		{
			name:    "bad yaml names file",
			file:    "c1",
			content: "endpoints: [\n",
			wantErr: ErrSyntax,
			wantMsg: []string{"<dir>/c1"},
		},
		{
			name:    "no endpoints key is not a cluster file",
			file:    "c1",
			content: "trusted-ca-file: ca.crt\n",
			wantErr: ErrNotClusterFile,
			wantMsg: []string{"<dir>/c1"},
		},
		{
			name:    "empty endpoints",
			file:    "c1",
			content: "endpoints: []\n",
			wantErr: ErrNoEndpoints,
			wantMsg: []string{"<dir>/c1", "endpoints"},
		},
		{name: "bad name uppercase", file: "Cluster1", content: "endpoints:\n- http://a:1\n", wantErr: ErrInvalidName, wantMsg: []string{`"Cluster1"`}},
		{name: "bad name default", file: "default", content: "endpoints:\n- http://a:1\n", wantErr: ErrInvalidName, wantMsg: []string{`"default"`}},
		{name: "bad name too long", file: strings.Repeat("c", 33), content: "endpoints:\n- http://a:1\n", wantErr: ErrInvalidName},
		{name: "bad name with dot", file: "c1.yaml", content: "endpoints:\n- http://a:1\n", wantErr: ErrInvalidName},
		{name: "certificate with bad name is not a cluster file", file: "c1.etcd-client.crt", content: string(p.cert), wantErr: ErrNotClusterFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "certs"), 0o755); err != nil {
				t.Fatal(err)
			}
			p.writeFiles(t, filepath.Join(dir, "certs"))
			if err := os.WriteFile(filepath.Join(dir, tt.file), []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			fix := func(s string) string { return strings.ReplaceAll(s, "<dir>", dir) }
			got, err := Load(dir, tt.file)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Load() error = %v, want %v", err, tt.wantErr)
				}
				for _, m := range tt.wantMsg {
					if !strings.Contains(err.Error(), fix(m)) {
						t.Errorf("Load() error = %q, want it to name %q", err, fix(m))
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			want := tt.want
			want.TrustedCAFile, want.CertFile, want.KeyFile = fix(want.TrustedCAFile), fix(want.CertFile), fix(want.KeyFile)
			if diff := cmp.Diff(want, got.Config); diff != "" {
				t.Errorf("Load() config mismatch (-want +got):\n%s", diff)
			}
			if got.Name != tt.file || got.Path != filepath.Join(dir, tt.file) {
				t.Errorf("Load() name, path = %q, %q; want %q, %q", got.Name, got.Path, tt.file, filepath.Join(dir, tt.file))
			}
			if got.Hash == ([32]byte{}) {
				t.Errorf("Load() hash is zero")
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		// chmod 000 does not stop root from reading; TestLoad covers read
		// errors with a directory in place of the file.
		t.Skip("running as root: file permissions do not stop reads")
	}
	dir := t.TempDir()
	p := newPKI(t)
	p.writeFiles(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "c1"), tlsConfig("https://a:1", ""), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "tls.key"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir, "c1")
	if !errors.Is(err, ErrCertificate) || !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "key-file "+filepath.Join(dir, "tls.key")) {
		t.Fatalf("Load() with unreadable key = %v, want ErrCertificate naming key-file", err)
	}
	if err := os.Chmod(filepath.Join(dir, "c1"), 0); err != nil {
		t.Fatal(err)
	}
	_, err = Load(dir, "c1")
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), filepath.Join(dir, "c1")) {
		t.Fatalf("Load() of unreadable file = %v, want a permission error naming it", err)
	}
}

func TestLoadFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "c1"), 0o644); err != nil {
		t.Skipf("mkfifo not available: %v", err)
	}
	// Reading a FIFO would block forever; Load must refuse it instead.
	_, err := Load(dir, "c1")
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Load() of a FIFO = %v, want a not-a-regular-file error", err)
	}
}

func TestLoadTooLarge(t *testing.T) {
	dir := t.TempDir()
	big := append([]byte("endpoints:\n- http://a:1\n#"), make([]byte, MaxFileSize)...)
	if err := os.WriteFile(filepath.Join(dir, "c1"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, "c1"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Load() of a huge file = %v, want ErrTooLarge", err)
	}
}

func TestLoadHash(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t)
	p.writeFiles(t, dir)
	writeAtomic(t, filepath.Join(dir, "c1"), tlsConfig("https://a:1", ""))
	load := func() [32]byte {
		t.Helper()
		rc, err := Load(dir, "c1")
		if err != nil {
			t.Fatal(err)
		}
		return rc.Hash
	}
	h1 := load()
	if h2 := load(); h1 != h2 {
		t.Fatalf("hash of unchanged files differs")
	}
	writeAtomic(t, filepath.Join(dir, "ca.crt"), newPKI(t).ca)
	h3 := load()
	if h3 == h1 {
		t.Fatalf("hash did not change with the CA file")
	}
	writeAtomic(t, filepath.Join(dir, "c1"), tlsConfig("https://a:2", ""))
	if h4 := load(); h4 == h3 {
		t.Fatalf("hash did not change with the endpoints")
	}
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t)
	p.writeFiles(t, dir)
	files := map[string]string{
		"c1":                        string(tlsConfig("https://c1:2379", "")),
		"c2":                        "endpoints:\n- ftp://c2:21\n",
		"Bad":                       "endpoints:\n- http://bad:1\n",
		"common-etcd-client-ca.crt": string(p.ca),
		".hidden":                   "endpoints:\n- http://hidden:1\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A Kubernetes projection: ..data -> ..2024_x/, c3 -> ..data/c3.
	ts := filepath.Join(dir, "..2024_01_01_00_00_00.000000001")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "c3"), plainConfig("http://c3:2379"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, filepath.Base(ts), filepath.Join(dir, "..data"))
	mustSymlink(t, "..data/c3", filepath.Join(dir, "c3"))
	mustSymlink(t, "nowhere", filepath.Join(dir, "dangling"))
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}

	got, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name, rc := range got.Clusters {
		names = append(names, name+"="+strings.Join(rc.Config.Endpoints, ","))
	}
	var invalid []string
	for name, err := range got.Invalid {
		invalid = append(invalid, name)
		if !strings.Contains(err.Error(), filepath.Join(dir, name)) {
			t.Errorf("error of %s does not name its file: %v", name, err)
		}
	}
	sortStrings := cmpopts.SortSlices(func(a, b string) bool { return a < b })
	if diff := cmp.Diff([]string{"c1=https://c1:2379", "c3=http://c3:2379"}, names, sortStrings); diff != "" {
		t.Errorf("clusters mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Bad", "c2"}, invalid, sortStrings); diff != "" {
		t.Errorf("invalid mismatch (-want +got):\n%s", diff)
	}

	if _, err := Scan(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Scan(missing) = %v, want fs.ErrNotExist", err)
	}
}

func mustSymlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
