package apiserver

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

func validEmbedded() Config {
	return Config{
		ClusterName:      "c1",
		ClusterID:        1,
		Max:              identity.ClusterMax255,
		DataDir:          "/tmp/x",
		ListenClientURLs: []string{"https://127.0.0.1:2379"},
		ListenPeerURL:    "http://127.0.0.1:2380",
		ServerCertFile:   "s.crt", ServerKeyFile: "s.key",
		ClientCAFile:  "ca.crt",
		AdminCertFile: "a.crt", AdminKeyFile: "a.key",
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(c *Config)
		wantField string
		wantIs    error
	}{
		{name: "valid embedded", mutate: func(c *Config) {}},
		{name: "valid external", mutate: func(c *Config) {
			c.ExternalEndpoints = []string{"https://etcd:2379"}
			c.DataDir, c.ListenClientURLs, c.ListenPeerURL, c.ServerCertFile, c.ServerKeyFile = "", nil, "", "", ""
		}},
		{name: "bad name", mutate: func(c *Config) { c.ClusterName = "C1" }, wantField: "ClusterName", wantIs: schema.ErrInvalidClusterName},
		{name: "empty name", mutate: func(c *Config) { c.ClusterName = "" }, wantField: "ClusterName", wantIs: schema.ErrInvalidClusterName},
		{name: "default name with ID", mutate: func(c *Config) { c.ClusterName = "default" }, wantField: "ClusterName", wantIs: schema.ErrInvalidClusterName},
		{name: "ID 0", mutate: func(c *Config) { c.ClusterID = 0 }, wantField: "ClusterID", wantIs: identity.ErrInvalidClusterID},
		{name: "ID above max", mutate: func(c *Config) { c.ClusterID = 256 }, wantField: "ClusterID", wantIs: identity.ErrInvalidClusterID},
		{name: "ID 511 with max 511", mutate: func(c *Config) { c.ClusterID, c.Max = 511, identity.ClusterMax511 }},
		{name: "bad max", mutate: func(c *Config) { c.Max = 256 }, wantField: "Max", wantIs: identity.ErrInvalidClusterMax},
		{name: "no data dir", mutate: func(c *Config) { c.DataDir = "" }, wantField: "DataDir"},
		{name: "no listen URL", mutate: func(c *Config) { c.ListenClientURLs = nil }, wantField: "ListenClientURLs"},
		{name: "plain http client URL", mutate: func(c *Config) { c.ListenClientURLs = []string{"http://127.0.0.1:2379"} }, wantField: "ListenClientURLs"},
		{name: "client URL without port", mutate: func(c *Config) { c.ListenClientURLs = []string{"https://127.0.0.1"} }, wantField: "ListenClientURLs"},
		{name: "no peer URL", mutate: func(c *Config) { c.ListenPeerURL = "" }, wantField: "ListenPeerURL"},
		{name: "bad peer URL", mutate: func(c *Config) { c.ListenPeerURL = "unix:///x" }, wantField: "ListenPeerURL"},
		{name: "no server cert", mutate: func(c *Config) { c.ServerCertFile = "" }, wantField: "ServerCertFile"},
		{name: "no server key", mutate: func(c *Config) { c.ServerKeyFile = "" }, wantField: "ServerKeyFile"},
		{name: "no CA", mutate: func(c *Config) { c.ClientCAFile = "" }, wantField: "ClientCAFile"},
		{name: "no admin cert", mutate: func(c *Config) { c.AdminCertFile = "" }, wantField: "AdminCertFile"},
		{name: "no admin key", mutate: func(c *Config) { c.AdminKeyFile = "" }, wantField: "AdminKeyFile"},
		{name: "negative heartbeat", mutate: func(c *Config) { c.HeartbeatInterval = -1 }, wantField: "HeartbeatInterval"},
		{name: "external with data dir", mutate: func(c *Config) {
			c.ExternalEndpoints = []string{"https://etcd:2379"}
			c.ListenClientURLs, c.ListenPeerURL = nil, ""
		}, wantField: "DataDir"},
		{name: "external plain http", mutate: func(c *Config) {
			c.ExternalEndpoints = []string{"http://etcd:2379"}
			c.DataDir, c.ListenClientURLs, c.ListenPeerURL = "", nil, ""
		}, wantField: "ExternalEndpoints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validEmbedded()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
			if ce.Field != tt.wantField {
				t.Errorf("field %q, want %q (%v)", ce.Field, tt.wantField, err)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Error("not ErrInvalidConfig")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	want := []Role{
		{Name: "local", Perms: []Perm{
			{Key: "cilium/.heartbeat", RangeEnd: "cilium/.heartbeau"},
			{Key: "cilium/cache/", RangeEnd: "cilium/cache0"},
			{Key: "cilium/cluster-config/", RangeEnd: "cilium/cluster-config0"},
			{Key: "cilium/synced/", RangeEnd: "cilium/synced0"},
		}},
		{Name: "remote", Perms: []Perm{
			{Key: "cilium/.heartbeat", RangeEnd: "cilium/.heartbeau"},
			{Key: "cilium/state/", RangeEnd: "cilium/state0"},
			{Key: "cilium/cluster-config/c1"},
			{Key: "cilium/synced/c1/", RangeEnd: "cilium/synced/c10"},
		}},
	}
	if diff := cmp.Diff(want, Roles("c1")); diff != "" {
		t.Errorf("Roles (-want +got):\n%s", diff)
	}
	wantUsers := []User{{"root", "root"}, {"admin-c1", "root"}, {"local-c1", "local"}, {"remote", "remote"}}
	if diff := cmp.Diff(wantUsers, Users("c1")); diff != "" {
		t.Errorf("Users (-want +got):\n%s", diff)
	}
}

func TestNewRejectsNonAdminCert(t *testing.T) {
	f := clusterCerts(t, "c1")
	tests := []struct {
		name     string
		certFile string
		wantIs   error
	}{
		{"remote cert as admin", f.RemoteCert, ErrAdminIdentity},
		{"local cert as admin", f.LocalCert, ErrAdminIdentity},
		{"missing file", f.Dir + "/missing.crt", ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := embeddedConfig(t, "c1", 1, f)
			cfg.ListenClientURLs, cfg.ListenPeerURL = []string{"https://127.0.0.1:1"}, "http://127.0.0.1:2"
			cfg.AdminCertFile = tt.certFile
			_, err := New(discardLogger(), cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != "AdminCertFile" || !errors.Is(err, tt.wantIs) {
				t.Fatalf("New: %v, want a ConfigError on AdminCertFile matching %v", err, tt.wantIs)
			}
		})
	}
}

func TestDialURL(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"loopback kept", "https://127.0.0.1:2379", "https://127.0.0.1:2379"},
		{"any v4", "https://0.0.0.0:2379", "https://127.0.0.1:2379"},
		{"any v6", "https://[::]:2379", "https://[::1]:2379"},
		{"name kept", "https://c1.mesh.strait.io:2379", "https://c1.mesh.strait.io:2379"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dialURL(tt.in); got != tt.want {
				t.Errorf("dialURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
