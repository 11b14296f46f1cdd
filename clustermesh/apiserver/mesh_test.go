package apiserver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strait-net/strait/clustermesh/remoteconfig"
)

// TestMeshConfigChecked: the remote-cluster cache options are checked by
// New, naming the field.
func TestMeshConfigChecked(t *testing.T) {
	f := clusterCerts(t, "c1")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		edit      func(*Config)
		wantField string
		wantIs    error
	}{
		{"missing dir", func(c *Config) { c.ClusterMeshConfigDir = filepath.Join(t.TempDir(), "absent") }, "ClusterMeshConfigDir", os.ErrNotExist},
		{"not a dir", func(c *Config) { c.ClusterMeshConfigDir = file }, "ClusterMeshConfigDir", remoteconfig.ErrNotDirectory},
		{"negative grace", func(c *Config) { c.RemovalGrace = -time.Second }, "RemovalGrace", ErrInvalidConfig},
		{"ok", func(c *Config) { c.ClusterMeshConfigDir = t.TempDir(); c.RemovalGrace = time.Second }, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := embeddedConfig(t, "c1", 1, f)
			cfg.ListenClientURLs = []string{"https://127.0.0.1:1"}
			cfg.ListenPeerURL = "http://127.0.0.1:2"
			tt.edit(&cfg)
			s, err := New(discardLogger(), cfg)
			if tt.wantField == "" {
				if err != nil {
					t.Fatal(err)
				}
				if st := s.RemoteStatuses(); st != nil {
					t.Errorf("RemoteStatuses before Run = %v, want nil", st)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.wantField {
				t.Fatalf("New: %v, want a ConfigError for %s", err, tt.wantField)
			}
			if !errors.Is(err, tt.wantIs) || !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New: %v does not match %v and ErrInvalidConfig", err, tt.wantIs)
			}
		})
	}
}
