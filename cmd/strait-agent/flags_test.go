package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestValidateFlags(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"ca.crt", "admin.crt", "admin.key"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	good := []string{
		"--cluster-name=cluster1", "--cluster-id=1", "--node-name=node1", "--node-ip=198.18.1.11",
		"--pod-cidr=10.1.1.0/24", "--kvstore-endpoints=https://198.18.1.1:2379",
		"--kvstore-ca-file=" + filepath.Join(dir, "ca.crt"), "--kvstore-cert-file=" + filepath.Join(dir, "admin.crt"),
		"--kvstore-key-file=" + filepath.Join(dir, "admin.key"), "--state-dir=" + dir,
	}
	tests := []struct {
		name  string
		args  []string
		want  string // substring of the error; "" for success
		check func(t *testing.T, s *settings)
	}{
		{name: "good", args: good, check: func(t *testing.T, s *settings) {
			if s.cfg.Cluster != "cluster1" || s.cfg.ClusterID != 1 || s.cfg.Max != 255 || s.cfg.PodCIDR.String() != "10.1.1.0/24" ||
				s.wgDevice != "strait-wg0" || s.wgPort != 51871 || s.cfg.Encryption != "wireguard" || s.socket != "/var/run/strait/agent.sock" {
				t.Errorf("settings %+v", s)
			}
		}},
		{name: "strict and metrics", args: append(good, "--strict-mode-cidr=10.2.0.0/16, 10.1.0.0/16", "--metrics-addr=127.0.0.1:9962"), check: func(t *testing.T, s *settings) {
			if len(s.strict) != 2 || s.metricsAddr != "127.0.0.1:9962" {
				t.Errorf("settings %+v", s)
			}
		}},
		{name: "no cluster name", args: without(good, "--cluster-name"), want: "--cluster-name: required"},
		{name: "bad cluster name", args: append(good, "--cluster-name=Bad_Name"), want: "--cluster-name"},
		{name: "cluster id 0", args: without(good, "--cluster-id"), want: "--cluster-id: 0"},
		{name: "cluster id too big", args: append(good, "--cluster-id=256"), want: "--cluster-id: 256"},
		{name: "cluster id 300 with 511", args: append(good, "--cluster-id=300", "--max-connected-clusters=511")},
		{name: "max 300", args: append(good, "--max-connected-clusters=300"), want: "--max-connected-clusters"},
		{name: "no node name", args: without(good, "--node-name"), want: "--node-name: required"},
		{name: "node name with slash", args: append(good, "--node-name=a/b"), want: "--node-name"},
		{name: "no node ip", args: without(good, "--node-ip"), want: "--node-ip: required"},
		{name: "ipv6 node ip", args: append(good, "--node-ip=fd00::1"), want: "--node-ip"},
		{name: "no pod cidr", args: without(good, "--pod-cidr"), want: "--pod-cidr: required"},
		{name: "pod cidr host bits", args: append(good, "--pod-cidr=10.1.1.1/24"), want: "--pod-cidr"},
		{name: "pod cidr holds node ip", args: append(good, "--pod-cidr=198.18.0.0/16"), want: "--pod-cidr: 198.18.0.0/16 contains --node-ip"},
		{name: "no endpoints", args: without(good, "--kvstore-endpoints"), want: "--kvstore-endpoints: required"},
		{name: "http endpoint", args: append(good, "--kvstore-endpoints=http://198.18.1.1:2379"), want: "--kvstore-endpoints"},
		{name: "endpoint without port", args: append(good, "--kvstore-endpoints=https://198.18.1.1"), want: "--kvstore-endpoints"},
		{name: "no ca", args: without(good, "--kvstore-ca-file"), want: "--kvstore-ca-file: required"},
		{name: "missing cert", args: append(good, "--kvstore-cert-file=/nonexistent/admin.crt"), want: "--kvstore-cert-file"},
		{name: "missing key", args: append(good, "--kvstore-key-file="+dir), want: "--kvstore-key-file"},
		{name: "ipsec without key file", args: append(good, "--encryption=ipsec"), want: "--ipsec-key-file: required"},
		{name: "ipsec missing key file", args: append(good, "--encryption=ipsec", "--ipsec-key-file=/nonexistent/keys"), want: "--ipsec-key-file"},
		{name: "ipsec", args: append(good, "--encryption=ipsec", "--ipsec-key-file="+filepath.Join(dir, "ca.crt"), "--strict-mode-cidr=10.0.0.0/8"), check: func(t *testing.T, s *settings) {
			if s.ipsecKeyFile == "" || s.ipsecRotationDelay != 5*time.Minute || len(s.strict) != 1 {
				t.Errorf("settings %+v", s)
			}
		}},
		{name: "unknown encryption", args: append(good, "--encryption=rot13"), want: "--encryption"},
		{name: "none", args: append(good, "--encryption=none")},
		{name: "ipsec key without ipsec", args: append(good, "--ipsec-key-file=/x"), want: "--ipsec-key-file"},
		{name: "bad mode", args: append(good, "--wireguard-mode=fast"), want: "--wireguard-mode"},
		{name: "bad device", args: append(good, "--wireguard-device=a/b"), want: "--wireguard-device"},
		{name: "bad port", args: append(good, "--wireguard-port=70000"), want: "--wireguard-port"},
		{name: "missing binary", args: append(good, "--wireguard-binary=/nonexistent"), want: "--wireguard-binary"},
		{name: "bad underlay", args: append(good, "--underlay-device=way-too-long-device-name"), want: "--underlay-device"},
		{name: "bad strict cidr", args: append(good, "--strict-mode-cidr=10.1.1.1/16"), want: "--strict-mode-cidr"},
		{name: "strict without encryption", args: append(good, "--strict-mode-cidr=10.1.0.0/16", "--encryption=none"), want: "--strict-mode-cidr"},
		{name: "bad metrics addr", args: append(good, "--metrics-addr=nowhere"), want: "--metrics-addr"},
		{name: "bad log level", args: append(good, "--log-level=loud"), want: "--log-level"},
		{name: "empty socket", args: append(good, "--socket="), want: "--socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &flags{}
			fs := pflag.NewFlagSet("strait-agent", pflag.ContinueOnError)
			f.register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			s, err := f.validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				if tt.check != nil {
					tt.check(t, s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "invalid "+tt.want) {
				t.Fatalf("validate error %v, want one containing %q", err, "invalid "+tt.want)
			}
		})
	}
}

// TestCommandRejectsArgs: the command takes no positional arguments and
// reports unknown flags instead of starting.
func TestCommandRejectsArgs(t *testing.T) {
	for _, args := range [][]string{{"extra"}, {"--no-such-flag"}} {
		cmd := newCommand(os.Stderr)
		cmd.SetArgs(args)
		if err := cmd.Execute(); err == nil {
			t.Errorf("args %q: no error", args)
		}
	}
}

// without drops the flag named name from args.
func without(args []string, name string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, name+"=") {
			out = append(out, a)
		}
	}
	return out
}
